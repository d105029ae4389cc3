"""Schema and migrations on a real server."""
import numpy as np
import psycopg
import pytest

from catdb.db import migrate
from catdb.errors import CatdbError
from catdb.schema import metadata

PUBLIC_COLUMNS = {
    "exposure": ["id", "path", "sha256", "hdu", "instrument", "filter", "image_type", "mjd_mid", "exptime",
                 "airmass", "fwhm", "ra_center", "dec_center", "radius"],
    "detection": ["id", "exposure_id", "number", "ra", "dec", "x", "y", "flux_auto", "fluxerr_auto", "mag_auto",
                  "magerr_auto", "flags"],
    "object": ["id", "ra", "dec", "n_detections"],
    "zeropoint": ["exposure_id", "band", "zp", "zp_err", "n_used", "method", "stage_run_id"],
    "refcat_source": ["catalog", "source_id", "ra", "dec", "epoch", "pmra", "pmdec", "parallax"],
    "forced_source": ["object_id", "exposure_id", "flux", "flux_err", "mag"],
    "stage_run": ["stage", "params", "code_version", "started_at", "finished_at", "counts", "status"],
}


def test_init_on_empty_server(empty_db_url):
    assert migrate.current(empty_db_url) is None
    assert migrate.upgrade(empty_db_url) == migrate.head()
    assert migrate.check(empty_db_url) == []
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT q3c_version()").fetchone()[0]
        assert c.execute("SELECT value FROM catdb_info WHERE key = 'spatial_backend'").fetchone()[0] == "q3c"


def test_public_columns_and_comments(conn):
    for table, cols in PUBLIC_COLUMNS.items():
        rows = conn.execute(
            "SELECT a.attname, col_description(a.attrelid, a.attnum) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped", (table,)).fetchall()
        have = dict(rows)
        for c in cols:
            assert c in have, f"{table}.{c} missing"
        # every column has a description
        assert all(v for v in have.values()), (
            f"{table}: columns without comment: {[k for k, v in have.items() if not v]}")
    unit = conn.execute("SELECT col_description('exposure'::regclass, "
                        "(SELECT attnum FROM pg_attribute WHERE attrelid='exposure'::regclass AND attname='mjd_mid'))"
                        ).fetchone()[0]
    assert unit.endswith("[d]")


def test_q3c_indexes_exist_and_are_used(conn):
    names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%q3c_ang2ipix%'")}
    assert {"ix_detection_q3c", "ix_exposure_q3c", "ix_refcat_source_q3c", "ix_object_q3c"} <= names
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT id FROM detection WHERE q3c_radial_query(ra, dec, 124.6, 25.3, 0.1)"))
    assert "ix_detection_q3c" in plan
    conn.rollback()


def test_roles_created(conn):
    roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'catdb_%'")}
    assert {"catdb_reader", "catdb_writer"} <= roles
    conn.execute("SET ROLE catdb_reader")
    conn.execute("SELECT count(*) FROM detection")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO catdb_info VALUES ('x', 'y')")
    conn.rollback()


def test_downgrade_to_base_and_back_with_rows(fresh_db_url):
    with psycopg.connect(fresh_db_url) as c:
        eid = c.execute("INSERT INTO exposure (path, hdu, mjd_mid) VALUES ('a.fits', 0, 58568.6) RETURNING id"
                        ).fetchone()[0]
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec) VALUES (%s, 1, 124.6, 25.3)", (eid,))
        c.commit()
    # refused (data would go): the message lists each table with its rows, and nothing changed
    with pytest.raises(CatdbError, match=r"would delete data \(.*detection: 1 row;.*exposure: 1 row") as e:
        migrate.downgrade(fresh_db_url, "base")
    assert "stage_run" not in str(e.value)  # an empty table is no loss
    assert migrate.current(fresh_db_url) == migrate.head()
    with psycopg.connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == 1
    assert migrate.downgrade(fresh_db_url, "base", yes=True) is None
    with psycopg.connect(fresh_db_url) as c:
        left = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                         "AND tablename <> 'alembic_version'").fetchone()[0]
        assert left == 0
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'q3c'").fetchone()[0] == 0
    assert migrate.upgrade(fresh_db_url) == migrate.head()
    assert migrate.check(fresh_db_url) == []
    with psycopg.connect(fresh_db_url) as c:
        c.execute("INSERT INTO exposure (path) VALUES ('b.fits')")
        assert c.execute("SELECT count(*) FROM exposure").fetchone()[0] == 1


def test_check_reports_drift(fresh_db_url):
    with psycopg.connect(fresh_db_url) as c:
        c.execute("ALTER TABLE detection DROP COLUMN snr")
        c.commit()
    diffs = migrate.check(fresh_db_url)
    assert any("snr" in str(d) for d in diffs)


def test_every_table_in_models_is_in_database(conn):
    have = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert set(metadata.tables) <= have
    # ALL_TABLES (dependency order, for users dumping or truncating) lists every table the migrations made
    from catdb.schema import ALL_TABLES
    assert {t.name for t in ALL_TABLES} == have - {"alembic_version"}


