"""Issue #15 "ingest at the COPY limit": detection without per-row foreign keys (migration 0016),
``extra`` opt-in, the catalogue read ahead of the database work, the binary rows encoded ahead."""
from __future__ import annotations

import numpy as np
import psycopg
import pytest

from catdb.db import migrate
from catdb.errors import InputError
from tests.helpers import LCO

LDAC = LCO / "ldac_test_catalog.fits"
ORACDR = LCO / "oracdr_test_catalog.fits"
CORRUPT = LCO / "ldac_test_catalog_corrupt.fits"

need_lco = pytest.mark.skipif(not LDAC.exists(), reason=f"LCO test data missing: {LDAC}")


def _before_0016() -> str:
    from alembic.script import ScriptDirectory

    from catdb.db.migrate import _alembic

    with _alembic(None) as cfg:
        return ScriptDirectory.from_config(cfg).get_revision("0016").down_revision


def _fks(c) -> set:
    return {r[0] for r in c.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'detection'::regclass "
                                    "AND contype = 'f'")}


def _populate(c):
    """Two exposures (one per run) with three and two detections; returns (exposure ids, run ids)."""
    runs = [c.execute("INSERT INTO stage_run (stage, code_version) VALUES ('ingest-catalog', 't') RETURNING id"
                      ).fetchone()[0] for _ in range(2)]
    eids = [c.execute("INSERT INTO exposure (path, stage_run_id) VALUES (%s, %s) RETURNING id", (f"e{i}.fits", r)
                      ).fetchone()[0] for i, r in enumerate(runs)]
    for eid, run, n in zip(eids, runs, (3, 2)):
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec, stage_run_id) "
                  "SELECT %s, g, 124.6 + g * 1e-4, 25.3, %s FROM generate_series(1, %s) g", (eid, run, n))
    c.commit()
    return eids, runs


def test_migration_0016_keeps_rows_and_cascades_by_trigger(fresh_db_url):
    prev = _before_0016()
    migrate.downgrade(fresh_db_url, prev)
    with psycopg.connect(fresh_db_url) as c:
        assert _fks(c) == {"fk_detection_exposure_id_exposure", "fk_detection_stage_run_id_stage_run"}
        eids, runs = _populate(c)
        before = c.execute("SELECT id, exposure_id, number, ra, dec, stage_run_id FROM detection ORDER BY id"
                           ).fetchall()
    migrate.upgrade(fresh_db_url)
    assert migrate.check(fresh_db_url) == []
    with psycopg.connect(fresh_db_url) as c:
        assert _fks(c) == set()
        assert c.execute("SELECT id, exposure_id, number, ra, dec, stage_run_id FROM detection ORDER BY id"
                         ).fetchall() == before
        # deleting an exposure deletes its detections (statement trigger), not the others'
        c.execute("DELETE FROM exposure WHERE id = %s", (eids[0],))
        assert c.execute("SELECT exposure_id, count(*) FROM detection GROUP BY 1").fetchall() == [(eids[1], 2)]
        # deleting a stage run leaves its detections with stage_run_id NULL (as the key's SET NULL did)
        c.execute("DELETE FROM stage_run WHERE id = %s", (runs[1],))
        assert c.execute("SELECT count(*), count(stage_run_id) FROM detection").fetchone() == (2, 0)
        c.rollback()
        # TRUNCATE exposure empties detection too, also when both are named
        c.execute("TRUNCATE exposure CASCADE")
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == 0
        c.rollback()
        c.execute("TRUNCATE exposure, detection CASCADE")
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == 0
        c.rollback()
        # the aperture arrays and extra carry no statistics (ANALYZE after an ingest is half as long)
        stats = dict(c.execute("SELECT attname, attstattarget FROM pg_attribute WHERE attrelid = "
                               "'detection'::regclass AND attname IN ('flux_aper', 'extra', 'mag_auto')"))
        assert stats["flux_aper"] == 0 and stats["extra"] == 0 and stats["mag_auto"] != 0
    # downgrade: both keys back, rows kept
    migrate.downgrade(fresh_db_url, prev)
    with psycopg.connect(fresh_db_url) as c:
        assert _fks(c) == {"fk_detection_exposure_id_exposure", "fk_detection_stage_run_id_stage_run"}
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == 5
    migrate.upgrade(fresh_db_url)


def test_downgrade_0016_refuses_orphan_detections(fresh_db_url):
    with psycopg.connect(fresh_db_url) as c:
        eids, runs = _populate(c)
        # SQL that bypasses catdb can insert a detection without its exposure: no per-row check any more
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec) VALUES (%s, 1, 10, 10)", (max(eids) + 100,))
        # a dangling stage_run_id is set NULL by the downgrade, as the key's ON DELETE SET NULL would have
        c.execute("UPDATE detection SET stage_run_id = %s WHERE exposure_id = %s", (max(runs) + 100, eids[0]))
        c.commit()
    with pytest.raises(Exception, match="1 detection rows have no exposure"):
        migrate.downgrade(fresh_db_url, _before_0016())
    assert migrate.current(fresh_db_url) == migrate.head()  # nothing changed
    with psycopg.connect(fresh_db_url) as c:
        assert _fks(c) == set()
        c.execute("DELETE FROM detection WHERE exposure_id = %s", (max(eids) + 100,))
        c.commit()
    migrate.downgrade(fresh_db_url, _before_0016())
    with psycopg.connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*), count(stage_run_id) FROM detection").fetchone() == (5, 2)
    migrate.upgrade(fresh_db_url)


