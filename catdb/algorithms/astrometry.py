"""Astrometry without a database: pointing keywords, initial TAN WCS, pixel frames, frame registration.

The numerical side of stage ``solve`` (:mod:`catdb.stages.solve`), after the Photometry
Pipeline's ``pp_register`` (Mommert 2017, A&C 18, 47, section 3.2): an initial WCS is built
from the telescope pointing and the pixel scale of the image header, then refined against a
reference catalogue (SCAMP, :mod:`catdb.ingest.scamp_run`) or, offline with no reference
catalogue deep enough, every frame of one pointing is **registered** to the night's best frame
by star-pattern matching (astroalign: Beroiz, Cabral & Sanchez 2020, A&C 32, 100384; triangle
invariants after Groth 1986, AJ 91, 1244), refined by least squares on all matched stars.

Pixel frames: catdb stores a WCS in the frame of the file the exposure was ingested from; an
image cut out of it (the ``reduce`` stage's trimmed frame) says where it lies with IRAF's
``LTV1``/``LTV2`` (image pixel = physical pixel + LTV).  :func:`shift_wcs_frame` moves a
linear or distorted (TPV, SIP) WCS from one frame to another by shifting ``CRPIX``: the
distortion polynomials act on intermediate world coordinates (TPV) or on pixel offsets from
``CRPIX`` (SIP), so they do not change.

Everything here is pure numpy/astropy: no database, no subprocess.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from scipy.spatial import cKDTree

from ..errors import InputError

__all__ = ["parse_angle", "pointing_from_header", "pixscale_from_header", "header_ltv", "shift_wcs_frame",
           "strip_wcs", "initial_wcs_header", "Registration", "register_points", "registered_wcs_header",
           "match_points", "has_celestial_wcs"]

#: (RA key, Dec key, RA unit when sexagesimal or when the keyword is known to be in hours)
POINTING_KEYS = (("OBJCTRA", "OBJCTDEC"), ("RA", "DEC"), ("TELRA", "TELDEC"), ("CAT-RA", "CAT-DEC"),
                 ("RA_OBJ", "DEC_OBJ"), ("OBJRA", "OBJDEC"))
#: arcsec/pixel keywords already in the binned frame
SCALE_KEYS = ("SECPIXX", "PIXSCALE", "SECPIX", "SCALE", "PIXSCAL1")

_WCS_CARD = re.compile(
    r"^(WCSAXES[A-Z]?|(CTYPE|CUNIT|CRVAL|CDELT|CRPIX|CROTA)\d[A-Z]?|(PC|CD|PV|PS)\d_\d+[A-Z]?|"
    r"(A|B|AP|BP)_(ORDER|DMAX|\d+_\d+)|LONPOLE|LATPOLE|WAT\d_\d+|WCSDIM|WCSNAME[A-Z]?)$")


def parse_angle(value, hours: bool) -> float | None:
    """A header angle (number or sexagesimal string) in degrees.

    Parameters
    ----------
    value : str, float or None
        ``'04 12 12.262'``, ``'08:18:29.9'``, ``'+22 53 01.76'``, ``'-09:46:03.82'`` or a number.
    hours : bool
        A *sexagesimal* value is in hours (RA); a plain number is always taken in degrees
        (the FITS convention of ``RA``/``CRVAL1``).

    Returns
    -------
    float or None
        Degrees; None for an empty or unparsable value.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value) if np.isfinite(value) else None
    text = str(value).strip()
    if not text:
        return None
    parts = re.split(r"[\s:hdms°'\"]+", text)
    parts = [p for p in parts if p]
    try:
        if len(parts) == 1:
            return float(parts[0])
        sign = -1.0 if parts[0].startswith("-") else 1.0
        d = abs(float(parts[0]))
        m = float(parts[1]) if len(parts) > 1 else 0.0
        s = float(parts[2]) if len(parts) > 2 else 0.0
    except ValueError:
        return None
    if m >= 60 or s >= 60 or m < 0 or s < 0:
        return None
    deg = sign * (d + m / 60.0 + s / 3600.0)
    return deg * 15.0 if hours else deg


def pointing_from_header(header: fits.Header) -> tuple[float, float, str] | None:
    """Commanded pointing (RA, Dec in deg) from a header's pointing keywords (not a WCS).

    Tries, in order, ``OBJCTRA/OBJCTDEC`` (SBIG/TheSkyX, MaxIm DL), ``RA/DEC``, ``TELRA/TELDEC``,
    ``CAT-RA/CAT-DEC`` (LCO), ``RA_OBJ/DEC_OBJ``, ``OBJRA/OBJDEC``; a sexagesimal RA is in hours,
    a number in degrees.

    Returns
    -------
    (ra, dec, source) or None
        Degrees and the keywords used; None when no pair parses to 0 <= RA < 360, |Dec| <= 90.
    """
    for kra, kdec in POINTING_KEYS:
        ra = parse_angle(header.get(kra), hours=True)
        dec = parse_angle(header.get(kdec), hours=False)
        if ra is not None and dec is not None and 0 <= ra < 360 and abs(dec) <= 90:
            return ra, dec, f"{kra}/{kdec}"
    return None