def test_init_with_sql_spatial_backend(empty_db_url):
    """`catdb db init --spatial sql`: catdb's SQL port of q3c, same tables and indexes, same answers."""
    migrate.upgrade(empty_db_url, spatial_backend="sql")
    assert migrate.check(empty_db_url) == []
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT value FROM catdb_info WHERE key = 'spatial_backend'").fetchone()[0] == "sql"
        assert c.execute("SELECT count(*) FROM pg_extension WHERE extname = 'q3c'").fetchone()[0] == 0
        assert c.execute("SELECT q3c_version()").fetchone()[0].endswith("catdb-sql")
        eid = c.execute("INSERT INTO exposure (path) VALUES ('x') RETURNING id").fetchone()[0]
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec) SELECT %s, g, 124.6 + g * 1e-4, 25.3 "
                  "FROM generate_series(1, 100) g", (eid,))
        n = c.execute("SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, 124.6, 25.3, 0.00505)"
                      ).fetchone()[0]
        from astropy.coordinates import SkyCoord

        g = np.arange(1, 101)
        sep = SkyCoord(124.6 + g * 1e-4, 25.3, unit="deg").separation(SkyCoord(124.6, 25.3, unit="deg")).deg
        assert n == int((sep < 0.00505).sum()) == 55  # RA steps shrink by cos(dec) on the sky
        # the science function of migration 0008 runs on the SQL port too, with the same rows and distances
        got = c.execute("SELECT d.number, f.dist_arcsec FROM detections_in_cone(124.6, 25.3, 0.00505) f "
                        "JOIN detection d ON d.id = f.detection_id ORDER BY d.number").fetchall()
        assert [r[0] for r in got] == list(g[sep < 0.00505])
        np.testing.assert_allclose([r[1] for r in got], sep[sep < 0.00505] * 3600, atol=1e-6)
    migrate.downgrade(empty_db_url, "base", yes=True)
    with psycopg.connect(empty_db_url) as c:
        assert c.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'q3c%'").fetchone()[0] == 0


def test_cli_downgrade_lists_losses_and_needs_yes(fresh_db_url):
    """``catdb db downgrade``: a step that drops a column holding values is refused, one that drops
    nothing with rows goes through."""
    from click.testing import CliRunner

    from catdb.cli.main import cli

    with psycopg.connect(fresh_db_url) as c:
        c.execute("INSERT INTO exposure (path, hdu, ccd_temp) VALUES ('a.fits', 0, -110)")
        c.execute("INSERT INTO exposure (path, hdu) VALUES ('b.fits', 0)")
    # head -> 0011 drops ingest_lock, the ephemeris and ALCDEF tables (empty) and stage_run columns (no runs)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "db", "downgrade", "0011"])
    assert r.exit_code == 0 and "database at revision 0011" in r.output, r.output
    # 0011 -> 0010 drops exposure.ccd_temp (1 value) and exposure.wcs_status (2 values)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "db", "downgrade", "0010"])
    assert r.exit_code == 1
    assert "exposure.ccd_temp: 1 row" in r.output and "exposure.wcs_status: 2 rows" in r.output
    assert "--yes" in r.output and migrate.current(fresh_db_url) == "0011"
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "db", "downgrade", "0010", "--yes"])
    assert r.exit_code == 0 and migrate.current(fresh_db_url) == "0010"
    assert migrate.upgrade(fresh_db_url) == migrate.head()


@pytest.mark.spatial_backends()
def test_check_names_a_dropped_index_and_restore_indexes_creates_it(fresh_db_url):
    """A dropped q3c index (every cone search a sequential scan) and a dropped B-tree index of the schema:
    ``catdb db check`` names each with its table and fix and exits 1; ``catdb db restore-indexes`` creates
    them from the schema's definition, the planner uses the q3c one again, and the check passes."""
    from click.testing import CliRunner

    from catdb.cli.main import cli

    cone = "EXPLAIN SELECT id FROM detection WHERE q3c_radial_query(ra, dec, 124.6, 25.3, 0.1)"
    with psycopg.connect(fresh_db_url) as c:
        c.execute("DROP INDEX ix_detection_q3c")
        c.execute("DROP INDEX ix_detection_exposure_id")
    run = CliRunner()
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "check"])
    assert r.exit_code == 1, r.output
    lines = r.output.splitlines()
    q3c = [ln for ln in lines if "ix_detection_q3c" in ln]
    assert len(q3c) == 1 and "index ix_detection_q3c on detection is missing" in q3c[0]
    assert "cone search" in q3c[0] and "catdb db restore-indexes" in q3c[0]
    assert "CREATE INDEX ix_detection_q3c ON detection (q3c_ang2ipix(ra, dec))" in q3c[0]
    assert any("index ix_detection_exposure_id on detection is missing" in ln and "(exposure_id, number)" in ln
               for ln in lines), r.output
    assert "2 difference(s)" in r.output
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "restore-indexes"])
    assert r.exit_code == 0, r.output
    assert "ix_detection_q3c" in r.output and "ix_detection_exposure_id" in r.output
    with psycopg.connect(fresh_db_url) as c:
        c.execute("SET enable_seqscan = off")  # an empty table: ask whether the index can serve the cone
        assert "ix_detection_q3c" in "\n".join(row[0] for row in c.execute(cone))
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "check"])
    assert r.exit_code == 0 and "agree" in r.output, r.output
    r = run.invoke(cli, ["--db", fresh_db_url, "db", "restore-indexes"])
    assert r.exit_code == 0 and "no index missing" in r.output, r.output
