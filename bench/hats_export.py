"""HATS export benchmark: peak memory of ``catdb export hats`` at several sizes, and an LSDB cross-match.

For each size N (``--sizes``, default 10^5 and 10^6) a fresh database gets N synthetic detections
(the seeded 10 x 10 deg field of ``bench/xmatch.py``: 80 % near a star, 20 % random; 20 columns
with realistic values, 3-aperture ``mag_aper``/``magerr_aper`` arrays) and N reference stars,
then ``catdb export hats DIR --table detection`` runs as a **subprocess** while this script
samples, every 50 ms with psutil, the resident set size (RSS) of

* the exporting process (the ``catdb`` command: COPY stream -> Arrow batches -> Parquet chunks,
  then the hats-import client side: planning, binning, finishing),
* its Dask LocalCluster (the nanny and worker processes it starts: mapping, splitting, reducing,
  margin),
* the whole process tree (their sum at each sample).

The export uses the same ``--pixel-threshold`` / ``--chunk-rows`` at every size, so the
memory a worker needs (one chunk read, one destination pixel) does not grow with N: only the
number of chunk files and pixels does.

With ``--xmatch`` the N reference stars are exported too (``--table refcat``), the ``xmatch``
stage is run in the database (radius 1"), and LSDB cross-matches the two HATS catalogues on a
2-worker LocalCluster (nearest neighbour within 1"): wall times of both and the comparison of the
pair sets (detection id, star id).

Usage (from the repository root)::

    .venv/bin/python bench/hats_export.py                          # 1e5 and 1e6 (~6 min on 2 cores)
    .venv/bin/python bench/hats_export.py --sizes 100000 --xmatch  # quick
    .venv/bin/python bench/hats_export.py --sizes 100000,1000000,3000000 --xmatch
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.common import bench_server  # noqa: E402
from bench.xmatch import DEC0, RA0, SIDE, field  # noqa: E402

MB = 1 << 20


def load(url, n, seed=1):
    """N stars in refcat_source ('bench') and N detections with realistic columns, in one exposure."""
    from catdb.db.copy import copy_table
    from catdb.db.engine import connect

    (sra, sdec), (dra, ddec) = field(n, seed)
    rng = np.random.default_rng(seed + 1)
    mag = rng.uniform(12, 21, n).astype(np.float32)
    err = (0.01 * 10 ** (0.4 * (mag - 16))).astype(np.float32)
    flux = (10 ** (-0.4 * (mag - 25))).astype(np.float32)
    aper = mag[:, None] + np.array([0.4, 0.15, 0.0], np.float32)
    with connect(url) as conn:
        eid = conn.execute("INSERT INTO exposure (path, image_type, mjd_mid, ra_center, dec_center, radius) "
                           "VALUES ('bench-field', 'science', 58000, %s, %s, %s) RETURNING id",
                           (RA0, DEC0, SIDE / np.sqrt(2) + 0.1)).fetchone()[0]
        copy_table(conn, "refcat_source", {"ra": sra, "dec": sdec, "epoch": np.full(n, 2016.0),
                                           "pmra": rng.normal(0, 5, n), "pmdec": rng.normal(0, 5, n)},
                   constants={"catalog": "bench"})
        copy_table(conn, "detection", {
            "number": np.arange(1, n + 1), "ra": dra, "dec": ddec,
            "ra_err": np.full(n, 0.05, np.float32), "dec_err": np.full(n, 0.05, np.float32),
            "x": rng.uniform(1, 4096, n), "y": rng.uniform(1, 4096, n),
            "flux_auto": flux, "fluxerr_auto": flux * err, "mag_auto": mag, "magerr_auto": err,
            "mag_aper": aper, "magerr_aper": np.repeat(err[:, None], 3, axis=1),
            "flux_max": flux / 10, "fwhm": rng.normal(1.5, 0.1, n).astype(np.float32),
            "elongation": rng.uniform(1, 1.3, n).astype(np.float32),
            "class_star": rng.uniform(0, 1, n).astype(np.float32),
            "flags": rng.choice([0, 0, 0, 2], n), "snr": (1.0857 / err).astype(np.float32)},
            constants={"exposure_id": eid})
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) refcat_source, detection")
    return eid


def sample_tree(proc, stop, out):
    """Peak RSS [bytes] of ``proc``, of its descendants (summed) and of both, sampled every 50 ms."""
    import psutil

    p = psutil.Process(proc.pid)
    peak_main = peak_kids = peak_all = 0
    while not stop.is_set():
        try:
            main = p.memory_info().rss
            kids = 0
            for c in p.children(recursive=True):
                try:
                    kids += c.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            break
        peak_main, peak_kids, peak_all = max(peak_main, main), max(peak_kids, kids), max(peak_all, main + kids)
        time.sleep(0.05)
    out.update(main=peak_main, workers=peak_kids, total=peak_all)


def export_measured(url, out_dir, table, name, where, args):
    """Run ``catdb export hats`` as a subprocess; return (wall s, peaks dict, the command's summary line)."""
    cmd = [sys.executable, "-m", "catdb.cli.main", "--db", url, "--log-level", "info", "export", "hats", str(out_dir),
           "--table", table, "--name", name, "--pixel-threshold", str(args.pixel_threshold),
           "--chunk-rows", str(args.chunk_rows), "--margin", "5", "--workers", "2"]
    if where:
        cmd += ["--where", where]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stop, peaks = threading.Event(), {}
    th = threading.Thread(target=sample_tree, args=(proc, stop, peaks))
    th.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    if proc.returncode:
        raise SystemExit(f"export failed ({proc.returncode}):\n{err[-3000:]}")
    line = [ln for ln in err.splitlines() if ln.startswith("wrote ")]
    info = [ln.split(": ", 1)[1] for ln in err.splitlines() if ln.startswith("INFO catdb.export.hats")]
    return wall, peaks, "; ".join((line[-1:] or []) + info)


def lsdb_vs_stage(url, eid, det_path, ref_path):
    """xmatch stage (1") vs LSDB crossmatch (k=1, 1") on a 2-worker LocalCluster; times and pair sets."""
    import lsdb
    from dask.distributed import Client, LocalCluster

    from catdb.db.engine import connect
    from catdb.stages import run_stage

    with connect(url) as conn:
        t0 = time.perf_counter()
        res = run_stage("xmatch", conn=conn, where=f"e.id = {eid}", params={"refcat": "bench", "radius": "1"})
        conn.commit()
        t_stage = time.perf_counter() - t0
        stage = np.array(conn.execute("SELECT detection_id, ref_id FROM xmatch WHERE stage_run_id = %s",
                                      (res.run_id,)).fetchall(), dtype=np.int64).reshape(-1, 2)
    tmp = tempfile.mkdtemp(prefix="catdb-bench-dask-")
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=tmp, silence_logs=logging.ERROR)
    client = Client(cluster)
    try:
        t_lsdb = []
        for _ in range(2):  # the first run includes the workers' numba compilation (hats/lsdb kernels)
            t0 = time.perf_counter()
            d, r = lsdb.open_catalog(det_path), lsdb.open_catalog(ref_path)
            m = d.crossmatch(r, n_neighbors=1, radius_arcsec=1.0, suffixes=("_d", "_r"))[["id_d", "id_r"]].compute()
            t_lsdb.append(time.perf_counter() - t0)
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    got = m.to_numpy(dtype=np.int64)
    same = (len(got) == len(stage)
            and np.array_equal(got[np.lexsort(got.T[::-1])], stage[np.lexsort(stage.T[::-1])]))
    return t_stage, t_lsdb, len(stage), len(got), same


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100000,1000000", help="Comma-separated detection counts.")
    ap.add_argument("--pixel-threshold", type=int, default=100_000)
    ap.add_argument("--chunk-rows", type=int, default=100_000)
    ap.add_argument("--xmatch", action="store_true", help="Also export the stars and compare LSDB with the stage.")
    ap.add_argument("--keep", metavar="DIR", help="Write the catalogues here and keep them.")
    a = ap.parse_args(argv)
    sizes = [int(float(s)) for s in a.sizes.split(",")]
    rows = []
    for n in sizes:
        with bench_server() as url:
            t0 = time.perf_counter()
            eid = load(url, n)
            t_load = time.perf_counter() - t0
            out = Path(a.keep) / f"n{n}" if a.keep else Path(tempfile.mkdtemp(prefix="catdb-bench-hats-"))
            out.mkdir(parents=True, exist_ok=True)
            try:
                wall, peaks, line = export_measured(url, out, "detection", "detection", None, a)
                print(f"N = {n:,}: loaded in {t_load:.1f} s; {line}", flush=True)
                print(f"  export hats detection: {wall:.1f} s wall; peak RSS exporting process "
                      f"{peaks['main'] / MB:.0f} MB, its Dask workers (sum) {peaks['workers'] / MB:.0f} MB, "
                      f"tree {peaks['total'] / MB:.0f} MB", flush=True)
                row = {"n": n, "wall": wall, **peaks}
                if a.xmatch:
                    w2, p2, line2 = export_measured(url, out, "refcat", "stars", "catalog = 'bench'", a)
                    print(f"  export hats refcat: {w2:.1f} s wall; peak RSS exporting process {p2['main'] / MB:.0f} "
                          f"MB, workers {p2['workers'] / MB:.0f} MB ({line2})", flush=True)
                    ts, tl, ns, nl, same = lsdb_vs_stage(url, eid, out / "detection", out / "stars")
                    print(f"  xmatch stage 1\": {ts:.1f} s, {ns:,} pairs; LSDB crossmatch (2 workers): first "
                          f"{tl[0]:.1f} s, again {tl[1]:.1f} s, {nl:,} pairs; same pairs: {same}", flush=True)
                    row.update(stage=ts, lsdb=tl, pairs=ns, same=same)
                rows.append(row)
            finally:
                if not a.keep:
                    shutil.rmtree(out, ignore_errors=True)
    print("\nrows        wall (s)  exporting process (MB)  workers (MB)  tree (MB)")
    for r in rows:
        print(f"{r['n']:>10,}  {r['wall']:8.1f}  {r['main'] / MB:22.0f}  {r['workers'] / MB:12.0f}  "
              f"{r['total'] / MB:9.0f}")


if __name__ == "__main__":
    main()
