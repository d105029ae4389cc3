"""Cross-match benchmark: the ``xmatch`` stage against q3c, astropy and scipy, and cone queries.

Synthetic, seeded field of 10 x 10 deg around (RA, Dec) = (150, +20): ``N`` reference stars
uniform on the sphere patch; ``N`` detections = 80 % of the stars displaced by 0.3" (1-sigma
per axis) + 20 % random positions.  Nearest reference star within 1" of every detection by

* the catdb stage ``xmatch`` (database to database: binary-aggregate fetch, k-d tree per dec
  band, binary COPY back into ``xmatch`` with its keys and indexes rebuilt),
* the raw q3c ``LATERAL`` nearest join (:func:`catdb.spatial.nearest_join`) inserted into
  ``xmatch`` (database to database, same table, foreign keys and indexes as the stage),
* astropy ``SkyCoord.match_to_catalog_sky`` and ``search_around_sky`` (in memory),
* scipy ``cKDTree`` on unit vectors (in memory),

first on a database with the q3c C extension (``-n`` rows a side), then on one initialised
with ``catdb db init --spatial sql`` (``--size`` rows a side, 10^5 by default: the SQL port's
LATERAL join at 10^6 would take well over 5 minutes).  Then cone queries of 0.1 and 1 deg
radius on the ``detection`` table of both databases against astropy ``separation`` on the
in-memory array.  The match sets (and cone row sets) of all methods are compared with the
stage's.  Times are wall clock, best of ``--repeat`` runs for every method (cones: median over
``--cones`` random centres); rates are detections per second.  The loaded tables are vacuumed
(untimed) before the first timed run.

Usage (from the repository root)::

    .venv/bin/python bench/xmatch.py [-n 1000000] [--size 100000] [--cones 50] [--quick]
"""
from __future__ import annotations

import argparse
import functools
import statistics
import sys
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import bench_server
from catdb import spatial
from catdb.db import migrate
from catdb.db.copy import copy_table
from catdb.db.engine import connect
from catdb.stages import run_stage
from catdb.stages.base import all_stages
from catdb.algorithms.crossmatch import match_unit_vectors
from catdb.algorithms.sphere import unit_vectors

RA0, DEC0, SIDE = 150.0, 20.0, 10.0
RADIUS = 1.0  # arcsec


def field(n, seed):
    """(star ra, dec), (detection ra, dec) of the synthetic field (deg)."""
    rng = np.random.default_rng(seed)

    def uniform(k):
        s0, s1 = np.sin(np.radians(DEC0 - SIDE / 2)), np.sin(np.radians(DEC0 + SIDE / 2))
        dec = np.degrees(np.arcsin(rng.uniform(s0, s1, k)))
        return rng.uniform(RA0 - SIDE / 2, RA0 + SIDE / 2, k), dec

    sra, sdec = uniform(n)
    nm = int(0.8 * n)
    pick = rng.choice(n, nm, replace=False)
    ddec = rng.normal(0, 0.3 / 3600, nm)
    dra = rng.normal(0, 0.3 / 3600, nm) / np.cos(np.radians(sdec[pick]))
    xra, xdec = uniform(n - nm)
    return (sra, sdec), (np.r_[sra[pick] + dra, xra], np.r_[sdec[pick] + ddec, xdec])


def load(conn, stars, dets):
    eid = conn.execute("INSERT INTO exposure (path, image_type, mjd_mid, ra_center, dec_center, radius) "
                       "VALUES ('bench-field', 'science', 58000, %s, %s, %s) RETURNING id",
                       (RA0, DEC0, SIDE / np.sqrt(2) + 0.1)).fetchone()[0]
    t0 = time.perf_counter()
    copy_table(conn, "refcat_source", {"ra": stars[0], "dec": stars[1]}, constants={"catalog": "bench"})
    copy_table(conn, "detection", {"number": np.arange(1, len(dets[0]) + 1), "ra": dets[0], "dec": dets[1]},
               constants={"exposure_id": eid})
    conn.execute("ANALYZE refcat_source; ANALYZE detection")
    conn.commit()
    t_load = time.perf_counter() - t0
    # settle the fresh tables (untimed): otherwise autovacuum of the 2x10^6 rows just loaded and the
    # first reads setting their hint bits run beside the first timed runs, whichever method they are
    conn.autocommit = True
    conn.execute("VACUUM (ANALYZE) refcat_source, detection")
    conn.autocommit = False
    return eid, t_load


