"""Light-curve period search (Lomb-Scargle) and plots.

Periods are searched with the generalised Lomb-Scargle periodogram
(Lomb 1976; Scargle 1982; Zechmeister & Kuerster 2009, A&A 496, 577) as
implemented by ``astropy.timeseries.LombScargle`` (VanderPlas 2018, ApJS
236, 16), with the false-alarm probability of Baluev (2008, MNRAS 385,
1279).  The period error is that of Horne & Baliunas (1986, ApJ 302, 757,
eq. 14): ``sigma_f = 3 sigma_N / (4 sqrt(N) T A)`` with ``sigma_N`` the
residual RMS, ``T`` the time span and ``A`` the semi-amplitude of the
fitted sinusoid; the half width at half maximum of the peak is reported too.

Asteroid light curves are usually double-peaked (two maxima per rotation
from an elongated body), so the rotation period is twice the period of the
strongest single-sinusoid peak: ``double_peaked=True`` (Harris et al. 1989,
Icarus 77, 171).

Wiring (database stage ``lightcurve``): for an object or track select
``exposure.mjd_mid`` and the calibrated ``mag_auto``/``magerr_auto`` of its
detections; store ``PeriodResult.summary()`` and the PNGs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.timeseries import LombScargle

from catdb.errors import InputError

__all__ = ["PeriodResult", "period_search", "plot_lightcurve", "plot_periodogram"]


@dataclass
class PeriodResult:
    """Result of :func:`period_search` (times in days, magnitudes in mag).

    Attributes
    ----------
    frequency, power : ndarray, shape (F,)
        Frequency grid (1/d) and normalised Lomb-Scargle power.
    period, period_err : float
        Light-curve period at the highest peak and its 1-sigma error (d).
    peak_hwhm_period : float
        Half width at half maximum of the peak, converted to period (d).
    rotation_period, rotation_period_err : float
        ``2 x period`` if ``double_peaked`` else ``period``, and its error.
    amplitude : float
        Peak-to-peak amplitude of the best-fit model, mag.
    fap : float
        False-alarm probability of the highest peak (Baluev 2008).
    mjd, mag, magerr : ndarray, shape (N,)
        The input data (finite values only).
    phase : ndarray, shape (N,)
        Phase (0-1) of every point, folded on ``rotation_period`` from
        ``epoch``.
    epoch : float
        Reference MJD of phase 0 (the first observation).
    model_phase, model_mag : ndarray, shape (200,)
        The best-fit model folded on the rotation period, for plotting.
    double_peaked : bool
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

    def summary(self):
        """Scalars as a dict (hours added for convenience), for a database row."""
        return dict(period_d=self.period, period_err_d=self.period_err,
                    rotation_period_h=self.rotation_period * 24,
                    rotation_period_err_h=self.rotation_period_err * 24,
                    amplitude_mag=self.amplitude, fap=self.fap, n_points=int(self.mjd.size),
                    double_peaked=self.double_peaked)


