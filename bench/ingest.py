"""Ingest speed: ``catdb ingest catalog`` (serial and ``-j 2``) against raw binary COPY and pandas ``to_sql``.

The catalogue set: ``--files`` FITS_LDAC catalogues of ``--rows`` sources each, resampled from the
real LCO LDAC (``shared/data/lco/ldac_test_catalog.fits``, 974 sources, 42 SExtractor columns, its
``LDAC_IMHEAD`` kept) with the positions jittered (0.05 deg) and NUMBER renumbered.  **Derived**
columns are added so that the set carries the columns of catdb's own ``catdb.param``, which the
LCO file lacks: ``MAG_AUTO``/``MAGERR_AUTO`` from ``FLUX_AUTO``/``FLUXERR_AUTO`` and six-aperture
``FLUX_APER``/``FLUXERR_APER``/``MAG_APER``/``MAGERR_APER`` (a curve of growth times FLUX_AUTO with
1 % scatter).  Every file is a distinct catalogue (own rows, own path).

Measured in the same run, into the same ``detection`` table of the same database (same indexes:
primary key, ``(exposure_id, number)``, q3c; same keys and triggers), each starting from an empty table:

- ``catdb serial`` / ``catdb -j 2``: :func:`catdb.ingest.load.ingest_catalogs` (what ``catdb ingest
  catalog`` calls), end to end: FITS read, checks, exposure metadata, WCS, encoding, COPY, one
  transaction per file, stage_run bookkeeping, the final ANALYZE; into an empty table it runs in
  bulk mode (automatic: the secondary indexes dropped first and rebuilt at the end, the rebuild
  counted), which the output says.
- ``raw binary COPY``: psycopg ``COPY detection (...) FROM STDIN (FORMAT BINARY)`` with
  ``set_types`` + ``write_row``, one COPY and one commit per file, of the very column arrays catdb
  writes (prepared untimed: no FITS read, no checks, no bookkeeping; the exposure rows are
  inserted untimed).  ``extra`` is sent as jsonb, as catdb does.
- ``pandas to_sql``: ``DataFrame.to_sql(if_exists='append')`` on a SQLAlchemy engine, default
  method (one multi-row executemany), of the same rows on a subset (``--tosql-rows``), per row.
- ``COPY limit``: what PostgreSQL can take: binary COPY of the same rows (the columns catdb
  writes, encoded beforehand, untimed, by catdb's numpy encoder: the timed part is the COPY and
  the commit, one per file) into an unindexed, constraint-free copy of ``detection``
  (``CREATE TABLE ... (LIKE detection INCLUDING DEFAULTS INCLUDING IDENTITY)``: no primary key,
  index, key or trigger), on a connection with the socket send buffer catdb's COPY asks for
  (``catdb.db.copy.widen_send_buffer``).  Like catdb, it leaves out the columns the catalogue lacks (all NULL).
  ``COPY limit +extra`` is the same with every catalogue column without a ``detection`` column in
  ``extra`` (the jsonb catdb wrote before migration 0016), and ``COPY limit +NULLs`` the same rows
  with the absent columns sent as NULL (as catdb did before), for scale.

``--extra all`` (or column names) runs catdb with ``extra=...`` and puts the same ``extra`` in the
rows of the raw COPY, ``to_sql`` and the COPY limit.  Prints rows/s and the ratios catdb / raw
COPY, catdb / to_sql and, last, catdb / COPY limit.  Usage::

    python bench/ingest.py            # 200 catalogues x 10,000 detections (2e6 rows)
    python bench/ingest.py --quick    # 20 x 5,000 (smoke run, about a minute)
    python bench/ingest.py --files 50 --rows 20000 --jobs 2 --tosql-rows 20000
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import bench_server  # noqa: E402

SHARED = os.environ.get("CATDB_SHARED_DATA",
                        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data"))
LDAC = os.path.join(SHARED, "lco", "ldac_test_catalog.fits")
#: fraction of FLUX_AUTO inside each of the six apertures of catdb.param (radii 2, 3, 4, 5, 7, 10 px)
GROWTH = np.array([0.35, 0.55, 0.7, 0.8, 0.92, 0.98])


def make_ldac(path, n, seed=1):
    """Write a FITS_LDAC catalogue of ``n`` sources resampled from the real LCO LDAC (header kept).

    Returns
    -------
    astropy.table.Table
        The sources written.
    """
    from astropy.io import fits
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    with fits.open(LDAC) as hl:
        imhead = hl[1].copy()
        objs = Table(hl[2].data)
    t = objs[rng.integers(0, len(objs), n)]
    t["NUMBER"] = np.arange(1, n + 1, dtype=np.int32)
    t["ALPHA_J2000"] = np.mod(t["ALPHA_J2000"] + rng.normal(0, 0.05, n), 360.0)
    t["DELTA_J2000"] = np.clip(t["DELTA_J2000"] + rng.normal(0, 0.05, n), -90, 90)
    flux = np.asarray(t["FLUX_AUTO"], dtype=np.float64)
    ferr = np.asarray(t["FLUXERR_AUTO"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        t["MAG_AUTO"] = np.where(flux > 0, -2.5 * np.log10(flux), 99.0).astype(np.float32)
        t["MAGERR_AUTO"] = np.where(flux > 0, 1.0857 * ferr / flux, 99.0).astype(np.float32)
        fa = flux[:, None] * GROWTH[None, :] * (1 + rng.normal(0, 0.01, (n, GROWTH.size)))
        fe = ferr[:, None] * np.sqrt(GROWTH)[None, :]
        t["FLUX_APER"] = fa.astype(np.float32)
        t["FLUXERR_APER"] = fe.astype(np.float32)
        t["MAG_APER"] = np.where(fa > 0, -2.5 * np.log10(fa), 99.0).astype(np.float32)
        t["MAGERR_APER"] = np.where(fa > 0, 1.0857 * fe / fa, 99.0).astype(np.float32)
    fits.HDUList([fits.PrimaryHDU(), imhead, fits.BinTableHDU(t, name="LDAC_OBJECTS")]).writeto(path,
                                                                                              overwrite=True)
    return t


def build_set(directory, n_files, n_rows):
    """``n_files`` distinct catalogues in ``directory`` (reused when already built); their paths."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for i in range(n_files):
        p = os.path.join(directory, f"cat{i:04d}_{n_rows}.ldac")
        if not os.path.exists(p):
            make_ldac(p + ".tmp", n_rows, seed=1000 + i)
            os.replace(p + ".tmp", p)
        paths.append(p)
    return paths


