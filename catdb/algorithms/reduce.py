"""CCD reduction of raw frames: overscan, trim, master bias, master dark, master flat, science frames.

All arithmetic is done by :mod:`ccdproc` (Craig et al. 2017, doi:10.5281/zenodo.1069648);
this module only decides *which* frames and sections to use, carries the FITS header
through, and keeps the WCS valid after trimming.

Conventions
-----------
* FITS sections (``BIASSEC``, ``TRIMSEC``) are 1-based and inclusive, ``[x1:x2,y1:y2]``
  (FITS Standard 4.0, and IRAF ``ccdproc``); :func:`ccdproc.trim_image` and
  :func:`ccdproc.subtract_overscan` are given them with ``fits_section=``.
* After trimming, ``CRPIX1 -= x1 - 1`` and ``CRPIX2 -= y1 - 1`` so every pixel keeps
  its sky position; ``LTV1``/``LTV2`` record the offset as IRAF does.
* Processing is recorded in IRAF-style cards (``OVERSCAN``, ``TRIM``, ``ZEROCOR``,
  ``FLATCOR``, ``CCDPROC``) plus ``HISTORY`` lines naming every input file and the
  catdb version.  :func:`overscan_trim` refuses a frame that already has ``TRIM``.
* Values stay in ADU (gain is *not* applied): ``GAIN``/``AGAIN_01`` remain valid.

Cameras without an overscan strip (no ``BIASSEC``, e.g. SBIG under TheSkyX) are used whole:
:func:`prepare_frame` skips the overscan step and the master bias carries the whole zero level.

Wiring: a reduction stage calls :func:`master_bias`, :func:`master_dark` (when darks exist)
and :func:`master_flat` (when flats exist) once per calibration group (their
``used``/``skipped`` lists go to the stage log) and :func:`reduce_science` per exposure; the output ``.fits.fz``
is then an ``exposure`` row (``hdu=1``) like any other image.
"""
from __future__ import annotations

import os
import re
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import ccdproc
import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.nddata import CCDData
from astropy.stats import mad_std
from astropy.utils.exceptions import AstropyWarning

from .._version import __version__
from ..errors import InputError
from ..imagetypes import normalise_image_type
from ..wcsutil import clean_wcs_header
from .imagehdu import first_image_hdu, is_2d_image

__all__ = ["CalibrationFrame", "read_raw", "parse_section", "frame_filter", "frame_type",
           "overscan_trim", "prepare_frame", "has_overscan", "master_bias", "master_dark", "master_flat",
           "dither_seed", "reduce_science", "frame_exptime"]

#: raw ADC ceiling of 16-bit cameras (used for ``SATURATE`` when the header has none)
ADC_MAX = 65535.0

_SECTION = re.compile(r"^\[\s*(\d+)\s*:\s*(\d+)\s*,\s*(\d+)\s*:\s*(\d+)\s*\]$")


@dataclass
class CalibrationFrame:
    """A master calibration frame and the bookkeeping of how it was made.

    Attributes
    ----------
    ccd : astropy.nddata.CCDData
        The master frame (trimmed, ADU for a bias, normalised to median 1 for a flat).
    used : list of str
        Paths combined into it.
    skipped : list of (str, str)
        Paths left out and why (e.g. ``"FILTER 'V', expected 'VR'"``).
    """

    ccd: CCDData
    used: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def header(self) -> fits.Header:
        return self.ccd.header


