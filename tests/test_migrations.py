"""Migrations stand on their own, run up and down with data in the tables, and the code refuses a
database at another schema revision."""
import ast
import re
import textwrap
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.db import migrate
from catdb.db.engine import connect
from catdb.db.revision import SchemaRevisionError
from catdb.stages.base import run_stage

VERSIONS = Path(migrate.MIGRATIONS_DIR) / "versions"
FROZEN = Path(migrate.MIGRATIONS_DIR) / "frozen"
LIVE_SQL = Path(migrate.MIGRATIONS_DIR).parent / "sql"


# ---------------------------------------------------------------------------------------------
# each migration carries its own DDL
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(VERSIONS.glob("0*.py")), ids=lambda p: p.name[:4])
def test_migration_imports_no_catdb_code_and_reads_no_live_sql(path):
    """An old migration must not change meaning when the code changes: no import of catdb (schema,
    SQL helpers) and no read of ``catdb/sql``; the only file a migration may read is its frozen
    copy under ``catdb/migrations/frozen``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad = [a.name for a in node.names if a.name.split(".")[0] == "catdb"]
            assert not bad, f"{path.name}:{node.lineno} imports {bad}"
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0 and (node.module or "").split(".")[0] != "catdb", \
                f"{path.name}:{node.lineno} imports from {'.' * node.level}{node.module}"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            assert not node.value.endswith(".sql") or node.value.startswith("q3c_compat_"), \
                f"{path.name}:{node.lineno} names an SQL file {node.value!r} (write its text into the migration)"
    doc = tree.body[0]  # the module docstring may name files; the code may not read them
    code = "\n".join(path.read_text().splitlines()[doc.end_lineno:]) if ast.get_docstring(tree) else path.read_text()
    assert not re.search(r"""/\s*["']sql["']|parents\[2\]|resources\.files|catdb/sql/""", code), \
        f"{path.name} reads files of the package (catdb/sql?): write their text into the migration"


def test_frozen_q3c_port_is_the_live_one():
    """Migration 0001 installs its frozen copy of the SQL port of q3c.  When the live port
    (catdb/sql/q3c_compat.sql, used by catdb.spatial.install) is fixed, databases made with
    --spatial sql only get the fix from a new migration: this test fails until there is one."""
    frozen = sorted(FROZEN.glob("q3c_compat_*.sql"))
    assert frozen, "no frozen copy of the q3c SQL port under catdb/migrations/frozen"
    newest = frozen[-1]
    assert newest.read_text() == (LIVE_SQL / "q3c_compat.sql").read_text(), (
        f"catdb/sql/q3c_compat.sql differs from {newest.name}: add a migration that installs the new "
        f"text (CREATE OR REPLACE) where catdb_info.spatial_backend = 'sql', from a new frozen copy "
        f"catdb/migrations/frozen/q3c_compat_NNNN.sql")


# ---------------------------------------------------------------------------------------------
# every migration up and down, on a database holding rows
# ---------------------------------------------------------------------------------------------

SNAPSHOT = """
SELECT 'column', c.table_name || '.' || c.column_name || ' ' || c.data_type || ' ' || c.is_nullable || ' '
       || coalesce(c.column_default, '') || ' ' || coalesce(col_description((quote_ident(c.table_name))::regclass,
       c.ordinal_position::int), '')
FROM information_schema.columns c WHERE c.table_schema = current_schema()
UNION ALL SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = current_schema()
UNION ALL SELECT 'constraint', conrelid::regclass || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
          WHERE connamespace = current_schema()::regnamespace
UNION ALL SELECT 'view', viewname || ' ' || definition FROM pg_views WHERE schemaname = current_schema()
UNION ALL SELECT 'function', p.oid::regprocedure::text FROM pg_proc p
          WHERE p.pronamespace = current_schema()::regnamespace
UNION ALL SELECT 'table comment', relname || ' ' || coalesce(obj_description(oid, 'pg_class'), '')
          FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'v')
ORDER BY 1, 2
"""


def _snapshot(url):
    with psycopg.connect(url) as c:
        return [tuple(r) for r in c.execute(SNAPSHOT)]


def _populate_0001(url):
    """Rows a night leaves in the tables of revision 0001 (written as that revision's columns)."""
    with psycopg.connect(url) as c:
        run = c.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('ingest', '0.0', 'ok') "
                        "RETURNING id").fetchone()[0]
        e1 = c.execute(
            "INSERT INTO exposure (path, mjd_mid, site_lon, ra_center, dec_center, wcs_header, band, stage_run_id) "
            "VALUES ('n1/a.fits', 58568.2, -111.42, 124.6, 25.3, 'CTYPE1  = ''RA---TAN''', 'V', %s) RETURNING id",
            (run,)).fetchone()[0]
        e2 = c.execute("INSERT INTO exposure (path, mjd_mid, band, stage_run_id) "
                       "VALUES ('n1/b.fits', 58568.3, 'V', %s) RETURNING id", (run,)).fetchone()[0]
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec, mag_auto, magerr_auto, flags, stage_run_id) "
                  "SELECT e, g, 124.6 + g * 1e-4, 25.3, 15 + g * 0.1, 0.01, 0, %s "
                  "FROM unnest(ARRAY[%s, %s]::bigint[]) e, generate_series(1, 5) g", (run, e1, e2))
        obj = c.execute("INSERT INTO object (ra, dec, stage_run_id) VALUES (124.6001, 25.3, %s) RETURNING id",
                        (run,)).fetchone()[0]
        c.execute("INSERT INTO detection_object (detection_id, object_id, stage_run_id) "
                  "SELECT id, %s, %s FROM detection WHERE number = 1", (obj, run))
        c.execute("INSERT INTO zeropoint (exposure_id, band, zp, zp_err, method, stage_run_id) "
                  "VALUES (%s, 'V', 22.5, 0.02, 'pp', %s)", (e1, run))
        c.execute("INSERT INTO forced_source (object_id, exposure_id, ra, dec, flux, mag, stage_run_id) "
                  "VALUES (%s, %s, 124.6001, 25.3, 1000, 15.0, %s)", (obj, e2, run))
        c.execute("INSERT INTO refcat_source (catalog, ra, dec) VALUES ('gaia-dr2', 124.6, 25.3)")
    return e1, e2


