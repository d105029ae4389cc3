"""``ingest -j N``: workers die with their parent, and Ctrl-C stops everything.

Catalogues resampled from the real LCO FITS_LDAC (``tests/data/lco``; distinct content per file,
as ``tests/test_ingest_atomic.py`` builds them).  The parent is killed (SIGKILL, or SIGINT as
Ctrl-C) once the first files are committed; then no session of the workers stays open, nothing is
committed after the kill, and the run is not left ``running``.
"""
import signal
import subprocess
import sys
import time

import pytest

from catdb.db.engine import connect
from tests.helpers import REPO, TEST_DATA
from tests.test_ingest_atomic import _big_ldac

LCO = TEST_DATA / "lco"
pytestmark = pytest.mark.skipif(not (LCO / "ldac_test_catalog.fits").exists(),
                                reason=f"real data missing: {LCO / 'ldac_test_catalog.fits'}")

N_FILES, N_ROWS = 24, 30_000


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    d = tmp_path_factory.mktemp("many")
    out = []
    for k in range(N_FILES):
        p = d / f"rep{k:02d}.ldac"
        _big_ldac(p, N_ROWS + k, seed=500 + k)
        out.append(str(p))
    return out


def _sessions(mon, dbname):
    return mon.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                       (dbname,)).fetchone()[0]


def _kill_after_first_commit(url, files, sig):
    cmd = [sys.executable, "-m", "catdb.cli.main", "--db", url, "-q", "ingest", "catalog", "-j", "2", *files]
    dbname = url.split("@/", 1)[1].split("?")[0]
    with connect(url) as mon:
        mon.autocommit = True
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        t0 = time.time()
        while mon.execute("SELECT count(*) FROM exposure").fetchone()[0] < 1:
            assert proc.poll() is None and time.time() - t0 < 120, proc.communicate()
            time.sleep(0.05)
        proc.send_signal(sig)
        proc.wait(60)
        killed_at = mon.execute("SELECT count(*) FROM exposure").fetchone()[0]
        # the workers' sessions end (they die with the parent): wait up to 20 s for that
        t1 = time.time()
        while _sessions(mon, dbname) and time.time() - t1 < 20:
            time.sleep(0.1)
        left = _sessions(mon, dbname)
        time.sleep(1.0)
        after = mon.execute("SELECT count(*) FROM exposure").fetchone()[0]
        bad = mon.execute("SELECT count(*) FROM exposure e WHERE (SELECT count(*) FROM detection d "
                          "WHERE d.exposure_id = e.id) <> %s + (regexp_match(e.catalog_path, 'rep(\\d+)'))[1]::int",
                          (N_ROWS,)).fetchone()[0]
        from catdb.db.provenance import reap_dead_runs

        mon.autocommit = False
        reap_dead_runs(mon)
        runs = mon.execute("SELECT status, error FROM stage_run").fetchall()
    return proc, killed_at, left, after, bad, runs


def test_kill_9_parent_takes_the_workers_with_it(fresh_db_url, many):
    proc, killed_at, left, after, bad, runs = _kill_after_first_commit(fresh_db_url, many, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    assert left == 0, "worker sessions still open after the parent was killed"
    assert after <= killed_at + 2  # at most the files being committed at the very moment of the kill
    assert after < N_FILES and bad == 0
    assert [r[0] for r in runs] == ["failed"] and "interrupted" in runs[0][1]
    # a re-run loads the rest; every file once
    r = subprocess.run([sys.executable, "-m", "catdb.cli.main", "--db", fresh_db_url, "-q", "ingest", "catalog",
                        "-j", "2", *many], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{N_FILES - after} ok, {after} unchanged" in r.stdout
    with connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == sum(N_ROWS + k for k in range(N_FILES))


def test_ctrl_c_stops_parent_and_workers(fresh_db_url, many):
    proc, killed_at, left, after, bad, runs = _kill_after_first_commit(fresh_db_url, many, signal.SIGINT)
    assert proc.returncode != 0
    err = proc.stderr.read().decode()
    assert "Traceback" not in err or "KeyboardInterrupt" in err
    assert left == 0 and after <= killed_at + 2 and after < N_FILES and bad == 0
    assert [r[0] for r in runs] == ["failed"] and "interrupted" in runs[0][1]
