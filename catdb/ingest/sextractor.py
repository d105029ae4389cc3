"""Read SExtractor catalogues (FITS_LDAC, FITS_1.0, ASCII_HEAD) and map their columns.

Formats (SExtractor manual, "Output catalogs" / ``CATALOG_TYPE``; Bertin & Arnouts
1996, A&AS 117, 393):

``FITS_LDAC``
    Per image: a ``LDAC_IMHEAD`` binary table whose single cell ``Field Header
    Card`` holds the whole image header as 80-character cards, then
    ``LDAC_OBJECTS`` with the sources.  astropy strips trailing blanks from the
    character cell, so the header is rebuilt from the raw bytes of the cell.
``FITS_1.0``
    Image header in the primary HDU, sources in HDU 1.
``ASCII_HEAD``
    ``#   1 NUMBER   Running object number   [unit]`` comment lines, then
    whitespace-separated columns.  A vector column (``MAG_APER`` with several
    apertures) spans several numbered columns; its header line gives the first
    number only.

Wiring: ``cat = read_catalog(path)``; ``exposure_metadata(cat.header, ...)``;
``det = detection_columns(cat)`` gives arrays named as the ``detection`` table.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import ascii as asc
from astropy.io import fits
from astropy.io.ascii.core import InconsistentTableError
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from ..errors import InputError
from ..wcsutil import wcs_from_header
from .fitsbin import read_bintable, scan_hdus
from .headers import header_from_cards

__all__ = ["SExCatalog", "DetectionColumns", "read_catalog", "read_catalogs", "read_ascii_head",
           "detection_columns", "DETECTION_COLUMNS"]

#: Scalar float columns of the ``detection`` table (lead's schema); aperture columns are 2-D.
DETECTION_COLUMNS = (
    "number", "ra", "dec", "ra_err", "dec_err", "x", "y", "xwin", "ywin",
    "flux_auto", "fluxerr_auto", "mag_auto", "magerr_auto",
    "flux_aper", "fluxerr_aper", "mag_aper", "magerr_aper",
    "flux_iso", "fluxerr_iso", "mag_iso", "magerr_iso",
    "flux_psf", "fluxerr_psf", "mag_psf", "magerr_psf",
    "flux_max", "flux_radius", "fwhm_image", "fwhm", "a_image", "b_image", "theta_image",
    "a_world", "b_world", "theta_world", "elongation", "ellipticity", "class_star", "flags",
    "imaflags", "background", "threshold", "spread_model", "spreaderr_model", "snr",
)
_APER = ("flux_aper", "fluxerr_aper", "mag_aper", "magerr_aper")


@dataclass
class SExCatalog:
    """One SExtractor catalogue (one image / extension).

    Attributes
    ----------
    path : str
        The catalogue file.
    format : str
        ``'FITS_LDAC'``, ``'FITS_1.0'`` or ``'ASCII_HEAD'``.
    header : astropy.io.fits.Header
        Header of the measured image (empty for ASCII_HEAD, which has none).
    table : astropy.table.Table
        The sources, SExtractor column names; vector columns are 2-D.
    hdu : int or None
        0-based index of the objects HDU in the file (None for ASCII).
    units : dict
        Column name -> unit string as written by SExtractor.
    descriptions : dict
        Column name -> description (ASCII_HEAD and FITS_1.0 TTYPE comments).
    """

    path: str
    format: str
    header: fits.Header
    table: Table
    hdu: int | None = None
    units: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)

    def __len__(self):
        return len(self.table)


@dataclass
class DetectionColumns:
    """Detection columns ready for the ``detection`` table.

    Attributes
    ----------
    columns : dict of str -> numpy.ndarray
        Every name of :data:`DETECTION_COLUMNS`; shape (N,) except the aperture
        columns (N, n_aper).  Absent quantities are NaN (floats) or -1 (the integer
        columns ``flags``, ``imaflags``).  Units: ra/dec deg ICRS; ra_err/dec_err,
        a_world/b_world, fwhm arcsec; x/y/xwin/ywin 1-based pixels; angles deg.
    extra : dict of str -> numpy.ndarray
        Every catalogue column not used above (kept, not dropped), SExtractor names.
    source : dict of str -> str
        Detection column -> where it came from (``'ALPHAWIN_J2000'``,
        ``'WCS(XWIN_IMAGE, YWIN_IMAGE)'``, ``'sqrt(ERRX2_WORLD)*3600'``, ``'missing'``...),
        to tell the user.
    """

    columns: dict
    extra: dict
    source: dict

    def __len__(self):
        return len(self.columns["number"])


# --------------------------------------------------------------------------- reading
def _check_fits_size(path, hl):
    """InputError if the data of any HDU extends past the end of the file (truncated)."""
    size = Path(path).stat().st_size
    for i, h in enumerate(hl):
        info = h.fileinfo()
        if info is None:
            continue
        end = info["datLoc"] + info["datSpan"]
        if end > size:
            raise InputError(f"file is truncated: HDU {i} ({h.name}) needs {end} bytes, file has {size}",
                             path=path)


def _ldac_header(hdu, path) -> fits.Header:
    """Rebuild the image header from an LDAC_IMHEAD table (raw bytes, 80-char cards)."""
    return _ldac_header_bytes(hdu.data.tobytes(), path)


def _ldac_header_bytes(raw: bytes, path) -> fits.Header:
    """The image header held in the raw data of an LDAC_IMHEAD table."""
    txt = raw.decode("latin-1").replace("\x00", " ")
    if "=" not in txt[:80] and not txt.startswith(("SIMPLE", "XTENSION")):
        # e.g. SCAMP reference catalogues: 'obtained through Vizier' then NULs
        return fits.Header()
    return header_from_cards(txt, path=path)


def _table_from_hdu(hdu) -> tuple[Table, dict, dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        warnings.simplefilter("ignore", AstropyUserWarning)
        t = Table(hdu.data, copy=True)
        units = {c.name: (c.unit or "") for c in hdu.columns}
        desc = {}
        for i, c in enumerate(hdu.columns, start=1):
            key = f"TTYPE{i}"
            if key in hdu.header:
                desc[c.name] = hdu.header.comments[key]
    for c in t.colnames:
        t[c].unit = None
    return t, units, desc


def read_catalogs(path) -> list[SExCatalog]:
    """Read every image's catalogue from a SExtractor output file.

    Parameters
    ----------
    path : str or os.PathLike
        A FITS_LDAC file (one ``LDAC_IMHEAD``/``LDAC_OBJECTS`` pair per
        extension of the measured image), a FITS_1.0 file, or an ASCII_HEAD file.

    Returns
    -------
    list of SExCatalog
        One per image extension (one element for FITS_1.0 and ASCII_HEAD).

    Raises
    ------
    catdb.errors.InputError
        Missing, truncated or corrupt file, or not a SExtractor catalogue; the
        message names the file and what is wrong.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            head = fh.read(80)
    except OSError as exc:
        raise InputError(f"cannot open catalogue: {exc.strerror}", path=path) from None
    if not head.startswith(b"SIMPLE"):
        if head.lstrip().startswith(b"#"):
            return [read_ascii_head(p)]
        raise InputError("not a SExtractor catalogue: expected FITS (SIMPLE card) or ASCII_HEAD "
                         "('#   1 NUMBER ...' lines)", path=path)
    fast = _read_plain_fits(p)
    if fast is not None:
        return fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            warnings.simplefilter("ignore", AstropyUserWarning)
            with fits.open(p, memmap=False, lazy_load_hdus=False) as hl:
                _check_fits_size(p, hl)
                names = [h.name for h in hl]
                out = []
                if "LDAC_OBJECTS" in names:
                    imhead = None
                    for i, h in enumerate(hl):
                        if h.name == "LDAC_IMHEAD":
                            imhead = _ldac_header(h, p)
                        elif h.name == "LDAC_OBJECTS":
                            if imhead is None:
                                raise InputError(f"LDAC_OBJECTS in HDU {i} has no preceding LDAC_IMHEAD",
                                                 path=path)
                            t, units, desc = _table_from_hdu(h)
                            out.append(SExCatalog(str(p), "FITS_LDAC", imhead, t, i, units, desc))
                            imhead = None
                    return out
                if len(hl) >= 2 and isinstance(hl[1], fits.BinTableHDU):
                    t, units, desc = _table_from_hdu(hl[1])
                    return [SExCatalog(str(p), "FITS_1.0", hl[0].header.copy(), t, 1, units, desc)]
                raise InputError(f"FITS file has no SExtractor table (HDUs: {names}); expected "
                                 "LDAC_IMHEAD/LDAC_OBJECTS (FITS_LDAC) or a binary table in HDU 1 (FITS_1.0)",
                                 path=path)
    except InputError:
        raise
    except (OSError, ValueError, TypeError, IndexError) as exc:
        raise InputError(f"corrupt or truncated FITS catalogue: {exc}", path=path) from None