COUNTED = ("exposure", "detection", "object", "detection_object", "zeropoint", "forced_source", "refcat_source",
           "stage_run")


def _counts(url):
    with psycopg.connect(url) as c:
        return {t: c.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED}


def test_every_migration_up_and_down_with_rows(empty_db_url):
    url = empty_db_url
    revs = [r for r, _ in migrate.history()]
    migrate.upgrade(url, revs[0])
    e1, e2 = _populate_0001(url)
    counts = _counts(url)
    assert counts["detection"] == 10
    up = {revs[0]: _snapshot(url)}
    for r in revs[1:]:
        assert migrate.upgrade(url, r) == r
        up[r] = _snapshot(url)
        assert _counts(url) == counts, f"rows lost by the upgrade to {r}"
    assert migrate.check(url) == []  # head built from the migrations == the models
    with psycopg.connect(url) as c:
        # 0011 filled the astrometric state and the observing night of the rows already there
        got = dict((i, (s, str(n) if n else None)) for i, s, n in
                   c.execute("SELECT id, wcs_status, night FROM exposure").fetchall())
        assert got[e1] == ("header", "2019-03-25")  # MJD 58568.2 = 26 March 04:48 UTC, 21:22 on the 25th at 111.42 W
        assert got[e2] == ("none", None)  # no site longitude: the night is not known
        # the views of 0003/0008 see the rows: object's detection calibrated with its exposure's zeropoint
        pts = c.execute("SELECT source, mag_cal FROM lightcurve_point WHERE kind = 'object' ORDER BY source, "
                        "exposure_id").fetchall()
        assert [p[0] for p in pts] == ["detection", "detection", "forced"]
        assert pts[0][1] == pytest.approx(15.1 + 22.5) and pts[1][1] is None and pts[2][1] == 15.0
        # 0019: no zeropoint, no calibrated error (was the instrumental error beside a NULL mag_cal)
        assert c.execute("SELECT DISTINCT magerr_cal FROM detection_calibrated WHERE exposure_id = %s",
                         (e2,)).fetchall() == [(None,)]
    # down one revision at a time: each schema is the one the upgrade made, the rows of the tables
    # that stay are kept
    for r in reversed(revs[:-1]):
        assert migrate.downgrade(url, r, yes=True) == r
        assert _snapshot(url) == up[r], f"downgrade to {r} does not restore the schema of revision {r}"
        assert _counts(url) == counts, f"rows lost by the downgrade to {r}"
    assert migrate.downgrade(url, "base", yes=True) is None
    with psycopg.connect(url) as c:
        left = c.execute("SELECT count(*) FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
                         "AND relkind IN ('r', 'v') AND relname <> 'alembic_version'").fetchone()[0]
        assert left == 0
        assert c.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'q3c%'").fetchone()[0] == 0
    assert migrate.upgrade(url) == revs[-1] and migrate.check(url) == []


