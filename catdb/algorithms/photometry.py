"""Photometric zeropoints from matched detection / reference-star pairs.

The ``calibrate`` stage selects, for one exposure, the detections matched to
reference stars (``detection.mag_aper`` or ``mag_auto`` and ``magerr_*``
against ``refcat_source.mags[band]`` / ``mag_errs[band]``) and passes the
arrays to one of the functions below.  Each returns a
:class:`ZeropointResult`; :meth:`ZeropointResult.calibrate` turns instrumental
magnitudes of that exposure into calibrated ones.

Two published methods are implemented:

* :func:`zeropoint_pp` -- the Photometry Pipeline (PP; Mommert 2017, Astronomy
  and Computing 18, 47, Sect. 3.5; code ``pp_calibrate.py:derive_zeropoints`` of
  github.com/mommermi/photometrypipeline): a constant zeropoint, reference
  errors floored at 0.01 mag, weights from both errors, rejection of the
  largest residuals one step at a time, and the step with the minimum reduced
  chi^2 that still keeps enough stars.
* :func:`zeropoint_regression` -- Automatic-SSOs
  (``autossos/magcalib.py:sigm_clipping``, github.com/johnedmartz/Automatic-SSOs):
  a free-slope linear regression ``ref = a + b * inst`` on stars in a magnitude
  window with small errors, iteratively clipped at ``mean|r| + k std|r|``, with
  the coefficient of determination R^2 marking bad calibrations (R^2 < 0.98).

Plus :func:`zeropoint_colour` (zeropoint and colour term fitted together) and
:func:`solar_selection` (PP's ``--solar`` restriction to Sun-like stars).

Magnitude convention: ``inst_mag = -2.5 log10(flux [ADU])`` as SExtractor
writes it with ``MAG_ZEROPOINT 0``; the zeropoint is then ``ref - inst`` in mag
(for counts over the whole exposure; subtract ``2.5 log10(exptime)`` for the
zeropoint of 1 ADU/s).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from astropy.stats import sigma_clip

__all__ = [
    "ZeropointResult",
    "zeropoint_pp",
    "zeropoint_regression",
    "zeropoint_colour",
    "solar_selection",
    "SOLAR_COLOURS",
]

#: Solar colours used by PP's ``--solar`` option (SDSS g-r, r-i of the Sun).
SOLAR_COLOURS = {"g-r": 0.44, "r-i": 0.11}

#: SExtractor's "no measurement" magnitude.
_BAD_MAG = 99.0


@dataclass
class ZeropointResult:
    """Outcome of one photometric calibration (one exposure).

    Attributes
    ----------
    method : str
        ``'pp'``, ``'regression'`` or ``'colour'``.
    ok : bool
        True when a usable calibration was found.
    reason : str
        ``'ok'`` or why the calibration failed / is flagged bad (e.g. too few
        stars, R^2 below threshold).
    zp : float
        Zeropoint (mag): ``ref = inst + zp`` (+ colour term).  For the
        regression, the zeropoint ``a + (b - 1) * pivot`` at the pivot
        instrumental magnitude (median of the stars used), so it is comparable
        with the constant zeropoint of the other methods.
    zp_err : float
        Zeropoint uncertainty (mag).  ``'pp'``: PP's ``zp_sig``, the weighted
        standard deviation of the residuals added in quadrature to the rms of
        the individual errors (what PP reports).  ``'regression'`` and
        ``'colour'``: formal fit error from the covariance matrix.
    zp_err_fit : float
        Formal (statistical) error of the fitted zeropoint (mag).
    scatter : float
        Standard deviation of the residuals of the stars used (mag).
    intercept, slope : float
        Linear relation ``ref = intercept + slope * inst``; for the constant
        methods ``intercept = zp`` and ``slope = 1``.
    cov : numpy.ndarray, shape (2, 2)
        Covariance of ``(intercept, slope)`` (regression) or of
        ``(zp, colour_term)`` (colour fit); NaN/zero where not fitted.
    colour_term : float
        Colour coefficient ``c`` in ``ref - inst = zp + c * colour`` (0 when not
        used).
    colour_term_err : float
        Its uncertainty (0 when fixed or not used).
    pivot : float
        Instrumental magnitude at which ``zp`` of the regression is evaluated.
    n_matched : int
        Valid matched pairs given (finite, not 99).
    n_used : int
        Pairs kept by the outlier rejection.
    chi2_red : float
        Reduced chi^2 of the chosen step (PP, colour fit).
    r2 : float
        Coefficient of determination (regression).
    used : numpy.ndarray of bool, shape (N,)
        Which of the input pairs were used in the final fit.
    residuals : numpy.ndarray, shape (N,)
        ``ref - calibrated(inst)`` for every input pair (NaN where invalid);
        kept for diagnostics plots.
    steps : dict of numpy.ndarray
        Clipping history: ``n`` (stars), ``zp``, ``sigma``, ``chi2_red`` for PP;
        ``n``, ``intercept``, ``slope``, ``threshold`` for the regression.
    """

    method: str
    ok: bool
    reason: str
    zp: float = np.nan
    zp_err: float = np.nan
    zp_err_fit: float = np.nan
    scatter: float = np.nan
    intercept: float = np.nan
    slope: float = 1.0
    cov: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))
    colour_term: float = 0.0
    colour_term_err: float = 0.0
    pivot: float = np.nan
    n_matched: int = 0
    n_used: int = 0
    chi2_red: float = np.nan
    r2: float = np.nan
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))
    steps: dict = field(default_factory=dict)

    def calibrate(self, inst_mag, inst_err=None, colour=None):
        """Calibrated magnitudes of detections of the calibrated exposure.

        Parameters
        ----------
        inst_mag : array_like, shape (M,)
            Instrumental magnitudes (same aperture as used for the fit).
        inst_err : array_like, shape (M,), optional
            Their errors (mag); zero when omitted.
        colour : array_like, shape (M,), optional
            Colour of each source in the reference system; required when the
            result has a non-zero colour term.

        Returns
        -------
        mag, err : numpy.ndarray, shape (M,)
            Calibrated magnitude and its error (mag).  ``'pp'``: ``err**2 =
            inst_err**2 + zp_err**2`` as PP.  Regression: the error of
            ``a + b*inst`` from the covariance plus ``(b * inst_err)**2``.
            All NaN when the result is not ``ok``.

        Raises
        ------
        ValueError
            If a colour term is set and ``colour`` is missing.
        """
        m = np.asarray(inst_mag, dtype=float)
        e = np.zeros_like(m) if inst_err is None else np.asarray(inst_err, dtype=float)
        if not self.ok:
            nan = np.full(m.shape, np.nan)
            return nan, nan.copy()
        if self.method == "regression":
            mag = self.intercept + self.slope * m
            var = (self.cov[0, 0] + m ** 2 * self.cov[1, 1] + 2 * m * self.cov[0, 1]
                   + (self.slope * e) ** 2)
            return mag, np.sqrt(var)
        mag = m + self.zp
        var = e ** 2 + self.zp_err ** 2
        if self.colour_term != 0.0:
            if colour is None:
                raise ValueError("this zeropoint has a colour term: give the colour of every source")
            c = np.asarray(colour, dtype=float)
            mag = mag + self.colour_term * c
            var = var + (c * self.colour_term_err) ** 2
        return mag, np.sqrt(var)


def _arrays(*arrays, names):
    out = [np.asarray(a, dtype=float).ravel() for a in arrays]
    n = out[0].size
    for a, name in zip(out, names):
        if a.size != n:
            raise ValueError(f"{name} has {a.size} elements, expected {n} like {names[0]}")
    return out


def _valid(*arrays):
    ok = np.ones(arrays[0].shape, bool)
    for a in arrays:
        ok &= np.isfinite(a) & (a != _BAD_MAG)
    return ok


def zeropoint_pp(inst_mag, inst_err, ref_mag, ref_err, min_stars=3, min_frac=0.5,
                 err_floor=0.01, colour=None, colour_term=0.0) -> ZeropointResult:
    """Constant zeropoint by the Photometry Pipeline method (Mommert 2017).

    Follows ``derive_zeropoints`` in PP's ``pp_calibrate.py``:

    1. drop pairs with a NaN or 99 magnitude or error;
    2. raise reference errors below ``err_floor`` (0.01 mag) to it;
    3. residuals ``r = ref - inst`` with variances ``ref_err**2 + inst_err**2``;
    4. repeat while at least 3 stars remain: the zeropoint minimising chi^2
       (the inverse-variance weighted mean, which PP finds with Nelder-Mead),
       its reduced chi^2 ``chi2 / (N - 2)`` (PP's normalisation), and
       ``sigma = sqrt(weighted variance of r + mean variance)``; then remove
       the ``max(1, N // 25)`` stars with the largest ``|r - zp|``;
    5. choose the step with the minimum reduced chi^2, then step back towards
       more stars until at least ``max(min_stars, int(min_frac * N))`` are
       used (PP's ``-minstars`` fraction, default 0.5).

    Parameters
    ----------
    inst_mag, inst_err : array_like, shape (N,)
        Instrumental magnitudes and errors (mag) of the matched detections.
    ref_mag, ref_err : array_like, shape (N,)
        Reference-catalogue magnitudes and errors (mag), in the band of the
        exposure (transformed if needed, see :mod:`catdb.algorithms.transforms`).
    min_stars : int
        Fewer valid pairs than this gives no zeropoint (PP: 3).  Must be >= 3.
    min_frac : float
        Minimum fraction (0..1) of the valid pairs the chosen step must keep.
    err_floor : float
        Floor for reference errors (mag).
    colour : array_like, shape (N,), optional
        Colour of every pair, used with a known fixed ``colour_term``:
        residuals become ``ref - inst - colour_term * colour``.
    colour_term : float
        Fixed colour coefficient (fit one with :func:`zeropoint_colour`).

    Returns
    -------
    ZeropointResult
        ``method='pp'``; ``ok`` False with a ``reason`` when fewer than
        ``min_stars`` valid pairs exist.

    Raises
    ------
    ValueError
        If array lengths differ, ``min_stars < 3`` or ``min_frac`` is outside
        [0, 1].
    """
    if min_stars < 3:
        raise ValueError(f"min_stars must be >= 3 (the reduced chi2 uses N - 2), got {min_stars}")
    if not 0.0 <= min_frac <= 1.0:
        raise ValueError(f"min_frac must be a fraction in [0, 1], got {min_frac}")
    inst_mag, inst_err, ref_mag, ref_err = _arrays(
        inst_mag, inst_err, ref_mag, ref_err,
        names=("inst_mag", "inst_err", "ref_mag", "ref_err"))
    ntot = inst_mag.size
    if colour is not None:
        (colour,) = _arrays(colour, names=("colour",))
        if colour.size != ntot:
            raise ValueError(f"colour has {colour.size} elements, expected {ntot}")
        ctermv = colour_term * colour
    else:
        if colour_term != 0.0:
            raise ValueError("colour_term given without colour")
        ctermv = np.zeros(ntot)
    valid = _valid(inst_mag, inst_err, ref_mag, ref_err) & np.isfinite(ctermv)
    idx = np.flatnonzero(valid)
    n = idx.size
    used = np.zeros(ntot, bool)
    residuals = np.full(ntot, np.nan)
    if n < min_stars:
        return ZeropointResult("pp", False, f"only {n} valid reference stars, need {min_stars}",
                               n_matched=n, used=used, residuals=residuals,
                               colour_term=colour_term)
    r = ref_mag[idx] - inst_mag[idx] - ctermv[idx]
    var = np.maximum(ref_err[idx], err_floor) ** 2 + inst_err[idx] ** 2
    required = max(min_stars, int(min_frac * n))

    keep = np.arange(n)
    hist_n, hist_zp, hist_sig, hist_chi, hist_fit, hist_scat, members = [], [], [], [], [], [], []
    while keep.size >= 3:  # PP's loop condition; one iteration per clipping step
        w = 1.0 / var[keep]
        zp = np.sum(w * r[keep]) / np.sum(w)
        d = r[keep] - zp
        chi2 = np.sum(w * d ** 2)
        wvar = np.sum(w * d ** 2) / np.sum(w)
        hist_n.append(keep.size)
        hist_zp.append(zp)
        hist_sig.append(np.sqrt(wvar + np.mean(var[keep])))
        hist_chi.append(chi2 / (keep.size - 2))
        hist_fit.append(np.sqrt(1.0 / np.sum(w)))
        hist_scat.append(np.sqrt(wvar))
        members.append(keep)
        nrem = max(1, keep.size // 25)
        worst = np.argsort(-np.abs(d), kind="stable")[:nrem]
        keep = np.delete(keep, worst)

    chi = np.asarray(hist_chi)
    best = int(np.nanargmin(chi))
    nsteps = np.asarray(hist_n)
    # step back to more stars until the minimum number is met (PP)
    enough = np.flatnonzero(nsteps[: best + 1] >= required)
    best = int(enough[-1]) if enough.size else 0

    sel = idx[members[best]]
    used[sel] = True
    zp = float(hist_zp[best])
    residuals[idx] = r - zp
    return ZeropointResult(
        "pp", True, "ok", zp=zp, zp_err=float(hist_sig[best]), zp_err_fit=float(hist_fit[best]),
        scatter=float(hist_scat[best]), intercept=zp, slope=1.0,
        cov=np.array([[hist_fit[best] ** 2, 0.0], [0.0, 0.0]]),
        colour_term=float(colour_term), n_matched=n, n_used=int(nsteps[best]),
        chi2_red=float(chi[best]), used=used, residuals=residuals,
        steps=dict(n=nsteps, zp=np.asarray(hist_zp), sigma=np.asarray(hist_sig), chi2_red=chi),
    )


def zeropoint_regression(inst_mag, ref_mag, inst_err=None, ref_err=None, mag_range=(12.0, 16.0),
                         max_err=0.1, k=2.5, r2_min=0.98, min_stars=4,
                         max_iter=100) -> ZeropointResult:
    """Free-slope linear calibration ``ref = a + b * inst`` (Automatic-SSOs).

    Follows ``sigm_clipping`` in Automatic-SSOs' ``magcalib.py`` (defaults from
    its ``config.autossos``: MIN_MAG 12, MAX_MAG 16, MAX_MAGERR 0.1, SIGM 2.5,
    R2 0.98):

    1. keep pairs with ``inst != 99``, both errors ``< max_err`` and
       ``mag_range[0] < ref < mag_range[1]`` (the linear, unsaturated range);
    2. fewer than ``min_stars`` (4) pairs: no calibration;
    3. fit a straight line (:func:`numpy.polyfit` with covariance), compute
       ``|r|`` and the threshold ``mean|r| + k * std|r|``, drop pairs above it
       and refit until nothing is dropped;
    4. ``R^2 = 1 - SS_res / SS_tot`` of the final fit; ``R^2 < r2_min`` flags a
       bad calibration (``ok=False``; the fit is still returned).

    Parameters
    ----------
    inst_mag, ref_mag : array_like, shape (N,)
        Instrumental and reference magnitudes (mag) of matched pairs.
    inst_err, ref_err : array_like, shape (N,), optional
        Their errors (mag); the ``max_err`` cut is skipped for a missing one.
    mag_range : (float, float) or None
        Open interval of reference magnitudes used; None for no cut.
    max_err : float
        Maximum error (mag) of either magnitude.
    k : float
        Clipping factor (Automatic-SSOs' SIGM).
    r2_min : float
        R^2 threshold below which the calibration is marked bad.
    min_stars : int
        Minimum number of pairs (>= 4, the minimum for a line with covariance).
    max_iter : int
        Safety limit on clipping iterations.

    Returns
    -------
    ZeropointResult
        ``method='regression'`` with ``intercept``, ``slope``, their ``cov``,
        ``r2``, and ``zp = a + (b - 1) * pivot`` at the median instrumental
        magnitude of the used stars (``zp_err`` from the covariance there).

    Raises
    ------
    ValueError
        If array lengths differ or ``min_stars < 4``.

    Notes
    -----
    The clipping keeps ``|r| <= threshold`` where Automatic-SSOs has ``<``;
    the two differ only for exact ties (and the ``<`` never converges on
    noise-free data).
    """
    if min_stars < 4:
        raise ValueError(f"min_stars must be >= 4 for a line with covariance, got {min_stars}")
    inst_mag, ref_mag = _arrays(inst_mag, ref_mag, names=("inst_mag", "ref_mag"))
    ntot = inst_mag.size
    ie = np.zeros(ntot) if inst_err is None else _arrays(inst_err, names=("inst_err",))[0]
    re = np.zeros(ntot) if ref_err is None else _arrays(ref_err, names=("ref_err",))[0]
    for a, name in ((ie, "inst_err"), (re, "ref_err")):
        if a.size != ntot:
            raise ValueError(f"{name} has {a.size} elements, expected {ntot}")
    valid = _valid(inst_mag, ref_mag, ie, re)
    n_matched = int(valid.sum())
    sel = valid.copy()
    with np.errstate(invalid="ignore"):
        if inst_err is not None:
            sel &= ie < max_err
        if ref_err is not None:
            sel &= re < max_err
        if mag_range is not None:
            sel &= (ref_mag > mag_range[0]) & (ref_mag < mag_range[1])
    idx = np.flatnonzero(sel)
    used = np.zeros(ntot, bool)
    residuals = np.full(ntot, np.nan)
    if idx.size < min_stars:
        return ZeropointResult("regression", False,
                               f"only {idx.size} stars in the magnitude/error window, need {min_stars}",
                               n_matched=n_matched, used=used, residuals=residuals)
    x, y = inst_mag[idx], ref_mag[idx]
    keep = np.arange(idx.size)
    hist = dict(n=[], intercept=[], slope=[], threshold=[])
    converged = False
    for _ in range(max_iter):  # iterations of the fit
        coef, cov = np.polyfit(x[keep], y[keep], 1, cov=True)
        d = np.abs(y[keep] - np.polyval(coef, x[keep]))
        thr = np.mean(d) + k * np.std(d)
        hist["n"].append(keep.size)
        hist["intercept"].append(coef[1])
        hist["slope"].append(coef[0])
        hist["threshold"].append(thr)
        good = d <= thr
        if good.all():
            converged = True
            break
        keep = keep[good]
        if keep.size < min_stars:
            return ZeropointResult("regression", False,
                                   f"clipping left {keep.size} stars, need {min_stars}",
                                   n_matched=n_matched, used=used, residuals=residuals,
                                   steps={k_: np.asarray(v) for k_, v in hist.items()})
    b, a = float(coef[0]), float(coef[1])
    # numpy orders the covariance (slope, intercept); store (intercept, slope)
    cov_ab = np.array([[cov[1, 1], cov[0, 1]], [cov[0, 1], cov[0, 0]]])
    yk = y[keep]
    ss_res = np.sum((yk - (a + b * x[keep])) ** 2)
    ss_tot = np.sum((yk - yk.mean()) ** 2)
    r2 = float(1.0 - ss_res / ss_tot) if ss_tot > 0 else np.nan
    pivot = float(np.median(x[keep]))
    zp = a + (b - 1.0) * pivot
    zp_err = float(np.sqrt(cov_ab[0, 0] + pivot ** 2 * cov_ab[1, 1] + 2 * pivot * cov_ab[0, 1]))
    used[idx[keep]] = True
    residuals[valid] = ref_mag[valid] - (a + b * inst_mag[valid])
    ok = converged and np.isfinite(r2) and r2 >= r2_min
    if not converged:
        reason = f"clipping did not converge in {max_iter} iterations"
    elif not ok:
        reason = f"R2 = {r2:.4f} below threshold {r2_min}"
    else:
        reason = "ok"
    return ZeropointResult(
        "regression", bool(ok), reason, zp=float(zp), zp_err=zp_err, zp_err_fit=zp_err,
        scatter=float(np.std(residuals[used])), intercept=a, slope=b, cov=cov_ab, pivot=pivot,
        n_matched=n_matched, n_used=int(keep.size), r2=r2, used=used, residuals=residuals,
        steps={k_: np.asarray(v) for k_, v in hist.items()},
    )


def zeropoint_colour(inst_mag, inst_err, ref_mag, ref_err, colour, sigma=3.0, maxiters=5,
                     min_stars=5, err_floor=0.01) -> ZeropointResult:
    """Zeropoint and colour term: ``ref - inst = zp + c * colour``.

    Weighted linear least squares (weights ``1 / (ref_err**2 + inst_err**2)``,
    reference errors floored at ``err_floor`` as in PP) with iterative
    sigma clipping of the normalised residuals (:func:`astropy.stats.sigma_clip`,
    median centre, MAD-based scale).  This is the standard colour-term fit of
    CCD photometry (e.g. Harris, Fitzgerald & Reed 1981, PASP 93, 507).

    Parameters
    ----------
    inst_mag, inst_err, ref_mag, ref_err : array_like, shape (N,)
        Matched instrumental / reference magnitudes and errors (mag).
    colour : array_like, shape (N,)
        Reference colour of each star (e.g. ``g - r`` or Gaia ``BP - RP``).
    sigma : float
        Clipping threshold in robust standard deviations.
    maxiters : int
        Maximum clipping iterations.
    min_stars : int
        Minimum number of stars kept (>= 3).
    err_floor : float
        Floor for reference errors (mag).

    Returns
    -------
    ZeropointResult
        ``method='colour'`` with ``zp``, ``colour_term`` and their covariance
        ``cov`` (scaled by the reduced chi^2 when it exceeds 1), ``chi2_red``.

    Raises
    ------
    ValueError
        If array lengths differ or ``min_stars < 3``.
    """
    if min_stars < 3:
        raise ValueError(f"min_stars must be >= 3, got {min_stars}")
    inst_mag, inst_err, ref_mag, ref_err, colour = _arrays(
        inst_mag, inst_err, ref_mag, ref_err, colour,
        names=("inst_mag", "inst_err", "ref_mag", "ref_err", "colour"))
    ntot = inst_mag.size
    valid = _valid(inst_mag, inst_err, ref_mag, ref_err) & np.isfinite(colour)
    idx = np.flatnonzero(valid)
    used = np.zeros(ntot, bool)
    residuals = np.full(ntot, np.nan)
    if idx.size < min_stars:
        return ZeropointResult("colour", False, f"only {idx.size} valid stars, need {min_stars}",
                               n_matched=int(idx.size), used=used, residuals=residuals)
    r = ref_mag[idx] - inst_mag[idx]
    c = colour[idx]
    if np.ptp(c) == 0:
        return ZeropointResult("colour", False, "all stars have the same colour: no colour term",
                               n_matched=int(idx.size), used=used, residuals=residuals)
    err = np.sqrt(np.maximum(ref_err[idx], err_floor) ** 2 + inst_err[idx] ** 2)
    keep = np.ones(idx.size, bool)
    for _ in range(maxiters):  # iterations of the fit
        A = np.column_stack([np.ones(keep.sum()), c[keep]]) / err[keep, None]
        coef, *_ = np.linalg.lstsq(A, r[keep] / err[keep], rcond=None)
        z = (r - coef[0] - coef[1] * c) / err
        clipped = sigma_clip(z[keep], sigma=sigma, maxiters=1, stdfunc="mad_std").mask
        if not clipped.any():
            break
        new_keep = keep.copy()
        new_keep[np.flatnonzero(keep)[clipped]] = False
        if new_keep.sum() < min_stars:
            break
        keep = new_keep
    A = np.column_stack([np.ones(keep.sum()), c[keep]]) / err[keep, None]
    coef, *_ = np.linalg.lstsq(A, r[keep] / err[keep], rcond=None)
    cov = np.linalg.inv(A.T @ A)
    d = r[keep] - coef[0] - coef[1] * c[keep]
    dof = keep.sum() - 2
    chi2_red = float(np.sum((d / err[keep]) ** 2) / dof) if dof > 0 else np.nan
    if np.isfinite(chi2_red) and chi2_red > 1:
        cov = cov * chi2_red
    used[idx[keep]] = True
    residuals[idx] = r - coef[0] - coef[1] * c
    zp_err = float(np.sqrt(cov[0, 0]))
    return ZeropointResult(
        "colour", True, "ok", zp=float(coef[0]), zp_err=zp_err, zp_err_fit=zp_err,
        scatter=float(np.std(d)), intercept=float(coef[0]), slope=1.0, cov=cov,
        colour_term=float(coef[1]), colour_term_err=float(np.sqrt(cov[1, 1])),
        n_matched=int(idx.size), n_used=int(keep.sum()), chi2_red=chi2_red,
        used=used, residuals=residuals)


def solar_selection(colours, tol=0.2, solar=None):
    """Select reference stars with Sun-like colours (PP's ``--solar``).

    Parameters
    ----------
    colours : dict of str -> array_like, shape (N,)
        Colours keyed ``'g-r'`` and/or ``'r-i'`` (SDSS/Pan-STARRS-like
        magnitudes of the reference stars).
    tol : float
        Half-width of the accepted interval around the solar value (mag).
    solar : dict of str -> float, optional
        Solar colours; default :data:`SOLAR_COLOURS` (g-r 0.44, r-i 0.11).

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
        True where every given colour is within ``tol`` of the solar one
        (NaN colours give False).  Calibrating on such stars removes most of
        the colour term for asteroid photometry.

    Raises
    ------
    ValueError
        If ``colours`` holds none of the known colour names, or arrays differ
        in length.
    """
    solar = SOLAR_COLOURS if solar is None else solar
    known = [key for key in colours if key in solar]
    if not known:
        raise ValueError(f"colours must contain one of {sorted(solar)}, got {sorted(colours)}")
    arrays = _arrays(*[colours[key] for key in known], names=tuple(known))
    mask = np.ones(arrays[0].size, bool)
    with np.errstate(invalid="ignore"):
        for key, a in zip(known, arrays):
            mask &= np.abs(a - solar[key]) <= tol
    return mask