#: phases of the stage (method of catdb.stages.xmatch.Xmatch or module function -> label), in run order
PHASES = (("_plan", "count + plan (bulk_load?)"), ("replace", "replace earlier rows (TRUNCATE/DELETE)"),
          ("_drop_constraints", "drop keys + indexes"), ("_fetch_refcat", "fetch reference side"),
          ("_fetch_detections", "fetch reference side"), ("fetch_arrays", "fetch detections"),
          ("_match_band", "match + COPY (writer thread)"), ("_restore_constraints", "re-create keys + indexes"),
          ("ANALYZE", "ANALYZE xmatch"))


@contextmanager
def stage_phases():
    """Wall time of each phase of the ``xmatch`` stage, by wrapping its methods from outside.

    The stage code is not changed; the caller still times it end to end.  Phases are timed
    exclusive of the phases they call (``replace`` calls ``_plan``), on the calling thread
    only, except ``fetch_arrays`` inside another phase (the reference fetch), which counts
    for that phase.  The k-d tree build runs in a thread beside the detection fetch and is
    reported on its own.  What is left of the end-to-end time is the rest (``stage_run``
    bookkeeping, input selection, band edges, cones).

    Yields
    ------
    dict
        Label -> seconds, filled while the stage runs; ``'k-d tree build (thread)'`` too.
    """
    from catdb.stages import base
    from catdb.stages import xmatch as xm

    acc: dict[str, float] = defaultdict(float)
    local = threading.local()
    saved = []

    def timer(fn, label, inner=False):
        @functools.wraps(fn)
        def wrapped(*a, **k):
            stack = local.__dict__.setdefault("stack", [])
            if inner and stack:  # counts for the phase that called it
                return fn(*a, **k)
            stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t0
                acc[label] += dt - stack.pop()
                if stack:
                    stack[-1] += dt
        return wrapped

    for name, label in PHASES:  # loop over the few phases
        owner = xm if name == "fetch_arrays" else xm.Xmatch
        if name == "ANALYZE" or not hasattr(owner, name):
            continue
        raw = owner.__dict__[name]
        fn = raw.__func__ if isinstance(raw, staticmethod) else raw
        saved.append((owner, name, raw))
        w = timer(fn, label, inner=name == "fetch_arrays")
        setattr(owner, name, staticmethod(w) if isinstance(raw, staticmethod) else w)
    kd = xm.kd_tree
    saved.append((xm, "kd_tree", kd))

    def kd_timed(*a, **k):
        t0 = time.perf_counter()
        try:
            return kd(*a, **k)
        finally:
            acc["k-d tree build (thread)"] += time.perf_counter() - t0
    xm.kd_tree = kd_timed
    ex = base.StageContext.execute
    saved.append((base.StageContext, "execute", ex))
    analyze = timer(ex, "ANALYZE xmatch")
    base.StageContext.execute = lambda self, q, p=None: (analyze(self, q, p) if str(q).startswith("ANALYZE")
                                                         else ex(self, q, p))
    try:
        yield acc
    finally:
        for owner, name, raw in saved:
            setattr(owner, name, raw)