def _reset(conn):
    conn.execute("TRUNCATE exposure, detection, stage_run CASCADE")
    conn.commit()


def catdb_arrays(path, extra=None):
    """The detection columns catdb writes for one catalogue (``catdb.ingest.load.detection_arrays``).

    ``extra``: the ``extra`` option of catdb (None: no column, ``'all'``, or names); a catdb
    without the option (before migration 0016) wrote every column without a home.

    Returns
    -------
    dict of str -> numpy.ndarray, dict of str -> numpy.ndarray, dict
        Columns, the ``extra`` columns, and the exposure row.
    """
    from catdb.ingest import load
    from catdb.ingest.headers import detect_instrument, exposure_metadata, load_keymap
    from catdb.ingest.sextractor import read_catalogs
    from catdb.wcsutil import wcs_from_header

    cat = read_catalogs(path)[0]
    row = exposure_metadata(cat.header, load_keymap(detect_instrument(cat.header)), path=path, hdu=0)
    row["path"] = row["catalog_path"] = path
    wcs = wcs_from_header(cat.header, path=path)
    cols, unmapped, _ = load.detection_arrays(cat, wcs=wcs, pixscale=row.get("pixscale"))
    ex = load.select_extra(unmapped, extra, path) if hasattr(load, "select_extra") else unmapped
    return cols, ex, row


def _pg_types(conn, names):
    rows = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = 'detection'::regclass AND attnum > 0 AND NOT attisdropped").fetchall()
    t = dict(rows)
    return [t[n].replace("double precision", "float8").replace("real[]", "float4[]").replace("real", "float4")
            .replace("bigint", "int8").replace("integer", "int4") for n in names]


