"""Ingest speed: `catdb ingest catalog` on a large FITS_LDAC catalogue vs baselines in the same run.

Baselines, measured here on the same data:
- raw COPY: the same rows as CSV streamed with COPY into a bare table (no parsing, no indexes);
- astropy: reading the LDAC file into an astropy Table (what every file-based pipeline pays).

Prints ratios (catdb / baseline).  Usage: python bench/bench_ingest.py [N_ROWS]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from astropy.io import fits
from astropy.table import Table

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_server  # noqa: E402


def make_ldac(path, n, seed=1):
    """A FITS_LDAC catalogue with n sources, built from the real LCO LDAC header."""
    rng = np.random.default_rng(seed)
    src = os.path.join(os.environ.get("CATDB_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..",
                                                                         "shared", "data")), "lco",
                       "ldac_test_catalog.fits")
    with fits.open(src) as hl:
        imhead = hl[1].copy()
        objs = Table(hl[2].data)
    idx = rng.integers(0, len(objs), n)
    t = objs[idx]
    t["NUMBER"] = np.arange(1, n + 1)
    for c in ("ALPHA_J2000", "DELTA_J2000"):
        if c in t.colnames:
            t[c] = t[c] + rng.normal(0, 0.05, n)
    hl = fits.HDUList([fits.PrimaryHDU(), imhead, fits.BinTableHDU(t, name="LDAC_OBJECTS")])
    hl.writeto(path, overwrite=True)
    return t


def main(n=500_000):
    from catdb.db.copy import csv_bytes
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_catalogs

    with tempfile.TemporaryDirectory() as tmp, bench_server() as url:
        path = os.path.join(tmp, "big.ldac")
        make_ldac(path, n)
        t0 = time.perf_counter()
        t = Table.read(path, hdu=2)
        t_astropy = time.perf_counter() - t0
        cols = {c.lower(): np.asarray(t[c]) for c in t.colnames if t[c].ndim == 1}
        data = csv_bytes(cols)
        with connect(url) as conn:
            conn.execute("CREATE TABLE raw_copy (" + ", ".join(
                f"{c} {'double precision' if v.dtype.kind == 'f' else 'bigint'}" for c, v in cols.items()) + ")")
            t0 = time.perf_counter()
            with conn.cursor().copy("COPY raw_copy FROM STDIN WITH (FORMAT csv)") as cp:
                cp.write(data)
            conn.commit()
            t_copy = time.perf_counter() - t0
            t0 = time.perf_counter()
            ingest_catalogs(conn, [path])
            t_catdb = time.perf_counter() - t0
        print(f"ingest of {n:,} detections ({len(cols)} scalar columns in the raw baseline)")
        print(f"  catdb ingest catalog : {t_catdb:7.2f} s  ({n / t_catdb:,.0f} rows/s, with q3c + exposure indexes)")
        print(f"  raw COPY of CSV      : {t_copy:7.2f} s  -> catdb / raw COPY = {t_catdb / t_copy:.2f}")
        print(f"  astropy Table.read   : {t_astropy:7.2f} s  -> catdb / astropy read = {t_catdb / t_astropy:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500_000)
