"""Security suite: every way a user's text reaches SQL through the CLI, attacked.

The database holds real SExtractor catalogues (MANIFEST ``lco/``) and a stage run.  Before
and after every attempt the test takes a fingerprint of the database (every table's row
count and an md5 of its rows, the relations, the roles, the large objects) and checks that
a superuser backend opened by the test is still alive; each attempt must exit non-zero with
a message saying why, and leave the fingerprint unchanged.

The holes it found (multiple statements through ``catdb export`` / ``--where``, a reader
session that committed) are fixed: ``catdb.db.safety.check_query`` and ``reader_session``.
"""
from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from catdb.cli.main import cli
from catdb.ingest.load import ingest_catalogs
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"


@pytest.fixture(scope="module")
def loaded(db_url):
    from catdb.db.engine import connect
    from catdb.stages import run_stage

    c = connect(db_url)
    ingest_catalogs(c, [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits"])
    c.commit()
    run_stage("exposure-summary", conn=c)
    c.commit()
    n = c.execute("SELECT count(*) FROM detection").fetchone()[0]
    c.close()
    assert n == 974 + 360
    return db_url


@pytest.fixture
def victim(loaded):
    """A superuser backend that must survive every attempt (pg_terminate_backend)."""
    c = psycopg.connect(loaded, autocommit=True)
    yield c, c.execute("SELECT pg_backend_pid()").fetchone()[0]
    c.close()


def fingerprint(url) -> dict:
    """Row count and md5 of the rows of every table, relation names, roles, large objects."""
    with psycopg.connect(url, autocommit=True) as c:
        tables = [r[0] for r in c.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()]
        fp = {}
        for t in tables:  # a loop over tables, not rows
            fp[t] = c.execute(sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                                      "FROM {} AS x").format(sql.Identifier(t))).fetchone()
        fp["_relations"] = c.execute("SELECT array_agg(n.nspname || '.' || c.relname ORDER BY 1) FROM pg_class c "
                                     "JOIN pg_namespace n ON n.oid = c.relnamespace "
                                     "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                                     "AND n.nspname NOT LIKE 'pg_temp%%' AND n.nspname NOT LIKE 'pg_toast_temp%%'"
                                     ).fetchone()
        fp["_roles"] = c.execute("SELECT array_agg(rolname || ':' || rolsuper || rolcanlogin ORDER BY 1) "
                                 "FROM pg_roles").fetchone()
        fp["_largeobjects"] = c.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone()
        fp["_settings"] = c.execute("SELECT array_agg(setdatabase || ':' || setrole || ':' || setconfig::text) "
                                    "FROM pg_db_role_setting").fetchone()
    assert fp["detection"][0] == 974 + 360
    return fp


def cli_run(url, *args):
    return CliRunner().invoke(cli, ["--db", url, *args])


def assert_refused(url, victim, args, *expect):
    """Run the CLI; it must exit non-zero with a clear message, and change nothing."""
    before = fingerprint(url)
    r = cli_run(url, *args)
    after = fingerprint(url)
    assert after == before, f"database changed by {args!r}"
    victim_conn, _ = victim
    assert victim_conn.execute("SELECT 1").fetchone() == (1,), "superuser backend was terminated"
    assert r.exit_code != 0, f"{args!r} was accepted:\n{r.output}"
    assert isinstance(r.exception, SystemExit), f"{args!r}: traceback instead of a message: {r.exception!r}"
    msg = r.output.lower()
    assert "error:" in msg
    for e in expect:
        assert e.lower() in msg, f"{args!r}: expected {e!r} in {r.output!r}"
    return r


# --------------------------------------------------------------------------- catdb query: writes
WRITES = [
    ("INSERT INTO stage_run (stage, code_version) VALUES ('x', 'y')", "read-only"),
    ("INSERT INTO stage_run (stage, code_version) VALUES ('x', 'y') RETURNING id", "read-only"),
    ("UPDATE detection SET mag_auto = 0", "read-only"),
    ("UPDATE detection SET mag_auto = 0 RETURNING id", "read-only"),
    ("DELETE FROM detection", "read-only"),
    ("WITH d AS (DELETE FROM detection RETURNING id) SELECT count(*) FROM d", "read-only"),
    ("DROP TABLE detection", "read-only"),
    ("TRUNCATE detection", "read-only"),
    ("CREATE TABLE evil (a int)", "read-only"),
    ("CREATE TABLE evil AS SELECT * FROM detection", "read-only"),
    ("SELECT * INTO evil FROM detection", "read-only"),
    ("ALTER TABLE detection DROP COLUMN mag_auto", "read-only"),
    ("GRANT ALL ON detection TO PUBLIC", "read-only"),
    ("CREATE ROLE evil SUPERUSER LOGIN", "read-only"),
    ("ALTER ROLE catdb_reader SUPERUSER", "read-only"),
    ("COPY detection FROM '/etc/hostname'", "read-only"),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/catdb-pwned-{u}'", "read-only"),
    ("COPY (SELECT 1) TO '/tmp/catdb-pwned-{u}'", "read-only"),
    ("SET ROLE catdb", "read-only"),
    ("RESET ROLE", "read-only"),
    ("SET SESSION AUTHORIZATION catdb", "read-only"),
    ("SET TRANSACTION READ WRITE", "read-only"),
    ("SET default_transaction_read_only = off", "read-only"),
    ("COMMIT", "read-only"),
    ("BEGIN READ WRITE", "read-only"),
    ("DO $$ BEGIN DELETE FROM detection; END $$", "read-only"),
    ("CALL nothing()", "does not exist"),
    ("VACUUM FULL detection", "read-only"),
    ("LOCK TABLE detection IN ACCESS EXCLUSIVE MODE", "read-only"),
    ("SELECT lo_import('/etc/hostname')", "permission denied"),
    ("SELECT pg_read_file('/etc/passwd')", "permission denied"),
    ("SELECT nextval('detection_id_seq')", "read-only"),
    ("SELECT set_config('transaction_read_only', 'off', false), count(*) FROM detection", "read-write"),
    ("SELECT pg_reload_conf()", "permission denied"),
    ("EXPLAIN ANALYZE DELETE FROM detection", "read-only"),
]


@pytest.mark.parametrize("query,expect", WRITES, ids=[w[0][:40] for w in WRITES])
def test_query_refuses_writes(loaded, victim, query, expect):
    u = uuid.uuid4().hex
    assert_refused(loaded, victim, ["query", query.format(u=u)], expect)
    assert not os.path.exists(f"/tmp/catdb-pwned-{u}")


def test_query_runs_as_reader_even_after_switching_role(loaded, victim):
    """``set_config('role', 'none')`` inside the query must not give the login user's rights back."""
    _, pid = victim
    r = cli_run(loaded, "query", "-f", "csv", "SELECT set_config('role', 'none', false) AS r, current_user AS u, "
                                              "session_user AS s")
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[1].endswith("catdb_reader,catdb_reader")
    assert_refused(loaded, victim, ["query", f"SELECT set_config('role', 'none', false), pg_terminate_backend({pid})"],
                   "superuser")
    assert_refused(loaded, victim, ["query", "SELECT set_config('role', 'none', false), "
                                             "pg_read_file('/etc/passwd')"], "permission denied")


#: functions PostgreSQL 15 lets write in a read-only transaction (large objects)
RO_WRITERS = ["SELECT lo_from_bytea(0, 'x'::bytea) AS o", "SELECT lo_create(0) AS o",
              "SELECT lo_from_bytea(0, 'x'::bytea) AS o FROM generate_series(1, 3)"]


@pytest.mark.parametrize("query", RO_WRITERS)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_query_never_commits(loaded, victim, tmp_path, query, fmt):
    """What slips through a read-only transaction is rolled back: catdb query never commits."""
    before = fingerprint(loaded)
    out = ["-o", str(tmp_path / "x.parquet")] if fmt == "parquet" else []
    r = cli_run(loaded, "query", "-f", fmt, *out, query)
    assert r.exit_code == 0, r.output
    assert fingerprint(loaded) == before


def test_export_never_commits(loaded, victim, tmp_path):
    before = fingerprint(loaded)
    cli_run(loaded, "export", "SELECT lo_from_bytea(0, 'x'::bytea) AS o", "-o", str(tmp_path / "x.csv"))
    assert fingerprint(loaded) == before


MULTI = [
    "SELECT 1; DELETE FROM detection",
    "SELECT 1; COMMIT; BEGIN READ WRITE; RESET ROLE; CREATE TABLE evil (a int); COMMIT",
    "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE; RESET ROLE; DROP TABLE detection CASCADE",
    "SELECT 1 AS a) AS x; COMMIT; BEGIN READ WRITE; RESET ROLE; CREATE TABLE evil (a int); COMMIT; "
    "BEGIN; SELECT * FROM (SELECT 1 AS a",
]


@pytest.mark.parametrize("fmt", ["table", "csv", "votable", "fits", "parquet"])
@pytest.mark.parametrize("query", MULTI, ids=["delete", "commit", "session", "wrapped"])
def test_query_refuses_several_statements(loaded, victim, tmp_path, query, fmt):
    out = ["-o", str(tmp_path / f"x.{fmt}")] if fmt in ("fits", "parquet", "votable") else []
    r = assert_refused(loaded, victim, ["query", "-f", fmt, *out, query])
    assert "one statement" in r.output.lower() or "syntax error" in r.output.lower()
    assert not (tmp_path / f"x.{fmt}").exists()


def test_query_timeout_cannot_be_escaped(loaded, victim):
    assert_refused(loaded, victim, ["query", "--timeout", "0.5", "SELECT pg_sleep(5)"], "timeout")
    assert_refused(loaded, victim, ["query", "--timeout", "0.5",
                                    "SELECT set_config('statement_timeout', '0', false), pg_sleep(5)"], "timeout")
    assert_refused(loaded, victim, ["query", "--timeout", "0.5", "SET statement_timeout = 0"], "read-only")
    assert_refused(loaded, victim, ["query", "--timeout", "0.5", "-o", "/tmp/catdb-sleep.parquet",
                                    "SELECT pg_sleep(5) AS s"], "timeout")
    assert not os.path.exists("/tmp/catdb-sleep.parquet")
    assert_refused(loaded, victim, ["query", "--timeout", "0", "SELECT 1"], "--timeout")


# --------------------------------------------------------------------------- saved-query parameters
SAVED_INJECTIONS = [
    (["--saved", "stage-runs", "--param", "stage=x'; DROP TABLE detection; --"], None),
    (["--saved", "stage-runs", "--param", "limit=1; DELETE FROM detection"], "expected an integer"),
    (["--saved", "cone", "--param", "ra=1) OR true; DROP TABLE detection; --", "--param", "dec=0"],
     "expected a finite number"),
    (["--saved", "cone", "--param", "ra=nan", "--param", "dec=0"], "expected a finite number"),
    (["--saved", "cone", "--param", "ra=10", "--param", "dec=0", "--param", "table=detection; DROP TABLE exposure"],
     "expected one of"),
    (["--saved", "cone", "--param", "ra=10", "--param", "dec=0", "--param", "table=pg_authid"], "expected one of"),
    (["--saved", "calibrated-catalog", "--param", "exposure_id=1 OR 1=1"], "expected an integer"),
    (["--saved", "lightcurve", "--param", "object_id=1", "--param", "sql=DROP TABLE detection"],
     "unknown parameter"),
    (["--saved", "stage-runs; DROP TABLE detection"], "no saved query"),
]


@pytest.mark.parametrize("args,expect", SAVED_INJECTIONS, ids=[str(i) for i in range(len(SAVED_INJECTIONS))])
def test_saved_query_params_are_bound_not_pasted(loaded, victim, args, expect):
    before = fingerprint(loaded)
    r = cli_run(loaded, "query", "-f", "csv", *args)
    assert fingerprint(loaded) == before
    if expect is None:  # a text value: bound, so it matches nothing and the query runs
        assert r.exit_code == 0, r.output
        assert len(r.output.strip().splitlines()) == 1  # the header line only: no rows match
    else:
        assert r.exit_code != 0 and expect in r.output, r.output


def test_saved_text_param_is_a_value(loaded, victim):
    """A quote in a text parameter stays inside the value: the catalogue keeps its rows, none calibrated."""
    from astropy.table import Table

    before = fingerprint(loaded)
    eid = psycopg.connect(loaded).execute("SELECT min(id) FROM exposure").fetchone()[0]
    r = cli_run(loaded, "query", "-f", "csv", "--saved", "calibrated-catalog", "--param", f"exposure_id={eid}",
                "--param", "zp_band=r' OR '1'='1")
    assert r.exit_code == 0, r.output
    assert fingerprint(loaded) == before
    t = Table.read(r.output, format="ascii.csv")
    n = psycopg.connect(loaded).execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (eid,)).fetchone()[0]
    assert len(t) == n > 0 and set(t["exposure_id"]) == {eid}
    assert t["mag_cal"].mask.all()  # no zeropoint of band "r' OR '1'='1"