def _read_plain_fits(p: Path) -> list[SExCatalog] | None:
    """:func:`read_catalogs` of a FITS file by :mod:`catdb.ingest.fitsbin` (numpy views, no astropy
    table machinery); None when the file is not plain (then astropy reads it and reports what is wrong).

    The same catalogues as the astropy path: same columns (names, shapes, values), units, TTYPE
    comments and image header (``tests/test_fitsbin.py`` compares the two on real catalogues).
    """
    try:
        with open(p, "rb") as fh:
            buf = bytearray(fh.read())
    except OSError:
        return None
    hdus = scan_hdus(buf)
    if hdus is None:
        return None
    names = [h.name for h in hdus]
    out = []
    if "LDAC_OBJECTS" in names:
        imhead = None
        for i, h in enumerate(hdus):
            if h.name == "LDAC_IMHEAD":
                if h.get("XTENSION") != "BINTABLE":
                    return None
                raw = bytes(buf[h.data_start:h.data_start + h.get("NAXIS1", 0) * h.get("NAXIS2", 0)])
                imhead = _ldac_header_bytes(raw, p)
            elif h.name == "LDAC_OBJECTS":
                if imhead is None:
                    return None  # astropy's path raises the error
                bt = read_bintable(buf, h)
                if bt is None:
                    return None
                out.append(SExCatalog(str(p), "FITS_LDAC", imhead, Table(bt.data, copy=False), i, bt.units,
                                      bt.descriptions))
                imhead = None
        return out
    if len(hdus) >= 2 and hdus[1].get("XTENSION") == "BINTABLE":
        bt = read_bintable(buf, hdus[1])
        if bt is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            warnings.simplefilter("ignore", AstropyUserWarning)
            header = fits.Header.fromstring(hdus[0].header_text)
        return [SExCatalog(str(p), "FITS_1.0", header, Table(bt.data, copy=False), 1, bt.units, bt.descriptions)]
    return None


