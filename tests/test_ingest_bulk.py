"""Bulk ingest (catdb.db.bulk): secondary indexes of detection detached for a load and rebuilt once,
crash-safe through detached_index, the same rows as a load that keeps them."""
from __future__ import annotations

import psycopg
import pytest

from catdb.db import bulk, migrate
from catdb.db.engine import connect
from tests.helpers import LCO

LDAC = LCO / "ldac_test_catalog.fits"
ORACDR = LCO / "oracdr_test_catalog.fits"
FILES = [LDAC, ORACDR, *sorted((LCO / "CatalogFiles").glob("*_cat.fits"))]
pytestmark = pytest.mark.skipif(not LDAC.exists(), reason=f"real data missing: {LDAC}")
SECONDARY = {"ix_detection_exposure_id", "ix_detection_q3c"}
DETACHED = SECONDARY  # a bulk load detaches every secondary index


def _indexes(c):
    return {r[0] for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'detection'")}


def _rows(c):
    return c.execute("SELECT e.catalog_sha256, d.number, d.ra, d.dec, d.mag_auto, d.flags FROM detection d "
                     "JOIN exposure e ON e.id = d.exposure_id ORDER BY 1, 2").fetchall()


def test_bulk_load_same_rows_indexes_rebuilt(fresh_db_url):
    from catdb.ingest.load import ingest_catalogs

    out = {}
    for mode in (False, True):
        with connect(fresh_db_url) as c:
            c.execute("TRUNCATE exposure, detection, stage_run CASCADE")
            c.commit()
            res = ingest_catalogs(c, FILES, bulk=mode)
            assert [r.status for r in res] == ["loaded"] * len(FILES)
            counts = c.execute("SELECT counts FROM stage_run WHERE stage = 'ingest-catalog' ORDER BY id DESC "
                               "LIMIT 1").fetchone()[0]
            assert counts["bulk"] is mode
            assert sorted(counts["indexes_rebuilt"]) == (sorted(DETACHED) if mode else [])
            assert SECONDARY <= _indexes(c)
            assert c.execute("SELECT count(*) FROM detached_index").fetchone()[0] == 0
            # the rebuilt q3c index answers a cone search (and the planner uses it)
            plan = "\n".join(r[0] for r in c.execute(
                "EXPLAIN SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, 219.836, -9.768, 0.01)"))
            assert "ix_detection_q3c" in plan
            out[mode] = (_rows(c), c.execute("SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, "
                                             "219.836, -9.768, 0.05)").fetchone()[0])
    assert out[True] == out[False] and out[True][1] > 0
    assert migrate.check(fresh_db_url) == []


def test_auto_bulk_decision(fresh_db_url, monkeypatch):
    from catdb.ingest import load

    with connect(fresh_db_url) as c:
        small = [str(p) for p in FILES]
        assert not load.bulk_decision(c, small, None, False)  # a few MB: not worth the DDL
        monkeypatch.setattr(load, "BULK_MIN_BYTES", 1)
        assert load.bulk_decision(c, small, None, False)  # empty table, nobody else connected
        assert not load.bulk_decision(c, small, None, True)  # --replace deletes by exposure_id: keep the index
        assert load.bulk_decision(c, small, True, True) and not load.bulk_decision(c, small, False, False)
        with connect(fresh_db_url):  # another client session (a reader): no automatic bulk mode
            assert not load.bulk_decision(c, small, None, False)


def test_killed_bulk_load_leaves_indexes_listed_and_next_ingest_rebuilds(fresh_db_url):
    """A bulk loader whose session dies after detaching: every index is present or listed; the next
    ingest (not bulk) re-creates them before it loads."""
    from catdb.ingest.load import ingest_catalogs

    dead = psycopg.connect(fresh_db_url)
    run = dead.execute("INSERT INTO stage_run (stage, code_version, status, backend_pid) VALUES "
                       "('ingest-catalog', 't', 'running', pg_backend_pid()) RETURNING id").fetchone()[0]
    dead.commit()
    assert sorted(bulk.detach_indexes(dead, "detection", run)) == sorted(DETACHED)
    with connect(fresh_db_url) as c:
        assert not (DETACHED & _indexes(c))
        assert {r[0] for r in bulk.detached(c)} == DETACHED
        defs = dict((n, d) for n, _, d in bulk.detached(c))
        assert "q3c_ang2ipix" in defs["ix_detection_q3c"]
        # while the loader lives, another session does not rebuild behind its back
        assert bulk.other_bulk_loads(c) == [run]
        assert bulk.restore_indexes(c, "detection") == []
    dead.close()  # killed: its session (and its shared lock) ends
    with connect(fresh_db_url) as c:
        ingest_catalogs(c, [LDAC], bulk=False)
        assert SECONDARY <= _indexes(c)
        assert c.execute("SELECT count(*) FROM detached_index").fetchone()[0] == 0
    assert migrate.check(fresh_db_url) == []


def test_two_bulk_loads_the_last_rebuilds(fresh_db_url):
    a, b = psycopg.connect(fresh_db_url), psycopg.connect(fresh_db_url)
    runs = []
    for c in (a, b):
        runs.append(c.execute("INSERT INTO stage_run (stage, code_version, status, backend_pid) VALUES "
                              "('ingest-catalog', 't', 'running', pg_backend_pid()) RETURNING id").fetchone()[0])
        c.commit()
    # (keep_leading: the exposure index stays, only q3c is detached)
    assert bulk.detach_indexes(a, "detection", runs[0], keep_leading="exposure_id") == ["ix_detection_q3c"]
    assert bulk.detach_indexes(b, "detection", runs[1], keep_leading="exposure_id") == ["ix_detection_q3c"]
    assert bulk.end_bulk(a, "detection") == []  # b still loads
    with connect(fresh_db_url) as c:
        assert "ix_detection_q3c" not in _indexes(c) and "ix_detection_exposure_id" in _indexes(c)
    assert bulk.end_bulk(b, "detection") == ["ix_detection_q3c"]
    with connect(fresh_db_url) as c:
        assert SECONDARY <= _indexes(c) and not bulk.detached(c)
    a.close()
    b.close()


def test_reader_during_bulk_load_sees_committed_rows(fresh_db_url):
    """Without the indexes a cone search reads the table: same answer, by a sequential scan."""
    from catdb.ingest.load import ingest_catalogs

    with connect(fresh_db_url) as c:
        ingest_catalogs(c, [LDAC])
        q = "SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, 219.836, -9.768, 0.05)"
        n = c.execute(q).fetchone()[0]
        c.commit()
        loader = psycopg.connect(fresh_db_url)
        bulk.detach_indexes(loader, "detection", None)
        assert c.execute(q).fetchone()[0] == n > 0
        c.commit()
        bulk.end_bulk(loader, "detection")
        loader.close()
        assert SECONDARY <= _indexes(c)


def test_detach_gives_up_when_the_table_is_busy(fresh_db_url, monkeypatch):
    """A running query holds detection: the drop waits lock_timeout, then the load keeps its indexes."""
    monkeypatch.setattr(bulk, "DROP_LOCK_TIMEOUT_MS", 200)
    with connect(fresh_db_url) as reader, connect(fresh_db_url) as loader:
        reader.execute("SELECT count(*) FROM detection")  # transaction open: ACCESS SHARE held
        assert bulk.detach_indexes(loader, "detection", None) is None
        assert SECONDARY <= _indexes(loader) and not bulk.detached(loader)
        reader.rollback()


def test_migration_0017_downgrade_recreates_detached_indexes(fresh_db_url):
    loader = psycopg.connect(fresh_db_url)
    assert sorted(bulk.detach_indexes(loader, "detection", None)) == sorted(SECONDARY)
    loader.close()
    from catdb.errors import CatdbError

    with pytest.raises(CatdbError, match="detached_index: 2 rows"):  # pending re-creations are named first
        migrate.downgrade(fresh_db_url, "0016")
    migrate.downgrade(fresh_db_url, "0016", yes=True)  # ... and re-created by the downgrade itself
    with psycopg.connect(fresh_db_url) as c:
        assert SECONDARY <= _indexes(c)
    migrate.upgrade(fresh_db_url)
    assert migrate.check(fresh_db_url) == []


def test_cli_bulk_flag_check_hint_and_restore_indexes(fresh_db_url):
    from click.testing import CliRunner

    from catdb.cli.main import cli

    run = CliRunner()
    r = run.invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", "--bulk", str(LDAC)])
    assert r.exit_code == 0, r.output
    with connect(fresh_db_url) as c:
        assert c.execute("SELECT counts->'bulk' FROM stage_run ORDER BY id DESC LIMIT 1").fetchone()[0] is True
        assert SECONDARY <= _indexes(c)
    loader = psycopg.connect(fresh_db_url)  # a bulk load killed after detaching
    bulk.detach_indexes(loader, "detection", None)
    loader.close()
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "check"])
    assert r.exit_code != 0 and "catdb db restore-indexes" in r.output
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "restore-indexes"])
    assert r.exit_code == 0 and "re-created" in r.output and "ix_detection_q3c" in r.output
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "check"])
    assert r.exit_code == 0, r.output
