"""Fault injection: kill -9 at random points, then the invariants a user relies on.

Real data: the LCO SExtractor catalogues of ``tests/data/lco`` and FITS_LDAC replicas resampled
from the real one (distinct content each, as ``tests/test_ingest_atomic.py`` builds them).  With a
seeded random generator (``CATDB_FAULT_SEED``, default 14) the client is killed (SIGKILL) at a
random moment of

* ``catdb ingest catalog`` serial (5 trials) and ``-j 2`` (5 trials),
* three stages, ``exposure-summary``, ``associate`` and ``veto`` (3 trials each),
* and the postmaster of a cluster of its own once in the middle of ``associate``,

20 trials in all.  After each: no exposure has fewer detections than its file, no duplicate
``(exposure_id, number)``, no run is left ``running`` once catdb looks (``catdb stage history``),
and re-running the command completes to the same rows as an uninterrupted run.  A bounded soak
test then runs two ingesting processes (overlapping copies), a stage loop and a query loop together
on one database for ~15 s and checks the same invariants.  Where each kill landed (before the
first commit, between commits, after the end) is printed (``pytest -s``) and asserted to have
covered mid-run kills.
"""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from catdb.db.engine import connect
from tests.helpers import REPO, TEST_DATA

LCO = TEST_DATA / "lco"
pytestmark = [pytest.mark.faults,
              pytest.mark.skipif(not (LCO / "ldac_test_catalog.fits").exists(),
                                 reason=f"real data missing: {LCO / 'ldac_test_catalog.fits'}")]

SEED = int(os.environ.get("CATDB_FAULT_SEED", "14"))
STAGES = [("exposure-summary", []), ("associate", []), ("veto", ["--set", "clean", "--steps", "flags,elongation"])]
REPLICAS = (20_000, 16_000, 12_000)
SECONDARY = {"ix_detection_exposure_id", "ix_detection_q3c"}


