"""Associate detections from many exposures into objects.

Three building blocks, all vectorised over whole arrays:

* :func:`friends_of_friends` groups detections whose separation is below a
  linking radius (percolation / friends-of-friends, Huchra & Geller 1982,
  ApJ 257, 423), processed in declination zones with overlap margins (the
  "zones" algorithm of Gray, Nieto-Santisteban & Szalay 2007,
  arXiv:cs/0701171) so only one zone's k-d tree is held at a time.  Links
  from all zones are joined by one global connected-components pass, so
  labels are consistent across zone boundaries.
* :func:`object_summary` computes per-object statistics (weighted mean
  position, number of detections and epochs, mean magnitude and scatter,
  reduced chi^2 and Stetson's J variability index, a linear proper-motion
  fit) and flags the detections that the mover search must look at.
* :func:`associate_to_objects` matches the detections of a new exposure to
  existing objects (incremental association).

Wiring (database stage ``associate``): select ``detection.id, ra, dec,
ra_err, dec_err, mag_auto, magerr_auto, exposure_id`` and the exposure's
``mjd_mid``; call :func:`friends_of_friends`, then :func:`object_summary`;
write one ``object`` row per label and ``detection.object_id = labels``.
Detections with ``mover_candidate_mask(...)`` true feed
:func:`catdb.algorithms.movers.find_movers`.

Note: a slow mover whose step between consecutive exposures is below the
linking radius is chained by friends-of-friends into one "object".  This is
why :func:`object_summary` fits a linear motion to every object and flags
objects with significant motion (rate S/N and total shift over the night,
as the ssos pipeline does with SCAMP proper motions) as mover candidates,
not only the orphans.
"""
from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from catdb.errors import InputError

from .sphere import chord, chord_to_arcsec, unit_vectors

ARCSEC = 1.0 / 3600.0


def _check_radec(ra, dec, name="ra/dec"):
    ra = np.asarray(ra, dtype=float)
    dec = np.asarray(dec, dtype=float)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise InputError(f"{name}: expected two 1-D arrays of equal length, got shapes "
                         f"{ra.shape} and {dec.shape}", keyword=name)
    bad = ~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{bad.sum()} non-finite or out-of-range positions; first at index {i}: "
                         f"ra={ra[i]!r}, dec={dec[i]!r} (expected finite degrees, |dec| <= 90)",
                         row=i + 1, keyword=name)
    return ra, dec