def _num(header, key):
    v = header.get(key)
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(str(v).strip())
    except ValueError:
        return None
    return v if np.isfinite(v) and v > 0 else None


def pixscale_from_header(header: fits.Header) -> tuple[float, str] | None:
    """Pixel scale (arcsec/pixel, binned frame) from a header without a WCS.

    Order: ``SECPIXX``/``PIXSCALE``/``SECPIX``/``SCALE``/``PIXSCAL1`` (already binned); ``PIXSCAL``
    x the first ``CCDSUM`` factor (Lowell: unbinned scale); ``206.265 * XPIXSZ / FOCALLEN`` with
    ``XPIXSZ`` in micrometres and ``FOCALLEN`` in mm.  The SBIG FITS extension (SBIGFITSEXT 1.0,
    used by TheSkyX and MaxIm DL) gives ``XPIXSZ`` *after* binning, so it is not multiplied by
    ``XBINNING``.

    Returns
    -------
    (scale, source) or None
    """
    for k in SCALE_KEYS:
        v = _num(header, k)
        if v is not None:
            return v, k
    unb = _num(header, "PIXSCAL")
    if unb is not None:
        binning = str(header.get("CCDSUM", "1 1")).split()
        try:
            b = float(binning[0]) if binning else 1.0
        except ValueError:
            b = 1.0
        return unb * b, "PIXSCAL x CCDSUM"
    px, fl = _num(header, "XPIXSZ"), _num(header, "FOCALLEN")
    if px is not None and fl is not None:
        return 206.265 * px / fl, "206.265 * XPIXSZ / FOCALLEN (XPIXSZ after binning, SBIG FITS extension)"
    return None


def has_celestial_wcs(header: fits.Header) -> bool:
    """True when ``header`` has CTYPE1/CTYPE2 celestial axes (RA---/DEC--, GLON/GLAT...)."""
    c1, c2 = str(header.get("CTYPE1", "")).upper(), str(header.get("CTYPE2", "")).upper()
    return len(c1) >= 4 and len(c2) >= 4 and c1[:4] in ("RA--", "GLON", "ELON") and \
        c2[:4] in ("DEC-", "GLAT", "ELAT")


def header_ltv(header: fits.Header | None) -> tuple[float, float]:
    """IRAF ``LTV1``, ``LTV2`` of a header (image pixel = physical pixel + LTV); (0, 0) when absent."""
    if header is None:
        return 0.0, 0.0
    out = []
    for k in ("LTV1", "LTV2"):
        try:
            out.append(float(header.get(k, 0.0) or 0.0))
        except (TypeError, ValueError):
            raise InputError(f"{k} holds {header.get(k)!r}: expected a number (pixel offset)", keyword=k) from None
    return out[0], out[1]


def shift_wcs_frame(header: fits.Header, to_ltv: tuple[float, float]) -> fits.Header:
    """A WCS header moved to the pixel frame whose IRAF offset is ``to_ltv``.

    ``CRPIXi += to_ltv[i] - LTVi(header)`` and ``LTVi = to_ltv[i]`` (both frames related to the
    same physical frame by a shift; ``LTM`` is taken as the identity).

    Parameters
    ----------
    header : astropy.io.fits.Header
        With ``CRPIX1``/``CRPIX2`` (numbers).
    to_ltv : (float, float)
        Target ``LTV1``, ``LTV2``.

    Returns
    -------
    astropy.io.fits.Header
        A copy.
    """
    out = header.copy()
    frm = header_ltv(header)
    for i in (1, 2):
        d = float(to_ltv[i - 1]) - frm[i - 1]
        if f"CRPIX{i}" in out and d != 0.0:
            out[f"CRPIX{i}"] = float(out[f"CRPIX{i}"]) + d
        if to_ltv[i - 1] != 0.0 or f"LTV{i}" in out:
            out[f"LTV{i}"] = float(to_ltv[i - 1])
    return out


def strip_wcs(header: fits.Header) -> fits.Header:
    """A copy of ``header`` without any WCS card (CTYPE, CRVAL, CRPIX, CD, PC, CDELT, PV, SIP, WAT...)."""
    out = header.copy()
    for k in [k for k in out.keys() if _WCS_CARD.match(k)]:
        out.remove(k, ignore_missing=True, remove_all=True)
    return out


