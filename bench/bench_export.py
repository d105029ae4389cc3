"""Benchmark: catdb export of N synthetic detections vs the raw ``COPY ... TO STDOUT`` baseline.

Starts a throwaway embedded PostgreSQL (or uses ``CATDB_URL``), loads N detections with
realistic columns (positions, fluxes, magnitudes, 4 aperture fluxes, flags, a jsonb column),
then times, in the same run:

* baseline: ``COPY (SELECT <same columns>) TO STDOUT (FORMAT csv)`` written to a file;
* ``catdb export`` to CSV, Parquet (and FITS, VOTable with ``--all``).

Prints wall times, rates and the ratio to the baseline (never asserted), and how much each
export raised the process's peak resident memory above the peak of the loading phase (which
holds 250,000 rows at a time): about 0 when the export streams.  Run from the repository root:

    python bench/bench_export.py [N] [--all]

Measured on the 2-core test machine (shared), N = 1e6: baseline 8.9 s; csv 1.95x, parquet 1.81x,
fits 2.08x, votable 2.74x, ecsv 2.27x; peak memory +0..10 MiB.  The extra time over the
baseline is mainly the second pass that measures the vector length (``max(cardinality)``) and
the parsing into Arrow.
"""
import os
import resource
import shutil
import sys
import tempfile
import time

import numpy as np


def _db():
    url = os.environ.get("CATDB_URL")
    if url:
        return url, None
    from catdb.db.server import EmbeddedServer

    base = tempfile.mkdtemp(prefix="catdb-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"))
    srv.start()
    import psycopg

    with psycopg.connect(srv.url("postgres"), autocommit=True) as c:
        c.execute("CREATE DATABASE bench")
    from catdb.db import migrate

    url = srv.url("bench")
    migrate.upgrade(url)
    return url, (srv, base)


def _load(conn, n):
    from catdb.db.copy import copy_table

    rng = np.random.default_rng(1)
    eid = conn.execute("INSERT INTO exposure (path, hdu, mjd_mid, band) VALUES ('bench.fits', 0, 59000.5, 'r') "
                       "RETURNING id").fetchone()[0]
    step = 250_000
    for i in range(0, n, step):
        m = min(step, n - i)
        flux = rng.lognormal(8, 1.5, m)
        copy_table(conn, "detection", {
            "number": np.arange(i + 1, i + m + 1), "ra": rng.uniform(100, 110, m), "dec": rng.uniform(-5, 5, m),
            "x": rng.uniform(1, 4096, m), "y": rng.uniform(1, 4096, m), "flux_auto": flux,
            "fluxerr_auto": np.sqrt(flux), "mag_auto": -2.5 * np.log10(flux),
            "magerr_auto": 1.0857 / np.sqrt(flux), "fwhm": rng.normal(2.5, 0.3, m),
            "flux_aper": flux[:, None] * np.array([0.3, 0.6, 0.8, 0.9]),
            "flags": rng.choice([0, 0, 0, 2, 16], m),
        }, constants={"exposure_id": eid}, json_column="extra",
            json_values={"ISOAREA_IMAGE": rng.integers(5, 500, m)})
    conn.commit()


COLS = "id, exposure_id, number, ra, dec, x, y, flux_auto, fluxerr_auto, mag_auto, magerr_auto, fwhm, " \
       "flux_aper, flags, extra"


def main(n=1_000_000, all_formats=False):
    from catdb.db.engine import connect
    from catdb.export.formats import export_table

    url, owned = _db()
    out = tempfile.mkdtemp(prefix="catdb-bench-out-")
    try:
        conn = connect(url)
        t = time.perf_counter()
        _load(conn, n)
        print(f"loaded {n:,} detections in {time.perf_counter() - t:.1f} s")
        q = f"SELECT {COLS} FROM detection"
        # warm the cache once
        conn.execute("SELECT count(*) FROM detection").fetchone()
        t = time.perf_counter()
        with open(os.path.join(out, "copy.csv"), "wb") as f, conn.cursor() as cur:
            with cur.copy(f"COPY ({q}) TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
                for data in cp:
                    f.write(data)
        base = time.perf_counter() - t
        print(f"{'COPY TO STDOUT (baseline)':28s} {base:7.2f} s  {n / base:12,.0f} rows/s  1.00x")
        fmts = ["csv", "parquet"] + (["fits", "votable", "ecsv"] if all_formats else [])
        for fmt in fmts:
            path = os.path.join(out, f"x.{fmt}")
            rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            t = time.perf_counter()
            res = export_table(conn, q, path, fmt)
            dt = time.perf_counter() - t
            rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
            size = os.path.getsize(path) / 2 ** 20
            print(f"{'catdb export ' + fmt:28s} {dt:7.2f} s  {res.n_rows / dt:12,.0f} rows/s  {dt / base:4.2f}x  "
                  f"{size:8.1f} MiB  peak RSS +{rss:.0f} MiB")
        conn.close()
    finally:
        shutil.rmtree(out, ignore_errors=True)
        if owned:
            srv, base_dir = owned
            srv.stop(mode="immediate")
            shutil.rmtree(base_dir, ignore_errors=True)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(float(args[0])) if args else 1_000_000, "--all" in sys.argv)