# --------------------------------------------------------------------------- catdb export
def test_export_table_name_and_columns_are_identifiers(loaded, victim, tmp_path):
    out = str(tmp_path / "x.csv")
    assert_refused(loaded, victim, ["export", "detection; DROP TABLE exposure", "-o", out], "neither a table")
    assert_refused(loaded, victim, ["export", "pg_authid", "-o", out], "pg_authid")
    assert_refused(loaded, victim, ["export", "detection", "-o", out, "--columns",
                                    'id",(SELECT rolpassword FROM pg_authid LIMIT 1) AS "x'], "does not exist")
    assert not os.path.exists(out)


def test_export_where_cannot_write(loaded, victim, tmp_path):
    out = str(tmp_path / "x.csv")
    assert_refused(loaded, victim, ["export", "detection", "-o", out, "--where", "id IN (DELETE FROM detection "
                                                                              "RETURNING id)"], "error")
    assert_refused(loaded, victim, ["export", "detection", "-o", out, "--where",
                                    "(SELECT count(*) FROM pg_authid) > 0"], "permission denied")
    assert_refused(loaded, victim, ["export", "catalog", "-o", out, "--where", "nextval('detection_id_seq') > 0"],
                   "detection_id_seq")


def test_export_sql_source_cannot_run_second_statement(loaded, victim, tmp_path):
    assert_refused(loaded, victim, ["export", "SELECT 1 AS a) AS x; COMMIT; BEGIN READ WRITE; RESET ROLE; "
                                    "CREATE TABLE pwned_src (a int); COMMIT; BEGIN; SELECT * FROM (SELECT 1 AS a",
                                    "-o", str(tmp_path / "x.csv")])