def test_sql_port_installed_by_0001_answers_like_q3c(empty_db_url):
    """--spatial sql: the frozen port of migration 0001 is the one in the database and it finds the
    same cone as the extension's formula (q3c_dist)."""
    migrate.upgrade(empty_db_url, "0001", spatial_backend="sql")
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'q3c'").fetchone()[0] == 0
        assert c.execute("SELECT q3c_version()").fetchone()[0].endswith("catdb-sql")
        n = c.execute("SELECT count(*) FROM generate_series(1, 100) g "
                      "WHERE q3c_radial_query(124.6 + g * 1e-4, 25.3, 124.6, 25.3, 0.00505)").fetchone()[0]
        assert n == 55  # RA steps of 1e-4 deg shrink by cos(25.3 deg) on the sky: 55 within 0.00505 deg


def test_unknown_spatial_backend_refused_before_anything_runs(empty_db_url):
    from catdb.errors import CatdbError

    with pytest.raises(CatdbError, match="spatial backend must be one of"):
        migrate.upgrade(empty_db_url, spatial_backend="healpix")
    assert migrate.current(empty_db_url) is None


# ---------------------------------------------------------------------------------------------
# connect() / run_stage refuse a database at another revision
# ---------------------------------------------------------------------------------------------

def test_connect_at_head_leaves_the_connection_idle(fresh_db_url):
    from psycopg.pq import TransactionStatus

    with connect(fresh_db_url) as c:
        assert c.info.transaction_status == TransactionStatus.IDLE  # a stage's commit logic relies on it
        assert c.execute("SELECT count(*) FROM stage_run").fetchone()[0] == 0


def test_database_behind_is_refused_with_the_command_that_fixes_it(fresh_db_url):
    head = migrate.head()
    prev = migrate.downgrade(fresh_db_url, "-1", yes=True)
    assert prev != head
    with pytest.raises(SchemaRevisionError, match=rf"revision {prev}, this catdb expects {head}: "
                                                   r"run `catdb db upgrade`"):
        connect(fresh_db_url)
    # a connection opened elsewhere: run_stage checks it and records nothing
    with psycopg.connect(fresh_db_url) as c:
        with pytest.raises(SchemaRevisionError, match="catdb db upgrade"):
            run_stage("exposure-summary", conn=c)
        assert c.execute("SELECT count(*) FROM stage_run").fetchone()[0] == 0
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "stage", "exposure-summary"])
    assert r.exit_code == 1 and "run `catdb db upgrade`" in r.output, r.output
    # what the message says works
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "db", "upgrade"])
    assert r.exit_code == 0 and f"database at revision {head}" in r.output
    assert run_stage("exposure-summary", url=fresh_db_url).status == "ok"


def test_database_not_initialised_stage_refused_query_allowed(empty_db_url):
    """No catdb schema: a stage says `catdb db init`; a plain query still runs (any database)."""
    with connect(empty_db_url) as c:
        with pytest.raises(SchemaRevisionError, match="never initialised.*run `catdb db init`"):
            run_stage("exposure-summary", conn=c)
    r = CliRunner().invoke(cli, ["--db", empty_db_url, "stage", "exposure-summary"])
    assert r.exit_code == 1 and "run `catdb db init`" in r.output, r.output
    r = CliRunner().invoke(cli, ["--db", empty_db_url, "query", "-f", "csv", "SELECT 41 + 1 AS answer"])
    assert r.exit_code == 0 and r.output.splitlines() == ["answer", "42"], r.output


def test_database_migrated_by_a_newer_catdb_is_refused(fresh_db_url, tmp_path):
    head = migrate.head()
    with psycopg.connect(fresh_db_url) as c:  # what a newer catdb's migration leaves
        c.execute("UPDATE alembic_version SET version_num = '9001'")
    with pytest.raises(SchemaRevisionError, match=rf"revision 9001, which this catdb \(newest revision {head}\) "
                                                   r"does not know: a newer catdb migrated it"):
        connect(fresh_db_url)
    with pytest.raises(SchemaRevisionError, match="a newer catdb migrated it"):
        migrate.upgrade(fresh_db_url)  # nor "upgraded" to an older head
    p = _one_step_pipeline(tmp_path)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)])
    assert r.exit_code == 1 and "a newer catdb migrated it" in r.output, r.output


def _one_step_pipeline(tmp_path):
    """A pipeline TOML of one ``exposure-summary`` step (``catdb run`` checks the schema first)."""
    p = tmp_path / "p.toml"
    p.write_text(textwrap.dedent(f"""
        [pipeline]
        name = "t"
        outdir = "{tmp_path}/out"
        [[step]]
        stage = "exposure-summary"
        """))
    return p


def test_catdb_run_still_initialises_a_new_database(empty_db_url, tmp_path):
    p = _one_step_pipeline(tmp_path)
    r = CliRunner().invoke(cli, ["--db", empty_db_url, "run", str(p)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "initialising the database" in r.output and migrate.current(empty_db_url) == migrate.head()
    with connect(empty_db_url) as c:
        assert c.execute("SELECT status FROM stage_run WHERE stage = 'exposure-summary'").fetchone()[0] == "ok"
