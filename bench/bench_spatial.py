"""Cross-match benchmark: nearest Tycho-2 star within 1" of N detections.

Compares, in one run and on the same data,

* SQL with the q3c C extension   (``catdb.spatial.nearest_join``, schema ``q3c_ext``),
* SQL with catdb's SQL port      (same statement, schema ``q3c_sql``),
* astropy ``match_coordinates_sky`` (KD-tree; tree build included, as a one-off match).

The detections are N Tycho-2 stars displaced by 0.7" (1-sigma per axis) plus N/4 random
positions, so most have a counterpart.  Index builds are timed separately.  Timings are
wall-clock medians of ``--repeat`` runs; the match sets of the three methods are checked to
be identical.

Usage (from the repository root)::

    python bench/bench_spatial.py [-n 5000] [--repeat 3] [--conninfo "host=... dbname=..."]

Without ``--conninfo`` a private PostgreSQL 15 server is started (tests/spatial_pg.py).
"""
from __future__ import annotations

import argparse
import gzip
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
from astropy import units as u
from astropy.coordinates import SkyCoord, match_coordinates_sky

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from catdb import spatial  # noqa: E402
from tests.helpers import SHARED_DATA  # noqa: E402

TYCHO = SHARED_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz"
RADIUS = 1.0 / 3600


def timed(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5000, help="detections near stars (plus n/4 random)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--conninfo", default=None)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    if args.conninfo is not None:
        run(args)
        return
    import os
    import shutil
    import tempfile

    from catdb.db.server import EmbeddedServer

    base = tempfile.mkdtemp(prefix="catdb-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"), port=5498)  # a throwaway catdb embedded server
    srv.start()
    try:
        args.conninfo = f"host={srv.socket_dir} port={srv.port} user=catdb dbname=catdb"
        run(args)
    finally:
        srv.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def run(args):
    conn = psycopg.connect(args.conninfo, autocommit=True)
    for s in ("q3c_ext", "q3c_sql"):
        conn.execute(f"DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}")
    have_ext = spatial.install(conn, "auto", schema="q3c_ext") == "q3c"
    spatial.install(conn, "sql", schema="q3c_sql")
    conn.execute("SET search_path = public, q3c_ext")
    schemas = {"q3c": "q3c_ext", "sql": "q3c_sql"} if have_ext else {"sql": "q3c_sql"}

    conn.execute("DROP TABLE IF EXISTS bench_tyc, bench_det")
    conn.execute("CREATE TABLE bench_tyc (id serial PRIMARY KEY, ra float8, dec float8, vt float8)")
    with gzip.open(TYCHO, "rb") as f:
        f.readline()
        with conn.cursor().copy("COPY bench_tyc (ra, dec, vt) FROM STDIN WITH (FORMAT csv)") as cp:
            cp.write(f.read())
    stars = np.array(conn.execute("SELECT id, ra, dec FROM bench_tyc ORDER BY id").fetchall())

    rng = np.random.default_rng(args.seed)
    pick = rng.choice(len(stars), args.n, replace=False)
    dra, ddec = rng.normal(0, 0.7 / 3600, (2, args.n))
    dec = np.clip(stars[pick, 2] + ddec, -90, 90)
    ra = (stars[pick, 1] + dra / np.cos(np.radians(dec))) % 360
    nr = args.n // 4
    ra = np.concatenate([ra, rng.uniform(0, 360, nr)])
    dec = np.concatenate([dec, np.degrees(np.arcsin(rng.uniform(-1, 1, nr)))])
    conn.execute("CREATE TABLE bench_det (did int PRIMARY KEY, ra float8, dec float8)")
    with conn.cursor().copy("COPY bench_det FROM STDIN") as cp:
        for i, (r, d) in enumerate(zip(ra, dec)):
            cp.write_row((i, float(r), float(d)))

    print(f"catalogue: Tycho-2, {len(stars)} stars; detections: {len(ra)}; radius 1 arcsec; "
          f"median of {args.repeat}")
    results, times = {}, {}
    for b, s in schemas.items():
        _, t_idx = timed(lambda s=s: conn.execute(*spatial.ipix_index(
            "bench_tyc", name=f"bench_tyc_{s}", schema=s)), 1)
        conn.execute("ANALYZE bench_tyc; ANALYZE bench_det")
        frag = spatial.nearest_join("bench_det", "bench_tyc", RADIUS, columns1=["did"],
                                    columns2=["id"], schema=s)
        res, t = timed(lambda frag=frag: conn.execute(*frag).fetchall(), args.repeat)
        results[b] = {(d, i) for d, i, _ in res}
        times[b] = t
        print(f"  SQL ({b:3s} backend): index build {t_idx:7.2f} s, cross-match {t:7.3f} s, "
              f"{len(res)} matches")

    def astropy_match():
        cat = SkyCoord(stars[:, 1] * u.deg, stars[:, 2] * u.deg)
        det = SkyCoord(ra * u.deg, dec * u.deg)
        idx, sep, _ = match_coordinates_sky(det, cat)
        ok = sep < RADIUS * u.deg
        return {(int(d), int(stars[i, 0])) for d, i in zip(np.nonzero(ok)[0], idx[ok])}

    results["astropy"], times["astropy"] = timed(astropy_match, args.repeat)
    print(f"  astropy match_coordinates_sky (KD-tree build included): "
          f"{times['astropy']:7.3f} s, {len(results['astropy'])} matches")

    same = all(results[k] == results["astropy"] for k in results)
    print(f"  identical match sets: {same}")
    print("ratios (time / astropy time):")
    for b in schemas:
        print(f"  SQL {b}: {times[b] / times['astropy']:6.2f}")
    if "q3c" in times:
        print(f"  SQL port / C extension: {times['sql'] / times['q3c']:6.2f}")
    conn.execute("DROP TABLE bench_tyc, bench_det")
    conn.close()


if __name__ == "__main__":
    main()