def print_phases(phases, total, label="stage"):
    """Print the phases of one stage run (seconds and share of the end-to-end time)."""
    print(f"  {label} phases (best run, wall time on the stage's thread):")
    seen = set()
    for _, name in PHASES:  # loop over the phases in run order
        if name in seen or name not in phases:
            continue
        seen.add(name)
        print(f"    {name:46s} {phases[name]:6.2f} s {100 * phases[name] / total:5.1f} %")
    rest = total - sum(v for k, v in phases.items() if k in seen)
    print(f"    {'rest (stage_run bookkeeping, select, bands)':46s} {rest:6.2f} s {100 * rest / total:5.1f} %")
    if "k-d tree build (thread)" in phases:
        print(f"    {'k-d tree build (thread, beside the fetch)':46s} {phases['k-d tree build (thread)']:6.2f} s")
    print(f"    {'total (run_stage, end to end)':46s} {total:6.2f} s")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_backend(url, label, n, seed, n_cones, repeat=1):
    stars, dets = field(n, seed)
    res, times = {}, {}
    with connect(url) as conn:
        eid, t_load = load(conn, stars, dets)
        print(f"\n[{label} backend] {n} stars, {n} detections in {SIDE:.0f}x{SIDE:.0f} deg, radius {RADIUS}\"; "
              f"load + q3c index (COPY) {t_load:.1f} s")
        ids = np.array([r[0] for r in conn.execute("SELECT id FROM detection ORDER BY number")])
        rid = np.array([r[0] for r in conn.execute("SELECT id FROM refcat_source ORDER BY id")])

        all_stages()  # import the stage modules once, outside the timing
        tt, best = [], None
        for _ in range(repeat):  # best of `repeat` (the machine is shared); earlier rows removed untimed
            conn.execute("DELETE FROM xmatch")
            conn.commit()
            with stage_phases() as ph:
                r, t = timed(lambda: run_stage("xmatch", conn=conn, where=f"e.id = {eid}",
                                               params={"refcat": "bench", "radius": RADIUS}, progress=False))
            tt.append(t)
            if best is None or t < best[1]:
                best = (dict(ph), t)
        times["stage"], stage_tt = min(tt), tt
        res["stage"] = set(map(tuple, conn.execute(
            "SELECT detection_id, ref_id FROM xmatch WHERE stage_run_id = %s", (r.run_id,)).fetchall()))
        conn.commit()

        frag = spatial.nearest_join("detection", "refcat_source", RADIUS / 3600, columns1=["id"], columns2=["id"])
        # the same rows the stage writes (dra/ddec left 0), into the same table with its FK and indexes
        q = ("INSERT INTO xmatch (detection_id, ref_id, sep_arcsec, dra_arcsec, ddec_arcsec, rank, catalog, "
             "stage_run_id) SELECT did, rid, sep, 0, 0, 1, 'lateral', %(run)s FROM (" + frag.as_string(conn)
             + ") s (did, rid, sep)")
        tt = []
        for _ in range(repeat):
            _, t = timed(lambda: conn.execute(q, {**frag.params, "run": r.run_id}))
            tt.append(t)
            res["q3c LATERAL -> xmatch"] = set(map(tuple, conn.execute(
                "SELECT detection_id, ref_id FROM xmatch WHERE catalog = 'lateral'").fetchall()))
            conn.rollback()
        times["q3c LATERAL -> xmatch"] = min(tt)

        from astropy import units as u
        from astropy.coordinates import SkyCoord

        def astropy_nearest():
            c1, c2 = SkyCoord(dets[0] * u.deg, dets[1] * u.deg), SkyCoord(stars[0] * u.deg, stars[1] * u.deg)
            idx, d2d, _ = c1.match_to_catalog_sky(c2)
            ok = d2d.arcsec < RADIUS
            return set(zip(ids[ok].tolist(), rid[idx[ok]].tolist()))

        def astropy_around():
            c1, c2 = SkyCoord(dets[0] * u.deg, dets[1] * u.deg), SkyCoord(stars[0] * u.deg, stars[1] * u.deg)
            j, i, d2d, _ = c1.search_around_sky(c2, RADIUS * u.arcsec)  # (index into c2, into c1)
            order = np.lexsort((d2d.arcsec, i))
            i, j = i[order], j[order]
            first = np.r_[True, i[1:] != i[:-1]]
            return set(zip(ids[i[first]].tolist(), rid[j[first]].tolist()))

        def kdtree():
            i, j, _ = match_unit_vectors(unit_vectors(*dets), unit_vectors(*stars), RADIUS)
            return set(zip(ids[i].tolist(), rid[j].tolist()))

        for name, fn in (("astropy match_to_catalog_sky", astropy_nearest),
                         ("astropy search_around_sky", astropy_around), ("scipy cKDTree", kdtree)):
            runs = [timed(fn) for _ in range(repeat)]  # best of `repeat`, as the stage
            res[name], times[name] = runs[0][0], min(t for _, t in runs)

        ref = res["stage"]
        ast = times["astropy match_to_catalog_sky"]
        print(f"  {'method':34s} {'time s':>8s} {'det/s':>10s} {'/ stage':>8s} {'/ astropy':>9s} "
              "matches  same as stage")
        for k, tk in times.items():
            print(f"  {k:34s} {tk:8.2f} {n / tk:10.0f} {tk / times['stage']:8.2f} "
                  f"{tk / ast:9.2f} {len(res[k]):7d}  {res[k] == ref}")
        print(f"  catdb stage (db to db) / astropy match_to_catalog_sky (in memory): {times['stage'] / ast:.2f}"
              f"  (target <= 1; stage counts: {r.counts})")
        print(f"  stage runs (s): {', '.join(f'{x:.2f}' for x in stage_tt)}")
        print_phases(*best)

        rng = np.random.default_rng(seed + 1)
        det_coord = SkyCoord(dets[0] * u.deg, dets[1] * u.deg)
        for rad in (0.1, 1.0):
            tt, ta, nn, same = [], [], [], True
            for _ in range(n_cones):  # loop over query centres
                ra = rng.uniform(RA0 - SIDE / 2 + rad, RA0 + SIDE / 2 - rad)
                dec = rng.uniform(DEC0 - SIDE / 2 + rad, DEC0 + SIDE / 2 - rad)
                f = spatial.cone("detection", "ra", "dec", ra, dec, rad, columns=["id"])
                rows, t = timed(lambda f=f: conn.execute(*f).fetchall())
                inside, t_a = timed(lambda ra=ra, dec=dec, rad=rad:
                                    det_coord.separation(SkyCoord(ra * u.deg, dec * u.deg)).deg < rad)
                tt.append(t), ta.append(t_a), nn.append(len(rows))
                same &= {r[0] for r in rows} == set(ids[inside].tolist())
            print(f"  cone {rad:4.1f} deg on detection ({n_cones} centres, median {int(statistics.median(nn))} rows): "
                  f"SQL {1e3 * statistics.median(tt):7.1f} ms, "
                  f"astropy separation {1e3 * statistics.median(ta):7.1f} ms "
                  f"(SQL / astropy {statistics.median(tt) / statistics.median(ta):5.2f}), same rows: {same}")
        conn.rollback()
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1_000_000, help="reference stars = detections (q3c backend)")
    ap.add_argument("--size", "--n-sql", dest="size", type=int, default=100_000,
                    help="rows a side on the SQL-port backend (its LATERAL join at 10^6 takes > 5 min)")
    ap.add_argument("--cones", type=int, default=50, help="random cone centres per radius")
    ap.add_argument("--quick", action="store_true", help="10^5 (q3c) and 2x10^4 (SQL port) rows, 10 cones, 1 repeat")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=2, help="best of REPEAT runs of every method")
    ap.add_argument("--skip-sql", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.size, args.cones, args.repeat = 100_000, 20_000, 10, 1
    with bench_server() as url:
        tq = run_backend(url, "q3c", args.n, args.seed, args.cones, args.repeat)
        if not args.skip_sql:
            with connect(url) as c:
                c.autocommit = True
                c.execute("CREATE DATABASE catdb_sqlport")
            url_sql = url.replace("/catdb?", "/catdb_sqlport?")
            migrate.upgrade(url_sql, spatial_backend="sql")
            if args.size < args.n:
                print(f"\n(SQL-port backend at {args.size} rows a side, not {args.n}: its LATERAL join is PL/pgSQL "
                      "and would take more than 5 minutes at 10^6; --size sets it)")
            ts = run_backend(url_sql, "sql", args.size, args.seed, args.cones, 1)
            if args.size == args.n:
                print("\nSQL port / q3c extension (same size):",
                      ", ".join(f"{k} {ts[k] / tq[k]:.1f}" for k in ("stage", "q3c LATERAL -> xmatch")))


if __name__ == "__main__":
    main()
