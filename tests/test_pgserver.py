"""The pip-only embedded server: PostgreSQL 16 from the ``pgserver`` wheel + catdb's SQL q3c.

A cluster started from pgserver's bundled binaries (same EmbeddedServer code: socket only,
data directory, unprivileged server user when root) gets the SQL port of q3c from
``catdb db init``; the real LCO LDAC catalogue and the Gaia DR2 reference stars of the same
field give the same cone and pair-join rows as on the system PostgreSQL 15 + q3c extension
server of the test session.
"""
from __future__ import annotations

import os
import shutil
import tempfile

import numpy as np
import pytest
from psycopg import sql
from click.testing import CliRunner

from catdb import spatial
from catdb.db.server import EmbeddedServer, find_binaries, pgserver_bindir
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"

pytestmark = pytest.mark.skipif(
    pgserver_bindir() is None,
    reason="the pgserver package is not installed (pip install 'catdb[pip]'): no bundled PostgreSQL")


@pytest.fixture(scope="module")
def pgs():
    """A catdb embedded server running pgserver's PostgreSQL, initialised with `catdb db init`."""
    base = tempfile.mkdtemp(prefix="catdb-pgserver-", dir="/tmp")
    os.chmod(base, 0o755)
    data = os.path.join(base, "pg")
    env = {"CATDB_EMBEDDED": "pgserver", "CATDB_DATA_DIR": data, "CATDB_URL": None}
    from catdb.cli.main import cli

    res = CliRunner().invoke(cli, ["db", "init"], env=env)   # starts the server on first use
    assert res.exit_code == 0, res.output
    assert "spatial backend: sql" in res.output
    srv = EmbeddedServer(data, binaries="pgserver")
    assert srv.is_running()
    yield srv, env
    assert srv.stop() is True
    assert not srv.is_running()
    shutil.rmtree(base, ignore_errors=True)


def test_pgserver_binaries_are_found_and_forced_by_env(monkeypatch):
    monkeypatch.setenv("CATDB_EMBEDDED", "pgserver")
    b = find_binaries()
    assert b.source == "pgserver" and b.bindir == pgserver_bindir()
    assert b.major == 16
    monkeypatch.setenv("CATDB_EMBEDDED", "nonsense")
    from catdb.errors import CatdbError

    with pytest.raises(CatdbError, match="CATDB_EMBEDDED must be one of"):
        find_binaries()


def test_status_names_binaries_version_and_spatial_backend(pgs):
    srv, env = pgs
    st = srv.status()
    assert st.running and st.binaries_source == "pgserver"
    assert "PostgreSQL 16" in st.version
    assert st.q3c_available is False          # Debian's q3c cannot be loaded by this server
    assert st.spatial_backend == "sql"
    if os.geteuid() == 0:                      # initdb refuses root: same server user as usual
        assert srv.data_dir.stat().st_uid != 0
    from catdb.cli.main import cli

    out = CliRunner().invoke(cli, ["server", "status"], env=env)
    assert out.exit_code == 0, out.output
    assert "pgserver" in out.output and "16." in out.output
    assert "spatial:     sql" in out.output
    # a cluster made by PostgreSQL 16 is not started with the system's 15
    from catdb.errors import CatdbError

    try:
        system = find_binaries("system")
    except CatdbError:
        system = None
    if system is not None and system.major != 16:
        with pytest.raises(CatdbError, match="created by PostgreSQL 16"):
            EmbeddedServer(srv.data_dir, binaries="system")


def _load_lco(conn):
    from catdb.ingest.load import ingest_catalogs, ingest_refcat

    res = ingest_catalogs(conn, [LCO / "ldac_test_catalog.fits"])
    assert res[0].n_rows == 974
    assert ingest_refcat(conn, LCO / "GAIA-DR2.cat", catalog="gaia-dr2", band="G").n_rows == 249
    conn.commit()


def _queries(conn):
    """Cone and pair-join row sets on the LCO field (natural keys, not serial ids)."""
    c_ra, c_dec = conn.execute("SELECT ra_center, dec_center FROM exposure").fetchone()
    out = {}
    for r in (0.02, 0.1):
        out[f"cone {r}"] = {tuple(row) for row in conn.execute(*spatial.cone(
            "detection", "ra", "dec", c_ra, c_dec, r, columns=["number", "ra", "dec"]))}
    out["pairs 1as"] = {tuple(row) for row in conn.execute(*spatial.pair_join(
        "detection", "refcat_source", 1 / 3600, columns1=["number"], columns2=["source_id"]))}
    out["pairs 30as"] = {tuple(row) for row in conn.execute(*spatial.pair_join(
        "detection", "detection", 30 / 3600, columns1=["number"], columns2=["number"]))}
    return out


def test_ldac_cone_and_pair_join_identical_to_q3c_extension(pgs, conn):
    from catdb.db.engine import connect

    srv, _ = pgs
    pc = connect(srv.url())
    try:
        assert pc.execute("SELECT q3c_version()").fetchone()[0].endswith("catdb-sql")
        assert spatial.backend(pc) == "sql"
        _load_lco(pc)
        got = _queries(pc)
        # the cone is an index scan on the SQL backend too
        frag = spatial.cone("detection", "ra", "dec", 219.8, -9.8, 0.1)
        pc.execute("SET enable_seqscan = off")   # 974 rows: make the planner show the index path
        plan = "\n".join(r[0] for r in pc.execute(sql.SQL("EXPLAIN ") + frag.sql, frag.params))
        assert "ix_detection_q3c" in plan
    finally:
        pc.close()
    assert spatial.backend(conn) == "q3c"
    _load_lco(conn)
    want = _queries(conn)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == want[k], k
    # what an astronomer checks: ~100 Gaia matches within 1", median separation < 0.3"
    sep = np.array([p[2] for p in want["pairs 1as"]])
    assert 80 <= len(sep) <= 140 and np.median(sep) < 0.3
    assert 0 < len(want["cone 0.02"]) < len(want["cone 0.1"]) < 974
    # self-join: every detection pairs with itself (distance 0), plus its neighbours
    assert sum(1 for a, b, d in want["pairs 30as"] if a == b and d == 0) == 974
    assert len(want["pairs 30as"]) > 974