def read_catalog(path, index: int = 0) -> SExCatalog:
    """Read a SExtractor catalogue (FITS_LDAC, FITS_1.0 or ASCII_HEAD; detected from the content).

    Parameters
    ----------
    path : str or os.PathLike
    index : int
        Which image extension of a multi-extension FITS_LDAC file (0-based).

    Returns
    -------
    SExCatalog
        ``header`` is the measured image's header (``LDAC_IMHEAD`` for
        FITS_LDAC, the primary HDU for FITS_1.0, empty for ASCII_HEAD).

    Raises
    ------
    catdb.errors.InputError
        See :func:`read_catalogs`; also if ``index`` is out of range.
    """
    cats = read_catalogs(path)
    if not 0 <= index < len(cats):
        raise InputError(f"catalogue extension {index} requested, file has {len(cats)}", path=path)
    return cats[index]


def read_ascii_head(path) -> SExCatalog:
    """Read a SExtractor ``ASCII_HEAD`` catalogue.

    Uses astropy's ``ascii.sextractor`` reader, then merges the vector columns
    it splits (``MAG_APER``, ``MAG_APER_1``, ``MAG_APER_2``) back into one 2-D
    column, as in the FITS catalogues.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    SExCatalog
        ``format='ASCII_HEAD'``, empty header (ASCII_HEAD carries none), ``hdu=None``.

    Raises
    ------
    catdb.errors.InputError
        No ``#   1 NUMBER ...`` header, or data rows that do not match it.
    """
    try:
        raw = asc.read(str(path), format="sextractor", guess=False)
    except (InconsistentTableError, ValueError, IndexError) as exc:
        raise InputError(f"cannot read as SExtractor ASCII_HEAD ('#   1 NUMBER ...' header then "
                         f"whitespace columns): {exc}", path=path) from None
    t = Table()
    units, desc = {}, {}
    names = raw.colnames
    for name in names:
        m = re.fullmatch(r"(.+)_(\d+)", name)
        if m and m.group(1) in names:
            continue  # element of a vector column, merged below
        parts = [name] + sorted((c for c in names if re.fullmatch(rf"{re.escape(name)}_\d+", c)),
                                key=lambda c: int(c.rsplit("_", 1)[1]))
        if len(parts) > 1:
            t[name] = np.column_stack([np.asarray(raw[c]) for c in parts])
        else:
            t[name] = np.asarray(raw[name])
        units[name] = str(raw[name].unit or "")
        desc[name] = raw[name].description or ""
    return SExCatalog(str(path), "ASCII_HEAD", fits.Header(), t, None, units, desc)