def test_export_where_cannot_run_second_statement(loaded, victim, tmp_path):
    assert_refused(loaded, victim, ["export", "exposure", "-o", str(tmp_path / "x.csv"), "--where",
                                    "true)) AS _src LIMIT 0; COMMIT; BEGIN READ WRITE; RESET ROLE; "
                                    "CREATE TABLE pwned_where (a int); COMMIT; BEGIN; "
                                    "SELECT * FROM (SELECT * FROM (SELECT * FROM exposure) AS _q WHERE (true"])


def test_export_catalog_where_cannot_run_second_statement(loaded, victim, tmp_path):
    assert_refused(loaded, victim, ["export", "catalog", "-o", str(tmp_path / "x.csv"), "--where",
                                    "true)) AS _src LIMIT 0; COMMIT; BEGIN READ WRITE; RESET ROLE; "
                                    "CREATE TABLE pwned_cat (a int); COMMIT; BEGIN; "
                                    "SELECT * FROM (SELECT 1 AS a WHERE (true"])


# --------------------------------------------------------------------------- catdb stage --where
def test_stage_where_bad_condition_is_a_clear_error(loaded, victim):
    """``catdb stage --where`` is SQL written by the database's owner (it runs with the writer's
    rights, by design); a broken condition is still a clear error and changes nothing."""
    before = fingerprint(loaded)
    r = cli_run(loaded, "stage", "exposure-summary", "--where", "e.no_such_column = 1")
    assert r.exit_code != 0 and "no_such_column" in r.output
    after = fingerprint(loaded)
    # the failed run is recorded in stage_run (by design); nothing else changed
    assert {k: v for k, v in after.items() if k != "stage_run"} == \
        {k: v for k, v in before.items() if k != "stage_run"}