def _catdb(url, *args):
    return [sys.executable, "-m", "catdb.cli.main", "--db", url, "-q", *map(str, args)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real LCO catalogues + replicas; returns {path: number of rows}."""
    from catdb.ingest.sextractor import read_catalogs
    from tests.test_ingest_atomic import _big_ldac

    d = tmp_path_factory.mktemp("faults")
    out = {}
    for p in [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits",
              *sorted((LCO / "CatalogFiles").glob("*_cat.fits"))]:
        q = Path(shutil.copy(p, d / p.name))
        out[str(q)] = sum(len(c) for c in read_catalogs(q))
    for k, n in enumerate(REPLICAS):
        p = d / f"replica{k}.ldac"
        _big_ldac(p, n, seed=900 + k)
        out[str(p)] = n
    return out


def _snapshot(url):
    """What a user checks, keyed by content (ids differ between databases)."""
    with connect(url) as c:
        exp = c.execute("SELECT catalog_sha256, (SELECT count(*) FROM detection d WHERE d.exposure_id = e.id) "
                        "FROM exposure e ORDER BY 1").fetchall()
        det = c.execute("SELECT md5(string_agg(e.catalog_sha256 || ':' || d.number || ':' || d.ra::text || ':' "
                        "|| d.dec::text, ',' ORDER BY e.catalog_sha256, d.number)) FROM detection d "
                        "JOIN exposure e ON e.id = d.exposure_id").fetchone()[0]
        summ = c.execute("SELECT e.catalog_sha256, s.n_detections, s.n_unflagged, round(s.fwhm_median::numeric, 6) "
                         "FROM exposure_summary s JOIN exposure e ON e.id = s.exposure_id ORDER BY 1").fetchall()
        obj = c.execute("SELECT count(*), md5(string_agg(round(ra::numeric, 7) || ',' || round(dec::numeric, 7) || ',' "
                        "|| n_detections, ';' ORDER BY ra, dec)) FROM object").fetchone()
        surv = c.execute("SELECT count(*) FROM survivor").fetchone()[0]
    return {"exposures": exp, "detections": det, "summary": summ, "objects": obj, "survivors": surv}


def _quiesce(url, timeout=30.0):
    """Wait until the killed client's server session has ended (the server notices the closed socket
    and rolls back; a big COPY takes a moment)."""
    dbname = url.split("@/", 1)[1].split("?")[0]
    with connect(url) as c:
        c.autocommit = True
        t0 = time.time()
        while c.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                        (dbname,)).fetchone()[0]:
            assert time.time() - t0 < timeout, "a session of the killed client is still there"
            time.sleep(0.05)


def _invariants(url, files):
    """The invariants after a fault (once the killed session is gone)."""
    from catdb.db.provenance import reap_dead_runs

    _quiesce(url)
    with connect(url) as c:
        short = c.execute("SELECT e.catalog_path, count(d.id) FROM exposure e LEFT JOIN detection d "
                          "ON d.exposure_id = e.id GROUP BY e.catalog_path").fetchall()
        for path, n in short:
            assert n == files[path], f"exposure of {path} has {n} detections, the file {files[path]}"
        assert c.execute("SELECT count(*) FROM (SELECT exposure_id, number FROM detection GROUP BY 1, 2 "
                         "HAVING count(*) > 1) q").fetchone()[0] == 0
        n, n_content = c.execute("SELECT count(*), count(DISTINCT catalog_sha256) FROM exposure").fetchone()
        assert n == n_content  # one file content, one exposure
        # bulk mode (catdb.db.bulk): every secondary index of detection exists or is listed to be re-created
        have = {r[0] for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'detection'")}
        listed = {r[0] for r in c.execute("SELECT index_name FROM detached_index")}
        assert SECONDARY <= have | listed and not (have & listed), (have, listed)
    r = _run(url, "stage", "history", "--limit", "1000")
    assert " running " not in r.stdout, r.stdout
    with connect(url) as c:
        assert c.execute("SELECT count(*) FROM stage_run WHERE status = 'running'").fetchone()[0] == 0
        reaped = reap_dead_runs(c)
        failed = c.execute("SELECT count(*) FROM stage_run WHERE status = 'failed' AND error LIKE 'interrupted%'"
                           ).fetchone()[0]
    assert not reaped
    return failed


def _run(url, *args):
    """A catdb command in this process (no interpreter start-up: the suite stays short)."""
    from click.testing import CliRunner

    from catdb.cli.main import cli

    r = CliRunner().invoke(cli, ["--db", url, "-q", *map(str, args)])
    assert r.exit_code == 0, (args, r.output, r.exception)
    return r


def _ingest_all(url, files, jobs=1):
    return _run(url, "ingest", "catalog", "-j", jobs, *files)


def _stages(url):
    for name, args in STAGES:
        _run(url, "stage", name, *args)


@pytest.fixture(scope="module")
def reference(pg_server, template_db, files):
    from tests.conftest import create_database

    url = create_database(pg_server, template_db)
    _ingest_all(url, files)
    ingest_only = _snapshot(url)
    _stages(url)
    return ingest_only, _snapshot(url)


def _kill_at(cmd, delay):
    """Start ``cmd``, SIGKILL it after ``delay`` s; returns 'killed' or 'finished' (ended before)."""
    p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.wait(delay)
        return "finished"
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait(60)
        return "killed"


def _kill_in_run(cmd, url, stage, extra_delay):
    """Start ``cmd`` (a ``catdb stage``), SIGKILL it ``extra_delay`` s after its run's ``running`` row
    appears (so the kill lands inside the stage on a fast or a slow machine alike); returns 'killed' or
    'finished' (the stage ended first)."""
    with connect(url) as c:
        c.autocommit = True
        last = c.execute("SELECT coalesce(max(id), 0) FROM stage_run").fetchone()[0]
        p = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while p.poll() is None and not c.execute(
                "SELECT count(*) FROM stage_run WHERE id > %s AND stage = %s", (last, stage)).fetchone()[0]:
            assert time.time() - t0 < 120, "the stage never started"
            time.sleep(0.01)
    try:
        p.wait(extra_delay)
        return "finished"
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait(60)
        return "killed"


def _load_window(url, files, jobs):
    """Seconds from the start of ``catdb ingest catalog -j jobs`` to its first commit and to its end."""
    p = subprocess.Popen(_catdb(url, "ingest", "catalog", "-j", jobs, *files), cwd=REPO, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    t0, first = time.perf_counter(), None
    with connect(url) as c:
        c.autocommit = True
        while p.poll() is None:
            if first is None and c.execute("SELECT count(*) FROM exposure").fetchone()[0]:
                first = time.perf_counter() - t0
            time.sleep(0.02)
    end = time.perf_counter() - t0
    assert p.returncode == 0, p.stderr.read()
    return (first if first is not None else 0.5 * end), end


def _landed(url, files):
    with connect(url) as c:
        n = c.execute("SELECT count(*) FROM exposure").fetchone()[0]
    return "before first commit" if n == 0 else ("all committed" if n == len(files) else f"{n}/{len(files)} files")


_LOG: list = []


@pytest.mark.parametrize("jobs", [1, 2])
def test_kill_9_during_ingest(pg_server, template_db, files, reference, jobs):
    from tests.conftest import create_database

    rng = random.Random(SEED * 10 + jobs)
    # the kills land within the load: between the first commit and the end of an uninterrupted run,
    # measured here (ingest speed changes with the code and the machine's load; -j 2 starts workers)
    first, end = _load_window(create_database(pg_server, template_db), files, jobs)
    outcomes = []
    for _trial in range(5):
        url = create_database(pg_server, template_db)
        delay = rng.uniform(0.8 * first, end)
        what = _kill_at(_catdb(url, "ingest", "catalog", "-j", jobs, *files), delay)
        time.sleep(0.2)  # (-j 2: the workers die with the parent)
        where = _landed(url, files) if what == "killed" else "after the end"
        outcomes.append(where)
        _invariants(url, files)
        _ingest_all(url, files)  # the re-run (serial: same rows as -j 2, see test_ingest_parallel)
        _invariants(url, files)
        assert _snapshot(url)["exposures"] == reference[0]["exposures"]
        assert _snapshot(url)["detections"] == reference[0]["detections"]
    _LOG.append((f"ingest -j {jobs}", outcomes))
    print(f"\ningest -j {jobs} kills (seed {SEED}): {outcomes}")
    assert any(o not in ("after the end",) for o in outcomes)  # some kills landed in the run


def _indexes_back(url):
    """After a completed ingest: the indexes are all there, nothing is left detached, schema == models."""
    from catdb.db import migrate

    with connect(url) as c:
        have = {r[0] for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'detection'")}
        assert SECONDARY <= have
        assert c.execute("SELECT count(*) FROM detached_index").fetchone()[0] == 0
    assert migrate.check(url) == []


def test_kill_9_during_bulk_ingest(pg_server, template_db, files, reference):
    """``catdb ingest catalog --bulk`` killed at random: rows as above, indexes present or listed, and a
    reader meanwhile gets the rows committed so far; the next ingest rebuilds the indexes."""
    from tests.conftest import create_database

    rng = random.Random(SEED * 10 + 7)
    first, end = _load_window(create_database(pg_server, template_db), files, 1)
    outcomes = []
    for _trial in range(4):
        url = create_database(pg_server, template_db)
        delay = rng.uniform(0.5 * first, end)
        what = _kill_at(_catdb(url, "ingest", "catalog", "--bulk", *files), delay)
        where = _landed(url, files) if what == "killed" else "after the end"
        outcomes.append(where)
        _invariants(url, files)
        with connect(url) as c:  # a cone search without the q3c index answers as with it
            q = "SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, 219.836, -9.768, 0.05)"
            n_scan = c.execute(q).fetchone()[0]
            c.execute("SET enable_seqscan = off")
            assert c.execute(q).fetchone()[0] == n_scan
        _ingest_all(url, files)  # (auto mode) rebuilds what the killed load left detached
        _invariants(url, files)
        _indexes_back(url)
        assert _snapshot(url)["detections"] == reference[0]["detections"]
    print(f"\ningest --bulk kills (seed {SEED}): {outcomes}")
    assert any(o not in ("after the end",) for o in outcomes)


def test_kill_9_during_stages(pg_server, template_db, files, reference):
    from tests.conftest import create_database

    rng = random.Random(SEED * 10 + 7)
    base = create_database(pg_server, template_db)
    _ingest_all(base, files)
    outcomes = []
    for name, args in STAGES:
        for _trial in range(3):
            url = base
            what = _kill_in_run(_catdb(url, "stage", name, *args), url, name, rng.uniform(0.0, 0.3))
            outcomes.append((name, what))
            _invariants(url, files)
            with connect(url) as c:
                last = c.execute("SELECT status, error FROM stage_run WHERE stage = %s ORDER BY id DESC LIMIT 1",
                                 (name,)).fetchone()
            assert last[0] in ("ok", "failed"), last
            if what == "killed" and last[0] == "failed":
                assert last[1].startswith("interrupted"), last
            _run(url, "stage", name, *args)  # the re-run completes
    snap = _snapshot(base)
    ref = reference[1]
    for k in ("exposures", "detections", "summary", "objects", "survivors"):
        assert snap[k] == ref[k], k
    _LOG.append(("stages", outcomes))
    print(f"\nstage kills (seed {SEED}): {outcomes}")
    assert sum(w == "killed" for _, w in outcomes) >= 3


def test_kill_9_postmaster_mid_stage(files, reference):
    """The server itself dies (SIGKILL to the postmaster) in the middle of `associate`: after a restart
    (crash recovery) the run is failed (interrupted), nothing half-written, and a re-run completes."""
    from catdb.db import migrate
    from catdb.db.server import EmbeddedServer

    base = tempfile.mkdtemp(prefix="catdb-fault-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"))
    try:
        srv.start()
        url = srv.url()
        migrate.upgrade(url)
        from catdb.db.engine import engine

        engine(url).dispose()
        _ingest_all(url, files)
        _run(url, "stage", "exposure-summary")
        p = subprocess.Popen(_catdb(url, "stage", "associate"), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        with connect(url) as c:  # wait until the stage's transaction is under way
            c.autocommit = True
            t0 = time.time()
            while not c.execute("SELECT count(*) FROM stage_run WHERE stage = 'associate' AND status = 'running'"
                                ).fetchone()[0]:
                assert time.time() - t0 < 60 and p.poll() is None, p.communicate()
                time.sleep(0.02)
        pid = srv.running_pid()
        os.kill(pid, signal.SIGKILL)
        out, err = p.communicate(timeout=120)
        assert p.returncode != 0  # the client lost its server
        t0 = time.time()
        while True:  # the backends exit once they notice the postmaster is gone; then restart
            try:
                srv.start()
                break
            except Exception:  # noqa: BLE001 (old shared memory still attached)
                assert time.time() - t0 < 60
                time.sleep(0.5)
        with connect(url) as c:
            assert c.execute("SELECT count(*) FROM object").fetchone()[0] == 0  # nothing half-written
        _invariants(url, files)
        with connect(url) as c:
            st = c.execute("SELECT status, error FROM stage_run WHERE stage = 'associate'").fetchone()
        assert st[0] == "failed" and st[1].startswith("interrupted"), st
        _run(url, "stage", "associate")
        _run(url, "stage", "veto", *STAGES[2][1])
        snap = _snapshot(url)
        for k in ("exposures", "detections", "summary", "objects", "survivors"):
            assert snap[k] == reference[1][k], k
    finally:
        srv.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


def test_soak_two_ingests_a_stage_and_queries(pg_server, template_db, files, reference, tmp_path):
    """~15 s: two ingesting processes on overlapping copies, a stage loop and a query loop together."""
    from tests.conftest import create_database

    url = create_database(pg_server, template_db)
    paths = list(files)
    copies = []
    for p in paths:  # the same content under another path: loaded once whoever gets there first
        q = tmp_path / ("copy_" + Path(p).name)
        shutil.copy(p, q)
        copies.append(str(q))
    deadline = time.time() + 15
    loops = {"stage": 0, "query": 0}
    procs = [subprocess.Popen(_catdb(url, "ingest", "catalog", "-j", "2", *paths), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             subprocess.Popen(_catdb(url, "ingest", "catalog", *copies[::-1]), cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    while time.time() < deadline:
        _run(url, "stage", "exposure-summary")
        loops["stage"] += 1
        _run(url, "query", "-f", "csv", "--limit", "3", "--timeout", "30",
             "SELECT e.id, count(d.id) FROM exposure e LEFT JOIN detection d ON d.exposure_id = e.id GROUP BY e.id")
        loops["query"] += 1
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    _invariants(url, files | {c: files[p] for p, c in zip(paths, copies)})
    snap = _snapshot(url)
    assert snap["exposures"] == reference[0]["exposures"] and snap["detections"] == reference[0]["detections"]
    _run(url, "stage", "exposure-summary")
    assert _snapshot(url)["summary"] == reference[1]["summary"]
    print(f"\nsoak: {loops}")
