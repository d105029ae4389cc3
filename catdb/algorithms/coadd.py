"""Co-add (stack) reduced exposures on a common celestial grid.

Each exposure is background-subtracted (:class:`photutils.background.Background2D`),
reprojected with :func:`reproject.reproject_interp` onto the grid chosen by
:func:`reproject.mosaicking.find_optimal_celestial_wcs`, and the stack is combined pixel by
pixel with a sigma-clipped (:func:`astropy.stats.sigma_clip`) weighted mean.  This is the
classic "clipped mean" stack (e.g. SWarp's ``COMBINE_TYPE CLIPPED``, Bertin et al. 2002,
ASPC 281, 228; Gruen et al. 2014, PASP 126, 158), done with astropy/reproject instead of an
external binary.

Wiring: a coadd stage picks exposures (e.g. one field, one band, one night), calls
:func:`coadd` and registers the output as a new ``exposure`` row (``image_type='coadd'``,
``hdu=0``) with ``mjd_mid`` from ``MJD-MID``; ``GAIN`` in its header is the effective gain
of the weighted mean, so SExtractor errors stay right.  Moving objects are smeared or
clipped out of a stack: use it for deep static-sky catalogues and reference images.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning
from photutils.background import Background2D
from reproject import reproject_interp
from reproject.mosaicking import find_optimal_celestial_wcs

from .._version import __version__
from ..errors import InputError
from ..wcsutil import clean_wcs_header, wcs_from_header
from .astrometry import merge_wcs
from .imagehdu import first_image_hdu

__all__ = ["coadd", "frame_mjd_mid"]

#: header cards copied from the first input to the coadd
_COPY = ("OBJECT", "FILTER", "FILTNAME", "TELESCOP", "INSTRUME", "OBSERVAT", "TELINSTR",
         "LATITUDE", "LONGITUD", "ALTITUDE", "DATE-OBS", "BUNIT", "CCDSUM")


def frame_mjd_mid(header: fits.Header) -> float | None:
    """MJD (UTC) of mid-exposure from common header dialects, or None.

    Tries ``MJD-MID``; ``MIDTIMJD`` (a *Julian* date despite its name, Lowell/PP);
    ``MJD-OBS`` + ``EXPTIME``/2; ``DATE-OBS`` (with ``UTCSTART``/``UTC-OBS`` when
    ``DATE-OBS`` is a bare date) + ``EXPTIME``/2.  None when the header does not say: a start
    time without ``EXPTIME`` (the start is not the middle), a bare ``DATE-OBS`` without a time
    card (midnight is not the exposure's time).  A header guess, for images outside a
    database: the ``coadd`` stage passes the exposures' ``mjd_mid`` (keymap rules, ``TIMESYS``).
    """
    if "MJD-MID" in header:
        return float(header["MJD-MID"])
    if "MIDTIMJD" in header:
        return float(header["MIDTIMJD"]) - 2400000.5
    try:
        half = float(header["EXPTIME"]) / 2.0 / 86400.0
    except (KeyError, TypeError, ValueError):
        return None
    if "MJD-OBS" in header:
        return float(header["MJD-OBS"]) + half
    date = str(header.get("DATE-OBS", "")).strip()
    if date:
        if "T" not in date:
            t = str(header.get("UTCSTART", header.get("UTC-OBS", ""))).strip()
            if not t:
                return None
            date = f"{date}T{t}"
        try:
            return float(Time(date, scale="utc").mjd) + half
        except ValueError:
            return None
    return None


def _read(path, hdu, wcs_header=None):
    if wcs_header is not None:
        data, header = _read(path, hdu)
        return data, merge_wcs(header, clean_wcs_header(wcs_header, path=path))
    with fits.open(path) as hdul:
        h = first_image_hdu(hdul, path) if hdu is None else hdul[hdu]
        return np.asarray(h.data, dtype=np.float32), clean_wcs_header(h.header, path=path)


def coadd(paths, out_path, weights="background", *, hdu: int | None = None, sigma: float = 3.0,
          maxiters: int = 5, subtract_background: bool = True, box_size: int = 64,
          order: str = "bilinear", wcs_headers=None, mjd_mid=None, exptime=None) -> Path:
    """Stack reduced exposures into one image on a common WCS.

    Parameters
    ----------
    paths : sequence of str or os.PathLike, length n >= 1
        Reduced images with a celestial WCS, in ADU, same band.
    out_path : str or os.PathLike
        Output FITS file (overwritten).
    weights : {'background', 'equal'} or sequence of float, length n
        ``'background'``: inverse variance 1 / sigma_bkg^2 of each frame, sigma_bkg being
        the median background RMS of :class:`~photutils.background.Background2D`
        (optimal for background-limited sources); ``'equal'``: 1; or explicit weights.
    hdu : int, optional
        0-based HDU of the images; default the first 2-D image HDU.
    sigma, maxiters : float, int
        Per-pixel clipping of the stack (both sides; median centre, std).
    subtract_background : bool
        Subtract each frame's Background2D (``box_size``, 3x3 median filter) before
        stacking, so frames with different sky levels (twilight, moon) combine cleanly.
    box_size : int
        Background mesh size, pixels.
    order : str
        Interpolation of :func:`reproject.reproject_interp` ('nearest-neighbor', 'bilinear',
        'biquadratic', 'bicubic').
    wcs_headers : sequence of astropy.io.fits.Header or None, length n, optional
        WCS of each image to use instead of its own (the exposures' stored WCS, e.g. from
        stage ``solve``; moved to each image's pixel frame, see
        :func:`catdb.algorithms.astrometry.merge_wcs`).
    mjd_mid, exptime : sequence of float or None, length n, optional
        Mid-exposure MJD (UTC) and exposure time (s) of each image as known elsewhere (the
        exposures' ``mjd_mid`` and ``exptime`` in the database); None or NaN where unknown.
        Default: read from each image's header (:func:`frame_mjd_mid`, ``EXPTIME``).

    Returns
    -------
    pathlib.Path
        ``out_path``: HDU 0 the float32 coadd (ADU per input exposure, sky-subtracted if
        ``subtract_background``; NaN where no input), celestial TAN WCS, ``NCOMBINE``,
        ``EXPTIME`` (mean of inputs), ``TEXPTIME`` (sum), ``GAIN`` (effective gain of the
        weighted mean, (sum w)^2 / sum(w^2/g_i)), ``MJD-MID`` (weighted-mean epoch),
        ``MJD-BEG``/``MJD-END``, ``HISTORY`` with each input and its weight; each of these
        only when every input's value is known (an epoch or a total over some of the inputs
        would look like the stack's);
        HDU ``WEIGHT`` (sum of weights of unclipped inputs per pixel) and HDU ``NCOMBINE``
        (number of unclipped inputs per pixel, int16).

    Raises
    ------
    catdb.errors.InputError
        No input, an input without celestial WCS, bad ``weights``, ``mjd_mid`` / ``exptime``
        not of length n.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("coadd needs at least one image")
    if isinstance(weights, str):
        if weights == "equal":
            wts = np.ones(len(paths))
        elif weights != "background":
            raise InputError(f"weights must be 'background', 'equal' or numbers, got {weights!r}",
                             keyword="weights")
    else:
        wts = np.asarray(weights, dtype=float)
        if wts.shape != (len(paths),) or np.any(~np.isfinite(wts)) or np.any(wts <= 0):
            raise InputError(f"weights must be {len(paths)} positive numbers, got {weights!r}",
                             keyword="weights")
    frames, wcss, headers, rms, skies = [], [], [], [], []
    if wcs_headers is not None and len(wcs_headers) != len(paths):
        raise InputError(f"wcs_headers: expected {len(paths)} headers, got {len(wcs_headers)}", keyword="wcs_headers")
    for name, v in (("mjd_mid", mjd_mid), ("exptime", exptime)):
        if v is not None and len(v) != len(paths):
            raise InputError(f"{name}: expected {len(paths)} values, got {len(v)}", keyword=name)
    for k, p in enumerate(paths):
        data, h = _read(p, hdu, None if wcs_headers is None else wcs_headers[k])
        w = wcs_from_header(h, path=p)
        good = np.isfinite(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyUserWarning)
            bkg = Background2D(data, box_size, filter_size=3, coverage_mask=~good,
                               fill_value=np.nan)
        skies.append(float(bkg.background_median) if subtract_background else 0.0)
        if subtract_background:
            data = data - bkg.background
        rms.append(float(bkg.background_rms_median))
        frames.append(data.astype(np.float32))
        wcss.append(w)
        headers.append(h)
    rms = np.asarray(rms)
    if isinstance(weights, str) and weights == "background":
        wts = 1.0 / rms ** 2

    wcs_out, shape_out = find_optimal_celestial_wcs(list(zip(frames, wcss)))
    stack = np.full((len(frames),) + tuple(shape_out), np.nan, dtype=np.float32)
    for i, (d, w) in enumerate(zip(frames, wcss)):   # loop over exposures
        arr, foot = reproject_interp((d, w), wcs_out, shape_out=shape_out, order=order,
                                     roundtrip_coords=False)
        stack[i] = np.where(foot > 0, arr, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        clipped = sigma_clip(stack, sigma=sigma, maxiters=maxiters, axis=0, cenfunc="median",
                             stdfunc="std", masked=True)
    use = ~np.ma.getmaskarray(clipped) & np.isfinite(stack)
    wmap = np.tensordot(wts, use, axes=1)
    num = np.tensordot(wts, np.where(use, stack, 0.0), axes=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        image = np.where(wmap > 0, num / wmap, np.nan).astype(np.float32)
    nmap = use.sum(axis=0).astype(np.int16)

    hdr = wcs_out.to_header()
    first = headers[0]
    for k in _COPY:
        if k in first:
            hdr[k] = (first[k], first.comments[k])
    gains = np.array([float(h.get("GAIN", h.get("AGAIN_01", np.nan))) for h in headers])
    if exptime is None:
        exptime = [h.get("EXPTIME") for h in headers]
    if mjd_mid is None:
        mjd_mid = [frame_mjd_mid(h) for h in headers]
    exps = np.array([np.nan if x is None else float(x) for x in exptime])
    mjds = np.array([np.nan if x is None else float(x) for x in mjd_mid])
    hdr["IMAGETYP"] = ("COADD", "catdb coadd")
    hdr["NCOMBINE"] = (len(paths), "exposures stacked")
    if np.all(np.isfinite(exps)):
        hdr["EXPTIME"] = (float(np.mean(exps)), "[s] mean exposure time of inputs")
        hdr["TEXPTIME"] = (float(np.sum(exps)), "[s] total exposure time")
    if np.all(np.isfinite(gains)):
        hdr["GAIN"] = (float(wts.sum() ** 2 / np.sum(wts ** 2 / gains)),
                       "[e-/adu] effective gain of the weighted mean")
    if np.all(np.isfinite(mjds)):
        hdr["MJD-MID"] = (float(np.average(mjds, weights=wts)), "weighted mean of input mid-exposure MJDs")
        if np.all(np.isfinite(exps)):
            hdr["MJD-BEG"] = (float(np.min(mjds - exps / 2 / 86400)), "start of first input")
            hdr["MJD-END"] = (float(np.max(mjds + exps / 2 / 86400)), "end of last input")
    sats = [float(h["SATURATE"]) - sky for h, sky in zip(headers, skies) if "SATURATE" in h]
    if len(sats) == len(headers):
        hdr["SATURATE"] = (min(sats), "[adu] lowest input SATURATE (minus its sky)")
    hdr["SKYSUB"] = (bool(subtract_background), "per-frame Background2D subtracted")
    hdr["COMBINE"] = (f"sigma-clipped weighted mean, {sigma} sigma", "catdb coadd")
    hdr["WEIGHTS"] = (weights if isinstance(weights, str) else "explicit", "weighting scheme")
    hdr["CATDBVER"] = (__version__, "catdb version")
    hdr.add_history(f"catdb {__version__} coadd of {len(paths)} exposures "
                    f"(reproject_interp {order}, {sigma}-sigma clipped weighted mean):")
    for p, wt, r in zip(paths, wts, rms):
        hdr.add_history(f"  {p.name} weight {wt / wts.sum():.4f} bkg_rms {r:.2f}")
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList([fits.PrimaryHDU(image, header=hdr),
                  fits.ImageHDU(wmap.astype(np.float32), header=wcs_out.to_header(), name="WEIGHT"),
                  fits.ImageHDU(nmap, header=wcs_out.to_header(), name="NCOMBINE")]
                 ).writeto(out_path, overwrite=True)
    return out_path