def test_stage_where_cannot_run_second_statement(loaded, victim):
    before = fingerprint(loaded)
    r = cli_run(loaded, "stage", "exposure-summary", "--where",
                "true); CREATE TABLE pwned_stage (a int); SELECT e.id FROM exposure e WHERE (true")
    after = fingerprint(loaded)
    assert after["_relations"] == before["_relations"], "the second statement ran"
    assert r.exit_code != 0


def test_query_without_reader_login_sets_role(loaded, victim, monkeypatch):
    """When the server refuses a catdb_reader login, catdb query logs in as the user and SET ROLEs:
    still read-only, one statement, rolled back."""
    from catdb.db import safety
    from catdb.errors import DatabaseUnavailable

    real = safety.connect  # catdb.db.engine.connect, as reader_connection calls it

    def no_reader_login(url=None, **kw):
        if kw.get("user") == "catdb_reader":
            raise DatabaseUnavailable("password authentication failed for user catdb_reader")
        return real(url, **kw)

    monkeypatch.setattr(safety, "connect", no_reader_login)
    r = cli_run(loaded, "query", "-f", "csv", "SELECT current_user AS u, session_user AS s")
    assert r.exit_code == 0, r.output
    current, session = r.output.splitlines()[1].split(",")
    assert current == "catdb_reader" and session != "catdb_reader"  # logged in as the user, role switched
    assert_refused(loaded, victim, ["query", "DELETE FROM detection RETURNING id"], "read-only")
    assert_refused(loaded, victim, ["query", "SELECT 1; RESET ROLE"], "one statement")
    assert_refused(loaded, victim, ["query", "RESET ROLE"], "read-only")