def merge_wcs(header: fits.Header, wcs_header: fits.Header) -> fits.Header:
    """``header`` with its WCS replaced by ``wcs_header`` moved into ``header``'s pixel frame.

    Every WCS card of ``header`` is removed (no stale SIP/TPV term survives), then the cards of
    ``wcs_header`` are set with ``CRPIX`` shifted from the frame of its ``LTV1``/``LTV2`` to the
    frame of ``header``'s (:func:`shift_wcs_frame`): the stored WCS of an
    exposure (``exposure.wcs_header``, in the ingested file's frame) applies to its trimmed products.
    """
    out = strip_wcs(header)
    moved = shift_wcs_frame(wcs_header, header_ltv(header))
    for card in moved.cards:
        if card.keyword in ("COMMENT", "HISTORY", "", "NAXIS", "NAXIS1", "NAXIS2"):
            continue
        out[card.keyword] = (card.value, card.comment)
    return out


def initial_wcs_header(ra: float, dec: float, pixscale: float, naxis1: int, naxis2: int,
                       rotation: float = 0.0, flip: bool = False) -> fits.Header:
    """TAN WCS centred on the pointing: the starting point of a plate solution.

    Parameters
    ----------
    ra, dec : float
        Pointing (deg) put at the image centre ``((naxis1+1)/2, (naxis2+1)/2)`` (1-based).
    pixscale : float
        arcsec/pixel.
    naxis1, naxis2 : int
        Image size (pixels).
    rotation : float
        Position angle of the image +y axis, deg east of north (0: north up).
    flip : bool
        False: east left, the sky seen through a telescope without a mirror (det CD < 0);
        True: east right (an odd number of reflections).

    Returns
    -------
    astropy.io.fits.Header
        ``CTYPE``, ``CUNIT``, ``CRVAL``, ``CRPIX``, ``CD`` (deg/pixel), ``RADESYS ICRS``, ``EQUINOX``.
    """
    s = float(pixscale) / 3600.0
    th = np.radians(rotation)
    c, si = np.cos(th), np.sin(th)
    # +y points to position angle theta: d(xi, eta)/dy = s (sin theta, cos theta) (xi east, eta north);
    # +x is perpendicular, to the west at theta = 0 (east left) or to the east (flip)
    px = s if flip else -s
    cd = np.array([[px * c, s * si], [-px * si, s * c]])
    h = fits.Header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CUNIT1"], h["CUNIT2"] = "deg", "deg"
    h["CRVAL1"], h["CRVAL2"] = float(ra) % 360.0, float(dec)
    h["CRPIX1"], h["CRPIX2"] = (naxis1 + 1) / 2.0, (naxis2 + 1) / 2.0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = (float(v) for v in cd.ravel())
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    return h


# --------------------------------------------------------------------------- registration
@dataclass
class Registration:
    """An affine map from a frame's pixels to the reference frame's pixels.

    ``ref = A @ (x, y) + t`` (1-based pixels both sides).

    Attributes
    ----------
    A : ndarray, shape (2, 2)
    t : ndarray, shape (2,)
        Pixels.
    n_matched : int
        Stars used in the final least-squares fit.
    rms_px : float
        RMS of the fitted stars' residuals, both axes combined (sqrt(mean(dx^2 + dy^2))), reference pixels.
    """

    A: np.ndarray
    t: np.ndarray
    n_matched: int
    rms_px: float

    def apply(self, x, y):
        """Reference-frame pixels of frame pixels ``x``, ``y`` (arrays of shape (n,))."""
        p = self.A @ np.vstack([np.asarray(x, float), np.asarray(y, float)]) + self.t[:, None]
        return p[0], p[1]


