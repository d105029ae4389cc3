"""Light-curve period search (Lomb-Scargle / Fourier series) and plots.

Model.  At each trial frequency ``f`` the magnitudes are fitted by weighted least squares with a
Fourier series of ``nterms`` harmonics plus one zero point per observing session::

    m(t) = C_j + sum_{k=1..nterms} [a_k cos(2 pi k f t) + b_k sin(2 pi k f t)]      (t in session j)

and the power is the fraction of the (session-offset-only) chi-square the series removes,
``P(f) = 1 - chi2(f) / chi2_0``.  With ``nterms = 1`` and one session this is the generalised
(floating-mean, error-weighted) Lomb-Scargle periodogram (Zechmeister & Kuerster 2009, A&A 496,
577) with astropy's ``standard`` normalisation (VanderPlas 2018, ApJS 236, 16, eq. 41-45); with
``nterms >= 2`` and one zero point per session it is the Fourier-series method asteroid
light curves are analysed with (Harris et al. 1989, Icarus 77, 171, eq. 1: the session offsets
absorb the unknown zero points of nights reduced against different comparison stars; typical
``nterms`` 2-4, the model frequency then being the rotation frequency of a double-peaked curve).
The fit is exact linear algebra (no approximate fast method), vectorised over frequencies in
blocks; the session offsets are projected out per session (Frisch-Waugh) so the normal matrix
is ``2 nterms`` square whatever the number of sessions.

Grid and refinement.  The coarse grid is astropy's ``autofrequency`` (uniform in frequency, step
``1 / (n0 T)`` with ``T`` the time span; VanderPlas 2018 sect. 7.1 recommends ``n0`` = 5-10
samples per peak).  A harmonic ``k`` makes peaks ``k`` times narrower in the base frequency,
so the grid uses ``n0 = max(samples_per_peak, 5 nterms)``.  A grid only places the peak to
within half a step, so the ``n_refine`` highest distinct peaks are refined: a dense local grid
(41 points over +-1 coarse step) and then a bounded scalar optimiser (Brent) on the power; the
best refined peak is the result (``refined`` in the result; its precision ``refine_tol`` is
1e-6 of the coarse step).

Uncertainty.  ``period_err`` is the largest of: the 1-sigma error from the curvature of chi2(f) at the refined
peak, scaled by the reduced chi-square (``sigma_f = sqrt(2 / chi2'' * chi2_min / (N - p))``,
Press et al. 2007, Numerical Recipes 3rd ed., sect. 15.6; Bevington & Robinson 2003 sect. 8.3),
i.e. the error the data support for this model; for ``nterms = 1`` with one zero point the
Horne & Baliunas (1986, ApJ 302, 757, eq. 14) value; with >= 3 sessions the delete-one-session
jackknife (Efron & Stein 1981, Ann. Stat. 9, 586), which includes the night-to-night systematics
(zero points, phase-angle and distance changes) the formal errors ignore; and the refinement
precision.  ``period_err_method`` names what was reported.  The half width at half
maximum of the peak (``peak_hwhm_period``) is the resolution of the data (~P^2 / 2T): a period
known to better than that rests on the cycle count being right, which the alias peaks
(``peaks``) let a user judge.

False-alarm probability.  ``nterms = 1`` with one session: Baluev (2008, MNRAS 385, 1279), as
astropy.  Otherwise (astropy's analytic FAP does not cover nterms > 1 or session offsets): a
permutation bootstrap of the highest peak (Suveges 2012 sect. 3; VanderPlas 2018 sect. 7.4):
the magnitudes (with their errors) are shuffled among the epochs within each session, the
maximum power over the same coarse grid is recomputed for each shuffle, and
``FAP = (1 + #{max_b >= max_obs}) / (B + 1)`` (Davison & Hinkley 1997, eq. 4.11; never 0, so
the smallest reportable FAP is ``1 / (B + 1)``).  ``B`` is ``n_bootstrap`` unless the cost
``B x (grid size) x N x (2 nterms)^2`` would exceed ``max_bootstrap_cost``, in which case fewer
are run (at least 19, else the FAP is NaN and ``fap_method`` says why); ``n_bootstrap`` in the
result is the number run.  The shuffles use a fixed seed (``seed``), so results repeat.

Asteroid light curves are usually double-peaked (two maxima per rotation from an elongated
body), so for ``nterms = 1`` the rotation period is twice the period of the strongest peak:
``double_peaked=True`` (Harris et al. 1989).

Wiring (database stage ``lightcurve``): for an object or track select ``exposure.mjd_mid`` and
the calibrated ``mag_auto``/``magerr_auto`` of its detections; store ``PeriodResult.summary()``
and the PNGs.  Imported ALCDEF sessions: ``catdb lightcurve period --session N``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.timeseries import LombScargle
from scipy.optimize import minimize_scalar
from scipy.stats import f as f_dist

from catdb.errors import InputError

__all__ = ["PeriodResult", "period_search", "fourier_power", "plot_lightcurve", "plot_periodogram"]

#: block of (frequencies x points x terms) floats evaluated at once
_BLOCK = 2_000_000


def _session_codes(session, n):
    """Integer codes 0..S-1 of ``session`` labels (None -> one session)."""
    if session is None:
        return np.zeros(n, dtype=np.int64), 1
    _, codes = np.unique(np.asarray(session), return_inverse=True)
    return codes.astype(np.int64), int(codes.max()) + 1 if n else 0


def fourier_power(t, y, w, sidx, freqs, nterms=1):
    """Power of the Fourier-series model with per-session offsets at each trial frequency.

    Parameters
    ----------
    t, y, w : ndarray, shape (N,)
        Times [d], magnitudes [mag], weights ``1/sigma^2`` (ones for an unweighted fit).
    sidx : ndarray of int, shape (N,)
        Session code of every point (0..S-1).
    freqs : ndarray, shape (F,)
        Trial frequencies [1/d].
    nterms : int
        Harmonics of the model.

    Returns
    -------
    power : ndarray, shape (F,)
        ``1 - chi2(f) / chi2_0`` in [0, 1] (``chi2_0``: session offsets alone).
    chi2_0 : float

    Notes
    -----
    Frisch-Waugh: with the session offsets projected out of the data and of every Fourier
    column (weighted session means subtracted), the Fourier coefficients and the chi-square
    are those of the full model, so each frequency costs one ``2 nterms`` square solve.
    """
    t = np.asarray(t, float)
    freqs = np.atleast_1d(np.asarray(freqs, float))
    S = int(sidx.max()) + 1
    ws = np.bincount(sidx, w, S)
    yc = y - (np.bincount(sidx, w * y, S) / ws)[sidx]
    chi0 = float(np.sum(w * yc * yc))
    M = 2 * nterms
    # points sorted by session so the weighted session sums are contiguous reductions
    order = np.argsort(sidx, kind="stable")
    t_, w_, yc_, s_ = t[order] - t.min(), w[order], yc[order], sidx[order]
    starts = np.flatnonzero(np.r_[True, s_[1:] != s_[:-1]])
    counts = np.diff(np.r_[starts, s_.size])
    wsum = np.add.reduceat(w_, starts)
    k = np.arange(1, nterms + 1, dtype=float)
    out = np.empty(freqs.size)
    step = max(1, _BLOCK // max(1, t_.size * M))
    for i0 in range(0, freqs.size, step):  # blocks of frequencies, vectorised within
        f = freqs[i0:i0 + step]
        ph = 2 * np.pi * f[:, None, None] * t_[None, :, None] * k[None, None, :]     # (B, N, K)
        X = np.concatenate([np.cos(ph), np.sin(ph)], axis=2)                            # (B, N, M)
        Xw = X * w_[None, :, None]
        means = np.add.reduceat(Xw, starts, axis=1) / wsum[None, :, None]              # (B, S, M)
        Xc = X - np.repeat(means, counts, axis=1)
        Xcw = Xc * w_[None, :, None]
        A = np.matmul(Xcw.transpose(0, 2, 1), Xc)                                       # (B, M, M)
        r = np.matmul(Xcw.transpose(0, 2, 1), yc_)                                      # (B, M)
        try:
            c = np.linalg.solve(A, r[..., None])[..., 0]
        except np.linalg.LinAlgError:  # degenerate frequency (e.g. a multiple of the sampling)
            c = np.stack([np.linalg.lstsq(a, b, rcond=None)[0] for a, b in zip(A, r)])
        out[i0:i0 + step] = np.sum(r * c, axis=1)
    power = out / chi0 if chi0 > 0 else np.zeros_like(out)
    return np.clip(power, 0.0, 1.0), chi0


def _fit(t, y, w, sidx, f, nterms):
    """Coefficients of the model at frequency ``f``: (offsets (S,), a_k, b_k (K,)), t0."""
    S = int(sidx.max()) + 1
    t0 = float(t.min())
    k = np.arange(1, nterms + 1, dtype=float)
    ph = 2 * np.pi * f * (t - t0)[:, None] * k[None, :]
    D = np.concatenate([np.eye(S)[sidx], np.cos(ph), np.sin(ph)], axis=1)
    sw = np.sqrt(w)
    coef = np.linalg.lstsq(D * sw[:, None], y * sw, rcond=None)[0]
    return coef[:S], coef[S:S + nterms], coef[S + nterms:], t0


def _model_shape(a, b, f, t0, tt):
    k = np.arange(1, a.size + 1, dtype=float)
    ph = 2 * np.pi * f * (np.asarray(tt, float) - t0)[:, None] * k[None, :]
    return np.cos(ph) @ a + np.sin(ph) @ b


def _local_maxima(p):
    """Indices of local maxima of ``p`` (plateaus: first index), highest first."""
    if p.size < 3:
        return np.array([int(np.argmax(p))])
    inner = np.flatnonzero((p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:])) + 1
    ends = [i for i, ok in ((0, p[0] > p[1]), (p.size - 1, p[-1] >= p[-2])) if ok]
    idx = np.r_[inner, ends].astype(int)
    return idx[np.argsort(p[idx])[::-1]]


@dataclass
class PeriodResult:
    """Result of :func:`period_search` (times in days, magnitudes in mag).

    Attributes
    ----------
    frequency, power : ndarray, shape (F,)
        Coarse frequency grid (1/d) and power (``1 - chi2/chi2_0``; the normalised
        Lomb-Scargle power for ``nterms = 1``).
    period, period_err : float
        Period of the model at the highest refined peak and its 1-sigma error (d); see
        ``period_err_method``.
    peak_hwhm_period : float
        Half width at half maximum of the peak, converted to period (d): the resolution of the data.
    rotation_period, rotation_period_err : float
        ``2 x period`` if ``double_peaked`` else ``period``, and its error.
    amplitude : float
        Peak-to-peak amplitude of the best-fit model, mag.
    fap : float
        False-alarm probability of the highest peak (``fap_method``); NaN when not computed.
    mjd, mag, magerr : ndarray, shape (N,)
        The input data (finite values only).
    phase : ndarray, shape (N,)
        Phase (0-1) of every point, folded on ``rotation_period`` from ``epoch``.
    epoch : float
        Reference MJD of phase 0 (the first observation).
    model_phase, model_mag : ndarray, shape (200,)
        The best-fit model folded on the rotation period, for plotting (first session's zero point).
    double_peaked : bool
    period_err_method : str
        How ``period_err`` was obtained.
    fap_method : str
        ``baluev`` or ``bootstrap`` (with the number of shuffles), or why there is none.
    n_bootstrap : int
        Shuffles run for the bootstrap FAP (0 for Baluev).
    nterms, n_sessions : int
        Harmonics of the model; sessions (each with its own zero point).
    grid_step_period : float
        Coarse grid step at the peak, converted to period (d).
    refined : bool
        True when the peak was refined beyond the grid (always, unless the grid is too small).
    peaks : list of (period_d, power)
        The refined candidate peaks, highest first (aliases to judge the cycle count).
    mag_offset : ndarray, shape (N,)
        Zero point of each point's session (subtract to put all sessions on the first's scale).
    """

    frequency: np.ndarray
    power: np.ndarray
    period: float
    period_err: float
    peak_hwhm_period: float
    rotation_period: float
    rotation_period_err: float
    amplitude: float
    fap: float
    mjd: np.ndarray
    mag: np.ndarray
    magerr: np.ndarray
    phase: np.ndarray
    epoch: float
    model_phase: np.ndarray
    model_mag: np.ndarray
    double_peaked: bool
    period_err_method: str = ""
    fap_method: str = ""
    n_bootstrap: int = 0
    nterms: int = 1
    n_sessions: int = 1
    grid_step_period: float = float("nan")
    refined: bool = False
    peaks: list = field(default_factory=list)
    mag_offset: np.ndarray | None = None

    def summary(self):
        """Scalars as a dict (hours added for convenience), for a database row."""
        return dict(period_d=self.period, period_err_d=self.period_err,
                    rotation_period_h=self.rotation_period * 24,
                    rotation_period_err_h=self.rotation_period_err * 24,
                    amplitude_mag=self.amplitude, fap=self.fap, n_points=int(self.mjd.size),
                    double_peaked=self.double_peaked, period_err_method=self.period_err_method,
                    fap_method=self.fap_method, n_bootstrap=self.n_bootstrap, nterms=self.nterms,
                    n_sessions=self.n_sessions, peak_hwhm_h=self.peak_hwhm_period * 24,
                    grid_step_h=self.grid_step_period * 24, refined=self.refined)


def period_search(mjd, mag, magerr=None, *, min_period=None, max_period=None,
                  samples_per_peak=20, nyquist_factor=5, nterms=1, double_peaked=False, session=None,
                  session_offsets=True, n_refine=5, n_bootstrap=199, max_bootstrap_cost=4e9, seed=0,
                  jackknife=True):
    """Search a light curve for a period (Lomb-Scargle, or a Fourier series with session offsets).

    See the module docstring for the model, the grid and its refinement, the uncertainty and
    the false-alarm probability, with their sources.

    Parameters
    ----------
    mjd : array_like, shape (N,)
        Observation times, MJD (``exposure.mjd_mid``) or JD; any sampling.
    mag, magerr : array_like, shape (N,)
        Magnitudes and errors; non-finite points (and errors <= 0) are dropped.  Without
        errors the fit is unweighted.
    min_period, max_period : float, optional
        Search range in days.  Defaults: astropy's ``autofrequency`` range
        (``nyquist_factor`` x the pseudo-Nyquist frequency down to 1/T).
    samples_per_peak : int, optional
        Grid oversampling (default 20; at least ``5 nterms`` is used).
    nterms : int, optional
        Fourier harmonics of the model (default 1, the classical periodogram).
    double_peaked : bool, optional
        Report ``rotation_period = 2 x period`` (asteroids, ``nterms = 1``).
    session : array_like, shape (N,), optional
        Session label of every point (e.g. the ALCDEF block or the night).  Default: one session.
    session_offsets : bool, optional
        Fit one zero point per session (default; Harris et al. 1989) or one for all (sessions
        already on a common magnitude system).
    jackknife : bool, optional
        With >= 3 sessions, also estimate the period error by the delete-one-session jackknife
        (Efron & Stein 1981; the period re-fitted on the same peak without each session), which
        includes night-to-night systematics the formal error ignores; the larger error is reported.
    n_refine : int, optional
        Highest coarse peaks refined (default 5).
    n_bootstrap : int, optional
        Shuffles for the bootstrap FAP (default 199), bounded by ``max_bootstrap_cost``.
    max_bootstrap_cost : float, optional
        Upper bound on ``B x F x N x (2 nterms)^2`` (default 4e9, a few seconds here).
    seed : int, optional
        Seed of the bootstrap shuffles.

    Returns
    -------
    PeriodResult

    Raises
    ------
    InputError
        With fewer than ``2 nterms + sessions + 2`` finite points (at least 5), mismatched
        shapes, zero time span, an empty period range or ``nterms < 1``.
    """
    t = np.asarray(mjd, dtype=float)
    y = np.asarray(mag, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise InputError(f"mjd and mag must be 1-D of equal length, got {t.shape}, {y.shape}",
                         keyword="mag")
    dy = None if magerr is None else np.asarray(magerr, dtype=float)
    if dy is not None and dy.shape != t.shape:
        raise InputError(f"magerr has shape {dy.shape}, expected {t.shape}", keyword="magerr")
    if int(nterms) < 1:
        raise InputError(f"nterms must be >= 1, got {nterms}", keyword="nterms")
    nterms = int(nterms)
    sess = None if session is None else np.asarray(session)
    if sess is not None and sess.shape != t.shape:
        raise InputError(f"session has shape {sess.shape}, expected {t.shape}", keyword="session")
    ok = np.isfinite(t) & np.isfinite(y)
    if dy is not None:
        ok &= np.isfinite(dy) & (dy > 0)
    t, y = t[ok], y[ok]
    dy = dy[ok] if dy is not None else None
    groups, n_groups = _session_codes(None if sess is None else sess[ok], t.size)
    sidx, n_sess = (groups, n_groups) if session_offsets else (np.zeros(t.size, dtype=np.int64), 1)
    n_par = 2 * nterms + n_sess
    if t.size < max(5, n_par + 2):
        raise InputError(f"need at least {max(5, n_par + 2)} finite points for a period search with "
                         f"nterms={nterms} and {n_sess} session(s), got {t.size}", keyword="mag")
    span = np.ptp(t)
    if span <= 0:
        raise InputError("all observations at the same time", keyword="mjd")
    w = np.ones(t.size) if dy is None else 1.0 / dy**2
    # coarse grid: astropy's autofrequency (VanderPlas 2018 sect. 7.1), >= 5 samples per harmonic peak
    n0 = max(int(samples_per_peak), 5 * nterms)
    fmin = 1.0 / max_period if max_period else None
    fmax = 1.0 / min_period if min_period else None
    freq = LombScargle(t, y, dy).autofrequency(samples_per_peak=n0, nyquist_factor=nyquist_factor,
                                               minimum_frequency=fmin, maximum_frequency=fmax)
    freq = freq[freq > 0]
    if freq.size < 3:
        raise InputError("empty frequency grid: check min_period/max_period", keyword="min_period")
    df = float(freq[1] - freq[0])
    power, chi0 = fourier_power(t, y, w, sidx, freq, nterms)
    # refinement of the highest distinct peaks: dense local grid, then a bounded optimiser
    def pw(f):
        return fourier_power(t, y, w, sidx, np.atleast_1d(f), nterms)[0]

    cands = []
    for i in _local_maxima(power)[:max(1, int(n_refine))]:  # a few peaks
        lo, hi = max(freq[i] - df, freq[0] * 0.5), freq[i] + df
        fl = np.linspace(lo, hi, 41)
        pl = pw(fl)
        j = int(np.argmax(pl))
        a, b = fl[max(j - 1, 0)], fl[min(j + 1, fl.size - 1)]
        res = minimize_scalar(lambda f: -pw(f)[0], bounds=(a, b), method="bounded",
                              options={"xatol": 1e-6 * df})
        f_r, p_r = (float(res.x), float(-res.fun)) if -res.fun >= pl[j] else (float(fl[j]), float(pl[j]))
        cands.append((f_r, p_r))
    cands.sort(key=lambda c: -c[1])
    f_best, p_best = cands[0]
    alias_note = ""
    if nterms >= 2:
        # A model of base frequency f contains the harmonics of 2f, so a signal of frequency 2f
        # fits at f as well (the sub-harmonic ambiguity of Fourier-series searches, Harris et al.
        # 1989).  Keep f only if its odd harmonics are significant: nested F-test of the full
        # model against its even harmonics alone (= base 2f, nterms // 2 harmonics), 1 % level
        # (Bevington & Robinson 2003 sect. 11.4).
        p_even = float(fourier_power(t, y, w, sidx, np.array([2 * f_best]), nterms // 2)[0][0])
        nu1 = 2 * (nterms - nterms // 2)
        nu2 = max(t.size - n_par, 1)
        chi_full, chi_even = chi0 * (1 - p_best), chi0 * (1 - p_even)
        F = ((chi_even - chi_full) / nu1) / max(chi_full / nu2, 1e-300)
        if f_dist.sf(F, nu1, nu2) > 0.01:
            near = [c for c in cands if abs(c[0] - 2 * f_best) < 2 * df]
            f_ref, p_ref = (near[0] if near else (2 * f_best, pw(2 * f_best)[0]))
            alias_note = (f"; odd harmonics of {24 / f_best:.4f} h not significant (F-test p = "
                          f"{f_dist.sf(F, nu1, nu2):.2g}): half that period kept")
            f_best, p_best = float(f_ref), float(p_ref)
    period = 1.0 / f_best
    # uncertainty: chi2 curvature at the peak, scaled by the reduced chi2 (NR sect. 15.6)
    chi2 = lambda p: chi0 * (1.0 - p)  # noqa: E731
    h = 0.02 / (nterms * span)
    pm = pw(np.array([f_best - h, f_best, f_best + h]))
    curv = (chi2(pm[0]) - 2 * chi2(pm[1]) + chi2(pm[2])) / h**2
    dof = max(t.size - n_par - 1, 1)
    red = chi2(pm[1]) / dof
    sig_f = np.sqrt(2.0 / curv * red) if curv > 0 else np.inf
    offs, a_k, b_k, t0 = _fit(t, y, w, sidx, f_best, nterms)
    model = offs[sidx] + _model_shape(a_k, b_k, f_best, t0, t)
    shape = _model_shape(a_k, b_k, f_best, t0, t0 + np.linspace(0, period, 400, endpoint=False))
    amp = float(np.ptp(shape))
    methods = ["chi2 curvature x reduced chi2"]
    err_f = sig_f
    if nterms == 1 and n_sess == 1:  # Horne & Baliunas (1986) eq. 14, as a floor
        resid_rms = float(np.std(y - model))
        hb = 3.0 * resid_rms / (4.0 * np.sqrt(t.size) * span * max(amp / 2.0, 1e-12))
        if hb > err_f:
            err_f, methods = hb, ["Horne & Baliunas (1986) eq. 14"]
    # half width at half maximum of the peak (coarse grid around the refined peak)
    k = int(np.argmin(np.abs(freq - f_best)))
    half = p_best / 2.0
    below_lo = np.flatnonzero(power[:k] <= half)
    below_hi = np.flatnonzero(power[k:] <= half)
    lo = below_lo[-1] if below_lo.size else 0
    hi = k + below_hi[0] if below_hi.size else freq.size - 1
    hwhm_f = 0.5 * (freq[hi] - freq[lo])
    if jackknife and n_groups >= 3:  # delete-one-session jackknife on the same peak
        # the peak's own lobe: down to the nearest minima of the coarse power on either side
        left, right = k, k
        while left > 0 and power[left - 1] <= power[left]:
            left -= 1
        while right < freq.size - 1 and power[right + 1] <= power[right]:
            right += 1
        f_lo, f_hi = min(freq[left], f_best - 3 * df), max(freq[right], f_best + 3 * df)
        fj = []
        for g in range(n_groups):  # few sessions
            keep = groups != g
            try:
                rj = period_search(t[keep], y[keep], None if dy is None else dy[keep], nterms=nterms,
                                   session=groups[keep], session_offsets=session_offsets,
                                   min_period=1.0 / f_hi, max_period=1.0 / max(f_lo, 1e-9),
                                   samples_per_peak=n0, n_refine=1, n_bootstrap=0, jackknife=False)
            except InputError:  # too few points without this session
                continue
            fj.append(1.0 / rj.period)
        if len(fj) >= 3:
            fj = np.asarray(fj)
            jk = float(np.sqrt((fj.size - 1) / fj.size * np.sum((fj - fj.mean()) ** 2)))
            if jk > err_f:
                err_f, methods = jk, [f"delete-one-session jackknife ({fj.size} sessions)"]
    tol_f = 1e-6 * df
    if tol_f > err_f:
        err_f, methods = tol_f, ["refinement precision"]
    period_err = err_f / f_best**2
    # false-alarm probability
    p_obs = float(power.max())
    n_boot = 0
    if nterms == 1 and n_sess == 1:
        try:
            fap = float(LombScargle(t, y, dy).false_alarm_probability(
                p_obs, minimum_frequency=freq[0], maximum_frequency=freq[-1], method="baluev"))
            fap_method = "baluev (Baluev 2008)"
        except (ValueError, NotImplementedError) as exc:  # pragma: no cover - astropy refuses
            fap, fap_method = np.nan, f"none ({exc})"
    else:
        cost = float(freq.size) * t.size * (2 * nterms) ** 2
        n_boot = int(min(int(n_bootstrap), max_bootstrap_cost // max(cost, 1.0)))
        if n_boot < 19:
            fap, fap_method, n_boot = np.nan, (f"none: a bootstrap of {freq.size} frequencies x {t.size} points "
                                               f"exceeds max_bootstrap_cost {max_bootstrap_cost:.3g}; narrow "
                                               "the period range"), 0
        else:
            rng = np.random.default_rng(seed)
            # shuffle within sessions: random keys sorted inside each session block
            order = np.lexsort((rng.random((n_boot, t.size)), np.broadcast_to(sidx, (n_boot, t.size))))
            base = np.argsort(sidx, kind="stable")  # position -> point, same session layout
            maxp = np.empty(n_boot)
            for b in range(n_boot):  # bounded number of periodograms, each vectorised
                perm = np.empty(t.size, dtype=np.int64)
                perm[base] = order[b]
                maxp[b] = fourier_power(t, y[perm], w[perm], sidx, freq, nterms)[0].max()
            fap = float((1 + np.sum(maxp >= p_obs)) / (n_boot + 1))
            fap_method = f"bootstrap ({n_boot} within-session shuffles, max power over the grid)"
    factor = 2.0 if double_peaked else 1.0
    rot = factor * period
    epoch = float(t.min())
    phase = ((t - epoch) / rot) % 1.0
    mph = np.linspace(0, 1, 200)
    mmag = offs[sidx[np.argmin(t)]] + _model_shape(a_k, b_k, f_best, t0, epoch + mph * rot)
    return PeriodResult(frequency=freq, power=power, period=period, period_err=period_err,
                        peak_hwhm_period=hwhm_f / f_best**2, rotation_period=rot,
                        rotation_period_err=factor * period_err, amplitude=amp, fap=fap,
                        mjd=t, mag=y, magerr=dy if dy is not None else np.full(t.size, np.nan),
                        phase=phase, epoch=epoch, model_phase=mph, model_mag=mmag,
                        double_peaked=double_peaked, period_err_method=methods[0] + alias_note,
                        fap_method=fap_method,
                        n_bootstrap=n_boot, nterms=nterms, n_sessions=n_sess,
                        grid_step_period=df / f_best**2, refined=True,
                        peaks=[(1.0 / f, p) for f, p in cands],
                        mag_offset=offs[sidx] - offs[sidx[np.argmin(t)]])


def _axes():
    """A new figure (7 x 4.5 in) and its one Axes."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    return fig, fig.add_subplot()


