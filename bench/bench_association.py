"""Benchmark: friends-of-friends + object_summary on 2 million synthetic detections.

100,000 stars over a 10 x 10 deg field seen on 20 epochs with 0.3" scatter.
Prints wall times (never asserted).  Run from the repository root:

    python bench/bench_association.py [n_stars] [n_epochs] [partition_deg]
"""
import sys
import time

import numpy as np

from catdb.algorithms.association import friends_of_friends, object_summary


def main(n_stars=100_000, n_epochs=20, partition_deg=1.0):
    rng = np.random.default_rng(0)
    ra_s = rng.uniform(100, 110, n_stars)
    dec_s = rng.uniform(-5, 5, n_stars)
    star = np.tile(np.arange(n_stars), n_epochs)
    expo = np.repeat(np.arange(n_epochs), n_stars)
    ra = ra_s[star] + rng.normal(0, 0.3, star.size) / 3600 / np.cos(np.radians(dec_s[star]))
    dec = dec_s[star] + rng.normal(0, 0.3, star.size) / 3600
    err = np.full(star.size, 0.3)
    mag = rng.uniform(14, 20, star.size)
    t0 = time.perf_counter()
    lab = friends_of_friends(ra, dec, 1.0, partition_deg=partition_deg)
    t1 = time.perf_counter()
    s = object_summary(lab, ra, dec, err, err, mag, np.full(star.size, 0.02), expo,
                       59000 + expo * 0.01)
    t2 = time.perf_counter()
    print(f"{star.size:,} detections, {n_epochs} epochs, zones of {partition_deg} deg")
    print(f"friends_of_friends: {t1 - t0:.2f} s -> {lab.max() + 1:,} objects")
    print(f"object_summary:     {t2 - t1:.2f} s; mover candidates: {s['mover_candidate'].sum()}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]) if args else 100_000, int(args[1]) if len(args) > 1 else 20,
         float(args[2]) if len(args) > 2 else 1.0)
