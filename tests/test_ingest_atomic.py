"""Atomicity of ``catdb ingest catalog``: a process killed (SIGKILL) mid-COPY leaves no rows behind.

A large synthetic FITS_LDAC catalogue (rows resampled from the real LCO LDAC, its header kept,
as ``bench/ingest.py`` builds them) is ingested by the CLI in a subprocess; a monitoring
connection polls ``pg_stat_activity`` for the COPY into ``detection`` and the process is killed
then.  PostgreSQL rolls the file's transaction back: no exposure, no detection; a re-run loads it.
"""
import re

import numpy as np
from astropy.io import fits

from tests.helpers import REPO, TEST_DATA

LCO = TEST_DATA / "lco"


def _big_ldac(path, n, seed=1):
    """A FITS_LDAC catalogue of n sources resampled from the real LCO LDAC (its header kept)."""
    from astropy.table import Table

    rng = np.random.default_rng(seed)
    with fits.open(LCO / "ldac_test_catalog.fits") as hl:
        imhead = hl[1].copy()
        objs = Table(hl[2].data)
    t = objs[rng.integers(0, len(objs), n)]
    t["NUMBER"] = np.arange(1, n + 1)
    fits.HDUList([fits.PrimaryHDU(), imhead, fits.BinTableHDU(t, name="LDAC_OBJECTS")]).writeto(path)


def test_kill_minus_9_during_copy_leaves_nothing_and_rerun_works(fresh_db_url, tmp_path):
    """``catdb ingest catalog`` killed (SIGKILL) in the middle of its COPY: no exposure, no detection."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from catdb.db.engine import connect

    n = 40_000
    big = tmp_path / "big.ldac"
    _big_ldac(big, n)
    cmd = [sys.executable, "-m", "catdb.cli.main", "--db", fresh_db_url, "-q", "ingest", "catalog", str(big)]
    with connect(fresh_db_url) as mon:
        mon.autocommit = True
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seen = None
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            seen = mon.execute("SELECT pid FROM pg_stat_activity WHERE query ILIKE 'COPY%%detection%%' "
                               "AND state = 'active' AND pid <> pg_backend_pid()").fetchone()
            if seen:
                break
            time.sleep(0.02)
        assert seen, f"COPY never seen (exit {proc.poll()})"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        # the server notices the client is gone and rolls the transaction back
        for _ in range(500):
            if not mon.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", seen).fetchone():
                break
            time.sleep(0.02)
        assert mon.execute("SELECT count(*) FROM exposure WHERE catalog_path = %s",
                           (str(big.resolve()),)).fetchone()[0] == 0
        assert mon.execute("SELECT count(*) FROM detection").fetchone()[0] == 0
        # the interrupted run is not recorded as a success
        assert [r[0] for r in mon.execute("SELECT status FROM stage_run WHERE stage = 'ingest-catalog'")] \
            == ["running"]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert re.search(rf"files: 1 ok, 0 unchanged, 0 failed; 1 exposure, {n} detections", r.stdout), r.stdout
    with connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*), count(DISTINCT number) FROM detection").fetchone() == (n, n)
