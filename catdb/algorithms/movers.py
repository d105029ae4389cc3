"""Solar System object (moving-object) candidates from multi-epoch detections.

The search links detections from different exposures that lie on a straight
line in the tangent plane (RA cos dec, Dec) versus time, one detection per
exposure, and then applies the filter chain of the ssos pipeline (Mahlke,
Bouy, Altieri et al. 2019, A&C 28, 100289; ``ssos/filt.py``), each filter
recording how many candidates it received, rejected and kept (the ledger):

1. ``detections``: at least ``min_detections`` linked detections;
2. ``outliers``: per-track detections whose fit residual exceeds
   ``mad_threshold`` x the median absolute deviation (MAD) are dropped, the
   track is refitted and rejected if too few detections remain (ssos flags
   outlier epochs by MAD);
3. ``rate``: ``min_rate <= rate <= max_rate`` ("/h) and rate S/N >=
   ``min_rate_snr`` (ssos ``PM_LOW``, ``PM_UP``, ``PM_SNR``);
4. ``linear_motion``: weighted straight-line fit with the real RA/Dec errors;
   two-dimensional R^2 >= ``min_r2`` (ssos ``R_SQU_M`` = 0.95) and residual
   RMS <= ``max_rms_arcsec``;
5. ``pixel_shift``: fitted motion over the track's time span >=
   ``min_pixel_shift`` pixels (ssos ``DELTA_PIXEL``), both on the sky (arcsec /
   ``pixscale``) and on the detector (the detections' own ``x``, ``y``): ssos
   applies it to ``XWIN_IMAGE``/``YWIN_IMAGE`` to remove detector artifacts (a
   warm pixel fixed on the chip "moves" on the sky with the guiding drift or
   the dithers), so the smaller of the two shifts is used when both are given;
6. ``trail``: constant trail shape: (error of the weighted mean) / (standard
   deviation) of A and of B >= ``trail_ratio`` (ssos ``RATIO`` 0.25; off by
   default as in ssos, ``FILTER_TRAIL False``);
7. ``bright_stars``: great-circle distance from the track to the nearest star
   brighter than ``bright_star_mag`` >= ``bright_star_radius_arcsec`` (ssos
   ``FILTER_BRIGHT_SOURCES``, e.g. with Tycho-2).

Differences from ssos, on purpose: ssos gets its linking from SCAMP and fits
RA and Dec separately (falling back to ecliptic coordinates when one axis
barely moves); here the linking is our own search and R^2 is computed in two
dimensions (sum of both axes' residual and total sums of squares), which is
rotation-invariant, so a mover along one axis is not penalised.  The pixel
shift is the *fitted* shift rather than ``max - min`` of the pixel positions,
which for a star with 1" scatter over 20 frames reaches 4 sigma.  (A target the
telescope tracks non-sidereally stays fixed on the detector and is rejected by
the detector-frame shift, as in ssos.)

Linking (:func:`find_movers`): by default tracklets of nearby exposures chained
and extended by prediction (:func:`_link_tracklets`; MOPS-style tracklets, Kubica et
al. 2007), whose work grows linearly with exposures x detections; ``search='seeds'``
keeps the earlier long-baseline seed-and-predict search (:func:`_link`).

Wiring (database stage ``movers``): select the detections flagged by
:func:`catdb.algorithms.association.mover_candidate_mask` of one field and
night with the exposure's ``mjd_mid``; call :func:`find_movers`; store
``tracks`` (one row per candidate, ``status == 'kept'`` for accepted ones),
``members`` (``det_index`` indexes the input arrays) and the ``ledger``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from astropy.table import Table
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from catdb.errors import InputError

from .robust import group_median
from .sphere import chord_to_arcsec, group_mean_direction, radec, unit_vectors

__all__ = ["MoverConfig", "MoverResult", "find_movers", "fit_tracks"]


@dataclass
class MoverConfig:
    """Parameters of the mover search and filter chain (defaults in brackets).

    Attributes
    ----------
    min_detections : int
        Minimum detections on a track [4] (ssos removes 1-3 detections).
    min_rate, max_rate : float
        Rate range in arcsec/hour [0, 300] (ssos ``PM_LOW``, ``PM_UP``).
    min_rate_snr : float
        Minimum rate / rate error [3]; ssos uses 0.5, too permissive once
        static stars with ~1" scatter enter the search.
    min_r2 : float
        Minimum two-dimensional weighted R^2 of the linear fit [0.95].
    max_rms_arcsec : float
        Maximum residual RMS of the fit (both axes) [2.0].
    min_pixel_shift : float
        Minimum fitted motion over the track, pixels [2] (ssos ``DELTA_PIXEL``).
    use_trail_filter, trail_ratio : bool, float
        Constant-trail filter switch and ratio [False, 0.25].
    bright_star_radius_arcsec, bright_star_mag : float
        Veto radius around stars brighter than ``bright_star_mag`` [60, 11].
    mad_threshold : float
        Residual outlier cut in units of 1.4826 x MAD [5].
    match_nsigma : float
        Linking tolerance in units of the positional error [3].
    min_sigma_arcsec : float
        Floor of the positional error per axis used for linking and for the
        MAD [0.15].
    seed_baseline_frac : float
        Seed pairs come from exposures at least this fraction of the night's
        time span apart [0.5]: long baselines predict the other epochs well
        even for slow movers.
    seed_check_exposures : int
        Check exposures per seed exposure pair [3]: a seed line goes on to the
        full per-exposure match only if it has a detection within the match
        tolerance on at least one of them (evenly spaced between the two seed
        exposures).  This removes ~99.7% of the chance pairs on the Lowell
        night; 0 matches every seed on every exposure (exhaustive).  A track
        is lost only if, for every long-baseline pair of its detections, none
        of its other detections is on that pair's check exposures: possible
        for tracks with few detections (4-6 of 20+ exposures), not for long
        ones.  With at most this many other exposures the check is exact.
    max_seeds : int
        Memory bound [1e6]: seed pairs (``search='seeds'``) or pairs
        (``search='tracklets'``) are made, checked and matched in blocks of at
        most this many (about 150 bytes each), so any number of them runs in
        bounded memory.
    search : str
        ``'tracklets'`` [default]: pairs of nearby exposures, tracklets of three
        detections, chains of tracklets sharing detections, extension by
        prediction (:func:`_link_tracklets`); work linear in exposures x
        detections.  ``'seeds'``: long-baseline seed pairs checked on
        ``seed_check_exposures`` and matched on every exposure
        (:func:`_link`); work ~ exposures^2 x detections^2 at 0-300"/h, kept as
        the reference.  ``seed_baseline_frac`` and ``seed_check_exposures``
        apply to ``'seeds'`` only.
    tracklet_exposures : int
        ``K`` [3] (tracklets): pairs join an exposure with each of its next
        ``K`` exposures in time and the third detection is looked for on the
        ``K`` exposures after the pair's second one, so a mover is found when
        it misses at most ``K - 1`` exposures in a row somewhere on >= 3 of
        them; chains are extended up to ``2 K`` exposures beyond their ends.
    link_iterations : int
        Fit-predict-match rounds of the chains [3] (tracklets).
    """

    search: str = "tracklets"
    tracklet_exposures: int = 3
    link_iterations: int = 3
    min_detections: int = 4
    min_rate: float = 0.0
    max_rate: float = 300.0
    min_rate_snr: float = 3.0
    min_r2: float = 0.95
    max_rms_arcsec: float = 2.0
    min_pixel_shift: float = 2.0
    use_trail_filter: bool = False
    trail_ratio: float = 0.25
    bright_star_radius_arcsec: float = 60.0
    bright_star_mag: float = 11.0
    mad_threshold: float = 5.0
    match_nsigma: float = 3.0
    min_sigma_arcsec: float = 0.15
    seed_baseline_frac: float = 0.5
    seed_check_exposures: int = 3
    max_seeds: int = 1_000_000


@dataclass
class MoverResult:
    """Output of :func:`find_movers`.

    Attributes
    ----------
    tracks : astropy.table.Table
        One row per candidate track (before and after the filters):
        ``track_id``, ``n_detections``, ``mjd_ref`` (weighted mean epoch),
        ``ra``, ``dec`` (fitted position at ``mjd_ref``, deg), ``mjd_first``,
        ``mjd_last``, ``rate_ra`` (d(RA)/dt cos dec, "/h), ``rate_dec`` ("/h),
        ``rate_ra_err``, ``rate_dec_err``, ``rate``, ``rate_err``,
        ``rate_snr``, ``pa`` (position angle of motion, deg E of N), ``r2``,
        ``rms_ra``, ``rms_dec``, ``rms`` (arcsec), ``chi2_red``,
        ``shift_arcsec``, ``shift_pix``, ``mean_mag``, ``mag_std``,
        ``trail_ratio_a``, ``trail_ratio_b``, ``star_dist_arcsec`` and
        ``status`` (``'kept'`` or the name of the rejecting filter).
    members : astropy.table.Table
        One row per linked detection: ``track_id``, ``det_index`` (index into
        the input arrays), ``exposure_id``, ``mjd``, ``resid_ra``,
        ``resid_dec`` (arcsec, RA residual on the sky), ``outlier`` (dropped
        by the MAD step, not used in the fit).
    ledger : astropy.table.Table
        ``step``, ``filter``, ``n_in``, ``n_rejected``, ``n_kept``,
        ``parameters``.
    config : MoverConfig
    stats : dict
        Work counters of the search (e.g. ``pairs``, ``tracklets``, ``chains``,
        ``predictions``, ``lines`` for ``search='tracklets'``; ``seeds``,
        ``checked``, ``lines`` for ``'seeds'``); empty with given links.
    """

    tracks: Table
    members: Table
    ledger: Table
    config: MoverConfig = field(default_factory=MoverConfig)
    stats: dict = field(default_factory=dict)

    @property
    def accepted(self):
        """Rows of ``tracks`` that passed every filter."""
        return self.tracks[self.tracks["status"] == "kept"]

    def members_of(self, track_id, include_outliers=False):
        """Member rows of one track."""
        m = self.members["track_id"] == track_id
        if not include_outliers:
            m &= ~self.members["outlier"]
        return self.members[m]


# ----------------------------------------------------------------------------
# geometry and grouped statistics


def _tangent_plane(ra, dec, ra0, dec0):
    """Gnomonic projection (arcsec) of ra, dec about ra0, dec0 (all deg, broadcast)."""
    a, d = np.radians(ra), np.radians(dec)
    a0, d0 = np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    return np.degrees(xi) * 3600.0, np.degrees(eta) * 3600.0


def _from_tangent_plane(xi, eta, ra0, dec0):
    """Inverse gnomonic projection; xi, eta in arcsec, returns deg."""
    x, y = np.radians(xi / 3600.0), np.radians(eta / 3600.0)
    d0 = np.radians(dec0)
    rho = np.hypot(x, y)
    c = np.arctan(rho)
    with np.errstate(invalid="ignore", divide="ignore"):
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / rho, 0))
        ra = np.radians(ra0) + np.arctan2(x * np.sin(c),
                                          rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
    return np.degrees(ra) % 360.0, np.degrees(dec)


def _wline(g, n, t, x, w):
    """Weighted straight line x = a + v t per group; closed-form sums."""
    S = np.bincount(g, w, minlength=n)
    St = np.bincount(g, w * t, minlength=n)
    Sx = np.bincount(g, w * x, minlength=n)
    Stt = np.bincount(g, w * t * t, minlength=n)
    Stx = np.bincount(g, w * t * x, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        D = S * Stt - St**2
        v = (S * Stx - St * Sx) / D
        a = (Sx - v * St) / S
        ev = np.sqrt(S / D)
        xbar = Sx / S
    res = x - a[g] - v[g] * t
    ss_res = np.bincount(g, w * res**2, minlength=n)
    ss_tot = np.bincount(g, w * (x - xbar[g]) ** 2, minlength=n)
    return a, v, ev, res, ss_res, ss_tot


def fit_tracks(track, ra, dec, mjd, ra_err, dec_err, n_tracks=None, min_sigma_arcsec=0.0):
    """Weighted linear-motion fit of many tracks at once.

    For every track the tangent-plane offsets (RA cos dec, Dec; arcsec, about
    the track's mean direction) are fitted as ``x = x0 + v (t - t_ref)`` by
    weighted least squares with weights ``1/err^2`` (as ssos's
    ``statsmodels.WLS``), in closed form from group sums.

    Parameters
    ----------
    track : array_like of int, shape (M,)
        Track index ``0 .. n_tracks - 1`` of every member detection.
    ra, dec : array_like, shape (M,)
        Positions, deg.
    mjd : array_like, shape (M,)
        Epochs, MJD.
    ra_err, dec_err : array_like, shape (M,)
        Errors in arcsec (RA error on the sky).
    n_tracks : int, optional
        Number of tracks (default ``max(track) + 1``).
    min_sigma_arcsec : float, optional
        Floor applied to the errors.

    Returns
    -------
    fit : dict of ndarray
        Per track (shape (n_tracks,)): ``n``, ``mjd_ref``, ``ra``, ``dec``,
        ``rate_ra``, ``rate_dec``, ``rate_ra_err``, ``rate_dec_err`` ("/h;
        formal errors scaled by ``sqrt(max(1, chi2_red))``), ``rate``,
        ``rate_err``, ``rate_snr``, ``pa`` (deg E of N), ``r2`` (1 - sum of
        weighted residual squares of both axes / sum of weighted total
        squares of both axes), ``rms_ra``, ``rms_dec``, ``rms``,
        ``chi2_red``, ``mjd_first``, ``mjd_last``, ``shift_arcsec``.
        Per member (shape (M,)): ``resid_ra``, ``resid_dec`` (arcsec).
    """
    track = np.asarray(track, dtype=np.int64)
    ra, dec, mjd = (np.asarray(a, dtype=float) for a in (ra, dec, mjd))
    n = int(track.max()) + 1 if n_tracks is None else int(n_tracks)
    sx = np.maximum(np.asarray(ra_err, dtype=float), min_sigma_arcsec)
    sy = np.maximum(np.asarray(dec_err, dtype=float), min_sigma_arcsec)
    wx, wy = 1.0 / sx**2, 1.0 / sy**2
    cnt = np.bincount(track, minlength=n)
    # per-track tangent point: mean direction of its members
    ra0, dec0 = group_mean_direction(ra, dec, track, n)
    xi, eta = _tangent_plane(ra, dec, ra0[track], dec0[track])
    w_t = np.bincount(track, wx + wy, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_ref = np.bincount(track, (wx + wy) * mjd, minlength=n) / w_t
    t = (mjd - t_ref[track]) * 24.0
    x0, vra, evra, rx, ssr_x, sst_x = _wline(track, n, t, xi, wx)
    y0, vdec, evdec, ry, ssr_y, sst_y = _wline(track, n, t, eta, wy)
    with np.errstate(invalid="ignore", divide="ignore"):
        dof = 2 * cnt - 4
        chi2_red = np.where(dof > 0, (ssr_x + ssr_y) / dof, np.nan)
        scale = np.sqrt(np.maximum(np.nan_to_num(chi2_red, nan=1.0), 1.0))
        evra, evdec = evra * scale, evdec * scale
        rate = np.hypot(vra, vdec)
        rate_err = np.where(rate > 0, np.hypot(vra * evra, vdec * evdec) / rate, np.hypot(evra, evdec))
        r2 = 1.0 - (ssr_x + ssr_y) / (sst_x + sst_y)
        rms_ra = np.sqrt(np.bincount(track, rx**2, minlength=n) / cnt)
        rms_dec = np.sqrt(np.bincount(track, ry**2, minlength=n) / cnt)
    t_first = np.full(n, np.inf)
    t_last = np.full(n, -np.inf)
    np.minimum.at(t_first, track, mjd)
    np.maximum.at(t_last, track, mjd)
    ra_ref, dec_ref = _from_tangent_plane(x0, y0, ra0, dec0)
    return dict(
        n=cnt, mjd_ref=t_ref, ra=ra_ref, dec=dec_ref, rate_ra=vra, rate_dec=vdec,
        rate_ra_err=evra, rate_dec_err=evdec, rate=rate, rate_err=rate_err,
        rate_snr=rate / rate_err, pa=np.degrees(np.arctan2(vra, vdec)) % 360.0, r2=r2,
        rms_ra=rms_ra, rms_dec=rms_dec, rms=np.hypot(rms_ra, rms_dec), chi2_red=chi2_red,
        mjd_first=t_first, mjd_last=t_last, shift_arcsec=rate * (t_last - t_first) * 24.0,
        resid_ra=rx, resid_dec=ry,
    )


# ----------------------------------------------------------------------------
# the search


def _as_array(name, value, n, dtype=float, required=True):
    if value is None:
        if required:
            raise InputError(f"{name} is required", keyword=name)
        return None
    arr = np.asarray(value, dtype=dtype)
    if arr.shape != (n,):
        raise InputError(f"{name} has shape {arr.shape}, expected ({n},) like ra", keyword=name)
    return arr


def _check_exposures(a, b, nonempty, n_check):
    """Exposures on which the seed lines of exposure pair ``(a, b)`` are checked.

    ``n_check`` exposures with detections, evenly spaced strictly between ``a`` and ``b``
    (all of them when there are fewer; the ones nearest in index when there are none).
    When at most ``n_check`` exposures other than ``a`` and ``b`` have detections, all of
    them are returned and the check is exact: a line with no detection on any of them
    has only its two seed detections.
    """
    others = nonempty[(nonempty != a) & (nonempty != b)]
    if n_check <= 0:
        return others[:0]
    if others.size <= n_check:
        return others
    inner = others[(others > a) & (others < b)]
    if inner.size == 0:
        return others[np.argsort(np.minimum(np.abs(others - a), np.abs(others - b)), kind="stable")[:n_check]]
    if inner.size <= n_check:
        return inner
    pick = np.round(np.linspace(0, inner.size - 1, n_check + 2)[1:-1]).astype(np.int64)
    return inner[np.unique(pick)]


def _link(xi, eta, t_exp, e_idx, sigma, cfg):
    """Seed, check, predict and match linking (see :func:`find_movers`).

    For every exposure pair ``(a, b)`` with a long baseline, the seed pairs come
    from a k-d tree ``sparse_distance_matrix`` in blocks of at most ``max_seeds``
    pairs (the detections of ``a`` split into blocks of ``max_seeds // n_b``).
    All seeds of a block share ``a``, ``b`` and so the prediction error at every
    exposure: each check exposure is one vectorised k-d tree query of the
    block's predicted positions.  The surviving seeds are buffered and matched
    on every exposure in batches of ``max_seeds // n_exp`` lines; lines with
    ``>= min_detections`` matches are kept, duplicates removed as they
    accumulate.  Every block and batch is processed the same way whatever its
    size, so the result does not depend on ``max_seeds``.

    Cost: with ``S`` seed pairs (roughly ``sum n_a n_b`` over the long-baseline
    pairs once ``max_rate`` x span exceeds the field), ``C`` check exposures,
    ``S'`` surviving seeds and ``E`` exposures, ``O((S C + S' E) log n)`` k-d
    tree work, against ``O(S E log n)`` when every seed is matched on every
    exposure.  Memory: ``O(max_seeds)`` for the seeds plus the distinct lines.

    Returns
    -------
    M : ndarray of int64, shape (n_tracks, n_exp)
        Detection index of every track on every exposure (-1 = none).
    stats : dict
        ``seeds`` (pairs within the rate range), ``checked`` (seeds left after the
        check exposures), ``lines`` (distinct seed lines with >= min_detections
        matches), ``chunks`` (seed blocks processed).
    """
    n_exp = t_exp.size
    members = [np.flatnonzero(e_idx == k) for k in range(n_exp)]
    pos = np.column_stack([xi, eta])
    trees = [cKDTree(pos[m]) if m.size else None for m in members]
    nonempty = np.array([k for k in range(n_exp) if members[k].size], dtype=np.int64)
    span = t_exp[-1] - t_exp[0]
    # seed exposure pairs with a long baseline
    ka, kb = np.triu_indices(n_exp, 1)
    dt = t_exp[kb] - t_exp[ka]
    sel = dt >= cfg.seed_baseline_frac * span - 1e-12
    ka, kb = ka[sel], kb[sel]
    tol = cfg.match_nsigma * np.sqrt(2.0) * sigma
    chunk = max(int(cfg.max_seeds), 1)
    stats = dict(seeds=0, checked=0, lines=0, chunks=0)

    def perr_seed(tk, ta, tb):
        """Prediction error at tk of the line through two points (errors sigma) at ta, tb."""
        return sigma * np.sqrt((tb - tk) ** 2 + (tk - ta) ** 2) / (tb - ta)

    def match(p0, v, t0, perr):
        """Nearest detection in each exposure within the tolerance of the prediction.

        ``perr(k)`` gives the prediction error of every line at exposure k."""
        M = np.full((p0.shape[0], n_exp), -1, dtype=np.int64)
        for k in range(n_exp):
            if trees[k] is None:
                continue
            pred = p0 + v * (t_exp[k] - t0)[:, None]
            r = cfg.match_nsigma * np.sqrt(sigma**2 + perr(k) ** 2)
            d, j = trees[k].query(pred, k=1, distance_upper_bound=float(np.max(r)) * (1 + 1e-9))
            ok = np.isfinite(d)
            ok[ok] = d[ok] <= r[ok]
            M[ok, k] = members[k][j[ok]]
        return M

    def check(ia, ib, a_, b_):
        """Seeds whose line has a detection within the match tolerance on a check exposure."""
        checks = _check_exposures(a_, b_, nonempty, cfg.seed_check_exposures)
        if checks.size == 0 or cfg.min_detections <= 2:
            return np.ones(ia.size, dtype=bool)
        ta, tb = t_exp[a_], t_exp[b_]
        p0 = pos[ia]
        v = (pos[ib] - p0) / (tb - ta)
        alive = np.zeros(ia.size, dtype=bool)
        for k in checks:
            todo = np.flatnonzero(~alive)
            if todo.size == 0:
                break
            pred = p0[todo] + v[todo] * (t_exp[k] - ta)
            r = cfg.match_nsigma * np.hypot(sigma, perr_seed(t_exp[k], ta, tb))
            d, _ = trees[k].query(pred, k=1, distance_upper_bound=r * (1 + 1e-9))
            alive[todo[d <= r]] = True
        return alive

    lines = []
    n_lines = n_unique = 0
    buf_a, buf_b, n_buf = [], [], 0
    flush_at = max(1, chunk // max(n_exp, 1))

    def flush():
        nonlocal buf_a, buf_b, n_buf, lines, n_lines, n_unique
        if not n_buf:
            return
        sa, sb = np.concatenate(buf_a), np.concatenate(buf_b)
        buf_a, buf_b, n_buf = [], [], 0
        for s in range(0, sa.size, flush_at):
            a, b = sa[s:s + flush_at], sb[s:s + flush_at]
            ta, tb = t_exp[e_idx[a]], t_exp[e_idx[b]]
            v = (pos[b] - pos[a]) / (tb - ta)[:, None]
            M = match(pos[a], v, ta, lambda k, ta=ta, tb=tb: perr_seed(t_exp[k], ta, tb))
            M = M[(M >= 0).sum(1) >= cfg.min_detections]
            if M.shape[0]:
                lines.append(np.unique(M, axis=0))
                n_lines += lines[-1].shape[0]
        if len(lines) > 1 and n_lines > max(flush_at, 2 * n_unique):
            # many seeds give the same line: keep the distinct ones (amortised: when the count doubles)
            lines = [np.unique(np.concatenate(lines), axis=0)]
            n_lines = n_unique = lines[0].shape[0]

    for a_, b_ in zip(ka, kb):
        if trees[a_] is None or trees[b_] is None:
            continue
        for ia, ib in _rate_pairs(pos, members, trees, t_exp, a_, b_, cfg, tol, chunk):
            stats["chunks"] += 1
            stats["seeds"] += ia.size
            ok = check(ia, ib, a_, b_)
            stats["checked"] += int(ok.sum())
            if ok.any():
                buf_a.append(ia[ok])
                buf_b.append(ib[ok])
                n_buf += int(ok.sum())
            if n_buf >= flush_at:
                flush()
    flush()
    if not lines:
        return np.zeros((0, n_exp), dtype=np.int64), stats
    M = np.unique(np.concatenate(lines), axis=0)
    stats["lines"] = M.shape[0]
    # refine: refit each candidate with its matched detections and re-predict
    for _ in range(2):
        if M.shape[0] == 0:
            break
        rows, cols = np.nonzero(M >= 0)
        det = M[rows, cols]
        nt = M.shape[0]
        tt = t_exp[cols]
        x0, vx_, evx, _, ssx, _ = _wline(rows, nt, tt - tt.mean(), xi[det], np.ones(det.size))
        y0, vy_, evy, _, ssy, _ = _wline(rows, nt, tt - tt.mean(), eta[det], np.ones(det.size))
        S = np.bincount(rows, minlength=nt).astype(float)
        St = np.bincount(rows, tt - tt.mean(), minlength=nt)
        Stt = np.bincount(rows, (tt - tt.mean()) ** 2, minlength=nt)
        tbar = St / S
        # prediction error of the fitted line (unit weights, per-axis sigma)
        tm = tt.mean()

        def perr_fit(k, S=S, tbar=tbar, sxx=Stt - St**2 / S, tm=tm):
            return sigma * np.sqrt(1.0 / S + (t_exp[k] - tm - tbar) ** 2 / sxx)

        M = match(np.column_stack([x0, y0]), np.column_stack([vx_, vy_]), np.full(nt, tm), perr_fit)
        M = M[(M >= 0).sum(1) >= cfg.min_detections]
        M = np.unique(M, axis=0)
    return _resolve_conflicts(M, xi, eta, t_exp, cfg), stats


# ----------------------------------------------------------------------------
# the tracklet search (linear in exposures x detections)


def _unique_rows(*cols):
    """Indices of the distinct rows of equal-length integer columns, in lexicographic order
    (``np.unique(..., axis=0)`` without its slow structured sort)."""
    o = np.lexsort(cols[::-1])
    keep = np.ones(o.size, bool)
    if o.size > 1:
        diff = np.zeros(o.size - 1, bool)
        for c in cols:
            cs = c[o]
            diff |= cs[1:] != cs[:-1]
        keep[1:] = diff
    return o[keep]


def _mix64(v):
    """splitmix64 finaliser of non-negative int64 values (uint64, wraps)."""
    z = v.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _sparse_unique_tracks(trk, det):
    """Drop tracks whose detection set equals an earlier track's; renumber from 0.

    ``trk``, ``det`` are member arrays (one row per detection of a track).  Tracks
    are compared by (count, sum of a 64-bit hash of the detections, sum of a
    second hash): linear in the members."""
    if trk.size == 0:
        return trk, det
    o = np.lexsort((det, trk))
    trk, det = trk[o], det[o]
    start = np.flatnonzero(np.r_[True, trk[1:] != trk[:-1]])
    with np.errstate(over="ignore"):
        h1 = np.add.reduceat(_mix64(det), start)
        h2 = np.add.reduceat(_mix64(det * 2 + 1), start)
    cnt = np.diff(np.r_[start, trk.size])
    first = _unique_rows(cnt, h1, h2)
    keep_t = np.zeros(start.size, bool)
    keep_t[first] = True
    tid = np.cumsum(keep_t) - 1
    rank = np.repeat(np.arange(start.size), cnt)
    m = keep_t[rank]
    return tid[rank[m]], det[m]


def _relabel(trk, keep_track=None):
    """Renumber track labels 0..n-1 (dropping tracks where ``keep_track`` is false)."""
    if trk.size == 0:
        return trk, np.ones(0, bool)
    u, inv = np.unique(trk, return_inverse=True)
    inv = inv.ravel()
    if keep_track is None:
        return inv.astype(np.int64), np.ones(trk.size, bool)
    k = keep_track[u]
    remap = np.cumsum(k) - 1
    m = k[inv]
    return remap[inv[m]].astype(np.int64), m


def _merge_shared(trk, det, xi, eta, t_exp, e_idx, sigma, nsigma, min_members=4, min_shared=2):
    """Merge each track into a larger track it shares detections with, when it fits that line.

    Tracks of >= ``min_members`` detections: every shared detection points to its
    largest claimant; a track sharing >= ``min_shared`` detections with larger ones
    goes to the largest of them if all its detections lie within ``nsigma`` x
    (``sigma`` (+) the prediction error) of that track's straight-line fit.  Pieces
    of one mover's chain (broken by a missed exposure or a rejected link, or
    extended into each other) merge; a chance tracklet that borrowed two of a
    mover's detections has only 3 and stays apart, and a chain mixing a star's and
    a mover's detections does not fit either's line.  Linear in the members."""
    if trk.size == 0:
        return trk, det
    n = int(trk.max()) + 1
    size = np.bincount(trk, minlength=n)
    sel = np.flatnonzero(size[trk] >= min_members)
    t2, d2 = trk[sel], det[sel]
    # claimants of each detection, largest first (ties: smaller id)
    o = np.lexsort((t2, -size[t2], d2))
    t2, d2 = t2[o], d2[o]
    start = np.r_[True, d2[1:] != d2[:-1]]
    big = t2[np.flatnonzero(start)][np.cumsum(start) - 1]
    m = t2 != big
    if not m.any():
        return trk, det
    pair, cnt = np.unique(t2[m] * n + big[m], return_counts=True)
    pair = pair[cnt >= min_shared]
    if pair.size == 0:
        return trk, det
    pt, pb = pair // n, pair % n
    o = np.lexsort((pb, -size[pb], pt))                    # per track: its largest partner
    pt, pb = pt[o], pb[o]
    f = np.r_[True, pt[1:] != pt[:-1]]
    pt, pb = pt[f], pb[f]
    # the partner's line (unit weights) and the track's detections against it
    tt = t_exp[e_idx[det]]
    c = size.astype(float)
    tm = np.bincount(trk, tt, minlength=n) / np.maximum(c, 1)
    one = np.ones(det.size)
    x0, vx, *_ = _wline(trk, n, tt - tm[trk], xi[det], one)
    y0, vy, *_ = _wline(trk, n, tt - tm[trk], eta[det], one)
    sxx = np.bincount(trk, (tt - tm[trk]) ** 2, minlength=n)
    part = np.full(n, -1)
    part[pt] = pb
    mm = part[trk] >= 0
    tk, dk = trk[mm], det[mm]
    q = part[tk]
    dtq = t_exp[e_idx[dk]] - tm[q]
    perr = sigma * np.sqrt(1.0 / c[q] + dtq**2 / np.where(sxx[q] > 0, sxx[q], np.inf))
    res = np.hypot(xi[dk] - x0[q] - vx[q] * dtq, eta[dk] - y0[q] - vy[q] * dtq)
    bad = np.bincount(tk, ~(res <= nsigma * np.hypot(sigma, perr)), minlength=n) > 0
    ok = ~bad[pt]
    if not ok.any():
        return trk, det
    g = coo_matrix((np.ones(int(ok.sum()), np.int8), (pt[ok], pb[ok])), shape=(n, n))
    _, lab = connected_components(g, directed=False)
    lt = lab[trk]
    k = _unique_rows(lt, det)
    return _relabel(lt[k])[0], det[k]


def _one_per_exposure(trk, det, xi, eta, t_exp, e_idx, min_keep):
    """Keep each track's detection nearest its straight-line fit on every exposure; drop
    tracks with fewer than ``min_keep`` exposures.  Returns ``trk``, ``det`` and the
    fit ``(x0, vx, y0, vy, t_mean, count)`` of the kept tracks (unit weights, hours)."""
    def fit(trk, det):
        n = int(trk.max()) + 1
        tt = t_exp[e_idx[det]]
        cnt = np.bincount(trk, minlength=n)
        tm = np.bincount(trk, tt, minlength=n) / np.maximum(cnt, 1)
        one = np.ones(det.size)
        x0, vx, *_ = _wline(trk, n, tt - tm[trk], xi[det], one)
        y0, vy, *_ = _wline(trk, n, tt - tm[trk], eta[det], one)
        return x0, vx, y0, vy, tm, cnt

    if trk.size == 0:
        z = np.zeros(0)
        return trk, det, (z, z, z, z, z, z.astype(np.int64))
    x0, vx, y0, vy, tm, _ = fit(trk, det)
    k_of = e_idx[det]
    dt = t_exp[k_of] - tm[trk]
    with np.errstate(invalid="ignore"):
        dd = np.hypot(xi[det] - x0[trk] - vx[trk] * dt, eta[det] - y0[trk] - vy[trk] * dt)
    dd = np.nan_to_num(dd, nan=0.0)
    o = np.lexsort((dd, k_of, trk))
    trk, det, k_of = trk[o], det[o], k_of[o]
    first = np.r_[True, (trk[1:] != trk[:-1]) | (k_of[1:] != k_of[:-1])]
    trk, det = trk[first], det[first]
    n = int(trk.max()) + 1
    keep = np.bincount(trk, minlength=n) >= min_keep
    trk, m = _relabel(trk, keep)
    det = det[m]
    if trk.size == 0:
        z = np.zeros(0)
        return trk, det, (z, z, z, z, z, z.astype(np.int64))
    return trk, det, fit(trk, det)


def _link_tracklets(xi, eta, t_exp, e_idx, sigma, cfg):
    """Tracklet linking: pairs of nearby exposures, triplets, chains, extension.

    1. **Pairs**: each exposure ``p`` with each of its next ``K = tracklet_exposures``
       exposures in time: detection pairs whose implied rate is within
       ``[min_rate, max_rate]`` (k-d tree ``sparse_distance_matrix`` of radius
       ``max_rate dt + tol``, in blocks of at most ``max_seeds`` pairs).
    2. **Tracklets**: every pair predicts its line on each of the next ``K``
       exposures after its second one; the nearest detection within
       ``match_nsigma`` x (positional (+) prediction error) makes a tracklet of
       three detections (the intra-night tracklets of MOPS, Kubica et al. 2007,
       Icarus 189, 151, sect. 3; the pair search of ssos relies on SCAMP's
       cross-identification within a radius instead).
    3. **Chains**: a tracklet ``(i, j, l)`` continues as a tracklet ``(j, l, m)``;
       each tracklet keeps its best successor and each its best predecessor
       (smallest residual of the straight line through the four detections, at
       most ``2 match_nsigma^2 sigma^2``: for 3 sigma the 99.9% point of
       chi^2 with 4 degrees of freedom), and mutual choices are linked.  The
       links form disjoint paths (``scipy.sparse.csgraph.connected_components``),
       so a chance tracklet that borrows two detections of a mover does not join
       its chain.  A mover seen on every exposure, or missing up to ``K - 1`` in
       a row, forms one chain; others form several, joined by the extension.
    4. **Extension**: each chain's straight-line fit predicts its position on the
       exposures of its time span widened by ``2 K`` exposures each side; the
       nearest detection within the tolerance on each is its member there (so a
       chain picks up detections the tracklets missed and bridges gaps of up to
       ``2 K - 1`` missed exposures per iteration);
       ``link_iterations`` times, duplicates removed each time.  The linking of
       tracklets by agreement of their fitted lines is the idea of HelioLinC
       (Holman et al. 2018, AJ 156, 135) restricted to one night's straight
       lines, where agreement is found through shared detections and local
       prediction instead of a global (position, velocity) clustering.

    Every step works on a fixed number of exposures around each exposure or
    each chain's own span: the work grows linearly with exposures x detections
    at a fixed density and rate range (``stats`` counts it), whereas long-
    baseline seed pairs (:func:`_link`) grow with exposures^2 x detections^2.

    Returns
    -------
    M : ndarray of int64, shape (n_tracks, n_exp)
        Detection index of every track (>= ``min_detections`` members) on every
        exposure (-1 = none), detections shared by tracks given to one track.
    stats : dict
        ``pairs``, ``tracklets``, ``chains`` (components with >= 3 exposures),
        ``predictions`` (k-d tree queries of tracklet checks and extensions),
        ``lines`` (distinct tracks with >= min_detections before the conflicts).
    """
    n_exp = t_exp.size
    N = xi.size
    order = np.argsort(e_idx, kind="stable")
    bounds = np.searchsorted(e_idx[order], np.arange(n_exp + 1))
    members = [order[bounds[k]:bounds[k + 1]] for k in range(n_exp)]
    pos = np.column_stack([xi, eta])
    trees = [cKDTree(pos[m]) if m.size else None for m in members]
    K = max(int(cfg.tracklet_exposures), 1)
    tol = cfg.match_nsigma * np.sqrt(2.0) * sigma
    chunk = max(int(cfg.max_seeds), 1)
    stats = dict(pairs=0, tracklets=0, chains=0, predictions=0, lines=0)

    def perr2(tk, ta, tb):
        """Prediction error at tk of the line through two points (errors sigma) at ta, tb."""
        return sigma * np.sqrt((tb - tk) ** 2 + (tk - ta) ** 2) / (tb - ta)

    # 1-2. pairs and tracklets
    trip = []
    for a in range(n_exp - 1):
        for b in range(a + 1, min(a + K, n_exp - 1) + 1):
            if trees[a] is None or trees[b] is None or t_exp[b] <= t_exp[a]:
                continue
            ta, tb = t_exp[a], t_exp[b]
            for ia, ib in _rate_pairs(pos, members, trees, t_exp, a, b, cfg, tol, chunk):
                stats["pairs"] += ia.size
                if ia.size == 0:
                    continue
                v = (pos[ib] - pos[ia]) / (tb - ta)
                for c in range(b + 1, min(b + K, n_exp - 1) + 1):
                    if trees[c] is None:
                        continue
                    pred = pos[ia] + v * (t_exp[c] - ta)
                    r = cfg.match_nsigma * np.hypot(sigma, perr2(t_exp[c], ta, tb))
                    d, j = trees[c].query(pred, k=1, distance_upper_bound=r * (1 + 1e-9))
                    stats["predictions"] += ia.size
                    ok = d <= r
                    if ok.any():
                        trip.append(np.column_stack([ia[ok], ib[ok], members[c][j[ok]]]))
    if not trip:
        return np.zeros((0, n_exp), dtype=np.int64), stats
    T = np.concatenate(trip)
    T = T[_unique_rows(T[:, 0], T[:, 1], T[:, 2])]
    nt = T.shape[0]
    stats["tracklets"] = nt
    # 3. chains: tracklet t = (i, j, l) continues as u = (j, l, m); each t keeps its best
    # successor and each u its best predecessor (smallest residual of the four-point line);
    # mutual choices with an acceptable fit are linked, and the links form disjoint paths
    head = T[:, 0] * N + T[:, 1]
    tail = T[:, 1] * N + T[:, 2]
    oh = np.argsort(head, kind="stable")
    hs = head[oh]
    lo = np.searchsorted(hs, tail, "left")
    hi = np.searchsorted(hs, tail, "right")
    nl = hi - lo
    lt = np.repeat(np.arange(nt), nl)
    lu = oh[lo[lt] + np.arange(nl.sum()) - np.repeat(np.cumsum(nl) - nl, nl)]
    edges_t = edges_u = np.zeros(0, np.int64)
    if lt.size:
        dd = np.column_stack([T[lt], T[lu, 2]])            # (L, 4) detections in time order
        tt = t_exp[e_idx[dd]]
        tc = tt - tt.mean(1, keepdims=True)
        sxx = (tc * tc).sum(1)
        rss = np.zeros(lt.size)
        for c in (xi, eta):
            y = c[dd]
            yc = y - y.mean(1, keepdims=True)
            v = (tc * yc).sum(1) / sxx
            rss += ((yc - v[:, None] * tc) ** 2).sum(1)
        ok = rss <= 2.0 * cfg.match_nsigma**2 * sigma**2
        lt, lu, rss = lt[ok], lu[ok], rss[ok]
        o = np.lexsort((rss, lt))
        best_u = lt[o][np.r_[True, lt[o][1:] != lt[o][:-1]]], lu[o][np.r_[True, lt[o][1:] != lt[o][:-1]]]
        o = np.lexsort((rss, lu))
        fu = np.r_[True, lu[o][1:] != lu[o][:-1]]
        pred_of = np.full(nt, -1)
        pred_of[lu[o][fu]] = lt[o][fu]
        mutual = pred_of[best_u[1]] == best_u[0]
        edges_t, edges_u = best_u[0][mutual], best_u[1][mutual]
    g = coo_matrix((np.ones(edges_t.size, np.int8), (edges_t, edges_u)), shape=(nt, nt))
    _, comp = connected_components(g, directed=False)
    trk = np.repeat(comp, 3)
    det = T.ravel()
    k = _unique_rows(trk, det)
    trk, det = _relabel(trk[k])[0], det[k]

    # 4. merge, fit, extend, re-match
    n_iter = max(int(cfg.link_iterations), 1)
    for it in range(n_iter + 1):
        trk, det = _merge_shared(trk, det, xi, eta, t_exp, e_idx, sigma, cfg.match_nsigma)
        trk, det, fitp = _one_per_exposure(trk, det, xi, eta, t_exp, e_idx, 3)
        if it == 0:
            stats["chains"] = int(trk.max()) + 1 if trk.size else 0
        n = int(trk.max()) + 1 if trk.size else 0
        if n == 0 or it == n_iter:
            break
        x0, vx, y0, vy, tm, cnt_e = fitp
        k_of = e_idx[det]
        tt = t_exp[k_of]
        S = cnt_e.astype(float)
        tc = tt - tm[trk]
        Sxx = np.bincount(trk, tc * tc, minlength=n)
        kmin = np.full(n, n_exp)
        kmax = np.full(n, -1)
        np.minimum.at(kmin, trk, k_of)
        np.maximum.at(kmax, trk, k_of)
        lo, hi = np.maximum(kmin - 2 * K, 0), np.minimum(kmax + 2 * K, n_exp - 1)
        L = hi - lo + 1
        rt = np.repeat(np.arange(n), L)
        rk = lo[rt] + np.arange(L.sum()) - np.repeat(np.cumsum(L) - L, L)
        o = np.argsort(rk, kind="stable")
        rt, rk = rt[o], rk[o]
        kb = np.searchsorted(rk, np.arange(n_exp + 1))
        new_t, new_d = [], []
        for k in range(n_exp):
            tr = rt[kb[k]:kb[k + 1]]
            if tr.size == 0 or trees[k] is None:
                continue
            dtk = t_exp[k] - tm[tr]
            pred = np.column_stack([x0[tr] + vx[tr] * dtk, y0[tr] + vy[tr] * dtk])
            perr = sigma * np.sqrt(1.0 / S[tr] + dtk**2 / np.where(Sxx[tr] > 0, Sxx[tr], np.inf))
            r = cfg.match_nsigma * np.hypot(sigma, perr)
            d, j = trees[k].query(pred, k=1, distance_upper_bound=float(r.max()) * (1 + 1e-9))
            stats["predictions"] += tr.size
            ok = d <= r
            new_t.append(tr[ok])
            new_d.append(members[k][j[ok]])
        trk = np.concatenate(new_t) if new_t else np.zeros(0, np.int64)
        det = np.concatenate(new_d) if new_d else np.zeros(0, np.int64)
        cnt = np.bincount(trk, minlength=n)
        m = cnt[trk] >= 3
        trk, det = _sparse_unique_tracks(trk[m], det[m])
    if trk.size == 0:
        return np.zeros((0, n_exp), dtype=np.int64), stats
    n = int(trk.max()) + 1
    cnt = np.bincount(trk, minlength=n)
    keep = cnt >= cfg.min_detections
    remap = np.cumsum(keep) - 1
    m = keep[trk]
    M = np.full((int(keep.sum()), n_exp), -1, dtype=np.int64)
    M[remap[trk[m]], e_idx[det[m]]] = det[m]
    stats["lines"] = M.shape[0]
    return _resolve_conflicts(M, xi, eta, t_exp, cfg), stats


def _resolve_conflicts(M, xi, eta, t_exp, cfg):
    """Give every detection to at most one track: most detections, then smallest RMS."""
    if M.shape[0] == 0:
        return M
    n_det_total = int(M.max()) + 1
    accepted = []
    while M.shape[0]:
        rows, cols = np.nonzero(M >= 0)
        det = M[rows, cols]
        nt = M.shape[0]
        tt = t_exp[cols] - t_exp.mean()
        ones = np.ones(det.size)
        *_, ssx, _ = _wline(rows, nt, tt, xi[det], ones)
        *_, ssy, _ = _wline(rows, nt, tt, eta[det], ones)
        cnt = np.bincount(rows, minlength=nt)
        rms = np.sqrt((ssx + ssy) / cnt)
        rank = np.empty(nt, dtype=np.int64)
        rank[np.lexsort((rms, -cnt))] = np.arange(nt)
        best = np.full(n_det_total, np.iinfo(np.int64).max)
        np.minimum.at(best, det, rank[rows])
        # a track wins if it is the best claimant of all its detections
        lose = np.bincount(rows, (best[det] != rank[rows]).astype(float), minlength=nt) > 0
        win = ~lose
        accepted.append(M[win])
        used = np.zeros(n_det_total, dtype=bool)
        used[M[win][M[win] >= 0]] = True
        M = M[lose]
        M = np.where((M >= 0) & used[np.maximum(M, 0)], -1, M)
        M = M[(M >= 0).sum(1) >= cfg.min_detections]
        if M.shape[0]:
            M = np.unique(M, axis=0)
    return np.concatenate(accepted) if accepted else M


def _given_links(links, e_idx, xi, eta):
    """Tracks from given link labels: (track, det, n_dropped) with at most one detection per exposure.

    ``track`` numbers the distinct labels >= 0 from 0 (in label order), ``det`` indexes the
    detections, both sorted by track then exposure (time order).  Where a label has several
    detections on one exposure, the one nearest the label's median tangent-plane position is kept.
    """
    sel = np.flatnonzero(links >= 0)
    if sel.size == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, 0
    _, track = np.unique(links[sel], return_inverse=True)
    track = track.ravel().astype(np.int64)
    nt = int(track.max()) + 1
    mx = group_median(track, xi[sel], nt)
    my = group_median(track, eta[sel], nt)
    dist = np.hypot(xi[sel] - mx[track], eta[sel] - my[track])
    order = np.lexsort((dist, e_idx[sel], track))
    track, det, ex = track[order], sel[order], e_idx[sel][order]
    first = np.ones(track.size, dtype=bool)
    first[1:] = (track[1:] != track[:-1]) | (ex[1:] != ex[:-1])
    return track[first], det[first], int((~first).sum())


def _rate_pairs(pos, members, trees, t_exp, a, b, cfg, tol, chunk):
    """Pairs (ia, ib) of detections of exposures ``a`` and ``b`` whose separation is within the rate
    range (``cfg.min_rate``-``cfg.max_rate`` over their time difference, +- ``tol``), in blocks of at
    most ``chunk`` pairs.  Indices into ``pos``; ``members[k]`` are exposure k's detections and
    ``trees[k]`` their k-d tree.  Coincident pairs are added explicitly when a zero rate is in range
    (whether scipy's ``sparse_distance_matrix`` returns zero distances has varied)."""
    ma, mb = members[a], members[b]
    dtp = t_exp[b] - t_exp[a]
    rmax = cfg.max_rate * dtp + tol
    step = max(1, chunk // mb.size)
    for s in range(0, ma.size, step):
        blk = ma[s:s + step]
        tree = trees[a] if blk.size == ma.size else cKDTree(pos[blk])
        sdm = tree.sparse_distance_matrix(trees[b], rmax, output_type="ndarray")
        dist = sdm["v"]
        keep = (dist > 0) & (dist + tol >= cfg.min_rate * dtp) & (dist - tol <= cfg.max_rate * dtp)
        ia, ib = blk[sdm["i"][keep]], mb[sdm["j"][keep]]
        if tol >= cfg.min_rate * dtp:
            d0, j0 = trees[b].query(pos[blk], k=1, distance_upper_bound=1e-9)
            z = np.isfinite(d0)
            ia, ib = np.concatenate([ia, blk[z]]), np.concatenate([ib, mb[j0[z]]])
        yield ia, ib


def find_movers(ra, dec, mjd, ra_err, dec_err, exposure_id, *, mag=None, a_image=None,
                b_image=None, a_err=None, b_err=None, x=None, y=None, pixscale=None,
                star_ra=None, star_dec=None, star_mag=None, links=None, config=None):
    """Find moving-object (Solar System object) candidates among detections.

    Search: positions are projected on the tangent plane of the field centre (gnomonic, arcsec).
    With ``config.search == 'tracklets'`` (the default) the links come from
    :func:`_link_tracklets` (pairs of nearby exposures, tracklets of three detections, chains,
    extension by prediction; work linear in exposures x detections); with ``'seeds'``, as
    follows.  Seed pairs join detections of two exposures at least ``seed_baseline_frac`` of the
    time span apart whose implied rate is within ``[min_rate, max_rate]`` (k-d tree
    ``sparse_distance_matrix``), made in blocks of at most ``max_seeds``.  Each seed line is
    first checked on ``seed_check_exposures`` exposures between its two seed exposures: it is
    kept only if one of them has a detection within the match tolerance (a cheap cut of the
    chance pairs, which at 300"/h are almost all pairs of the field).  Each kept line predicts a
    position in every exposure; the nearest detection within ``match_nsigma`` x (positional
    error (+) prediction error) is linked (at most one per exposure).  Lines with >=
    ``min_detections`` links are refit and re-matched twice, duplicates removed, and detections
    shared by several tracks given to the track with most detections (then smallest RMS).  The
    filter chain of the module docstring follows.  All steps are vectorised over detections and
    seeds; the loops are over exposure pairs, seed blocks, exposures, refinement iterations and
    conflict rounds.  The seed-and-predict scheme is the pair-then-predict linking of e.g.
    Kubica et al. 2007 (Icarus 189, 151, "Efficient intra- and inter-night linking of asteroid
    detections using kd-trees"), restricted to one night and straight lines.

    On the Lowell 42-inch night (23 exposures, ~6,400 orphan detections,
    field 25' across) 0-300"/h gives 3.4 million seed pairs; ~10,600 pass
    the check exposures.  The tracklet search makes ~170,000 pairs there and
    finds the same candidates at the demo's settings (>= 8 detections).

    Parameters
    ----------
    ra, dec : array_like, shape (N,)
        Detection positions (deg, ICRS) of one field (<= 10 deg across).
    mjd : array_like, shape (N,)
        Mid-exposure MJD of each detection's exposure.
    ra_err, dec_err : array_like, shape (N,)
        Position errors, arcsec (RA error on the sky).
    exposure_id : array_like, shape (N,)
        Exposure of each detection.
    mag : array_like, shape (N,), optional
        Magnitudes, for ``mean_mag`` / ``mag_std``.
    a_image, b_image, a_err, b_err : array_like, shape (N,), optional
        SExtractor ``A_IMAGE``, ``B_IMAGE`` and their errors (pixels) for the
        trail filter; without ``a_err``/``b_err`` the position error in pixels
        is used, as ssos uses ``ERRAWIN_IMAGE``.
    x, y : array_like, shape (N,), optional
        Detector pixel positions (``X_IMAGE``, ``Y_IMAGE``; NaN when unknown) for the
        pixel-shift filter: the fitted shift on the detector.
    pixscale : float, optional
        Arcsec per pixel: the fitted shift on the sky in pixels.  With x, y too, the
        smaller of the two shifts must reach ``min_pixel_shift`` (a detector artifact
        moves on the sky with the drift between frames, not on the detector).
    star_ra, star_dec, star_mag : array_like, optional
        Bright-star catalogue (e.g. Tycho-2 RA, Dec in deg and VT) for the
        bright-star veto; without it that filter passes everything.
    links : array_like of int, shape (N,), optional
        Candidate links given instead of searched: detections with the same
        non-negative label form one candidate track (e.g. SCAMP's
        ``SOURCE_NUMBER`` associations, as ssos uses them; Mahlke et al. 2019,
        sect. 3.2), -1 = no link.  The seed-and-predict search is skipped;
        the filter chain runs on these groups.  A group with several
        detections on one exposure keeps the one nearest the group's
        median position there.
    config : MoverConfig, optional

    Returns
    -------
    MoverResult
        ``tracks``, ``members`` and ``ledger`` tables (see :class:`MoverResult`).

    Raises
    ------
    InputError
        On arrays of mismatched length, non-finite positions/times, a field
        larger than 10 deg.
    """
    cfg = config or MoverConfig()
    ra = np.asarray(ra, dtype=float)
    n = ra.size
    dec = _as_array("dec", dec, n)
    mjd = _as_array("mjd", mjd, n)
    ra_err = _as_array("ra_err", ra_err, n)
    dec_err = _as_array("dec_err", dec_err, n)
    expo = _as_array("exposure_id", exposure_id, n, dtype=None)
    mag = _as_array("mag", mag, n, required=False)
    a_image = _as_array("a_image", a_image, n, required=False)
    b_image = _as_array("b_image", b_image, n, required=False)
    a_err = _as_array("a_err", a_err, n, required=False)
    b_err = _as_array("b_err", b_err, n, required=False)
    x = _as_array("x", x, n, required=False)
    y = _as_array("y", y, n, required=False)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & np.isfinite(mjd))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{bad.sum()} detections with non-finite ra/dec/mjd; first at index {i}",
                         row=i + 1, keyword="ra/dec/mjd")

    ledger = []
    empty_tracks = _tracks_table({k: np.zeros(0) for k in _TRACK_COLS}, np.zeros(0, dtype="U16"))
    empty_members = Table(dict(track_id=np.zeros(0, np.int64), det_index=np.zeros(0, np.int64),
                               exposure_id=expo[:0], mjd=np.zeros(0), resid_ra=np.zeros(0),
                               resid_dec=np.zeros(0), outlier=np.zeros(0, bool)))
    if n == 0:
        return MoverResult(empty_tracks, empty_members, _ledger_table(ledger), cfg)

    ra_c, dec_c = radec(unit_vectors(ra, dec).sum(axis=0))
    xi, eta = _tangent_plane(ra, dec, ra_c, dec_c)
    if np.max(np.hypot(xi, eta)) > 5 * 3600:
        raise InputError("detections span more than 10 deg: run the mover search per field",
                         keyword="ra/dec")
    # exposures, in time order
    e_keys, e_idx = np.unique(expo, return_inverse=True)
    e_idx = e_idx.ravel()
    t_exp = np.bincount(e_idx, mjd) / np.bincount(e_idx)
    order = np.argsort(t_exp, kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(order.size)
    e_idx = remap[e_idx]
    t_exp = t_exp[order] * 24.0  # hours
    sig = np.maximum(np.hypot(ra_err, dec_err) / np.sqrt(2.0), cfg.min_sigma_arcsec)
    sigma = float(np.nanmedian(sig)) if np.isfinite(sig).any() else cfg.min_sigma_arcsec

    if t_exp.size < 2:
        return MoverResult(empty_tracks, empty_members, _ledger_table(ledger), cfg)
    stats = {}
    if links is not None:
        links = _as_array("links", links, n, dtype=np.int64)
        track, det, n_dup = _given_links(links, e_idx, xi, eta)
        nt = int(track.max()) + 1 if track.size else 0
        ledger.append(("search", nt, 0, nt, f"given links: {nt} groups"
                       + (f", {n_dup} extra detections on a group's exposure dropped" if n_dup else "")))
    elif cfg.search == "seeds":
        M, stats = _link(xi, eta, t_exp, e_idx, sigma, cfg)
        rows, cols = np.nonzero(M >= 0)
        track = rows.astype(np.int64)
        det = M[rows, cols]
        nt = M.shape[0]
        ledger.append(("search", nt, 0, nt, f"rate {cfg.min_rate}-{cfg.max_rate} \"/h, "
                       f"sigma {sigma:.3g}\", {cfg.match_nsigma} sigma, baseline >= "
                       f"{cfg.seed_baseline_frac} x span; seeds {stats['seeds']}, "
                       f"{stats['checked']} after {cfg.seed_check_exposures} check exposures, "
                       f"{stats['lines']} lines"))
    elif cfg.search == "tracklets":
        M, stats = _link_tracklets(xi, eta, t_exp, e_idx, sigma, cfg)
        rows, cols = np.nonzero(M >= 0)
        track = rows.astype(np.int64)
        det = M[rows, cols]
        nt = M.shape[0]
        ledger.append(("search", nt, 0, nt, f"tracklets: rate {cfg.min_rate}-{cfg.max_rate} \"/h, "
                       f"sigma {sigma:.3g}\", {cfg.match_nsigma} sigma, K = {cfg.tracklet_exposures} "
                       f"exposures; pairs {stats['pairs']}, tracklets {stats['tracklets']}, "
                       f"chains {stats['chains']}, predictions {stats['predictions']}, "
                       f"{stats['lines']} lines"))
    else:
        raise InputError(f"search must be 'tracklets' or 'seeds', got {cfg.search!r}", keyword="search")
    status = np.full(nt, "kept", dtype="U16")
    raf = np.where(np.isfinite(ra_err) & (ra_err > 0), ra_err, sigma)
    decf = np.where(np.isfinite(dec_err) & (dec_err > 0), dec_err, sigma)

    def fit(track, det):
        return fit_tracks(track, ra[det], dec[det], mjd[det], raf[det], decf[det], nt,
                          cfg.min_sigma_arcsec)

    def apply(name, reject, params):
        live = status == "kept"
        rej = live & reject
        status[rej] = name
        ledger.append((name, int(live.sum()), int(rej.sum()), int(live.sum() - rej.sum()), params))

    # 1. number of detections
    cnt = np.bincount(track, minlength=nt)
    apply("detections", cnt < cfg.min_detections, f"min_detections={cfg.min_detections}")
    # 2. outliers by MAD of the residuals, then refit
    f = fit(track, det)
    outlier = np.zeros(det.size, dtype=bool)
    for res in (f["resid_ra"], f["resid_dec"]):
        med = group_median(track, res, nt)
        mad = 1.4826 * group_median(track, np.abs(res - med[track]), nt)
        # floor: the members' own positional error (a MAD of 4-5 points can be tiny)
        mad = np.maximum(mad, np.maximum(group_median(track, sig[det], nt), cfg.min_sigma_arcsec))
        outlier |= np.abs(res - med[track]) > cfg.mad_threshold * mad[track]
    good_cnt = np.bincount(track, (~outlier).astype(float), minlength=nt)
    apply("outliers", good_cnt < cfg.min_detections,
          f"mad_threshold={cfg.mad_threshold}, min_detections={cfg.min_detections}")
    use = ~outlier
    f = fit(track[use], det[use])
    # residuals of every member (outliers included) from the final line
    t_rel = (mjd[det] - f["mjd_ref"][track]) * 24.0
    pxi, peta = _tangent_plane(ra[det], dec[det], f["ra"][track], f["dec"][track])
    resid_ra = pxi - f["rate_ra"][track] * t_rel
    resid_dec = peta - f["rate_dec"][track] * t_rel
    # 3. rate and rate S/N
    rate_bad = ~((f["rate"] >= cfg.min_rate) & (f["rate"] <= cfg.max_rate)
                 & (f["rate_snr"] >= cfg.min_rate_snr))
    apply("rate", rate_bad, f"{cfg.min_rate} <= rate <= {cfg.max_rate} \"/h, "
          f"rate_snr >= {cfg.min_rate_snr}")
    # 4. linear motion
    lin_bad = ~((f["r2"] >= cfg.min_r2) & (f["rms"] <= cfg.max_rms_arcsec))
    apply("linear_motion", lin_bad, f"r2 >= {cfg.min_r2}, rms <= {cfg.max_rms_arcsec}\"")
    # 5. pixel shift
    shift_pix = np.full(nt, np.nan)
    src = []
    if x is not None and y is not None:
        tu, du = track[use], det[use]
        one = np.ones(du.size)
        tt = (mjd[du] - f["mjd_ref"][tu]) * 24.0
        vx = _wline(tu, nt, tt, x[du], one)[1]
        vy = _wline(tu, nt, tt, y[du], one)[1]
        shift_pix = np.hypot(vx, vy) * (f["mjd_last"] - f["mjd_first"]) * 24.0  # NaN without x, y
        src.append("detector: fitted x, y")
    if pixscale:
        # the smaller of the detector and sky shifts (np.fmin: a NaN detector shift leaves the sky one)
        shift_pix = np.fmin(shift_pix, f["shift_arcsec"] / float(pixscale))
        src.append(f"sky: pixscale={pixscale}")
    src = " and ".join(src)
    if np.isfinite(shift_pix).any() or nt == 0:
        apply("pixel_shift", ~(shift_pix >= cfg.min_pixel_shift),
              f"min_pixel_shift={cfg.min_pixel_shift} ({src if nt else 'no tracks'})")
    else:
        apply("pixel_shift", np.zeros(nt, bool), "skipped: no x, y or pixscale")
    # 6. constant trail
    ratio_a = np.full(nt, np.nan)
    ratio_b = np.full(nt, np.nan)
    if a_image is not None and b_image is not None:
        if a_err is None or b_err is None:
            perr = sig / float(pixscale) if pixscale else sig
            a_err_u = a_err if a_err is not None else perr
            b_err_u = b_err if b_err is not None else perr
        else:
            a_err_u, b_err_u = a_err, b_err
        tu, du = track[use], det[use]
        ratio_a = trail_ratio(tu, a_image[du], a_err_u[du], nt)
        ratio_b = trail_ratio(tu, b_image[du], b_err_u[du], nt)
    if cfg.use_trail_filter and a_image is not None:
        apply("trail", ~((ratio_a >= cfg.trail_ratio) & (ratio_b >= cfg.trail_ratio)),
              f"trail_ratio={cfg.trail_ratio}")
    else:
        apply("trail", np.zeros(nt, bool),
              "skipped: use_trail_filter=False" if not cfg.use_trail_filter else "skipped: no A/B")
    # 7. bright stars
    star_dist = np.full(nt, np.nan)
    if star_ra is not None and nt:
        star_dist = bright_star_distance(f["ra"], f["dec"], star_ra, star_dec, star_mag,
                                         cfg.bright_star_mag)
        apply("bright_stars", star_dist < cfg.bright_star_radius_arcsec,
              f"radius={cfg.bright_star_radius_arcsec}\", mag <= {cfg.bright_star_mag}")
    else:
        apply("bright_stars", np.zeros(nt, bool), "skipped: no star catalogue")

    mean_mag = np.full(nt, np.nan)
    mag_std = np.full(nt, np.nan)
    if mag is not None and nt:
        tu, mu = track[use], mag[det[use]]
        ok = np.isfinite(mu)
        c = np.bincount(tu[ok], minlength=nt)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_mag = np.bincount(tu[ok], mu[ok], minlength=nt) / c
            mag_std = np.sqrt(np.bincount(tu[ok], (mu[ok] - mean_mag[tu[ok]]) ** 2, minlength=nt)
                              / (c - 1))
    cols = dict(f)
    cols.update(shift_pix=shift_pix, mean_mag=mean_mag, mag_std=mag_std, trail_ratio_a=ratio_a,
                trail_ratio_b=ratio_b, star_dist_arcsec=star_dist)
    tracks = _tracks_table(cols, status)
    members = Table(dict(track_id=track, det_index=det, exposure_id=expo[det], mjd=mjd[det],
                         resid_ra=resid_ra, resid_dec=resid_dec, outlier=outlier))
    for c in ("resid_ra", "resid_dec"):
        members[c].unit = "arcsec"
    return MoverResult(tracks, members, _ledger_table(ledger), cfg, stats)


_TRACK_COLS = ["n", "mjd_ref", "ra", "dec", "mjd_first", "mjd_last", "rate_ra", "rate_dec",
               "rate_ra_err", "rate_dec_err", "rate", "rate_err", "rate_snr", "pa", "r2",
               "rms_ra", "rms_dec", "rms", "chi2_red", "shift_arcsec", "shift_pix", "mean_mag",
               "mag_std", "trail_ratio_a", "trail_ratio_b", "star_dist_arcsec"]
_UNITS = dict(ra="deg", dec="deg", mjd_ref="d", mjd_first="d", mjd_last="d", rate_ra="arcsec / h",
              rate_dec="arcsec / h", rate_ra_err="arcsec / h", rate_dec_err="arcsec / h",
              rate="arcsec / h", rate_err="arcsec / h", pa="deg", rms_ra="arcsec",
              rms_dec="arcsec", rms="arcsec", shift_arcsec="arcsec", shift_pix="pix",
              mean_mag="mag", mag_std="mag", star_dist_arcsec="arcsec")


def _tracks_table(cols, status):
    nt = len(status)
    t = Table()
    t["track_id"] = np.arange(nt, dtype=np.int64)
    t["n_detections"] = np.asarray(cols["n"], dtype=np.int64)
    for c in _TRACK_COLS[1:]:
        t[c] = np.asarray(cols[c], dtype=float)
        if c in _UNITS:
            t[c].unit = _UNITS[c]
    t["status"] = status
    return t


def _ledger_table(rows):
    return Table(rows=[(i, *r) for i, r in enumerate(rows)] or None,
                 names=("step", "filter", "n_in", "n_rejected", "n_kept", "parameters"),
                 dtype=(int, "U16", int, int, int, "U200"))


def trail_ratio(track, values, errors, n_tracks):
    """ssos constant-trail statistic per track.

    ``ratio = (1 / sqrt(sum(1/err^2))) / std(values)``: the error of the
    weighted mean divided by the scatter (ssos ``compare_std_and_sigma_of_average``).
    A constant trail (A or B) has ratio >~ 1/sqrt(N); a trail that changes
    (e.g. a blend or a cosmic ray) has a small ratio.

    Parameters
    ----------
    track : array_like of int, shape (M,)
    values, errors : array_like, shape (M,)
        e.g. ``A_IMAGE`` and ``ERRAWIN_IMAGE`` in pixels.
    n_tracks : int

    Returns
    -------
    ndarray, shape (n_tracks,)
        The ratio (inf when the scatter is zero).
    """
    track = np.asarray(track, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    errors = np.asarray(errors, dtype=float)
    c = np.bincount(track, minlength=n_tracks)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(track, values, minlength=n_tracks) / c
        std = np.sqrt(np.bincount(track, (values - mean[track]) ** 2, minlength=n_tracks) / c)
        err_mean = 1.0 / np.sqrt(np.bincount(track, 1.0 / errors**2, minlength=n_tracks))
        return np.where(std > 0, err_mean / std, np.inf)


def bright_star_distance(ra, dec, star_ra, star_dec, star_mag=None, mag_limit=None):
    """Great-circle distance (arcsec) from each position to the nearest bright star.

    Parameters
    ----------
    ra, dec : array_like, shape (K,)
        Positions, deg.
    star_ra, star_dec : array_like, shape (S,)
        Star positions, deg (e.g. Tycho-2).
    star_mag : array_like, shape (S,), optional
        Star magnitudes; with ``mag_limit`` only stars with ``mag <= mag_limit``
        are used.

    Returns
    -------
    ndarray, shape (K,)
        Distance in arcsec (inf when no star qualifies).
    """
    sra = np.asarray(star_ra, dtype=float)
    sdec = np.asarray(star_dec, dtype=float)
    if star_mag is not None and mag_limit is not None:
        keep = np.asarray(star_mag, dtype=float) <= mag_limit
        sra, sdec = sra[keep], sdec[keep]
    ra = np.asarray(ra, dtype=float)
    if sra.size == 0:
        return np.full(ra.size, np.inf)
    d, _ = cKDTree(unit_vectors(sra, sdec)).query(unit_vectors(ra, np.asarray(dec, float)), k=1)
    return chord_to_arcsec(d)


def config_dict(config):
    """The parameters of a :class:`MoverConfig` as a plain dict (for provenance)."""
    return asdict(config)