# --------------------------------------------------------------------------- mapping
def _col(t, name):
    return np.asarray(t[name]) if name in t.colnames else None


def _f(a):
    return np.asarray(a, dtype=float)


# detection column -> ordered list of (SExtractor column, scale factor); first present wins
_DIRECT = {
    "number": [("NUMBER", None)],
    "xwin": [("XWIN_IMAGE", None)],
    "ywin": [("YWIN_IMAGE", None)],
    "x": [("X_IMAGE", None), ("X_IMAGE_DBL", None), ("XWIN_IMAGE", None), ("XPSF_IMAGE", None)],
    "y": [("Y_IMAGE", None), ("Y_IMAGE_DBL", None), ("YWIN_IMAGE", None), ("YPSF_IMAGE", None)],
    "flux_auto": [("FLUX_AUTO", None)], "fluxerr_auto": [("FLUXERR_AUTO", None)],
    "mag_auto": [("MAG_AUTO", None)], "magerr_auto": [("MAGERR_AUTO", None)],
    "flux_iso": [("FLUX_ISO", None)], "fluxerr_iso": [("FLUXERR_ISO", None)],
    "mag_iso": [("MAG_ISO", None)], "magerr_iso": [("MAGERR_ISO", None)],
    "flux_psf": [("FLUX_PSF", None)], "fluxerr_psf": [("FLUXERR_PSF", None)],
    "mag_psf": [("MAG_PSF", None)], "magerr_psf": [("MAGERR_PSF", None)],
    "flux_max": [("FLUX_MAX", None)],
    "flux_radius": [("FLUX_RADIUS", None)],
    "fwhm_image": [("FWHM_IMAGE", None)],
    "fwhm": [("FWHM_WORLD", 3600.0)],
    "a_image": [("A_IMAGE", None), ("AWIN_IMAGE", None)],
    "b_image": [("B_IMAGE", None), ("BWIN_IMAGE", None)],
    "theta_image": [("THETA_IMAGE", None), ("THETAWIN_IMAGE", None)],
    "a_world": [("A_WORLD", 3600.0), ("AWIN_WORLD", 3600.0)],
    "b_world": [("B_WORLD", 3600.0), ("BWIN_WORLD", 3600.0)],
    "theta_world": [("THETA_J2000", None), ("THETA_WORLD", None), ("THETA_SKY", None),
                    ("THETAWIN_J2000", None), ("THETAWIN_WORLD", None)],
    "elongation": [("ELONGATION", None)],
    "ellipticity": [("ELLIPTICITY", None)],
    "class_star": [("CLASS_STAR", None)],
    "flags": [("FLAGS", None)],
    "imaflags": [("IMAFLAGS_ISO", None)],
    "background": [("BACKGROUND", None)],
    "threshold": [("THRESHOLD", None)],
    "spread_model": [("SPREAD_MODEL", None)],
    "spreaderr_model": [("SPREADERR_MODEL", None)],
}
_RADEC = [("ALPHAWIN_J2000", "DELTAWIN_J2000"), ("ALPHA_J2000", "DELTA_J2000"),
          ("ALPHAPSF_J2000", "DELTAPSF_J2000"), ("XWIN_WORLD", "YWIN_WORLD"), ("X_WORLD", "Y_WORLD"),
          ("ALPHA_SKY", "DELTA_SKY")]