def _rows_for_copy(cols, extra, exposure_id):
    """Python rows (NaN -> None in scalar columns, as catdb writes NULL; ``extra`` a dict) of the columns."""
    n = len(cols["number"])
    names, values = [], []
    for k, a in cols.items():
        a = np.asarray(a)
        if a.ndim == 2:
            values.append(a.astype(np.float64).tolist())
        elif a.dtype.kind == "f":
            lst = a.astype(np.float64).tolist()
            bad = ~np.isfinite(a)
            for i in np.flatnonzero(bad):
                lst[i] = None
            values.append(lst)
        else:
            values.append(a.astype(np.int64).tolist())
        names.append(k)
    ex = [{} for _ in range(n)] if extra else [None] * n
    for k, a in extra.items():
        a = np.asarray(a)
        a = a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in ("=", "|") else a
        lst = a.tolist()
        if a.dtype.kind == "f":
            fin = np.isfinite(a)
            for i, v in enumerate(lst):
                ex[i][k] = v if fin[i] else None
        else:
            for i, v in enumerate(lst):
                ex[i][k] = v
    names += ["extra", "exposure_id"]
    values += [ex, [exposure_id] * n]
    return names, list(zip(*values))


def _insert_exposure(conn, row, run_id=None):
    from catdb.ingest.load import insert_exposure

    return insert_exposure(conn, row, run_id)


def _encode(conn, table, cols, extra, constants, null_columns=False):
    """(column names, binary COPY bytes) of the rows catdb writes, with catdb's encoder (untimed).

    The columns catdb sends: an all-NaN (NULL) column is left out, the rows stored are the same;
    ``null_columns`` sends them too (as NULL), as catdb did before issue #15.
    """
    from catdb.db import copy as cc

    types = cc.table_types(conn, table)
    c = {k: v for k, v in cols.items() if null_columns or not (np.asarray(v).dtype.kind == "f" and np.ndim(v) == 1
                                                               and not np.isfinite(v).any())}
    n = len(c["number"])
    if extra:
        c["extra"] = cc.json_text(extra, n)
    for k, v in constants.items():
        c[k] = np.full(n, v)
    fields = []
    for name, v in c.items():  # as catdb.db.copy.encode_binary (also on a catdb that predates it)
        typ, elem = types[name]
        if typ in cc._BIN_FIXED:
            fields.append(("fixed", *cc._field_fixed(v, typ, name)))
        elif elem in cc._BIN_FIXED and np.ndim(v) == 2:
            fields.append(("fixed", *cc._field_array(v, elem, name)))
        else:
            fields.append(("var", *cc._field_text(v, typ == "jsonb")))
    return list(c), cc.binary_copy_data(fields, n)