def _save_png(fig, path) -> Path:
    """Write ``fig`` to ``path`` as PNG at 100 dpi; returns the path."""
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


def plot_lightcurve(result, path, title=None):
    """Phase-folded light curve (two cycles) with the model, written as PNG.

    Parameters
    ----------
    result : PeriodResult
    path : str or os.PathLike
        Output PNG file.
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    fig, ax = _axes()
    mag = result.mag if result.mag_offset is None else result.mag - result.mag_offset  # sessions on one scale
    for shift in (0.0, 1.0):
        ax.errorbar(result.phase + shift, mag,
                    yerr=None if np.all(np.isnan(result.magerr)) else result.magerr,
                    fmt="o", ms=3, color="k", ecolor="0.6", lw=0.8)
        ax.plot(result.model_phase + shift, result.model_mag, "r-", lw=1.2)
    ax.invert_yaxis()
    ax.set_xlabel(f"phase (P = {result.rotation_period * 24:.4f} h, epoch MJD {result.epoch:.5f})")
    ax.set_ylabel("magnitude")
    ax.set_title(title or f"amplitude {result.amplitude:.3f} mag, FAP {result.fap:.2g}")
    return _save_png(fig, path)


def plot_periodogram(result, path, title=None):
    """Lomb-Scargle power versus period (hours), written as PNG.

    Parameters
    ----------
    result : PeriodResult
    path : str or os.PathLike
    title : str, optional

    Returns
    -------
    pathlib.Path
    """
    fig, ax = _axes()
    ax.plot(24.0 / result.frequency, result.power, "k-", lw=0.8)
    ax.axvline(result.period * 24, color="r", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("light-curve period (h)")
    ax.set_ylabel("Lomb-Scargle power")
    ax.set_title(title or f"best {result.period * 24:.4f} +- {result.period_err * 24:.4f} h")
    return _save_png(fig, path)