def read_raw(path, hdu: int | None = None) -> CCDData:
    """Read one image HDU as :class:`~astropy.nddata.CCDData` in ADU.

    Parameters
    ----------
    path : str or os.PathLike
        FITS file, plain or tile-compressed (``.fits.fz``, image in HDU 1).
    hdu : int, optional
        0-based HDU index; default the first HDU holding a 2-D image.

    Returns
    -------
    astropy.nddata.CCDData
        float32 data, unit ADU, ``meta`` = the full header (WCS cards as in the file;
        no ``wcs`` attribute is attached, so quoted WCS strings cannot mislead it).

    Raises
    ------
    catdb.errors.InputError
        Missing file or no 2-D image HDU.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    with fits.open(path) as hdul:
        h = first_image_hdu(hdul, path) if hdu is None else hdul[hdu]
        if not is_2d_image(h):
            raise InputError(f"HDU {hdu} holds no 2-D image", path=path)
        data = np.asarray(h.data, dtype=np.float32)
        header = h.header.copy()
    for k in ("BZERO", "BSCALE", "ZIMAGE", "ZCMPTYPE"):
        header.remove(k, ignore_missing=True)
    ccd = CCDData(data, unit=u.adu, meta=header)
    ccd.meta["CATDBSRC"] = (str(path.name), "catdb: file read")
    return ccd


def parse_section(text: str, *, path=None, keyword=None) -> tuple[int, int, int, int]:
    """Parse a FITS/IRAF section ``'[x1:x2,y1:y2]'`` (1-based, inclusive).

    Returns
    -------
    (x1, x2, y1, y2) : tuple of int

    Raises
    ------
    catdb.errors.InputError
        If the text is not of that form or has x2 < x1 or y2 < y1.
    """
    m = _SECTION.match(str(text).strip())
    if not m:
        raise InputError(f"section {text!r} is not of the form '[x1:x2,y1:y2]'", path=path,
                         keyword=keyword)
    x1, x2, y1, y2 = map(int, m.groups())
    if x2 < x1 or y2 < y1 or min(x1, y1) < 1:
        raise InputError(f"section {text!r} is empty or not 1-based", path=path, keyword=keyword)
    return x1, x2, y1, y2


def frame_filter(header: fits.Header) -> str | None:
    """Filter name from ``FILTER``, else ``FILTNAME`` (Lowell flats only have the latter)."""
    for k in ("FILTER", "FILTNAME", "FILTER1"):
        v = header.get(k)
        if v is not None and str(v).strip():
            return str(v).strip()
    return None


def frame_type(header: fits.Header) -> str:
    """Normalised image type of a raw frame, the same vocabulary as ``catdb ingest``.

    Reads ``IMAGETYP`` then ``OBSTYPE`` and maps it with
    :func:`catdb.imagetypes.normalise_image_type` ('Bias Frame'/'zero' -> 'bias',
    'Dark Frame'/'DARKFLAT' -> 'dark', 'Flat Field'/'SKYFLAT' -> 'flat', 'Light Frame'/'object'
    -> 'science', ...); an unknown value comes back lower-cased, a missing one as ``''``.
    The reduce stage itself trusts ``exposure.image_type`` from the database; this is for
    callers of the functions below that pass files directly.
    """
    v = header.get("IMAGETYP", header.get("OBSTYPE"))
    return normalise_image_type(v) or ""


def overscan_trim(ccd: CCDData, header: fits.Header | None = None, *, path=None,
                  overscan_model=None) -> CCDData:
    """Subtract the overscan (row by row) and trim to the data section.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Raw frame, shape (NAXIS2, NAXIS1), ADU.
    header : astropy.io.fits.Header, optional
        Header with ``BIASSEC`` and ``TRIMSEC`` (without ``TRIMSEC``: the data section
        ``DATASEC``); default ``ccd.meta``.
    path : str, optional
        For error messages.
    overscan_model : astropy.modeling.Model, optional
        Fit this model along the rows to the overscan (e.g. ``Chebyshev1D(2)``); default
        None: the median of each overscan row is subtracted from that row.

    Returns
    -------
    astropy.nddata.CCDData
        The trimmed frame, shape (y2-y1+1, x2-x1+1); header with ``OVERSCAN``, ``TRIM``,
        ``OVSCNMED`` (median overscan level, ADU), ``LTV1/2`` and ``CRPIX1/2`` shifted by the
        trim offset (WCS cards cast to numbers with :func:`catdb.wcsutil.clean_wcs_header`).

    Raises
    ------
    catdb.errors.InputError
        ``BIASSEC``/``TRIMSEC`` (or ``DATASEC``) missing or malformed, outside the image, or the frame is
        already trimmed (``TRIM`` card present).

    Notes
    -----
    Overscan correction as in IRAF ``ccdproc`` (Massey 1997, "A User's Guide to CCD
    Reductions with IRAF", sec. 3.2), done by :func:`ccdproc.subtract_overscan`
    (``overscan_axis=1`` for a column strip, i.e. one value per row).
    """
    header = clean_wcs_header(ccd.meta if header is None else header, path=path)
    path = path or header.get("CATDBSRC")
    if "TRIM" in header:
        raise InputError(f"frame is already trimmed ({header['TRIM']!r})", path=path, keyword="TRIM")
    ny, nx = ccd.shape
    secs = {}
    # no TRIMSEC: the data section DATASEC (an LCO Sinistro amplifier: BIASSEC and DATASEC only)
    trim_key = "DATASEC" if "TRIMSEC" not in header and "DATASEC" in header else "TRIMSEC"
    for key in ("BIASSEC", trim_key):
        if key not in header:
            raise InputError(f"missing {key}{' (and DATASEC)' if key == 'TRIMSEC' else ''}, expected a section "
                             "like '[1388:1432,1:1370]'", path=path, keyword=key)
        x1, x2, y1, y2 = parse_section(header[key], path=path, keyword=key)
        if x2 > nx or y2 > ny:
            raise InputError(f"{key} {header[key]} lies outside the {nx}x{ny} image", path=path,
                             keyword=key)
        secs[key] = (x1, x2, y1, y2)
    bx1, bx2, by1, by2 = secs["BIASSEC"]
    tx1, tx2, ty1, ty2 = secs[trim_key]
    # a strip of columns -> one overscan value per row (axis 1); a strip of rows -> per column
    axis = 1 if (bx2 - bx1) < (by2 - by1) else 0
    # the rows (columns) the strip covers: an LCO amplifier's overscan spans 512 of its 522 rows
    lo, hi, tlo, thi = (by1, by2, ty1, ty2) if axis == 1 else (bx1, bx2, tx1, tx2)
    if tlo < lo or thi > hi:
        raise InputError(f"{trim_key} {header[trim_key]} extends beyond the {'rows' if axis == 1 else 'columns'} "
                         f"of BIASSEC {header['BIASSEC']}: no overscan value there", path=path, keyword="BIASSEC")
    rows = slice(by1 - 1, by2) if axis == 1 else slice(None)
    cols = slice(None) if axis == 1 else slice(bx1 - 1, bx2)
    ccd = CCDData(ccd.data[rows, cols], unit=ccd.unit, meta=header)
    oy, ox = (by1 - 1, 0) if axis == 1 else (0, bx1 - 1)  # origin of the kept block in the frame
    oscan = ccd[by1 - 1 - oy:by2 - oy, bx1 - 1 - ox:bx2 - ox]
    oscan_level = float(np.median(oscan.data))
    out = ccdproc.subtract_overscan(ccd, overscan=oscan, overscan_axis=axis, median=True, model=overscan_model,
                                    add_keyword=False)
    out = ccdproc.trim_image(out[ty1 - 1 - oy:ty2 - oy, tx1 - 1 - ox:tx2 - ox], add_keyword=False)
    out.data = out.data.astype(np.float32)
    h = out.meta
    for i, off in ((1, tx1 - 1), (2, ty1 - 1)):
        if f"CRPIX{i}" in h:
            h[f"CRPIX{i}"] = float(h[f"CRPIX{i}"]) - off
        h[f"LTV{i}"] = (float(h.get(f"LTV{i}", 0.0)) - off, "offset physical -> image pixels")
    h["OSCNMED"] = (oscan_level, "[adu] median overscan level subtracted")
    h["OVERSCAN"] = (f"Overscan section is {header['BIASSEC']} (median per "
                     f"{'row' if axis == 1 else 'column'})")
    h["TRIM"] = f"Trim data section is {header[trim_key]}" + (" (DATASEC)" if trim_key == "DATASEC" else "")
    return out


#: processing cards of a frame that catdb (or IRAF ccdproc) has already reduced
_DONE_CARDS = ("TRIM", "ZEROCOR", "CCDPROC")


def has_overscan(header: fits.Header) -> bool:
    """True when the frame declares an overscan region (``BIASSEC``)."""
    return "BIASSEC" in header and str(header["BIASSEC"]).strip() != ""


def prepare_frame(ccd: CCDData, *, path=None) -> CCDData:
    """Overscan-correct and trim a raw frame when it has an overscan; otherwise keep it whole.

    Parameters
    ----------
    ccd : astropy.nddata.CCDData
        Raw frame (:func:`read_raw`).
    path : str, optional
        For error messages.

    Returns
    -------
    astropy.nddata.CCDData
        With ``BIASSEC``: :func:`overscan_trim` (``TRIMSEC`` or ``DATASEC`` required).  Without it (cameras
        with no overscan strip, e.g. SBIG/TheSkyX): the whole frame, float32, header card
        ``OVERSCAN = 'none: no BIASSEC ...'`` -- the bias level then comes from the master bias
        alone (Massey 1997, sec. 3.2: bias frames are the only zero reference of such cameras).
        WCS cards are cast to numbers in both cases.

    Raises
    ------
    catdb.errors.InputError
        Bad sections (see :func:`overscan_trim`), or the frame is already reduced (``TRIM``,
        ``ZEROCOR`` or ``CCDPROC`` card present).
    """
    header = ccd.meta
    path = path or header.get("CATDBSRC")
    if has_overscan(header):
        return overscan_trim(ccd, path=path)
    for k in _DONE_CARDS:
        if k in header:
            raise InputError(f"frame is already reduced ({k} = {header[k]!r})", path=path, keyword=k)
    h = clean_wcs_header(header, path=path)
    h["OVERSCAN"] = "none: no BIASSEC (bias from the bias frames alone, whole frame)"
    return CCDData(np.asarray(ccd.data, dtype=np.float32), unit=ccd.unit, meta=h)


def frame_exptime(header: fits.Header, path=None) -> float:
    """Exposure time (s) of a frame from ``EXPTIME``, else ``EXPOSURE`` / ``ITIME``.

    Raises
    ------
    catdb.errors.InputError
        None of them is a number.
    """
    for k in ("EXPTIME", "EXPOSURE", "ITIME"):
        v = header.get(k)
        if v is not None and not isinstance(v, bool):
            try:
                return float(v)
            except (TypeError, ValueError):
                continue
    raise InputError("no exposure time (EXPTIME, EXPOSURE or ITIME) in the header", path=path, keyword="EXPTIME")


def master_bias(paths, *, hdu: int | None = None, sigma: float = 3.0) -> CalibrationFrame:
    """Combine bias (zero) frames into a master bias.

    Each frame is overscan-corrected and trimmed (:func:`overscan_trim`) when it has a
    ``BIASSEC``, else used whole (:func:`prepare_frame`), then all are combined with
    :func:`ccdproc.combine`, ``method='average'`` with ``sigma``-clipping
    (median-centred, MAD-based std) to reject cosmic rays.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Raw bias frames.
    hdu : int, optional
        0-based HDU index; default the first 2-D image HDU.
    sigma : float
        Clipping threshold (both sides).

    Returns
    -------
    CalibrationFrame
        ``ccd``: master bias, trimmed shape, ADU (residual bias after overscan, or the whole
        bias level -- pedestal included -- without an overscan);
        ``used``/``skipped``: frames whose ``IMAGETYP`` is not bias/zero, or whose shape
        differs from the first used frame, are skipped with a reason.

    Raises
    ------
    catdb.errors.InputError
        No usable bias frame.
    """
    used, skipped, ccds = [], [], []
    for p in paths:
        ccd = read_raw(p, hdu=hdu)
        kind = frame_type(ccd.meta)
        if kind != "bias":
            skipped.append((str(p), f"IMAGETYP {ccd.meta.get('IMAGETYP')!r}, expected bias/zero"))
            continue
        t = prepare_frame(ccd, path=p)
        if ccds and t.shape != ccds[0].shape:
            skipped.append((str(p), f"trimmed shape {t.shape}, expected {ccds[0].shape}"))
            continue
        ccds.append(t)
        used.append(str(p))
    if not ccds:
        raise InputError("no usable bias frame among the inputs: "
                         + "; ".join(f"{p}: {r}" for p, r in skipped), path=paths[0] if paths else None)
    master = _combine(ccds, sigma=sigma)
    h = ccds[0].meta.copy()
    h.remove("CATDBSRC", ignore_missing=True)
    h["IMAGETYP"] = "MASTER_BIAS"
    h["NCOMBINE"] = (len(ccds), "frames combined")
    _add_history(h, "master bias: sigma-clipped average (ccdproc.combine) of", used)
    master.meta = h
    return CalibrationFrame(master, used, skipped)


def _combine(ccds, sigma, scale=None) -> CCDData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyWarning)
        out = ccdproc.combine(ccds, method="average", scale=scale, sigma_clip=True,
                              sigma_clip_low_thresh=sigma, sigma_clip_high_thresh=sigma,
                              sigma_clip_func=np.ma.median, sigma_clip_dev_func=_mad_std,
                              dtype=np.float32)
    out.uncertainty = None
    out.mask = None
    return out


def _mad_std(a, axis=None, **kw):
    return mad_std(a, axis=axis, ignore_nan=True)


def _as_master(m, what) -> CCDData:
    if isinstance(m, CalibrationFrame):
        return m.ccd
    if isinstance(m, CCDData):
        return m
    if isinstance(m, (str, os.PathLike)):
        return read_raw(m)
    raise TypeError(f"{what} must be a CalibrationFrame, CCDData or path, not {type(m).__name__}")


def master_dark(paths, master_bias, *, hdu: int | None = None, sigma: float = 3.0,
                exptime: float | None = None) -> CalibrationFrame:
    """Combine dark frames of one exposure time into a bias-subtracted master dark.

    Each frame: :func:`prepare_frame`, :func:`ccdproc.subtract_bias`; then a sigma-clipped
    average (:func:`ccdproc.combine`, as :func:`master_bias`) removes cosmic rays.  What is
    left is the dark current (and hot pixels) of ``exptime`` seconds, in ADU; it is applied to
    science frames of the same exposure time as it is, or scaled by the ratio of exposure times
    (Massey 1997, sec. 3.3; ccdproc ``subtract_dark(scale=True)``), which assumes the dark
    current is linear in time and the temperature the same.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Raw dark frames.
    master_bias : CalibrationFrame, CCDData or path
        From :func:`master_bias` (same geometry).
    hdu : int, optional
        0-based HDU index; default the first 2-D image HDU.
    sigma : float
        Clipping threshold (both sides).
    exptime : float, optional
        The exposure time (s) the master is for; default the first frame's.  Frames of another
        exposure time (more than 0.1 % off) are skipped.

    Returns
    -------
    CalibrationFrame
        ``ccd``: master dark in ADU, header ``EXPTIME`` = ``exptime``, ``IMAGETYP =
        'MASTER_DARK'``; ``skipped``: frames not a dark, of another exposure time or shape.

    Raises
    ------
    catdb.errors.InputError
        No usable dark frame (each reason listed).
    """
    bias = _as_master(master_bias, "master_bias")
    used, skipped, ccds = [], [], []
    for p in paths:
        ccd = read_raw(p, hdu=hdu)
        if frame_type(ccd.meta) != "dark":
            skipped.append((str(p), f"IMAGETYP {ccd.meta.get('IMAGETYP')!r}, expected a dark"))
            continue
        t_exp = frame_exptime(ccd.meta, path=p)
        if exptime is None:
            exptime = t_exp
        if abs(t_exp - exptime) > 1e-3 * max(exptime, 1e-3):
            skipped.append((str(p), f"EXPTIME {t_exp:g} s, expected {exptime:g} s"))
            continue
        t = prepare_frame(ccd, path=p)
        if t.shape != bias.shape:
            skipped.append((str(p), f"shape {t.shape} differs from master bias {bias.shape}"))
            continue
        ccds.append(ccdproc.subtract_bias(t, bias, add_keyword=False))
        used.append(str(p))
    if not ccds:
        raise InputError("no usable dark frame among the inputs: "
                         + "; ".join(f"{p}: {r}" for p, r in skipped), path=paths[0] if paths else None,
                         keyword="IMAGETYP")
    master = _combine(ccds, sigma=sigma)
    h = ccds[0].meta.copy()
    h.remove("CATDBSRC", ignore_missing=True)
    h["IMAGETYP"] = "MASTER_DARK"
    h["EXPTIME"] = (float(exptime), "[s] exposure time of the combined darks")
    h["NCOMBINE"] = (len(ccds), "frames combined")
    _add_history(h, f"master dark {exptime:g} s: bias-subtracted, sigma-clipped average of", used)
    master.meta = h
    return CalibrationFrame(master, used, skipped)


def master_flat(paths, master_bias, *, filter: str, hdu: int | None = None,
                sigma: float = 3.0, min_level: float = 1000.0,
                max_level: float = 0.8 * ADC_MAX) -> CalibrationFrame:
    """Combine flat-field frames of one filter into a normalised master flat.

    Each frame: :func:`prepare_frame` (overscan and trim when there is a ``BIASSEC``),
    :func:`ccdproc.subtract_bias` (no dark: the dark current of a flat's few seconds is
    negligible against its level of >= ``min_level`` ADU); frames are scaled to
    a common level (1 / median) and combined with :func:`ccdproc.combine` (sigma-clipped
    average, which removes stars in twilight flats); the result is divided by its median.

    Parameters
    ----------
    paths : sequence of str or os.PathLike
        Raw flat frames (sky or dome).
    master_bias : CalibrationFrame, CCDData or path
        From :func:`master_bias`.
    filter : str
        Filter the flat is for, compared (case-sensitive, stripped) with the frame's
        ``FILTER`` (or ``FILTNAME``).
    hdu : int, optional
        0-based HDU index; default the first 2-D image HDU.
    sigma : float
        Clipping threshold of the combination.
    min_level, max_level : float
        Acceptable median raw level (ADU) of a flat: too faint ones add noise, too bright
        ones are near saturation/non-linearity.

    Returns
    -------
    CalibrationFrame
        ``ccd``: master flat, trimmed shape, median 1, header ``FILTER``;
        ``skipped``: (path, reason) for frames in another filter, not a flat, with a bad
        level, or of the wrong shape.

    Raises
    ------
    catdb.errors.InputError
        No usable flat in that filter.
    """
    bias = _as_master(master_bias, "master_bias")
    want = str(filter).strip()
    used, skipped, ccds = [], [], []
    for p in paths:
        ccd = read_raw(p, hdu=hdu)
        kind = frame_type(ccd.meta)
        filt = frame_filter(ccd.meta)
        if kind != "flat":
            skipped.append((str(p), f"IMAGETYP {ccd.meta.get('IMAGETYP')!r}, expected a flat"))
            continue
        if filt != want:
            skipped.append((str(p), f"FILTER {filt!r}, expected {want!r}"))
            continue
        t = prepare_frame(ccd, path=p)
        if t.shape != bias.shape:
            skipped.append((str(p), f"trimmed shape {t.shape} differs from master bias {bias.shape}"))
            continue
        t = ccdproc.subtract_bias(t, bias, add_keyword=False)
        level = float(np.median(t.data))
        if not (min_level <= level <= max_level):
            skipped.append((str(p), f"median level {level:.0f} ADU outside [{min_level:.0f}, "
                                    f"{max_level:.0f}]"))
            continue
        ccds.append(t)
        used.append(str(p))
    if not ccds:
        raise InputError(f"no usable flat in filter {want!r}: "
                         + "; ".join(f"{p}: {r}" for p, r in skipped), path=paths[0] if paths else None,
                         keyword="FILTER")
    master = _combine(ccds, sigma=sigma, scale=lambda a: 1.0 / np.ma.median(a))
    master.data = (master.data / np.median(master.data)).astype(np.float32)
    master.unit = u.dimensionless_unscaled
    h = ccds[0].meta.copy()
    h.remove("CATDBSRC", ignore_missing=True)
    h["IMAGETYP"] = "MASTER_FLAT"
    h["FILTER"] = want
    h["NCOMBINE"] = (len(ccds), "frames combined")
    _add_history(h, f"master flat {want}: bias-subtracted, median-scaled, sigma-clipped average of",
                 used)
    for p, why in skipped:
        h.add_history(f"skipped {Path(p).name}: {why}")
    master.meta = h
    return CalibrationFrame(master, used, skipped)


def _add_history(h: fits.Header, what: str, paths):
    h.add_history(f"catdb {__version__}: {what}")
    for p in paths:
        h.add_history(f"  {Path(p).name}")


def dither_seed(name: str) -> int:
    """Fixed dither seed (1..10000) of the tile compression of a reduced frame, from a file name.

    FITS Standard 4.0, sect. 10 (``ZDITHER0``, quantisation of floating-point data; Pence et al.
    2010, PASP 122, 1065): the seed of the subtractive-dither random sequence is an integer
    1..10000 recorded in the file.  astropy's default (``dither_seed=0``) takes it from the
    clock, so writing the same pixels twice stored different quantised pixels (differences
    up to about one quantisation step, sigma_sky/16) and SExtractor found a few detections
    more or fewer on each frame.  A seed from the raw file's name (CRC-32) is the same on
    every run and differs between frames, so the dither patterns of a night's frames stay
    uncorrelated when they are stacked.
    """
    return 1 + zlib.crc32(Path(name).name.encode("utf-8")) % 10000


def reduce_science(path, master_bias, master_flat, out_path, *, hdu: int | None = None,
                   check_filter: bool = True, min_flat: float = 0.1,
                   seed: int | None = None, master_dark=None, exptime: float | None = None,
                   flat_note: str | None = None) -> Path:
    """Overscan/trim, bias, dark and flat one science frame; write it Rice-compressed.

    Order (Massey 1997, "A User's Guide to CCD Reductions with IRAF", sec. 3): overscan and
    trim when the frame has a ``BIASSEC`` (else the whole frame, :func:`prepare_frame`),
    master bias, master dark (scaled by the ratio of exposure times, or as it is when they are
    equal), then the flat.

    Parameters
    ----------
    path : str or os.PathLike
        Raw science frame.
    master_bias : CalibrationFrame, CCDData or path
        From :func:`master_bias`.
    master_flat : CalibrationFrame, CCDData, path or None
        From :func:`master_flat`; ``None``: the frame is NOT flat-fielded and its header says
        so (``FLATCOR = 'none: not flat-fielded ...'``).
    out_path : str or os.PathLike
        Output file, conventionally ``*.fits.fz``; overwritten.
    hdu : int, optional
        0-based HDU of the raw image; default the first 2-D image HDU.
    check_filter : bool
        Refuse a frame whose filter differs from the master flat's ``FILTER``.
    min_flat : float
        Pixels where the normalised master flat is below this (vignetted corners, dead
        columns) are set to NaN in the output rather than amplified.
    seed : int, optional
        Dither seed of the compression (1..10000, ``ZDITHER0``); default
        :func:`dither_seed` of the raw file's name, so reducing the same frame again gives
        the same pixels, bit for bit.
    master_dark : CalibrationFrame, CCDData, path or None
        From :func:`master_dark` (header ``EXPTIME``); scaled by ``exptime / EXPTIME(dark)``.
    exptime : float, optional
        Exposure time of the science frame (s); default from its header (:func:`frame_exptime`).
    flat_note : str, optional
        Why there is no flat (written into ``FLATCOR``), e.g. ``"no flat in filter 'Open'"``.

    Returns
    -------
    pathlib.Path
        ``out_path``.  HDU 1 is a float32 :class:`~astropy.io.fits.CompImageHDU` (Rice,
        ``quantize_level=16``, i.e. quantisation steps of sigma_sky/16, SUBTRACTIVE_DITHER_1
        with the fixed seed ``seed``) in ADU, with every raw header card kept, WCS cards cast
        to numbers and ``CRPIX`` shifted for the trim, ``SATURATE`` (reduced level of a raw
        pixel at the raw saturation level -- ``SATURATE`` card, else 65535 -- after the
        overscan, the median master bias (which holds any ``PEDESTAL`` offset), the median
        scaled dark, divided by the 99.9th percentile of the flat (1 without a flat)),
        ``ZEROCOR``/``DARKCOR``/``FLATCOR``/``CCDPROC`` and ``HISTORY`` naming inputs and the
        catdb version.

    Raises
    ------
    catdb.errors.InputError
        Bad sections, filter mismatch, shape mismatch with a master (naming both shapes).
    """
    bias = _as_master(master_bias, "master_bias")
    flat = None if master_flat is None else _as_master(master_flat, "master_flat")
    dark = None if master_dark is None else _as_master(master_dark, "master_dark")
    raw = read_raw(path, hdu=hdu)
    filt = frame_filter(raw.meta)
    if flat is not None and check_filter and "FILTER" in flat.meta and filt != str(flat.meta["FILTER"]).strip():
        raise InputError(f"frame filter {filt!r} differs from master flat filter "
                         f"{flat.meta['FILTER']!r}", path=path, keyword="FILTER")
    raw_max = float(np.nanmax(raw.data))
    overscan = has_overscan(raw.meta)
    t = prepare_frame(raw, path=path)
    for what, m in (("master bias", bias), ("master flat", flat), ("master dark", dark)):
        if m is not None and t.shape != m.shape:
            raise InputError(f"{'trimmed ' if overscan else ''}shape {t.shape} differs from {what} {m.shape}: "
                             f"calibrate it with frames of its own size and binning",
                             path=path, keyword="TRIMSEC" if overscan else "NAXIS1")
    t = ccdproc.subtract_bias(t, bias, add_keyword=False)
    dark_scale, dark_level = None, 0.0
    if dark is not None:
        t_sci = frame_exptime(raw.meta, path=path) if exptime is None else float(exptime)
        t_dark = frame_exptime(dark.meta, path="master dark")
        if t_dark <= 0:
            raise InputError(f"master dark has EXPTIME {t_dark:g} s; expected > 0", keyword="EXPTIME")
        t = ccdproc.subtract_dark(t, dark, data_exposure=t_sci * u.s, dark_exposure=t_dark * u.s,
                                  scale=True, add_keyword=False)
        dark_scale = t_sci / t_dark
        dark_level = float(np.nanmedian(dark.data)) * dark_scale
    if flat is not None:
        flat_ok = CCDData(np.where(flat.data >= min_flat, flat.data, np.nan).astype(np.float32),
                          unit=u.dimensionless_unscaled)
        t = ccdproc.flat_correct(t, flat_ok, norm_value=1.0, add_keyword=False)
        flat_p999 = float(np.nanpercentile(flat_ok.data, 99.9))
    h = t.meta
    sat_raw = float(h.get("SATURATE", ADC_MAX))
    # typical (not hot-pixel) bias, and the 99.9th percentile of the flat
    if flat is not None:
        sat = (sat_raw - h.get("OSCNMED", 0.0) - float(np.nanmedian(bias.data)) - dark_level) / flat_p999
    else:
        sat = sat_raw - h.get("OSCNMED", 0.0) - float(np.nanmedian(bias.data)) - dark_level
    h["SATURATE"] = (float(np.floor(sat)), "[adu] lowest reduced level of a saturated pixel")
    h["RAWMAX"] = (raw_max, "[adu] highest raw pixel value")
    h["BUNIT"] = "ADU"
    h["ZEROCOR"] = f"Zero level correction: master bias of {len(_hist_inputs(master_bias))} frames"
    if dark is not None:
        mode = "matched" if abs(dark_scale - 1.0) < 1e-3 else "scaled"
        h["DARKCOR"] = (f"Dark: master of {len(_hist_inputs(master_dark))} frames, {t_dark:g} s, "
                        f"{mode} x{dark_scale:.4g}")
    if flat is not None:
        h["FLATCOR"] = (f"Flat field: master {flat.meta.get('FILTER', '')} flat of "
                        f"{len(_hist_inputs(master_flat))} frames")
        h["MINFLAT"] = (min_flat, "pixels with master flat below this are NaN")
    else:
        h["FLATCOR"] = f"none: not flat-fielded ({flat_note or 'no master flat given'})"
    h["CCDPROC"] = f"catdb {__version__} ccdproc {ccdproc.__version__}"
    h["CATDBVER"] = (__version__, "catdb version that reduced this frame")
    h.remove("CATDBSRC", ignore_missing=True)
    h.add_history(f"catdb {__version__} reduce_science of {Path(path).name}:")
    if overscan:
        h.add_history(f"  overscan {h.get('BIASSEC')}, trim {h.get('TRIMSEC')} (CRPIX shifted)")
    else:
        h.add_history("  no overscan (no BIASSEC): whole frame, bias from the bias frames alone")
    for kind, m in (("bias", master_bias), ("dark", master_dark), ("flat", master_flat)):
        if m is None:
            continue
        names = _hist_inputs(m)
        h.add_history(f"  master {kind} of {len(names)} frames:")
        for n in names:
            h.add_history(f"    {Path(n).name}")
    if flat is None:
        h.add_history("  NOT flat-fielded")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(t.data, dtype=np.float32)
    seed = dither_seed(path) if seed is None else int(seed)
    if not 1 <= seed <= 10000:
        raise ValueError(f"dither seed {seed} outside 1..10000 (FITS Standard 4.0, ZDITHER0)")
    comp = fits.CompImageHDU(data=data, header=_image_header(h), compression_type="RICE_1",
                             quantize_level=16.0, quantize_method=1, dither_seed=seed)
    fits.HDUList([fits.PrimaryHDU(), comp]).writeto(out_path, overwrite=True, output_verify="fix")
    return out_path


def _hist_inputs(m) -> list:
    return list(m.used) if isinstance(m, CalibrationFrame) else []


def _image_header(h: fits.Header) -> fits.Header:
    """Header suitable for a float32 image HDU (structural cards removed)."""
    out = h.copy()
    for k in ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT",
              "GCOUNT", "BZERO", "BSCALE"):
        out.remove(k, ignore_missing=True, remove_all=True)
    return out
