"""Observing night of every exposure, or the observing session when the site is unknown.

The stages group exposures "by night" (registration in ``solve``, the IQR rules of ``qa-background``,
``qa-astrometry`` and ``exposure-summary``).  The label of an exposure, in order of preference:

1. ``night``: ``exposure.night`` as stored (the local date at the start of the night, set at ingest);
2. ``site_lon``: the local date at the start of the night from ``mjd_mid`` and the site longitude,
   ``MJD 0 (1858-11-17) + floor(mjd_mid + site_lon / 360 - 0.5)`` days (the day of local mean solar
   time counted from local noon, as :func:`catdb.ingest.headers.observing_night`);
3. ``time_gap``: neither known -- the longitude is **not** assumed (0 would put the night boundary at
   12:00 UTC, 05:00 in Arizona, and split one western night in two).  The exposures of one
   instrument are sorted by ``mjd_mid`` and a new observing session starts after a gap longer than
   ``gap`` days (:data:`SESSION_GAP_DAYS`); the label ``session starting YYYY-MM-DDTHH:MM:SS UTC``
   (the first exposure's ``mjd_mid``, with ``, instrument NAME`` when known) says it is not a
   site-based night.  Sessions are formed among the exposures given (a stage's selection);
4. ``unknown``: no ``night`` and no ``mjd_mid``: no label (``None``).

Vectorised numpy: one sort, no loop over exposures.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SESSION_GAP_DAYS", "observing_groups"]

#: Gap (days) after which exposures without night or site longitude start a new session: 6 h.  Between
#: two nights at one site there are >= ~11 h of daylight (a 13 h night at most at mid-latitudes, about
#: 18 h apart at high-latitude summer), while gaps inside a night (refocusing, a target change, clouds)
#: are usually well under 6 h; a night interrupted for longer is split -- two groups, never two nights
#: merged into one.
SESSION_GAP_DAYS = 0.25

_MJD0 = np.datetime64("1858-11-17", "D")


def _floats(a):
    """Float array of ``a`` (shape (N,)), None -> NaN."""
    a = np.asarray(a, dtype=object).ravel()
    return np.where(np.equal(a, None), np.nan, a).astype(float)


def observing_groups(mjd_mid, night=None, site_lon=None, instrument=None, gap: float = SESSION_GAP_DAYS):
    """Night or session label of every exposure, and which rule gave it.

    Parameters
    ----------
    mjd_mid : array_like of float, shape (N,)
        Mid-exposure MJD (UTC) [d]; NaN or None when unknown.
    night : array_like of str or None, shape (N,), optional
        Stored observing night (ISO date, ``exposure.night``); None when unknown.
    site_lon : array_like of float, shape (N,), optional
        Site longitude, east positive [deg]; NaN or None when unknown.
    instrument : array_like of str or None, shape (N,), optional
        Instrument of each exposure: sessions are formed per instrument (None is one instrument).
    gap : float
        Session gap [d] for exposures with neither ``night`` nor ``site_lon`` (default
        :data:`SESSION_GAP_DAYS`, 6 h).

    Returns
    -------
    labels : numpy.ndarray of object, shape (N,)
        ISO date (``night`` and ``site_lon`` rules), ``session starting YYYY-MM-DDTHH:MM:SS UTC[,
        instrument NAME]`` (``time_gap``), or None (no night and no ``mjd_mid``).
    basis : numpy.ndarray of object, shape (N,)
        ``'night'``, ``'site_lon'``, ``'time_gap'`` or ``'unknown'``.

    Raises
    ------
    ValueError
        ``gap`` not a positive number, or arrays of different lengths.
    """
    if not gap > 0:
        raise ValueError(f"session gap: expected a positive number of days, got {gap!r}")
    mjd = _floats(mjd_mid)
    n = mjd.size
    night = np.full(n, None, dtype=object) if night is None else np.asarray(night, dtype=object).ravel()
    lon = np.full(n, np.nan) if site_lon is None else _floats(site_lon)
    inst = np.full(n, None, dtype=object) if instrument is None else np.asarray(instrument, dtype=object).ravel()
    if not (night.size == lon.size == inst.size == n):
        raise ValueError(f"observing_groups: arrays of different lengths ({n}, {night.size}, {lon.size}, {inst.size})")
    labels = np.full(n, None, dtype=object)
    basis = np.full(n, "unknown", dtype=object)
    has_night = np.not_equal(night, None)
    labels[has_night] = night[has_night].astype(str)
    basis[has_night] = "night"

    by_lon = ~has_night & np.isfinite(mjd) & np.isfinite(lon)
    days = np.floor(mjd[by_lon] + lon[by_lon] / 360.0 - 0.5).astype(np.int64)
    labels[by_lon] = np.datetime_as_string(_MJD0 + days.astype("timedelta64[D]"), unit="D").astype(object)
    basis[by_lon] = "site_lon"

    by_gap = ~has_night & np.isfinite(mjd) & ~np.isfinite(lon)
    idx = np.flatnonzero(by_gap)
    if idx.size:
        t = mjd[idx]
        names = np.array(["" if v is None else str(v) for v in inst[idx]], dtype=object)
        _, code = np.unique(names, return_inverse=True)
        order = np.lexsort((idx, t, code))  # by instrument, then time (ties: input order)
        ts, cs = t[order], code[order]
        new = np.ones(idx.size, dtype=bool)
        new[1:] = (cs[1:] != cs[:-1]) | (np.diff(ts) > gap)
        first = np.flatnonzero(new)  # one label per session, not per exposure
        ms = np.round(ts[first] * 86400e3).astype(np.int64)
        when = np.datetime_as_string(_MJD0.astype("datetime64[ms]") + ms.astype("timedelta64[ms]"), unit="s")
        lab = np.array([f"session starting {w} UTC" + (f", instrument {i}" if i else "")
                        for w, i in zip(when, names[order][first])], dtype=object)
        labels[idx[order]] = lab[np.cumsum(new) - 1]
        basis[idx] = "time_gap"
    return labels, basis