def friends_of_friends(ra, dec, radius_arcsec, partition_deg=1.0, zone_size=20_000, max_edges=1_000_000):
    """Group positions into objects by friends-of-friends linking.

    Two detections are friends when their great-circle separation is at most
    ``radius_arcsec``; an object is a connected component of the friendship
    graph (Huchra & Geller 1982).  Pairs are found with a k-d tree on unit
    vectors (``scipy.spatial.cKDTree.query_pairs`` with the chord length) one
    declination zone at a time (zones of at most ``partition_deg`` and
    ``zone_size`` detections, with a margin of one linking radius, Gray et al.
    2007); the components are found with
    ``scipy.sparse.csgraph.connected_components``, merged every ``max_edges``
    pairs into one representative per detection, so the pairs of a field seen
    on many epochs (~n_epochs / 2 per detection) are never all held at once.

    Parameters
    ----------
    ra, dec : array_like, shape (N,)
        ICRS positions in degrees.
    radius_arcsec : float
        Linking radius in arcsec (typically 1-3 x the astrometric scatter).
    partition_deg : float or None, optional
        Greatest height of a declination zone in degrees.  ``None`` processes
        all detections in one tree.
    zone_size : int, optional
        Most detections whose pairs are searched in one tree (a zone is split
        further at the declinations of every ``zone_size``-th detection).
    max_edges : int, optional
        Pairs held before they are merged into the components (memory ~16
        bytes per pair, plus ~10 bytes per detection for each merge).

    Returns
    -------
    labels : ndarray of int64, shape (N,)
        Object label of every detection, ``0 .. n_objects - 1``; labels are
        numbered in order of each object's first detection in the input.

    Raises
    ------
    InputError
        If positions are not finite, ``|dec| > 90`` or ``radius_arcsec <= 0``.

    Notes
    -----
    Friends-of-friends chains: a slow mover whose step between exposures is
    below the radius becomes one object (see :func:`object_summary`).
    """
    ra, dec = _check_radec(ra, dec)
    if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise InputError(f"radius_arcsec must be > 0, got {radius_arcsec!r}", keyword="radius_arcsec")
    n = ra.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    r_deg = radius_arcsec * ARCSEC
    r_chord = chord(r_deg)
    xyz = unit_vectors(ra, dec)

    comp = np.arange(n, dtype=np.int64)  # a representative detection of each one's component so far
    edges, held = [], 0
    if partition_deg is None or partition_deg >= 180:
        edges.append(cKDTree(xyz).query_pairs(r_chord, output_type="ndarray"))
    else:
        if partition_deg <= 2 * r_deg:
            raise InputError(f"partition_deg={partition_deg} must exceed twice the linking radius",
                             keyword="partition_deg")
        order = np.argsort(dec, kind="stable")
        dec_sorted = dec[order]
        margin = r_deg * (1 + 1e-9) + 1e-12
        lo0 = np.floor((dec_sorted[0] + 90.0) / partition_deg) * partition_deg - 90.0
        grid = lo0 + partition_deg * np.arange(int((dec_sorted[-1] - lo0) // partition_deg) + 2)
        bounds = np.unique(np.concatenate([grid, dec_sorted[zone_size::max(int(zone_size), 1)]]))
        for lo, hi in zip(bounds[:-1], bounds[1:]):  # loop over zones
            i0 = np.searchsorted(dec_sorted, lo - margin, side="left")
            i1 = np.searchsorted(dec_sorted, hi + margin, side="left")
            core = np.searchsorted(dec_sorted, [lo, hi], side="left")
            if core[1] > core[0] and i1 - i0 > 1:
                idx = order[i0:i1]
                p = cKDTree(xyz[idx]).query_pairs(r_chord, output_type="ndarray")
                if p.size:
                    edges.append(idx[p])
                    held += len(p)
            if held > max_edges:
                comp = _merge_components(comp, edges)
                edges, held = [], 0
    comp = _merge_components(comp, edges)
    # comp is the first (lowest) index of each component: ranks number them by first appearance
    return np.unique(comp, return_inverse=True)[1].ravel().astype(np.int64)


def _merge_components(comp, edges):
    """Representatives after adding ``edges`` (list of (k, 2) index arrays) to the forest ``comp``.

    ``comp[i]`` is a detection of i's component so far; the result is the lowest index of
    every detection's component in the graph of those links and the new pairs.
    """
    n = comp.size
    pairs = np.concatenate(edges) if edges else np.zeros((0, 2), dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)
    graph = coo_matrix((np.ones(len(pairs) + n, dtype=np.int8),
                        (np.concatenate([pairs[:, 0], idx]), np.concatenate([pairs[:, 1], comp]))),
                       shape=(n, n)).tocsr()
    n_comp, lab = connected_components(graph, directed=False)
    rep = np.empty(n_comp, dtype=np.int64)
    rep[lab[::-1]] = idx[::-1]  # the last write is the first index of each label
    return rep[lab]


def _group_wmean(labels, n, values, weights):
    """Weighted mean and error of the mean per group; NaN values get weight 0."""
    good = np.isfinite(values) & np.isfinite(weights) & (weights > 0)
    w = np.where(good, weights, 0.0)
    v = np.where(good, values, 0.0)
    sw = np.bincount(labels, w, minlength=n)
    swv = np.bincount(labels, w * v, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return swv / sw, 1.0 / np.sqrt(sw), sw


def _weights_from_err(err, floor):
    err = np.asarray(err, dtype=float)
    err = np.where(np.isfinite(err) & (err > 0), np.maximum(err, floor), np.nan)
    return 1.0 / err**2


def object_summary(labels, ra, dec, ra_err, dec_err, mag, magerr, exposure_id, mjd=None, *,
                   min_epochs=4, motion_snr=3.0, min_shift_arcsec=2.0, scatter_factor=2.0, err_floor_arcsec=0.01,
                   magerr_floor=0.001):
    """Per-object statistics of associated detections.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Object label per detection (``0 .. n_objects - 1``), e.g. from
        :func:`friends_of_friends`.
    ra, dec : array_like, shape (N,)
        Detection positions, degrees.
    ra_err, dec_err : array_like, shape (N,)
        Position errors in arcsec (``ra_err`` on the sky, i.e. including
        cos dec).  Non-finite or non-positive errors give zero weight.
    mag, magerr : array_like, shape (N,)
        Magnitude and its error (e.g. ``mag_auto``, ``magerr_auto``); NaN
        magnitudes are ignored in the photometric statistics.
    exposure_id : array_like of int, shape (N,)
        Exposure of every detection; epochs are distinct exposures.
    mjd : array_like, shape (N,), optional
        ``exposure.mjd_mid`` of every detection.  When given, a weighted
        linear motion is fitted per object (see Notes).
    min_epochs : int, optional
        Objects seen on fewer exposures are orphans (default 4, the mover
        search's minimum track length: shorter fragments of a chained mover
        cannot be judged by a motion fit and are searched too).  On a long night, a value such as half the
        number of exposures covering the field also catches fragments.
    motion_snr, min_shift_arcsec : float, optional
        An object is ``moving`` when its fitted rate has S/N >= ``motion_snr``
        and the fitted shift over its time span is >= ``min_shift_arcsec``
        (the ssos pipeline's proper-motion S/N and pixel-shift criteria,
        Mahlke et al. 2019, A&C 28, 100289).
    scatter_factor : float or None, optional
        An object is also ``moving`` when its positional reduced chi^2 about
        the mean exceeds ``scatter_factor`` x the median over all objects
        (robust to SExtractor errors that are underestimated by a common
        factor); this catches short mover fragments and stars merged with a
        passing mover.  ``None`` leaves this criterion out (a caller that sees
        the objects in parts applies it once it knows the median of all, see
        :func:`scatter_moving`).
    err_floor_arcsec, magerr_floor : float, optional
        Floors applied to the errors before weighting.

    Returns
    -------
    dict of ndarray, each of shape (n_objects,)
        ``n_detections``, ``n_epochs``, ``ra``, ``dec`` (inverse-variance
        weighted mean, degrees; RA averaged around the object's first
        detection so 0/360 wrap is safe), ``ra_err``, ``dec_err`` (error of
        the mean, arcsec), ``mag_mean`` (weighted), ``mag_err`` (error of the
        weighted mean), ``mag_std`` (sample standard deviation), ``n_mag``,
        ``chi2_red`` (reduced chi^2 of the magnitudes about the weighted
        mean; ~1 for a constant source with correct errors), ``stetson_j``
        (Stetson 1996, PASP 108, 851, eq. 1-2 for unpaired observations),
        ``orphan`` (``n_epochs < min_epochs``), and when ``mjd`` is given
        ``mjd_first``, ``mjd_last``, ``rate_ra`` and ``rate_dec`` ("/h, RA
        rate includes cos dec), ``rate``, ``rate_err``, ``rate_snr``,
        ``shift_arcsec`` (rate x time span), ``moving``; always ``pos_chi2_red``
        (positional reduced chi^2 about the weighted mean, both axes) and
        ``mover_candidate`` (``orphan | moving``).

    Raises
    ------
    InputError
        If the arrays differ in length or labels are negative.

    Notes
    -----
    The motion fit is the weighted least-squares line ``x = x0 + v t`` for
    the tangent-plane offsets (RA cos dec and Dec, arcsec) about the weighted
    mean, computed in closed form from group sums (``numpy.bincount``).  The
    rate error is the formal error scaled by ``sqrt(max(1, chi2_red))`` of
    the fit, so underestimated SExtractor errors do not create false movers.
    """
    labels = np.asarray(labels, dtype=np.int64)
    ra, dec = _check_radec(ra, dec)
    arrays = dict(ra_err=ra_err, dec_err=dec_err, mag=mag, magerr=magerr, exposure_id=exposure_id)
    if mjd is not None:
        arrays["mjd"] = mjd
    for k, v in arrays.items():
        if np.shape(v) != labels.shape:
            raise InputError(f"{k} has shape {np.shape(v)}, expected {labels.shape} like labels",
                             keyword=k)
    if labels.size and labels.min() < 0:
        raise InputError("labels must be >= 0", keyword="labels")
    n = int(labels.max()) + 1 if labels.size else 0
    out = {}
    out["n_detections"] = np.bincount(labels, minlength=n)
    expo = np.asarray(exposure_id)
    e_idx = np.unique(expo, return_inverse=True)[1].ravel().astype(np.int64)
    key = np.unique(labels * (int(e_idx.max()) + 1 if e_idx.size else 1) + e_idx)
    out["n_epochs"] = np.bincount(key // (int(e_idx.max()) + 1 if e_idx.size else 1), minlength=n)

    # positions: weighted mean of offsets from the first detection of each object
    _, first = np.unique(labels, return_index=True)
    ref_ra = np.full(n, np.nan)
    ref_ra[labels[first]] = ra[first]
    dra = (ra - ref_ra[labels] + 180.0) % 360.0 - 180.0
    wr = _weights_from_err(ra_err, err_floor_arcsec)
    wd = _weights_from_err(dec_err, err_floor_arcsec)
    cosd = np.cos(np.radians(dec))
    # RA weights are for on-sky errors; convert to weights on the RA coordinate
    m_dra, e_dra, _ = _group_wmean(labels, n, dra, wr * cosd**2)
    m_dec, e_dec, _ = _group_wmean(labels, n, dec, wd)
    out["ra"] = (ref_ra + m_dra) % 360.0
    out["dec"] = m_dec
    with np.errstate(invalid="ignore"):
        # weights are in 1/arcsec^2, so the errors come out in arcsec
        out["ra_err"] = e_dra * np.cos(np.radians(m_dec))
    out["dec_err"] = e_dec

    # photometry
    mag = np.asarray(mag, dtype=float)
    wm = _weights_from_err(magerr, magerr_floor)
    wm = np.where(np.isfinite(mag), wm, np.nan)
    mmean, merr, _ = _group_wmean(labels, n, mag, wm)
    good = np.isfinite(mag) & np.isfinite(wm)
    nm = np.bincount(labels, good.astype(float), minlength=n)
    s1 = np.bincount(labels, np.where(good, mag, 0.0), minlength=n)
    s2 = np.bincount(labels, np.where(good, mag**2, 0.0), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = (s2 - s1**2 / nm) / (nm - 1)
        out["mag_mean"] = mmean
        out["mag_err"] = merr
        out["mag_std"] = np.sqrt(np.clip(var, 0, None))
        resid = (mag - mmean[labels]) * np.sqrt(wm)
        chi2 = np.bincount(labels, np.where(good, resid**2, 0.0), minlength=n)
        out["chi2_red"] = chi2 / (nm - 1)
        # Stetson (1996) J for single (unpaired) observations: P_i = delta_i^2 - 1
        delta = np.sqrt(nm / (nm - 1))[labels] * resid
        p = delta**2 - 1.0
        j = np.bincount(labels, np.where(good, np.sign(p) * np.sqrt(np.abs(p)), 0.0), minlength=n)
        out["stetson_j"] = j / nm
    out["n_mag"] = nm.astype(np.int64)
    out["orphan"] = out["n_epochs"] < min_epochs

    # positional scatter about the mean, in units of the errors
    with np.errstate(invalid="ignore", divide="ignore"):
        rx = (dra - m_dra[labels]) * 3600.0 * cosd
        ry = (dec - m_dec[labels]) * 3600.0
        okp = np.isfinite(rx) & np.isfinite(wr) & np.isfinite(ry) & np.isfinite(wd)
        chi2p = np.bincount(labels, np.where(okp, rx**2 * wr + ry**2 * wd, 0.0), minlength=n)
        npos = np.bincount(labels, okp.astype(float), minlength=n)
        out["pos_chi2_red"] = chi2p / (2 * npos - 2)
    if scatter_factor is None:
        moving = np.zeros(n, dtype=bool)
    else:
        multi = out["n_epochs"] >= 3
        ref_chi2 = np.nanmedian(out["pos_chi2_red"][multi]) if multi.any() else np.nan
        moving = scatter_moving(out["pos_chi2_red"], out["n_detections"], ref_chi2, scatter_factor)
    if mjd is not None:
        mjd = np.asarray(mjd, dtype=float)
        t_first = np.full(n, np.inf)
        t_last = np.full(n, -np.inf)
        np.minimum.at(t_first, labels, mjd)
        np.maximum.at(t_last, labels, mjd)
        out["mjd_first"], out["mjd_last"] = t_first, t_last
        t_mean = np.bincount(labels, mjd, minlength=n) / np.maximum(out["n_detections"], 1)
        t = (mjd - t_mean[labels]) * 24.0  # hours
        x = dra * 3600.0 * cosd  # arcsec on sky from first detection
        y = (dec - _ref_dec_of(labels, dec, first, n)) * 3600.0
        vx, evx = _group_slope(labels, n, t, x, wr)
        vy, evy = _group_slope(labels, n, t, y, wd)
        out["rate_ra"], out["rate_dec"] = vx, vy
        rate = np.hypot(vx, vy)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate_err = np.sqrt((vx * evx) ** 2 + (vy * evy) ** 2) / rate
            rate_err = np.where(rate > 0, rate_err, np.hypot(evx, evy))
            out["rate"], out["rate_err"] = rate, rate_err
            out["rate_snr"] = rate / rate_err
        out["shift_arcsec"] = rate * (t_last - t_first) * 24.0
        moving |= (np.nan_to_num(out["rate_snr"]) >= motion_snr) & \
            (np.nan_to_num(out["shift_arcsec"]) >= min_shift_arcsec)
        out["moving"] = moving
    out["mover_candidate"] = out["orphan"] | moving
    return out


def scatter_moving(pos_chi2_red, n_detections, ref_chi2, scatter_factor):
    """The positional-scatter criterion of :func:`object_summary`.

    Parameters
    ----------
    pos_chi2_red : array_like, shape (n,)
        Positional reduced chi^2 of the objects (NaN when undefined, +inf possible).
    n_detections : array_like of int, shape (n,)
    ref_chi2 : float
        Median ``pos_chi2_red`` of the objects on >= 3 epochs, NaNs left out (NaN if none:
        then 1 is used).
    scatter_factor : float

    Returns
    -------
    ndarray of bool, shape (n,)
        ``pos_chi2_red > scatter_factor * max(ref_chi2, 1e-3)`` (NaN counting as 0) for
        objects of >= 2 detections.
    """
    thr = scatter_threshold(ref_chi2, scatter_factor)
    return (np.nan_to_num(np.asarray(pos_chi2_red, dtype=float)) > thr) & (np.asarray(n_detections) >= 2)


def scatter_threshold(ref_chi2, scatter_factor):
    """``scatter_factor * max(ref_chi2, 1e-3)`` with NaN as 1 and +inf as the largest float
    (the product may be +inf): the threshold of :func:`scatter_moving`."""
    with np.errstate(over="ignore"):
        return float(scatter_factor * max(np.nan_to_num(ref_chi2, nan=1.0), 1e-3))


def partition_components(labels, core, interior):
    """Which friends-of-friends groups of one sky partition are final, and which to defer.

    A partition is processed with the detections of its own cell (``core``) and those of a
    margin around it.  A group is *complete* when all its members are ``interior`` (every
    detection within the linking radius of them was in the partition's input): it is then
    a whole group of the full sky, with the same members, whatever the other partitions
    hold.  It is written by the one partition whose cell holds its first detection (in input
    order).  The core detections of every other group (not complete here, or first seen in
    another cell) are deferred; the caller groups them again at the end, without the
    detections already written (they are whole groups of other partitions), which gives the
    remaining full-sky groups exactly (the zones algorithm of Gray, Nieto-Santisteban &
    Szalay 2007, arXiv:cs/0701171, with an owner rule instead of a global merge).

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        :func:`friends_of_friends` labels of the partition's detections (input order).
    core : array_like of bool, shape (N,)
        Detection lies in the partition's own cell (each detection is core in exactly one
        partition).
    interior : array_like of bool, shape (N,)
        Every detection within the linking radius of this one is in the input.

    Returns
    -------
    write : ndarray of bool, shape (N,)
        Members of complete groups whose first detection is core.
    defer : ndarray of bool, shape (N,)
        Core detections not in ``write``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    core = np.asarray(core, dtype=bool)
    interior = np.asarray(interior, dtype=bool)
    if not (labels.shape == core.shape == interior.shape):
        raise InputError(f"labels, core and interior differ in shape: {labels.shape}, {core.shape}, "
                         f"{interior.shape}", keyword="labels")
    if labels.size == 0:
        return np.zeros(0, bool), np.zeros(0, bool)
    n = int(labels.max()) + 1
    complete = np.bincount(labels, (~interior).astype(np.int64), minlength=n) == 0
    _, first = np.unique(labels, return_index=True)
    owned = np.zeros(n, dtype=bool)
    owned[labels[first]] = core[first]
    write = (complete & owned)[labels]
    return write, core & ~write


def _ref_dec_of(labels, dec, first, n):
    """Dec of the first detection of each object, broadcast to detections."""
    ref = np.full(n, np.nan)
    ref[labels[first]] = dec[first]
    return ref[labels]


def _group_slope(labels, n, t, x, w):
    """Weighted slope of x(t) per group with chi2-scaled error (closed form)."""
    good = np.isfinite(x) & np.isfinite(w) & np.isfinite(t)
    w = np.where(good, w, 0.0)
    t = np.where(good, t, 0.0)
    x = np.where(good, x, 0.0)
    S = np.bincount(labels, w, minlength=n)
    St = np.bincount(labels, w * t, minlength=n)
    Sx = np.bincount(labels, w * x, minlength=n)
    Stt = np.bincount(labels, w * t * t, minlength=n)
    Stx = np.bincount(labels, w * t * x, minlength=n)
    ngood = np.bincount(labels, good.astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        D = S * Stt - St**2
        v = (S * Stx - St * Sx) / D
        a = (Sx - v * St) / S
        res = x - a[labels] - v[labels] * t
        chi2 = np.bincount(labels, w * res**2, minlength=n)
        chi2_red = np.where(ngood > 2, chi2 / (ngood - 2), 1.0)
        ev = np.sqrt(S / D) * np.sqrt(np.maximum(chi2_red, 1.0))
    bad = ~(D > 0) | (ngood < 3)
    v = np.where(bad, np.nan, v)
    ev = np.where(bad, np.nan, ev)
    return v, ev


def mover_candidate_mask(labels, summary):
    """Boolean mask of detections belonging to mover-candidate objects.

    Parameters
    ----------
    labels : array_like of int, shape (N,)
        Object label per detection.
    summary : dict
        Output of :func:`object_summary`.

    Returns
    -------
    ndarray of bool, shape (N,)
    """
    return np.asarray(summary["mover_candidate"])[np.asarray(labels, dtype=np.int64)]


def associate_to_objects(obj_ra, obj_dec, det_ra, det_dec, radius_arcsec, exposure_id=None):
    """Match new detections to existing objects (incremental association).

    Each detection is matched to its nearest object within ``radius_arcsec``
    (k-d tree on unit vectors).  If ``exposure_id`` is given, an object gets
    at most one detection per exposure: the closest one; the others are left
    unmatched.

    Parameters
    ----------
    obj_ra, obj_dec : array_like, shape (M,)
        Existing object positions, degrees.
    det_ra, det_dec : array_like, shape (N,)
        New detection positions, degrees.
    radius_arcsec : float
        Matching radius, arcsec.
    exposure_id : array_like, shape (N,), optional
        Exposure of each new detection.

    Returns
    -------
    obj_index : ndarray of int64, shape (N,)
        Index into the object arrays, or -1 when unmatched (unmatched
        detections should be grouped with :func:`friends_of_friends` into new
        objects).
    sep_arcsec : ndarray of float, shape (N,)
        Separation to the matched object (NaN when unmatched).

    Raises
    ------
    InputError
        On non-finite positions or a non-positive radius.
    """
    obj_ra, obj_dec = _check_radec(obj_ra, obj_dec, "obj_ra/obj_dec")
    det_ra, det_dec = _check_radec(det_ra, det_dec, "det_ra/det_dec")
    if not (np.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise InputError(f"radius_arcsec must be > 0, got {radius_arcsec!r}", keyword="radius_arcsec")
    n = det_ra.size
    idx = np.full(n, -1, dtype=np.int64)
    sep = np.full(n, np.nan)
    if n == 0 or obj_ra.size == 0:
        return idx, sep
    d, j = cKDTree(unit_vectors(obj_ra, obj_dec)).query(
        unit_vectors(det_ra, det_dec), k=1, distance_upper_bound=chord(radius_arcsec * ARCSEC))
    ok = np.isfinite(d)
    idx[ok] = j[ok]
    sep[ok] = chord_to_arcsec(d[ok])
    if exposure_id is not None and ok.any():
        expo = np.unique(np.asarray(exposure_id), return_inverse=True)[1].ravel()
        m = np.flatnonzero(ok)
        order = m[np.lexsort((sep[m], expo[m], idx[m]))]
        key = np.column_stack([idx[order], expo[order]])
        dup = np.zeros(order.size, dtype=bool)
        dup[1:] = np.all(key[1:] == key[:-1], axis=1)
        idx[order[dup]] = -1
        sep[order[dup]] = np.nan
    return idx, sep