def match_points(a: np.ndarray, b: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Mutual nearest neighbours of two point sets within ``radius``.

    Parameters
    ----------
    a : ndarray, shape (n, 2)
    b : ndarray, shape (m, 2)
    radius : float
        Same unit as the points.

    Returns
    -------
    ia, ib : ndarray of int, shape (k,)
        Indices of the pairs.
    """
    if len(a) == 0 or len(b) == 0:
        return np.empty(0, int), np.empty(0, int)
    db, jb = cKDTree(b).query(a, distance_upper_bound=radius)
    ok = np.isfinite(db)
    ia, ib = np.flatnonzero(ok), jb[ok]
    _, ja = cKDTree(a).query(b[ib])
    mutual = ja == ia
    return ia[mutual], ib[mutual]


def _fit_affine(src, dst):
    """Least-squares affine ``dst = A src + t``; src, dst shape (n, 2)."""
    m = np.column_stack([src, np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(m, dst, rcond=None)  # (3, 2)
    return coef[:2].T, coef[2]


def register_points(frame_xy: np.ndarray, ref_xy: np.ndarray, *, max_control_points: int = 50,
                    match_radius: float = 2.0, clip_sigma: float = 3.0, min_matched: int = 6) -> Registration:
    """Register one frame's stars to the reference frame's stars.

    1. Star-pattern matching of the brightest ``max_control_points`` stars of each list
       (astroalign ``find_transform``: invariant triangles, RANSAC on a similarity transform);
    2. all stars of the frame mapped by it and paired with the reference stars (mutual nearest
       neighbour within ``match_radius`` pixels);
    3. an affine transform fitted by least squares to all pairs, residuals beyond ``clip_sigma``
       times a robust RMS (1.20 x the median residual, the Rayleigh relation) rejected (movers,
       blends, hot pixels, cosmic rays), repeated until no pair changes (at most 5 times) and
       re-pairing with the fitted transform each time.  The RMS returned is the plain RMS of
       the pairs kept.

    Parameters
    ----------
    frame_xy, ref_xy : ndarray, shape (n, 2), (m, 2)
        1-based pixel positions, brightest first (the control points are the first rows).
    max_control_points : int
    match_radius : float
        Pixels.
    clip_sigma : float
    min_matched : int
        Fewest pairs accepted in the final fit.

    Returns
    -------
    Registration

    Raises
    ------
    catdb.errors.InputError
        No pattern match (astroalign found no transform), or fewer than ``min_matched`` pairs.
    """
    import astroalign

    frame_xy = np.asarray(frame_xy, float).reshape(-1, 2)
    ref_xy = np.asarray(ref_xy, float).reshape(-1, 2)
    if len(frame_xy) < 3 or len(ref_xy) < 3:
        raise InputError(f"too few stars to match a pattern ({len(frame_xy)} on the frame, {len(ref_xy)} on the "
                         "reference; 3 needed)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tf, _ = astroalign.find_transform(frame_xy, ref_xy, max_control_points=max_control_points)
    except Exception as e:  # astroalign.MaxIterError, ValueError("fewer than 3 sources")...
        raise InputError(f"no star-pattern match with the reference frame ({type(e).__name__}: {e})") from None
    A, t = np.asarray(tf.params)[:2, :2], np.asarray(tf.params)[:2, 2]
    keep_n, rms = 0, np.inf
    for _ in range(6):
        mapped = frame_xy @ A.T + t
        ia, ib = match_points(mapped, ref_xy, match_radius)
        if len(ia) < min_matched:
            raise InputError(f"only {len(ia)} stars pair with the reference frame within {match_radius} px "
                             f"({min_matched} needed)")
        src, dst = frame_xy[ia], ref_xy[ib]
        keep = np.ones(len(ia), bool)
        for _ in range(5):
            A, t = _fit_affine(src[keep], dst[keep])
            r = np.hypot(*(src @ A.T + t - dst).T)
            # robust scale: for 2-D Gaussian residuals |r| is Rayleigh, median = 1.177 sigma and
            # RMS = sqrt(2) sigma, so RMS ~ 1.20 median(|r|) whatever the outliers (hot pixels
            # fixed on the detector, movers, blends) do to the plain RMS
            sig = 1.2011 * np.median(r[keep])
            new = r <= max(clip_sigma * sig, 1e-6)
            if new.sum() < min_matched or np.array_equal(new, keep):
                break
            keep = new
        n, rms = int(keep.sum()), float(np.sqrt(np.mean(r[keep] ** 2)))
        if n == keep_n:
            break
        keep_n = n
    if keep_n < min_matched:
        raise InputError(f"only {keep_n} stars left after clipping ({min_matched} needed)")
    return Registration(A=A, t=t, n_matched=keep_n, rms_px=rms)


def registered_wcs_header(ref_header: fits.Header, reg: Registration) -> fits.Header:
    """The WCS of a frame registered to a reference frame with a linear (TAN) WCS.

    With ``ref = A p + t``: ``CD_frame = CD_ref A`` and ``CRPIX_frame = A^-1 (CRPIX_ref - t)``
    (exact for a linear projection; ``ref_header`` must have no distortion terms).

    Parameters
    ----------
    ref_header : astropy.io.fits.Header
        Reference frame's WCS (``CRPIX``, ``CD``; e.g. :func:`initial_wcs_header`).
    reg : Registration

    Returns
    -------
    astropy.io.fits.Header
    """
    cd = np.array([[ref_header["CD1_1"], ref_header["CD1_2"]], [ref_header["CD2_1"], ref_header["CD2_2"]]], float)
    crpix = np.array([ref_header["CRPIX1"], ref_header["CRPIX2"]], float)
    new_cd = cd @ reg.A
    new_crpix = np.linalg.solve(reg.A, crpix - reg.t)
    out = ref_header.copy()
    out["CRPIX1"], out["CRPIX2"] = float(new_crpix[0]), float(new_crpix[1])
    out["CD1_1"], out["CD1_2"], out["CD2_1"], out["CD2_2"] = (float(v) for v in new_cd.ravel())
    return out