def period_search(mjd, mag, magerr=None, *, min_period=None, max_period=None,
                  samples_per_peak=20, nyquist_factor=5, nterms=1, double_peaked=False):
    """Search a light curve for a period with the Lomb-Scargle periodogram.

    Parameters
    ----------
    mjd : array_like, shape (N,)
        Observation times, MJD (``exposure.mjd_mid``); any sampling.
    mag, magerr : array_like, shape (N,)
        Magnitudes and errors; non-finite points are dropped.  Without
        errors the periodogram is unweighted.
    min_period, max_period : float, optional
        Search range in days.  Defaults: astropy's ``autofrequency`` range
        (``nyquist_factor`` x the pseudo-Nyquist frequency down to 1/T).
    samples_per_peak : int, optional
        Grid oversampling (default 20).
    nterms : int, optional
        Fourier terms of the model (default 1, the classical periodogram).
    double_peaked : bool, optional
        Report ``rotation_period = 2 x period`` (asteroids).

    Returns
    -------
    PeriodResult

    Raises
    ------
    InputError
        With fewer than 5 finite points, mismatched shapes, zero time span,
        or an empty period range.
    """
    t = np.asarray(mjd, dtype=float)
    y = np.asarray(mag, dtype=float)
    if t.shape != y.shape or t.ndim != 1:
        raise InputError(f"mjd and mag must be 1-D of equal length, got {t.shape}, {y.shape}",
                         keyword="mag")
    dy = None if magerr is None else np.asarray(magerr, dtype=float)
    if dy is not None and dy.shape != t.shape:
        raise InputError(f"magerr has shape {dy.shape}, expected {t.shape}", keyword="magerr")
    ok = np.isfinite(t) & np.isfinite(y)
    if dy is not None:
        ok &= np.isfinite(dy) & (dy > 0)
    t, y = t[ok], y[ok]
    dy = dy[ok] if dy is not None else None
    if t.size < 5:
        raise InputError(f"need at least 5 finite points for a period search, got {t.size}",
                         keyword="mag")
    span = np.ptp(t)
    if span <= 0:
        raise InputError("all observations at the same time", keyword="mjd")
    ls = LombScargle(t, y, dy, nterms=nterms)
    fmin = 1.0 / max_period if max_period else None
    fmax = 1.0 / min_period if min_period else None
    freq = ls.autofrequency(samples_per_peak=samples_per_peak, nyquist_factor=nyquist_factor,
                            minimum_frequency=fmin, maximum_frequency=fmax)
    freq = freq[freq > 0]
    if freq.size < 3:
        raise InputError("empty frequency grid: check min_period/max_period", keyword="min_period")
    power = ls.power(freq)
    k = int(np.argmax(power))
    f_best = freq[k]
    period = 1.0 / f_best
    # Horne & Baliunas (1986) eq. 14
    model = ls.model(t, f_best)
    resid_rms = np.std(y - model)
    amp = np.ptp(ls.model(np.linspace(0, period, 400) + t[0], f_best))
    sigma_f = 3.0 * resid_rms / (4.0 * np.sqrt(t.size) * span * max(amp / 2.0, 1e-12))
    period_err = sigma_f / f_best**2
    # half width at half maximum of the peak
    half = power[k] / 2.0
    below_lo = np.flatnonzero(power[:k] <= half)
    below_hi = np.flatnonzero(power[k:] <= half)
    lo = below_lo[-1] if below_lo.size else 0
    hi = k + below_hi[0] if below_hi.size else freq.size - 1
    hwhm_f = 0.5 * (freq[hi] - freq[lo])
    try:
        fap = float(ls.false_alarm_probability(power[k], minimum_frequency=freq[0],
                                               maximum_frequency=freq[-1], method="baluev"))
    except (ValueError, NotImplementedError):  # nterms > 1
        fap = np.nan
    factor = 2.0 if double_peaked else 1.0
    rot = factor * period
    epoch = float(t.min())
    phase = ((t - epoch) / rot) % 1.0
    mph = np.linspace(0, 1, 200)
    mmag = ls.model(epoch + mph * rot, f_best)
    return PeriodResult(frequency=freq, power=power, period=period, period_err=period_err,
                        peak_hwhm_period=hwhm_f / f_best**2, rotation_period=rot,
                        rotation_period_err=factor * period_err, amplitude=float(amp), fap=fap,
                        mjd=t, mag=y, magerr=dy if dy is not None else np.full(t.size, np.nan),
                        phase=phase, epoch=epoch, model_phase=mph, model_mag=mmag,
                        double_peaked=double_peaked)


def _figure():
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    return Figure(figsize=(7, 4.5), layout="constrained")


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
    from pathlib import Path

    fig = _figure()
    ax = fig.add_subplot()
    for shift in (0.0, 1.0):
        ax.errorbar(result.phase + shift, result.mag,
                    yerr=None if np.all(np.isnan(result.magerr)) else result.magerr,
                    fmt="o", ms=3, color="k", ecolor="0.6", lw=0.8)
        ax.plot(result.model_phase + shift, result.model_mag, "r-", lw=1.2)
    ax.invert_yaxis()
    ax.set_xlabel(f"phase (P = {result.rotation_period * 24:.4f} h, epoch MJD {result.epoch:.5f})")
    ax.set_ylabel("magnitude")
    ax.set_title(title or f"amplitude {result.amplitude:.3f} mag, FAP {result.fap:.2g}")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path


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
    from pathlib import Path

    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(24.0 / result.frequency, result.power, "k-", lw=0.8)
    ax.axvline(result.period * 24, color="r", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel("light-curve period (h)")
    ax.set_ylabel("Lomb-Scargle power")
    ax.set_title(title or f"best {result.period * 24:.4f} +- {result.period_err * 24:.4f} h")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