# (ra variance/sigma column, dec column, kind)
_RADEC_ERR = [("ERRX2WIN_WORLD", "ERRY2WIN_WORLD", "var"), ("ERRX2_WORLD", "ERRY2_WORLD", "var"),
              ("ERRX2PSF_WORLD", "ERRY2PSF_WORLD", "var"),
              ("ERRAWIN_WORLD", "ERRBWIN_WORLD", "sigma_ab"), ("ERRA_WORLD", "ERRB_WORLD", "sigma_ab")]
_INT_COLS = {"number", "flags", "imaflags"}


def _aperture(t, stem):
    """(N, n_aper) array for a vector column, also from split NAME1..NAMEn columns."""
    if stem in t.colnames:
        a = np.asarray(t[stem], dtype=float)
        return (a[:, None] if a.ndim == 1 else a), [stem]
    split = sorted((c for c in t.colnames if re.fullmatch(rf"{stem}(\d+)", c)),
                   key=lambda c: int(c[len(stem):]))
    if split:
        return np.column_stack([np.asarray(t[c], dtype=float) for c in split]), split
    return None, []


def detection_columns(cat: SExCatalog, wcs=None, pixscale: float | None = None) -> DetectionColumns:
    """Map a SExtractor catalogue to the ``detection`` table columns (vectorised).

    Sky position: ``ALPHAWIN_J2000``/``DELTAWIN_J2000`` when present, then
    ``ALPHA_J2000``, ``ALPHAPSF_J2000``, ``X(WIN)_WORLD``; else computed from
    ``XWIN_IMAGE``/``YWIN_IMAGE`` (or ``X_IMAGE``) with the WCS (1-based pixels,
    ``all_pix2world`` so SIP/TPV distortion is applied).  Position errors
    (arcsec): ``sqrt(ERRX2WIN_WORLD)``, ``sqrt(ERRY2WIN_WORLD)`` (SExtractor
    manual, "Astrometry and WORLD coordinates": variances in deg^2 along the
    world axes), else ``ERRX2_WORLD``..., else ``ERRAWIN_WORLD``/``ERRBWIN_WORLD``
    (semi-axes of the error ellipse, an upper bound on each axis).  World sizes
    (A_WORLD, FWHM_WORLD) deg -> arcsec; without FWHM_WORLD, ``fwhm =
    FWHM_IMAGE * pixel scale`` of the WCS.  Aperture columns are (N, n_aper),
    also assembled from split ``FLUX_APER1..n`` columns (LCO ORAC-DR catalogues).
    Derived: ``elongation = A/B``, ``ellipticity = 1 - B/A`` when not in the
    catalogue; ``snr = FLUX_AUTO / FLUXERR_AUTO``.  Magnitudes are not invented
    when missing (the zeropoint is unknown): NaN.

    Parameters
    ----------
    cat : SExCatalog
    wcs : astropy.wcs.WCS, optional
        Used when the catalogue has no sky coordinates and for the FWHM pixel
        scale; default: built from ``cat.header`` when it has a celestial WCS.
    pixscale : float, optional
        Pixel scale (arcsec/pix) for ``fwhm`` when there is no WCS (e.g. the
        exposure's ``pixscale``); default: header ``SECPIXX``/``PIXSCALE``/``SECPIX``.

    Returns
    -------
    DetectionColumns

    Raises
    ------
    catdb.errors.InputError
        The catalogue has no ``NUMBER``, no pixel position, or neither sky
        coordinates nor a WCS to compute them.
    """
    t = cat.table
    n = len(t)
    cols, src, used = {}, {}, set()
    if wcs is None and any(str(cat.header.get(f"CTYPE{i}", "")).startswith(("RA", "DEC")) for i in (1, 2)):
        wcs = wcs_from_header(cat.header, path=cat.path)

    for name, cands in _DIRECT.items():
        for cname, scale in cands:
            a = _col(t, cname)
            if a is None:
                continue
            if a.ndim == 2:  # e.g. FLUX_RADIUS for several PHOT_FLUXFRAC, IMAFLAGS_ISO for several maps
                a = a[:, 0]
                src[name] = f"{cname}[:, 0]"
            else:
                src[name] = cname if scale is None else f"{cname}*{scale:g}"
                used.add(cname)
            cols[name] = a.astype(np.int64) if name in _INT_COLS else _f(a) * (scale or 1.0)
            break
    for stem, name in zip(("FLUX_APER", "FLUXERR_APER", "MAG_APER", "MAGERR_APER"), _APER):
        a, from_cols = _aperture(t, stem)
        if a is not None:
            cols[name] = a
            src[name] = from_cols[0] if len(from_cols) == 1 else f"{from_cols[0]}..{from_cols[-1]}"
            used.update(from_cols)
    if "number" not in cols:
        raise InputError("catalogue has no NUMBER column", path=cat.path, keyword="NUMBER")
    if "x" not in cols:
        raise InputError("catalogue has no pixel position (X_IMAGE or XWIN_IMAGE)", path=cat.path,
                         keyword="X_IMAGE")
    # sky coordinates
    for ca, cd in _RADEC:
        if ca in t.colnames and cd in t.colnames:
            cols["ra"], cols["dec"] = _f(t[ca]), _f(t[cd])
            src["ra"], src["dec"] = ca, cd
            used.update((ca, cd))
            break
    else:
        if wcs is None:
            raise InputError("catalogue has no sky coordinates (ALPHAWIN_J2000/ALPHA_J2000/X_WORLD) and the "
                             "image header has no WCS to compute them", path=cat.path, keyword="ALPHA_J2000")
        px, py = ("xwin", "ywin") if "xwin" in cols else ("x", "y")
        ra, dec = wcs.all_pix2world(cols[px], cols[py], 1)
        cols["ra"], cols["dec"] = np.mod(ra, 360.0), dec
        what = f"WCS({src[px]}, {src[py]})"
        src["ra"] = src["dec"] = what
    for ca, cd, kind in _RADEC_ERR:
        if ca in t.colnames and cd in t.colnames:
            a, d = _f(t[ca]), _f(t[cd])
            if kind == "var":
                cols["ra_err"], cols["dec_err"] = np.sqrt(a) * 3600.0, np.sqrt(d) * 3600.0
                src["ra_err"], src["dec_err"] = f"sqrt({ca})*3600", f"sqrt({cd})*3600"
            else:
                cols["ra_err"], cols["dec_err"] = a * 3600.0, d * 3600.0
                src["ra_err"], src["dec_err"] = f"{ca}*3600", f"{cd}*3600"
            used.update((ca, cd))
            break
    # derived quantities
    if "fwhm" not in cols and "fwhm_image" in cols:
        how = None
        if wcs is not None:
            scale, how = float(np.mean(proj_plane_pixel_scales(wcs))) * 3600.0, "WCS"
        elif pixscale is not None:
            scale, how = float(pixscale), "given pixscale"
        else:
            for k in ("SECPIXX", "PIXSCALE", "SECPIX"):
                v = cat.header.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
                    scale, how = float(v), f"header {k}"
                    break
        if how:
            cols["fwhm"] = cols["fwhm_image"] * scale
            src["fwhm"] = f"{src['fwhm_image']} * {scale:.4f} arcsec/pix ({how})"
    if "a_image" in cols and "b_image" in cols:
        with np.errstate(divide="ignore", invalid="ignore"):
            if "elongation" not in cols:
                cols["elongation"] = cols["a_image"] / cols["b_image"]
                src["elongation"] = f"{src['a_image']}/{src['b_image']}"
            if "ellipticity" not in cols:
                cols["ellipticity"] = 1.0 - cols["b_image"] / cols["a_image"]
                src["ellipticity"] = f"1 - {src['b_image']}/{src['a_image']}"
    if "flux_auto" in cols and "fluxerr_auto" in cols:
        with np.errstate(divide="ignore", invalid="ignore"):
            cols["snr"] = cols["flux_auto"] / cols["fluxerr_auto"]
        src["snr"] = "FLUX_AUTO/FLUXERR_AUTO"
    # missing -> NaN / -1
    for name in DETECTION_COLUMNS:
        if name not in cols:
            if name in _APER:
                cols[name] = np.full((n, 1), np.nan)
            elif name in _INT_COLS:
                cols[name] = np.full(n, -1, dtype=np.int64)
            else:
                cols[name] = np.full(n, np.nan)
            src[name] = "missing"
    extra = {c: np.asarray(t[c]) for c in t.colnames if c not in used}
    return DetectionColumns({k: cols[k] for k in DETECTION_COLUMNS}, extra, src)