def bench_limit(url, paths, extra, null_columns=False):
    """Seconds of binary COPY (pre-encoded, one COPY and commit per file) into a bare copy of detection."""
    from psycopg import sql

    from catdb.db.engine import connect

    total, n_rows = 0.0, 0
    with connect(url) as conn:
        from catdb.db import copy as cc

        if hasattr(cc, "widen_send_buffer"):  # the socket send buffer catdb's COPY asks for
            cc.widen_send_buffer(conn)
        _reset(conn)
        conn.execute("DROP TABLE IF EXISTS bench_detection_bare")
        conn.execute("CREATE TABLE bench_detection_bare (LIKE detection INCLUDING DEFAULTS INCLUDING IDENTITY)")
        run = conn.execute("INSERT INTO stage_run (stage, code_version) VALUES ('bench', 'bench') RETURNING id"
                           ).fetchone()[0]
        payloads = []
        for p in paths:
            cols, ex, row = catdb_arrays(p, extra)
            eid = _insert_exposure(conn, row, run)
            payloads.append((*_encode(conn, "detection", cols, ex, {"exposure_id": eid, "stage_run_id": run},
                                      null_columns), len(cols["number"])))
        conn.commit()
        for names, data, n in payloads:
            q = sql.SQL("COPY bench_detection_bare ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, names)))
            t0 = time.perf_counter()
            with conn.cursor().copy(q) as cp:
                cp.write(data)
            conn.commit()
            total += time.perf_counter() - t0
            n_rows += n
        conn.execute("DROP TABLE bench_detection_bare")
        conn.commit()
    return total, n_rows


def bench_raw_copy(url, paths, extra=None):
    """Seconds spent in binary COPY (one per file, committed) of the arrays catdb writes; rows."""
    from psycopg import sql

    from catdb.db.engine import connect

    total, n_rows = 0.0, 0
    with connect(url) as conn:
        _reset(conn)
        for p in paths:
            cols, ex, row = catdb_arrays(p, extra)
            eid = _insert_exposure(conn, row)
            conn.commit()
            names, rows = _rows_for_copy(cols, ex, eid)
            types = _pg_types(conn, names)
            q = sql.SQL("COPY detection ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.SQL(", ").join(map(sql.Identifier, names)))
            t0 = time.perf_counter()
            with conn.cursor().copy(q) as cp:
                cp.set_types(types)
                for r in rows:
                    cp.write_row(r)
            conn.commit()
            total += time.perf_counter() - t0
            n_rows += len(rows)
    return total, n_rows


def bench_to_sql(url, paths, n_max, extra=None):
    """Seconds of pandas ``to_sql`` (SQLAlchemy, default method) for up to ``n_max`` rows; rows."""
    import pandas as pd
    from sqlalchemy import create_engine

    from catdb.db.engine import connect, sqlalchemy_url
    from catdb.schema import detection

    eng = create_engine(sqlalchemy_url(url))
    dtypes = {c.name: c.type for c in detection.c}  # the table exists: its types, not pandas' guesses
    total, n_rows = 0.0, 0
    with connect(url) as conn:
        _reset(conn)
        for p in paths:
            if n_rows >= n_max:
                break
            cols, ex, row = catdb_arrays(p, extra)
            eid = _insert_exposure(conn, row)
            conn.commit()
            names, rows = _rows_for_copy(cols, ex, eid)
            rows = rows[: n_max - n_rows]
            df = pd.DataFrame.from_records(rows, columns=names)
            t0 = time.perf_counter()
            df.to_sql("detection", eng, if_exists="append", index=False, dtype={k: dtypes[k] for k in names})
            total += time.perf_counter() - t0
            n_rows += len(df)
    eng.dispose()
    return total, n_rows


def bench_catdb(url, paths, jobs, extra=None):
    """Seconds of ``ingest_catalogs`` on every path (empty tables first); detections loaded."""
    import inspect

    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_catalogs

    kw = {}
    if "extra" in inspect.signature(ingest_catalogs).parameters:
        kw["extra"] = extra
    if jobs > 1:
        if "jobs" not in inspect.signature(ingest_catalogs).parameters:
            return None, 0
        kw["jobs"] = jobs
    with connect(url) as conn:
        _reset(conn)
        t0 = time.perf_counter()
        res = ingest_catalogs(conn, paths, on_error="collect", **kw)
        t = time.perf_counter() - t0
        assert all(r.status == "loaded" for r in res), [r.error for r in res if r.status != "loaded"][:3]
        n = conn.execute("SELECT count(*) FROM detection").fetchone()[0]
        MODES[jobs] = conn.execute("SELECT counts->'bulk' FROM stage_run WHERE stage = 'ingest-catalog' "
                                   "ORDER BY id DESC LIMIT 1").fetchone()[0]
    return t, n


#: jobs -> whether catdb's last run of the bench loaded in bulk mode (stage_run.counts; None before issue #15)
MODES: dict = {}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--rows", type=int, default=10_000, help="detections per catalogue")
    ap.add_argument("--jobs", type=int, default=2, help="-j of the parallel catdb run")
    ap.add_argument("--tosql-rows", type=int, default=50_000, help="rows of the to_sql subset")
    ap.add_argument("--quick", action="store_true", help="20 catalogues x 5,000, to_sql on 10,000 rows")
    ap.add_argument("--repeat", type=int, default=None, help="rounds of the catdb runs and COPY limits, best "
                    "taken (the machine is shared: best of N is the least disturbed run); default 3 with "
                    "--quick, else 1")
    ap.add_argument("--extra", default=None, help="catdb's extra option ('all' or column names; default none), "
                    "also applied to the rows of raw COPY, to_sql and the COPY limit")
    ap.add_argument("--cache", default=os.environ.get("CATDB_BENCH_CACHE", "/tmp/catdb-bench-cache/ingest"),
                    help="directory of the generated catalogues (reused between runs)")
    a = ap.parse_args(argv)
    if a.quick:
        a.files, a.rows, a.tosql_rows = 20, 5_000, 10_000
    if a.repeat is None:
        a.repeat = 3 if a.quick else 1
    t0 = time.perf_counter()
    paths = build_set(a.cache, a.files, a.rows)
    print(f"catalogue set: {a.files} FITS_LDAC x {a.rows:,} detections = {a.files * a.rows:,} rows "
          f"({sum(os.path.getsize(p) for p in paths) / 1e6:.0f} MB, ready in {time.perf_counter() - t0:.0f} s) "
          f"in {a.cache}")
    with tempfile.TemporaryDirectory(), bench_server() as url:
        res = {}
        runs = {"COPY limit": lambda: bench_limit(url, paths, a.extra),
                "catdb serial": lambda: bench_catdb(url, paths, 1, a.extra),
                f"catdb -j {a.jobs}": lambda: bench_catdb(url, paths, a.jobs, a.extra),
                "raw binary COPY": lambda: bench_raw_copy(url, paths, a.extra),
                "pandas to_sql": lambda: bench_to_sql(url, paths, a.tosql_rows, a.extra),
                "COPY limit +extra": lambda: bench_limit(url, paths, "all"),
                "COPY limit +NULLs": lambda: bench_limit(url, paths, a.extra, null_columns=True)}
        for r in range(a.repeat):  # rounds of every method in turn: each sees the same load
            for k, fn in runs.items():
                if r and k in ("raw binary COPY", "pandas to_sql"):
                    continue  # slow, client-bound, and not in the ratios of issue #15: once
                t, n = fn()
                if k not in res or (t is not None and t < res[k][0]):
                    res[k] = (t, n)
    if a.repeat > 1:
        print(f"best of {a.repeat} rounds (raw binary COPY and to_sql: one)")
    rate = {k: (n / t if t else float("nan")) for k, (t, n) in res.items()}
    raw, naive, limit = rate["raw binary COPY"], rate["pandas to_sql"], rate["COPY limit"]
    print(f"{'method':<18} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'/ raw COPY':>11} {'/ to_sql':>9} "
          f"{'/ limit':>8}")
    for k, (t, n) in res.items():
        if t is None:
            print(f"{k:<18} {'(not supported by this catdb)':>40}")
            continue
        print(f"{k:<18} {n:>10,} {t:>9.2f} {rate[k]:>10,.0f} {rate[k] / raw:>11.2f} {rate[k] / naive:>9.1f} "
              f"{rate[k] / limit:>8.2f}")
    print("targets: catdb >= 0.5 x raw binary COPY, >= 10 x pandas to_sql (to_sql timed on a subset, per row), "
          ">= 0.5 x COPY limit")
    par = f"catdb -j {a.jobs}"
    print(f"(COPY limit +NULLs: the catalogue's absent columns sent as NULL, as catdb did before issue #15: "
          f"catdb / it {rate['catdb serial'] / rate['COPY limit +NULLs']:.2f} serial)")
    if MODES:
        what = {True: "bulk (secondary indexes rebuilt at the end, in its time)", False: "indexes kept", None: "-"}
        print("catdb's load mode (automatic): " + ", ".join(
            f"{'serial' if j == 1 else f'-j {j}'} {what[m]}" for j, m in sorted(MODES.items())))
    print(f"catdb / COPY limit: {rate['catdb serial'] / limit:.2f} serial, "
          + (f"{rate[par] / limit:.2f} -j {a.jobs}" if res[par][0] else f"-j {a.jobs} not supported"))


if __name__ == "__main__":
    main()
