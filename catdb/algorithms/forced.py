"""Forced aperture photometry at given sky positions, and the PP curve-of-growth aperture.

Pixel convention: every pixel coordinate in catdb's public API is **1-based** (FITS,
SExtractor ``X_IMAGE``/``Y_IMAGE``): the centre of the first pixel is (1, 1).  photutils is
0-based internally; the conversion happens here only.

Wiring: a forced-photometry stage loads one exposure's image and header, the list of
(object id, RA, Dec) to measure (e.g. predicted positions of a moving object, or
catalogue objects not detected), calls :func:`forced_photometry` once per exposure and
stores the rows; columns use the ``detection`` names (``flux_aper``, ``fluxerr_aper``,
``mag_aper``, ``magerr_aper``, ``background``, ``flags``, ``x``, ``y``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.io import fits
from astropy.stats import SigmaClip
from astropy.table import Table
from astropy.wcs import WCS
from photutils.aperture import (ApertureStats, CircularAnnulus, CircularAperture,
                                aperture_photometry)

from ..errors import InputError
from ..wcsutil import wcs_from_header

__all__ = ["FLAG_EDGE", "FLAG_SATURATED", "FLAG_MASKED", "FLAG_BAD_BACKGROUND",
           "forced_photometry", "GrowthCurve", "curve_of_growth_radius", "growth_fractions",
           "aperture_correction", "aperture_sums"]

#: the largest aperture reaches beyond the image (flux partial or NaN)
FLAG_EDGE = 1
#: a pixel >= ``saturation`` lies in the largest aperture
FLAG_SATURATED = 2
#: a masked (or NaN) pixel lies in the largest aperture (its flux is missing from the sum)
FLAG_MASKED = 4
#: fewer than half of the annulus pixels are usable, or no background could be measured
FLAG_BAD_BACKGROUND = 8

#: 2.5 / ln(10): magnitude error = MAGERR_K * flux_err / flux
MAGERR_K = 2.5 / np.log(10.0)


def _as_wcs(wcs_or_header, path=None) -> WCS:
    if isinstance(wcs_or_header, WCS):
        return wcs_or_header
    if isinstance(wcs_or_header, fits.Header):
        return wcs_from_header(wcs_or_header, path=path)
    raise TypeError("expected an astropy WCS or FITS Header, got "
                    f"{type(wcs_or_header).__name__}")


def _bad_mask(image, mask):
    bad = ~np.isfinite(image)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != image.shape:
            raise InputError(f"mask shape {mask.shape} differs from image shape {image.shape}",
                             keyword="mask")
        bad |= mask
    return bad


def aperture_sums(image, xy, radii, annulus, *, mask=None, sigma=3.0):
    """Local-background-subtracted circular-aperture sums at many positions and radii.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        ADU.
    xy : ndarray, shape (n, 2)
        1-based pixel positions (x, y).
    radii : sequence of float, length m
        Aperture radii, pixels.
    annulus : (float, float)
        Inner and outer radius of the background annulus, pixels.
    mask : ndarray of bool, shape (ny, nx), optional
        True = bad pixel (NaN pixels are always bad).
    sigma : float
        Clipping threshold of the annulus statistics.

    Returns
    -------
    dict
        ``net`` (n, m) background-subtracted sums (ADU), ``area`` (n, m) unmasked aperture
        area (pix), ``bkg`` (n,) sigma-clipped annulus median (ADU/pix), ``bkg_std`` (n,),
        ``bkg_area`` (n,) usable annulus area (pix), ``bkg_area_full`` (n,) geometric area.
    """
    image = np.asarray(image, dtype=float)
    bad = _bad_mask(image, mask)
    pos = np.atleast_2d(np.asarray(xy, dtype=float)) - 1.0   # photutils is 0-based
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    r_in, r_out = map(float, annulus)
    if not (0 < r_in < r_out):
        raise InputError(f"annulus {annulus!r} must satisfy 0 < r_in < r_out", keyword="annulus")
    apers = [CircularAperture(pos, r=r) for r in radii]
    ann = CircularAnnulus(pos, r_in=r_in, r_out=r_out)
    clean = np.where(bad, 0.0, image)
    phot = aperture_photometry(clean, apers, mask=bad, method="exact")
    sums = np.column_stack([np.asarray(phot[f"aperture_sum_{i}"], dtype=float)
                            for i in range(len(radii))])
    area = np.column_stack([np.atleast_1d(a.area_overlap(clean, mask=bad)) for a in apers])
    stats = ApertureStats(clean, ann, mask=bad, sigma_clip=SigmaClip(sigma=sigma, maxiters=10),
                          sum_method="center")
    bkg = np.atleast_1d(np.asarray(stats.median, dtype=float))
    bkg_std = np.atleast_1d(np.asarray(stats.std, dtype=float))
    bkg_area = np.atleast_1d(np.asarray(stats.sum_aper_area.value, dtype=float))
    net = sums - bkg[:, None] * area
    return dict(net=net, area=area, bkg=bkg, bkg_std=bkg_std, bkg_area=bkg_area,
                bkg_area_full=np.full(len(pos), ann.area))


def forced_photometry(image, wcs, ra, dec, radii, annulus, gain, readnoise, mask=None, *,
                      saturation=None, zeropoint=0.0, noise="ccd") -> Table:
    """Aperture photometry at fixed sky positions (forced photometry) on one image.

    All positions and radii are measured in one :func:`photutils.aperture.aperture_photometry`
    call; the background is the sigma-clipped median of a circular annulus around each
    position (:class:`photutils.aperture.ApertureStats`).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        Reduced image in ADU (not sky-subtracted for ``noise='ccd'``).
    wcs : astropy.wcs.WCS or astropy.io.fits.Header
        Celestial WCS of ``image`` (a header is passed through
        :func:`catdb.wcsutil.wcs_from_header`).
    ra, dec : float or array_like, shape (n,)
        ICRS positions, degrees.
    radii : float or sequence of float, length m
        Aperture **radii** in pixels (SExtractor ``PHOT_APERTURES`` are diameters).
    annulus : (float, float)
        Background annulus inner/outer radius, pixels.
    gain : float
        e-/ADU.
    readnoise : float
        e- per pixel.
    mask : ndarray of bool, shape (ny, nx), optional
        True = bad pixel; NaN pixels are always treated as masked.
    saturation : float, optional
        ADU level of saturation (e.g. header ``SATURATE``); pixels at or above it flag
        ``FLAG_SATURATED``.
    zeropoint : float
        Added to instrumental magnitudes ``-2.5 log10(flux)``.
    noise : {'ccd', 'measured'}
        Background noise per pixel: ``'ccd'`` = sky/gain + (readnoise/gain)^2 from the
        annulus median (the CCD equation, Merline & Howell 1995, ExA 6, 163; Howell 2006,
        "Handbook of CCD Astronomy", eq. 4.4); ``'measured'`` = annulus variance (use for
        sky-subtracted or coadded images).

    Returns
    -------
    astropy.table.Table, n rows
        ``ra``, ``dec`` (deg); ``x``, ``y`` (1-based pixel); ``flux_aper``, ``fluxerr_aper``
        (n, m, ADU); ``mag_aper``, ``magerr_aper`` (n, m; NaN for flux <= 0);
        ``background`` (ADU/pix), ``background_rms`` (ADU/pix, measured in the annulus);
        ``snr`` (n, m); ``flags`` (bitmask of ``FLAG_*``, largest aperture).
        ``meta`` records radii, annulus, gain, readnoise, zeropoint, noise.
        Error: var = F/g + n_pix (1 + n_pix/n_sky) sigma_bkg^2, in ADU^2, where n_sky is
        the usable annulus area.

    Raises
    ------
    catdb.errors.InputError
        Non-2-D image, bad annulus/radii, non-positive gain, mismatched mask, bad ``noise``.
    """
    image = np.asarray(image, dtype=float)
    if image.ndim != 2:
        raise InputError(f"image must be 2-D, got shape {image.shape}")
    if not gain or gain <= 0:
        raise InputError(f"gain must be > 0 e-/ADU, got {gain!r}", keyword="GAIN")
    if noise not in ("ccd", "measured"):
        raise InputError(f"noise must be 'ccd' or 'measured', got {noise!r}", keyword="noise")
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    if np.any(radii <= 0):
        raise InputError(f"aperture radii must be > 0 pixels, got {radii}", keyword="radii")
    w = _as_wcs(wcs)
    ra = np.atleast_1d(np.asarray(ra, dtype=float))
    dec = np.atleast_1d(np.asarray(dec, dtype=float))
    x0, y0 = w.all_world2pix(ra, dec, 0)
    xy = np.column_stack([x0 + 1.0, y0 + 1.0])
    ny, nx = image.shape
    bad = _bad_mask(image, mask)
    res = aperture_sums(image, xy, radii, annulus, mask=bad)
    rmax = radii.max()
    flags = np.zeros(len(ra), dtype=np.int32)
    off = ((x0 - rmax < -0.5) | (x0 + rmax > nx - 0.5) | (y0 - rmax < -0.5)
           | (y0 + rmax > ny - 0.5))
    flags[off] |= FLAG_EDGE
    big = CircularAperture(np.column_stack([x0, y0]), r=rmax)
    nbad = np.asarray(aperture_photometry(bad.astype(float), big, method="center")["aperture_sum"])
    flags[nbad > 0] |= FLAG_MASKED
    if saturation is not None:
        sat = np.where(bad, False, image >= float(saturation)).astype(float)
        nsat = np.asarray(aperture_photometry(sat, big, method="center")["aperture_sum"])
        flags[nsat > 0] |= FLAG_SATURATED
    bad_bkg = ~np.isfinite(res["bkg"]) | (res["bkg_area"] < 0.5 * res["bkg_area_full"])
    flags[bad_bkg] |= FLAG_BAD_BACKGROUND

    net, area = res["net"], res["area"]
    if noise == "ccd":
        pix_var = np.clip(res["bkg"], 0, None) / gain + (readnoise / gain) ** 2
    else:
        pix_var = res["bkg_std"] ** 2
    n_sky = np.where(res["bkg_area"] > 0, res["bkg_area"], np.nan)
    var = (np.clip(net, 0, None) / gain
           + area * (1.0 + area / n_sky[:, None]) * pix_var[:, None])
    err = np.sqrt(var)
    outside = (area <= 0)
    net = np.where(outside, np.nan, net)
    err = np.where(outside, np.nan, err)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos = net > 0
        mag = np.where(pos, zeropoint - 2.5 * np.log10(np.where(pos, net, 1.0)), np.nan)
        magerr = np.where(pos, MAGERR_K * err / net, np.nan)
        snr = net / err
    t = Table()
    t["ra"], t["dec"] = ra, dec
    t["x"], t["y"] = xy[:, 0], xy[:, 1]
    t["flux_aper"], t["fluxerr_aper"] = net, err
    t["mag_aper"], t["magerr_aper"] = mag, magerr
    t["snr"] = snr
    t["background"], t["background_rms"] = res["bkg"], res["bkg_std"]
    t["flags"] = flags
    for c, unit in (("ra", "deg"), ("dec", "deg"), ("x", "pix"), ("y", "pix"), ("flux_aper", "adu"),
                    ("fluxerr_aper", "adu"), ("mag_aper", "mag"), ("magerr_aper", "mag"),
                    ("background", "adu"), ("background_rms", "adu")):
        t[c].unit = unit
    t.meta.update(radii=radii.tolist(), annulus=[float(a) for a in annulus], gain=float(gain),
                  readnoise=float(readnoise), zeropoint=float(zeropoint), noise=noise,
                  pixel_origin=1)
    return t


def growth_fractions(net):
    """Median growth curve of several sources, normalised to its maximum.

    Each source's curve (its flux in each aperture over the curve's maximum, as the Photometry
    Pipeline's diagnostic defines it: noise makes a faint source's curve peak before the largest
    aperture) is normalised, the median is taken over the sources and renormalised to a maximum
    of 1.  With one source this is that source's normalised curve.

    Parameters
    ----------
    net : ndarray, shape (k, m)
        Background-subtracted aperture fluxes of ``k`` sources in ``m`` increasing apertures
        (``aperture_sums(...)["net"]``).

    Returns
    -------
    (ndarray of shape (m,), int) or (None, 0)
        The curve and the number of sources used (finite fluxes and a positive flux in the
        largest aperture); ``(None, 0)`` when no source qualifies.
    """
    net = np.atleast_2d(np.asarray(net, dtype=float))
    ok = np.isfinite(net).all(axis=1) & (net[:, -1] > 0)
    if not ok.any():
        return None, 0
    curve = np.median(net[ok] / np.max(net[ok], axis=1)[:, None], axis=0)
    return curve / curve.max(), int(ok.sum())


@dataclass
class GrowthCurve:
    """Result of :func:`curve_of_growth_radius` (named so as not to shadow
    :class:`photutils.profiles.CurveOfGrowth`).

    Attributes
    ----------
    radius : float
        Chosen aperture radius (pixels).
    found : bool
        False if no radius met the criteria (``radius`` is then the largest radius).
    radii : ndarray, shape (m,)
    target_fraction : ndarray, shape (m,)
        Median over the targets of their flux in each aperture / the maximum of their curve
        (renormalised to a maximum of 1; :func:`growth_fractions`); the stars' curve when no
        target has a positive flux (``n_targets`` 0).
    star_fraction : ndarray, shape (m,)
        The same for the field stars.
    n_stars : int
        Field stars used (finite fluxes, positive flux in the largest aperture).
    n_targets : int
        Targets used (the same rule).
    """

    radius: float
    found: bool
    radii: np.ndarray
    target_fraction: np.ndarray
    star_fraction: np.ndarray
    n_stars: int
    n_targets: int = 1


def curve_of_growth_radius(image, target_xy, star_xy, radii, *, annulus=None, mask=None,
                           flux_limit=0.7, flux_margin=0.05) -> GrowthCurve:
    """Choose the photometric aperture radius as the Photometry Pipeline does.

    Growth curves (:func:`growth_fractions`) are measured for the targets and for field stars;
    the chosen radius is the smallest one where both curves exceed ``flux_limit`` and differ by
    less than ``flux_margin`` - the criteria of the Photometry Pipeline (Mommert 2017, A&C 18,
    47, sec. 3.5; ``pp_photometry.py``, ``fluxlimit_aprad = 0.7``, ``fluxmargin_aprad = 0.05``
    in ``_pp_conf.py``).  They keep most of the flux while guarding against a trailed target.
    With several targets (all the targets of one exposure, so that they share one radius) the
    median of their curves is used; when no target has a positive flux in the largest aperture
    the stars' curve stands for both (``n_targets`` 0 in the result).

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
        ADU.
    target_xy : (float, float) or ndarray, shape (n, 2)
        1-based pixel position(s) of the target(s).
    star_xy : ndarray, shape (k, 2)
        1-based pixel positions of field stars (unsaturated, isolated).
    radii : sequence of float, length m
        Candidate radii, pixels, increasing.
    annulus : (float, float), optional
        Background annulus; default (max(radii) + 2, max(radii) + 8).
    mask : ndarray of bool, optional
        True = bad pixel.
    flux_limit, flux_margin : float
        PP's thresholds.

    Returns
    -------
    GrowthCurve

    Raises
    ------
    catdb.errors.InputError
        Radii not increasing, no field star, or no field star with a positive flux in the
        largest aperture.
    """
    radii = np.asarray(radii, dtype=float)
    if radii.ndim != 1 or radii.size < 2 or np.any(np.diff(radii) <= 0):
        raise InputError(f"radii must be >= 2 increasing values, got {radii}", keyword="radii")
    star_xy = np.atleast_2d(np.asarray(star_xy, dtype=float))
    if star_xy.shape[0] == 0:
        raise InputError("no field star given for the curve of growth", keyword="star_xy")
    if annulus is None:
        annulus = (radii[-1] + 2.0, radii[-1] + 8.0)
    target_xy = np.asarray(target_xy, dtype=float).reshape(-1, 2)
    nt = len(target_xy)
    net = aperture_sums(image, np.vstack([target_xy, star_xy]), radii, annulus, mask=mask)["net"]
    star_frac, n_stars = growth_fractions(net[nt:])
    if star_frac is None:
        raise InputError("no field star has positive flux in the largest aperture", keyword="star_xy")
    target_frac, n_targets = growth_fractions(net[:nt])
    if target_frac is None:
        target_frac = star_frac
    ok = ((target_frac > flux_limit) & (star_frac > flux_limit)
          & (np.abs(target_frac - star_frac) < flux_margin))
    found = bool(ok.any())
    radius = float(radii[np.argmax(ok)] if found else radii[-1])
    return GrowthCurve(radius, found, radii, target_frac, star_frac, n_stars, n_targets)


def aperture_correction(image, star_xy, radius, radius_total, annulus, *, mask=None) -> tuple[float, int]:
    """Aperture correction of ``radius`` to total flux from the growth curves of bright stars.

    Parameters
    ----------
    image : ndarray, shape (ny, nx)
    star_xy : ndarray, shape (k, 2)
        1-based pixel positions of unsaturated point sources.
    radius, radius_total : float
        Aperture radius and the radius taken as total flux, pixels.
    annulus : (float, float)
        Background annulus, pixels (outside ``radius_total``).
    mask : ndarray of bool, optional
        True = bad pixel.

    Returns
    -------
    (float, int)
        ``aper_corr = 2.5 log10(f)`` [mag] (<= 0; add it to the aperture magnitude), f the
        median fraction of the stars' flux inside ``radius`` (:func:`growth_fractions`), and the
        number of stars used; (0.0, 0) without a usable star or when ``radius >= radius_total``.
        Stetson 1990, PASP 102, 932 (growth curves); Howell 1989, PASP 101, 616.
    """
    if radius >= radius_total or len(star_xy) == 0:
        return 0.0, 0
    net = aperture_sums(image, np.atleast_2d(star_xy), [radius, radius_total], annulus, mask=mask)["net"]
    star, n = growth_fractions(net)
    if star is None:
        return 0.0, 0
    return float(2.5 * np.log10(star[0])), n
