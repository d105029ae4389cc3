"""Robust statistics used by the quality and calibration stages.

All functions work on whole numpy arrays; grouped statistics (per night, per
exposure, ...) are computed for every group at once by sorting on
``(group, value)`` instead of looping over groups.

Sources
-------
* Box-plot outlier rule (Tukey 1977, *Exploratory Data Analysis*): a value is an
  outlier when it lies above ``Q3 + k IQR`` or below ``Q1 - k IQR`` with
  ``k = 1.5``.  Automatic-SSOs (``autossos/filab.py:check`` and
  ``autossos/magcalib.py:imgstats``, github.com/johnedmartz/Automatic-SSOs)
  applies it per night through ``matplotlib.pyplot.boxplot`` fliers, which uses
  the same linearly interpolated quartiles as :func:`numpy.percentile`; this
  module reproduces that rule without plotting.
* MAD and biweight estimators: :mod:`astropy.stats` (Beers, Flynn & Gebhardt
  1990, AJ 100, 32).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.stats import biweight_location, biweight_scale, sigma_clipped_stats
from astropy.stats import mad_std as _astropy_mad_std

__all__ = ["IQRBounds", "group_median", "iqr_bounds", "iqr_outliers", "mad_std", "robust_stats"]

_SIDES = ("upper", "lower", "both")


@dataclass(frozen=True)
class IQRBounds:
    """Per-group quartiles and box-plot fences.

    Attributes
    ----------
    groups : numpy.ndarray, shape (G,)
        The distinct group labels (sorted); ``array([0])`` when no groups were
        given.
    q1, median, q3, lower, upper : numpy.ndarray, shape (G,)
        First quartile, median, third quartile and the fences
        ``q1 - k*IQR`` and ``q3 + k*IQR`` of every group (NaN for a group
        without finite values).
    n : numpy.ndarray of int, shape (G,)
        Number of finite values in every group.
    """

    groups: np.ndarray
    q1: np.ndarray
    median: np.ndarray
    q3: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    n: np.ndarray


def group_median(groups, values, n):
    """Median of ``values`` per integer group, all groups at once (one sort; no loop over groups).

    Parameters
    ----------
    groups : ndarray of int, shape (m,)
        Group of each value, 0 .. n-1.
    values : ndarray of float, shape (m,)
    n : int
        Number of groups.

    Returns
    -------
    ndarray, shape (n,)
        The median of each group (mean of the two middle values for an even count); NaN for a
        group without values.
    """
    groups = np.asarray(groups)
    values = np.asarray(values)
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    counts = np.bincount(g, minlength=n)
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    med = np.full(n, np.nan)
    has = counts > 0
    lo = start[has] + (counts[has] - 1) // 2
    hi = start[has] + counts[has] // 2
    med[has] = 0.5 * (v[lo] + v[hi])
    return med


def _group_quantiles(values, inverse, ngroups, qs):
    """Linearly interpolated quantiles (numpy's default) of every group.

    ``values`` must be finite; returns an array of shape (len(qs), ngroups).
    """
    order = np.lexsort((values, inverse))
    sorted_vals = values[order]
    counts = np.bincount(inverse, minlength=ngroups)
    starts = np.cumsum(counts) - counts
    out = np.full((len(qs), ngroups), np.nan)
    has = counts > 0
    last = np.maximum(counts - 1, 0)
    for i, q in enumerate(qs):  # a loop over 3 quantiles, not over rows
        pos = q * last
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, last)
        frac = pos - lo
        idx_lo = np.where(has, starts + lo, 0)
        idx_hi = np.where(has, starts + hi, 0)
        if sorted_vals.size:
            val = sorted_vals[idx_lo] * (1.0 - frac) + sorted_vals[idx_hi] * frac
            out[i] = np.where(has, val, np.nan)
    return out, counts


def iqr_bounds(values, groups=None, k=1.5) -> IQRBounds:
    """Quartiles and Tukey fences of ``values``, per group.

    Parameters
    ----------
    values : array_like, shape (N,)
        Statistic per item (e.g. the median astrometric separation of every
        exposure, or its background level).  NaN values are ignored.
    groups : array_like, shape (N,), optional
        Group label of every item (e.g. the night).  All items form one group
        when omitted.
    k : float
        Fence width in units of the inter-quartile range (1.5 as in a box plot).

    Returns
    -------
    IQRBounds
        Quartiles and fences of every group.

    Raises
    ------
    ValueError
        If ``groups`` and ``values`` differ in length or ``k`` is negative.

    Notes
    -----
    Quartiles are linearly interpolated (numpy's default method), as used by
    matplotlib's ``boxplot`` in Automatic-SSOs.
    """
    values = np.asarray(values, dtype=float).ravel()
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if groups is None:
        labels = np.array([0])
        inverse = np.zeros(values.size, dtype=int)
    else:
        groups = np.asarray(groups).ravel()
        if groups.size != values.size:
            raise ValueError(f"groups has {groups.size} elements, values has {values.size}")
        labels, inverse = np.unique(groups, return_inverse=True)
    finite = np.isfinite(values)
    (q1, med, q3), counts = _group_quantiles(values[finite], inverse[finite], labels.size,
                                             (0.25, 0.5, 0.75))
    iqr = q3 - q1
    return IQRBounds(groups=labels, q1=q1, median=med, q3=q3,
                     lower=q1 - k * iqr, upper=q3 + k * iqr, n=counts)


def iqr_outliers(values, groups=None, k=1.5, side="upper"):
    """Flag box-plot outliers, per group (the Q3 + 1.5 IQR rule of Automatic-SSOs).

    Parameters
    ----------
    values : array_like, shape (N,)
        Statistic per item, e.g. the median separation (arcsec) between the
        detections of each exposure and the reference catalogue, or a
        background level (ADU).
    groups : array_like, shape (N,), optional
        Group label per item (e.g. night or ``date_obs``); quartiles are
        computed within every group.  One group when omitted.
    k : float
        Fence width in IQR units (default 1.5).
    side : {'upper', 'lower', 'both'}
        ``'upper'`` flags ``value > Q3 + k IQR`` (bad astrometry: large
        separations), ``'lower'`` flags ``value < Q1 - k IQR``, ``'both'`` flags
        either (Automatic-SSOs' image statistics use both fliers).

    Returns
    -------
    numpy.ndarray of bool, shape (N,)
        True for outliers.  NaN values are not flagged (handle them yourself:
        Automatic-SSOs reports them separately as unsolved).

    Raises
    ------
    ValueError
        If ``side`` is not one of the three choices, or for the errors of
        :func:`iqr_bounds`.
    """
    if side not in _SIDES:
        raise ValueError(f"side must be one of {_SIDES}, got {side!r}")
    values = np.asarray(values, dtype=float).ravel()
    b = iqr_bounds(values, groups, k)
    if groups is None:
        inverse = np.zeros(values.size, dtype=int)
    else:
        inverse = np.unique(np.asarray(groups).ravel(), return_inverse=True)[1]
    with np.errstate(invalid="ignore"):
        high = values > b.upper[inverse]
        low = values < b.lower[inverse]
    if side == "upper":
        return high
    if side == "lower":
        return low
    return high | low


def mad_std(values, axis=None, ignore_nan=True):
    """Median absolute deviation scaled to a Gaussian sigma (1.4826 MAD).

    Thin wrapper of :func:`astropy.stats.mad_std` that ignores NaN by default.

    Parameters
    ----------
    values : array_like
        Data.
    axis : int, optional
        Axis along which to compute; whole array when None.
    ignore_nan : bool
        Ignore NaN values (default True).

    Returns
    -------
    float or numpy.ndarray
        Robust standard deviation, in the units of ``values``.
    """
    return _astropy_mad_std(np.asarray(values, dtype=float), axis=axis, ignore_nan=ignore_nan)


def robust_stats(values, sigma=3.0, maxiters=5):
    """Robust location and scale estimates of a 1-D sample.

    Parameters
    ----------
    values : array_like, shape (N,)
        Data (NaN ignored).
    sigma : float
        Clipping threshold for the sigma-clipped statistics.
    maxiters : int
        Maximum clipping iterations.

    Returns
    -------
    dict
        ``n`` (finite values), ``mean``, ``median``, ``std`` (sigma-clipped,
        :func:`astropy.stats.sigma_clipped_stats`), ``mad`` (raw median absolute
        deviation), ``mad_std`` (1.4826 MAD), ``biweight_location`` and
        ``biweight_scale`` (Beers et al. 1990).  NaN when fewer than 2 values.
    """
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    out = dict(n=int(v.size), mean=np.nan, median=np.nan, std=np.nan, mad=np.nan,
               mad_std=np.nan, biweight_location=np.nan, biweight_scale=np.nan)
    if v.size < 2:
        if v.size == 1:
            out.update(mean=float(v[0]), median=float(v[0]))
        return out
    mean, median, std = sigma_clipped_stats(v, sigma=sigma, maxiters=maxiters)
    med = np.median(v)
    out.update(mean=float(mean), median=float(median), std=float(std),
               mad=float(np.median(np.abs(v - med))),
               mad_std=float(_astropy_mad_std(v)),
               biweight_location=float(biweight_location(v)),
               biweight_scale=float(biweight_scale(v)))
    return out
