"""Benchmark: the mover search at 0-300"/h, seed lines checked first vs matched exhaustively.

A Lowell-like night: 23 exposures over 5.7 h, ``n_orphans`` random orphan detections per
exposure in a 25' field (new positions each exposure) plus 8 linear movers at 10-290"/h seen on
80% of the exposures (crossing the inner 400" of the field at mid-night).
:func:`catdb.algorithms.movers.find_movers` runs with the default ``seed_check_exposures`` (3)
and, as the baseline in the same run, with 0 (every seed line matched on every exposure: the
search before the check, run in the same blocks).  Prints wall times, their ratio, seed counts,
candidates and movers recovered; nothing is asserted.  Run from the repository root:

    python bench/bench_movers.py [n_orphans] [max_rate]
"""
import sys
import time

import numpy as np

from catdb.algorithms.movers import MoverConfig, find_movers


def night(rng, n_orphans, n_exp=23, dt_h=0.2576, rates=tuple(range(10, 300, 40)), det_frac=0.8):
    cosd = np.cos(np.radians(25.34))
    t = np.arange(n_exp) * dt_h
    expo = np.repeat(np.arange(n_exp), n_orphans)
    xi, eta = rng.uniform(-750, 750, (2, expo.size))
    truth = np.full(expo.size, -1)
    for k, rate in enumerate(rates):
        pa = rng.uniform(0, 2 * np.pi)
        seen = np.flatnonzero(rng.random(n_exp) < det_frac)
        tc = t[seen] - t.mean()
        x0, y0 = rng.uniform(-200, 200, 2)
        xi = np.concatenate([xi, x0 + rate * np.sin(pa) * tc + rng.normal(0, 0.3, seen.size)])
        eta = np.concatenate([eta, y0 + rate * np.cos(pa) * tc + rng.normal(0, 0.3, seen.size)])
        expo = np.concatenate([expo, seen])
        truth = np.concatenate([truth, np.full(seen.size, k)])
    err = np.full(xi.size, 0.3)
    return (124.7 + xi / 3600 / cosd, 25.34 + eta / 3600, 58568.1 + t[expo] / 24, err, err, expo), \
        truth, len(rates)


def main(n_orphans=280, max_rate=300.0):
    args, truth, n_movers = night(np.random.default_rng(0), n_orphans)
    print(f"{args[0].size:,} detections on 23 exposures, 0-{max_rate:g}\"/h, {n_movers} injected movers")
    times = {}
    for n_check in (3, 0):
        cfg = MoverConfig(max_rate=max_rate, min_sigma_arcsec=0.3, seed_check_exposures=n_check)
        t0 = time.perf_counter()
        res = find_movers(*args, config=cfg)
        times[n_check] = time.perf_counter() - t0
        acc = res.accepted
        found = sum(any((truth[res.members_of(t)["det_index"]] == k).all() for t in acc["track_id"])
                    for k in range(n_movers))
        search = res.ledger["parameters"][0].split("; ")[1]
        print(f"seed_check_exposures={n_check}: {times[n_check]:.2f} s; {search}; {len(acc)} candidates, "
              f"{found}/{n_movers} movers found")
    print(f"checked / exhaustive time: {times[3] / times[0]:.3f} (x{times[0] / times[3]:.1f} faster)")


if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 280, float(a[1]) if len(a) > 1 else 300.0)