@need_lco
def test_extra_is_opt_in(conn, tmp_path):
    from catdb.ingest.load import ingest_catalogs
    from catdb.ingest.sextractor import detection_columns, read_catalog

    cat = read_catalog(LDAC)
    unmapped = set(detection_columns(cat).extra)
    assert {"ISOAREA_IMAGE", "MU_THRESHOLD"} <= unmapped

    def load(extra):
        res = ingest_catalogs(conn, [LDAC], extra=extra)
        conn.commit()
        eid = res[0].exposure_ids[0]
        rows = conn.execute("SELECT number, extra FROM detection WHERE exposure_id = %s ORDER BY number",
                            (eid,)).fetchall()
        params = conn.execute("SELECT s.params->'extra' FROM stage_run s JOIN exposure e ON e.stage_run_id = s.id "
                              "WHERE e.id = %s", (eid,)).fetchone()[0]
        conn.execute("DELETE FROM exposure WHERE id = %s", (eid,))  # its detections go with it (trigger)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (eid,)).fetchone()[0] == 0
        return rows, params

    rows, params = load(None)  # default: no extra
    assert len(rows) == 974 and all(r[1] is None for r in rows) and params is None
    rows, params = load("ISOAREA_IMAGE, MU_THRESHOLD")
    assert params == ["ISOAREA_IMAGE", "MU_THRESHOLD"]
    assert all(set(r[1]) == {"ISOAREA_IMAGE", "MU_THRESHOLD"} for r in rows)
    num = np.asarray(cat.table["NUMBER"])
    iso = dict(zip(num.tolist(), np.asarray(cat.table["ISOAREA_IMAGE"]).tolist()))
    assert all(r[1]["ISOAREA_IMAGE"] == iso[r[0]] for r in rows)
    rows, params = load("all")
    assert params == "all" and set(rows[0][1]) == unmapped
    # a column with a detection column of its own (or absent) is refused, naming it and the file
    with pytest.raises(InputError, match=r"MAG_AUTO.*expected some of .*ISOAREA_IMAGE") as e:
        ingest_catalogs(conn, [LDAC], extra=["MAG_AUTO"])
    assert str(LDAC) in str(e.value)
    conn.rollback()
    with pytest.raises(ValueError):
        ingest_catalogs(conn, [LDAC], extra=3)


@need_lco
def test_serial_read_ahead_reports_each_file(conn, tmp_path):
    """The next file is read while the current one is written: errors stay with their file, in order."""
    from catdb.ingest.load import ingest_catalogs

    missing = tmp_path / "missing.fits"
    paths = [ORACDR, missing, CORRUPT, LDAC, LDAC]
    res = ingest_catalogs(conn, paths, on_error="collect")
    conn.commit()
    assert [r.status for r in res] == ["loaded", "failed", "failed", "loaded", "unchanged"]
    assert "no such file" in res[1].error and str(missing) in res[1].error
    assert str(CORRUPT) in res[2].error
    n = {e: c for e, c in conn.execute("SELECT exposure_id, count(*) FROM detection GROUP BY 1")}
    assert n[res[0].exposure_ids[0]] == 360 and n[res[3].exposure_ids[0]] == 974
    # raise mode: the first bad file is raised, the file before it stays loaded
    conn.execute("DELETE FROM exposure")
    conn.commit()
    with pytest.raises(InputError, match="no such file"):
        ingest_catalogs(conn, [ORACDR, missing, LDAC])
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM detection").fetchone()[0] == 360


@need_lco
def test_attach_catalog_needs_its_exposure(conn):
    from catdb.ingest.load import attach_catalog

    with pytest.raises(InputError, match="no exposure 987654"):
        attach_catalog(conn, 987654, LDAC, run_id=None)
    conn.rollback()


@need_lco
def test_header_text_is_the_cards_as_read():
    """exposure.header: each card as read from the file (what astropy's str(card) gives for valid cards);
    a card changed in Python is formatted anew."""
    from catdb.ingest.headers import header_text
    from catdb.ingest.sextractor import read_catalogs

    for path in (LDAC, ORACDR):
        for cat in read_catalogs(path):
            h = cat.header
            if not len(h):
                continue
            assert header_text(h) == "\n".join(str(c) for c in h.cards)
            h["OBJECT"] = "changed"
            assert "OBJECT  = 'changed '" in header_text(h)


def test_encode_rows_first_column_filled_later():
    """copy.encode_rows + with_first gives the bytes of copy.encode_binary with the value in place."""
    from catdb.db import copy as cc

    types = {"exposure_id": ("int8", None), "number": ("int4", None), "ra": ("float8", None),
             "mag_auto": ("float4", None), "flux_aper": ("_float4", "float4"), "extra": ("jsonb", None)}
    rng = np.random.default_rng(3)
    n = 257
    mag = rng.normal(size=n)
    mag[::5] = np.nan
    for with_text in (False, True):
        cols = {"exposure_id": np.zeros(n, dtype=np.int64), "number": np.arange(n), "ra": rng.uniform(0, 360, n),
                "mag_auto": mag, "flux_aper": rng.normal(size=(n, 4))}
        if with_text:
            cols["extra"] = cc.json_text({"A": mag, "B": np.arange(n)}, n)
        want = cc.encode_binary({**cols, "exposure_id": np.full(n, 2**40 + 7)}, types)
        enc = cc.encode_rows(cols, types)
        assert enc.with_first(2**40 + 7) == want
        assert enc.with_first(5) == cc.encode_binary({**cols, "exposure_id": np.full(n, 5)}, types)
    # a first column that is not int8, or a scalar column given a 2-D array: no encoder (CSV path)
    assert cc.encode_rows({"number": np.arange(3)}, types) is None
    assert cc.encode_rows({"exposure_id": np.zeros(3, np.int64), "ra": np.zeros((3, 2))}, types) is None
