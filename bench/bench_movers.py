"""Benchmark: the mover search on synthetic nights of 20, 60 and 200 frames at a fixed density.

Each night (:func:`synthetic_night`): a 1 x 1 deg field at Dec +10, one exposure every
``cadence`` minutes (2.4 by default: 20 frames = 0.8 h, 200 frames = 8 h), ``per_frame`` orphan
detections per frame at random positions (new positions every frame: the worst case for chance
alignments), and injected asteroids at a fixed density on the sky (``movers_per_deg2`` inside
the field at any time), rates uniform in 1-290"/h, random directions, true S/N uniform in 3-30.
On each frame a mover is detected when its measured S/N (true + N(0, 1)) is >= 5 and it is
inside the field; its position scatter is ``hypot(0.1", FWHM / (2.35 S/N))`` with the frame's
seeing FWHM (0.9-1.6").  A mover is *recoverable* when its true S/N is >= 5 and it is detected
on >= 8 frames; movers of true S/N < 5 detected on >= 8 frames (by upward noise, a few frames
scattered over the night) are counted apart (*sporadic*).  A mover is *recovered* when an
accepted track holds >= half of its detections and >= 90% of the track's detections are its own.
Accepted tracks with no majority mover are false candidates.


:func:`catdb.algorithms.movers.find_movers` runs with ``min_detections = 8`` and 0-300"/h (the
demo's settings) with ``search='tracklets'`` (the default) and, on nights of at most
``--seeds-max`` frames, ``search='seeds'`` (the long-baseline search it replaces).  Printed per
night: detections, wall time, time per (frames x detections per frame), its ratio to the
20-frame night, the work counters (pairs, tracklets, predictions: k-d tree queries), recovery
and false candidates.  Nothing is asserted.  Run from the repository root:

    python bench/bench_movers.py                       # 20, 60, 200 frames x 2,000 orphans
    python bench/bench_movers.py --frames 20 60 --per-frame 1000 --seeds-max 60
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from catdb.algorithms.movers import MoverConfig, find_movers

DEC0 = 10.0
HALF = 1800.0  # arcsec: a 1 x 1 deg field


def synthetic_night(rng, n_frames, per_frame=2000, cadence_min=2.4, movers_per_deg2=60.0,
                    max_rate=290.0):
    """Detections of one synthetic night (see the module docstring).

    Returns
    -------
    d : dict of ndarray, shape (N,)
        ``ra``, ``dec`` (deg), ``mjd``, ``ra_err``, ``dec_err`` (arcsec), ``exposure_id``,
        ``truth`` (mover index, -1 for orphans); ``mover_snr``, shape (n_movers,): true S/N.
    n_recoverable : int
        Movers detected on >= 8 frames.
    """
    cosd = np.cos(np.radians(DEC0))
    t = np.arange(n_frames) * cadence_min / 60.0          # hours
    tc = t - t.mean()
    fwhm = rng.uniform(0.9, 1.6, n_frames)
    expo = np.repeat(np.arange(n_frames), per_frame)
    xi, eta = rng.uniform(-HALF, HALF, (2, expo.size))
    err = np.hypot(0.1, fwhm[expo] / (2.35 * rng.uniform(5, 50, expo.size)))
    xi += rng.normal(0, err)
    eta += rng.normal(0, err)
    truth = np.full(expo.size, -1)
    # movers: uniform at mid-night over the field widened by what they cross in half the night
    margin = max_rate * np.ptp(t) / 2
    area = (2 * (HALF + margin)) ** 2 / 3600.0**2
    n_mov = rng.poisson(movers_per_deg2 * area)
    rate = rng.uniform(1.0, max_rate, n_mov)
    pa = rng.uniform(0, 2 * np.pi, n_mov)
    x0, y0 = rng.uniform(-HALF - margin, HALF + margin, (2, n_mov))
    snr = rng.uniform(3.0, 30.0, n_mov)
    mx = x0[:, None] + (rate * np.sin(pa))[:, None] * tc[None, :]
    my = y0[:, None] + (rate * np.cos(pa))[:, None] * tc[None, :]
    meas = snr[:, None] + rng.normal(0, 1, mx.shape)
    seen = (meas >= 5.0) & (np.abs(mx) < HALF) & (np.abs(my) < HALF)
    k, f = np.nonzero(seen)
    e = np.hypot(0.1, fwhm[f] / (2.35 * meas[k, f]))
    xi = np.concatenate([xi, mx[k, f] + rng.normal(0, e)])
    eta = np.concatenate([eta, my[k, f] + rng.normal(0, e)])
    err = np.concatenate([err, e])
    expo = np.concatenate([expo, f])
    truth = np.concatenate([truth, k])
    n_recoverable = int(np.sum(seen.sum(1) >= 8))
    d = dict(ra=120.0 + xi / 3600 / cosd, dec=DEC0 + eta / 3600, mjd=60000.1 + t[expo] / 24,
             ra_err=err, dec_err=err, exposure_id=expo, truth=truth, mover_snr=snr)
    return d, n_recoverable


def score(res, truth, snr, min_det=8):
    """Recovered / recoverable movers: (true S/N >= 5 and detected on >= min_det frames),
    (true S/N < 5, detected on >= min_det frames by upward noise: sporadic), false candidates."""
    n_det = np.bincount(truth[truth >= 0], minlength=snr.size)
    got = set()
    false = 0
    m = res.members[~np.asarray(res.members["outlier"])]
    acc = set(np.asarray(res.accepted["track_id"]).tolist())
    tid = np.asarray(m["track_id"])
    tr = truth[np.asarray(m["det_index"])]
    for t in acc:
        lab = tr[tid == t]
        movers = lab[lab >= 0]
        if movers.size == 0:
            false += 1
            continue
        best = np.bincount(movers).argmax()
        own = np.sum(lab == best)
        if own >= 0.9 * lab.size and own >= 0.5 * n_det[best]:
            got.add(int(best))
        elif own < 0.5 * lab.size:
            false += 1
    out = []
    for sel in (snr >= 5, snr < 5):
        rec = set(np.flatnonzero(sel & (n_det >= min_det)).tolist())
        out += [len(got & rec), len(rec)]
    return (*out, false)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[20, 60, 200])
    ap.add_argument("--per-frame", type=int, default=2000, help="orphan detections per frame")
    ap.add_argument("--movers-per-deg2", type=float, default=60.0)
    ap.add_argument("--cadence", type=float, default=2.4, help="minutes between exposures")
    ap.add_argument("--seeds-max", type=int, default=60,
                    help="also run search='seeds' on nights of at most this many frames")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    print(f"{a.per_frame} orphans/frame in 1 x 1 deg, {a.movers_per_deg2:g} movers/deg^2, cadence "
          f"{a.cadence} min, 0-300\"/h, min_detections 8")
    print(f"{'search':9s} {'frames':>6s} {'dets':>9s} {'time s':>8s} {'us/(f x n)':>10s} {'ratio':>6s} "
          f"{'pairs':>10s} {'tracklets':>9s} {'predict':>10s} {'work/(f x n)':>12s} {'recovered':>11s} "
          f"{'sporadic':>9s} {'false':>5s}")
    base = {}
    for n_frames in a.frames:
        d, _ = synthetic_night(np.random.default_rng(a.seed), n_frames, a.per_frame, a.cadence,
                               a.movers_per_deg2)
        n = d["ra"].size
        fxn = n_frames * (n / n_frames)
        for search in ("tracklets", "seeds"):
            if search == "seeds" and n_frames > a.seeds_max:
                continue
            cfg = MoverConfig(min_detections=8, search=search)
            t0 = time.perf_counter()
            res = find_movers(d["ra"], d["dec"], d["mjd"], d["ra_err"], d["dec_err"], d["exposure_id"],
                              pixscale=0.5, config=cfg)
            dt = time.perf_counter() - t0
            st = res.stats
            work = st.get("pairs", st.get("seeds", 0)) + st.get("predictions", 0)
            per = dt / fxn * 1e6
            base.setdefault(search, per)
            got, rec, got_f, rec_f, false = score(res, d["truth"], d["mover_snr"])
            print(f"{search:9s} {n_frames:6d} {n:9,d} {dt:8.2f} {per:10.2f} {per / base[search]:6.2f} "
                  f"{st.get('pairs', st.get('seeds', 0)):10,d} {st.get('tracklets', st.get('checked', 0)):9,d} "
                  f"{st.get('predictions', 0):10,d} {work / fxn:12.2f} {got:5d}/{rec:<5d} {got_f:4d}/{rec_f:<4d} "
                  f"{false:5d}",
                  flush=True)
    print("ratio: time per (frames x detections) relative to the first night of the same search "
          "(1 = linear); for 'seeds' the tracklets column holds the seeds left after the check")


if __name__ == "__main__":
    main()
