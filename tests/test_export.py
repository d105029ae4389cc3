"""catdb export: real ingested SExtractor catalogues out to VOTable/FITS/Parquet/CSV/ECSV and back.

Every file is read back with astropy/pyarrow (values, units, descriptions, vectors, NULLs)
and, where STILTS is installed, with STILTS (the reader TOPCAT users rely on).
"""
import json
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import CatdbError
from catdb.export.formats import export_catalog, export_table, ledger_table
from catdb.export.table import query_table
from catdb.ingest.load import ingest_catalogs
from catdb.db.provenance import finish_run, start_run
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"
STILTS = shutil.which("stilts")


@pytest.fixture(scope="module")
def loaded(db_url):
    """The LDAC catalogue (974 rows, no apertures) and the FITS_1.0 one (360 rows, 4 apertures), with every
    column without a detection column kept in ``extra`` (``--extra all``: the jsonb exports are tested)."""
    from catdb.db.engine import connect

    c = connect(db_url)
    ingest_catalogs(c, [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits"], extra="all")
    c.commit()
    ids = [r[0] for r in c.execute("SELECT id FROM exposure ORDER BY id")]
    c.close()
    return ids


def _read(path, fmt):
    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(path, format=fmt)


def _db(conn, q, *a):
    return conn.execute(q, a).fetchall()


def test_query_table_carries_units_and_descriptions(conn, loaded):
    t = query_table(conn, "SELECT d.ra, d.flux_auto, e.mjd_mid FROM detection d JOIN exposure e "
                          "ON e.id = d.exposure_id LIMIT 2")
    assert str(t["ra"].unit) == "deg" and t["ra"].description.startswith("Right ascension")
    assert str(t["flux_auto"].unit) == "adu" and str(t["mjd_mid"].unit) == "d"


def test_votable_fields_values_vectors_nulls(conn, loaded, tmp_path):
    out = tmp_path / "det.vot"
    res = export_table(conn, "detection", out, where="exposure_id IS NOT NULL")
    assert res.format == "votable" and res.n_rows == 974 + 360
    xml = out.read_text()
    # units and descriptions really are in the XML
    assert '<FIELD ID="ra" datatype="double" name="ra" ucd="pos.eq.ra;meta.main" unit="deg">' in xml
    assert "Right ascension (ICRS; ALPHAWIN_J2000 or ALPHA_J2000)" in xml
    assert 'arraysize="4"' in xml and 'name="flux_aper"' in xml
    t = _read(out, "votable")
    assert len(t) == res.n_rows
    assert str(t["ra"].unit) == "deg" and str(t["flux_auto"].unit) == "adu"
    assert t["ra"].description.startswith("Right ascension")
    db = dict((r[0], r[1:]) for r in _db(conn, "SELECT id, ra, dec, flux_aper, extra, mag_auto FROM detection"))
    ids = np.asarray(t["id"])
    ra_db = np.array([db[i][0] for i in ids])
    assert np.array_equal(np.asarray(t["ra"]), ra_db)  # doubles survive exactly
    # aperture vectors: 4 elements where the catalogue had them, NaN where it had none
    ap = np.asarray(t["flux_aper"])
    assert ap.shape == (len(t), 4)
    with_ap = np.array([db[i][2] is not None for i in ids])
    assert with_ap.sum() == 360
    np.testing.assert_allclose(ap[with_ap], np.array([db[i][2] for i in ids[with_ap]], dtype=np.float32))
    assert np.isnan(ap[~with_ap]).all()
    # jsonb as JSON text; NULL mag_auto (non-positive FLUX_AUTO: no instrumental magnitude) masked
    k = int(np.flatnonzero(ids == ids[0])[0])
    assert json.loads(str(t["extra"][k])) == db[ids[0]][3]
    null_mag = np.array([db[i][4] is None for i in ids])
    assert np.array_equal(np.ma.getmaskarray(t["mag_auto"]), null_mag)


def test_votable_ucds_and_timesys(conn, loaded, tmp_path):
    """FIELDs carry the UCDs of catdb.schema.ucd (as the TAP service's do); MJD and timestamp columns
    point at VOTable 1.4 TIMESYS elements (UTC; MJD origin), so astropy reads them as times."""
    from astropy.io.votable import parse
    from astropy.time import Time

    from catdb.export.formats import export_query
    from psycopg import sql

    out = tmp_path / "t.vot"
    export_query(conn, sql.SQL("SELECT d.id, d.ra, d.dec, d.mag_auto, e.mjd_mid, e.exptime, r.started_at, "
                               "d.ra + 0 AS ra_shifted FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                               "JOIN stage_run r ON r.id = e.stage_run_id ORDER BY d.id LIMIT 5"), out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = parse(str(out))
    tab = vot.get_first_table()
    f = {x.name: x for x in tab.fields}
    assert f["ra"].ucd == "pos.eq.ra;meta.main" and f["dec"].ucd == "pos.eq.dec;meta.main"
    assert f["id"].ucd == "meta.id;meta.main" and f["mag_auto"].ucd == "phot.mag"
    assert f["mjd_mid"].ucd == "time.epoch" and f["exptime"].ucd == "time.duration;obs.exposure"
    assert f["ra_shifted"].ucd is None                      # computed: no UCD rather than a guess
    ts = {t.ID: t for t in vot.resources[0].time_systems}
    assert f["mjd_mid"].ref in ts and f["started_at"].ref in ts and f["exptime"].ref is None
    mjd_sys, iso_sys = ts[f["mjd_mid"].ref], ts[f["started_at"].ref]
    assert (mjd_sys.timescale, mjd_sys.timeorigin, mjd_sys.refposition) == ("UTC", "MJD-origin", "TOPOCENTER")
    assert iso_sys.timescale == "UTC" and iso_sys.timeorigin is None and f["started_at"].xtype == "timestamp"
    # the values: MJD (UTC) as in the database, which with the TIMESYS make these times
    t = tab.to_table()
    db = dict(_db(conn, "SELECT d.id, e.mjd_mid FROM detection d JOIN exposure e ON e.id = d.exposure_id"))
    mjd = np.asarray(t["mjd_mid"], dtype=float)
    np.testing.assert_allclose(mjd, [db[i] for i in t["id"]], rtol=0, atol=1e-9)
    assert Time(mjd, format="mjd", scale=mjd_sys.timescale.lower()).scale == "utc"
    if STILTS:
        r = subprocess.run([STILTS, "votlint", f"in={out}"], capture_output=True, text=True, timeout=120)
        assert "ERROR" not in r.stdout + r.stderr, r.stdout + r.stderr


def test_fits_tunit_tcomm_tnull_and_iso_times(conn, loaded, tmp_path):
    from astropy.io import fits

    out = tmp_path / "det.fits"
    export_table(conn, "detection", out, columns=["id", "ra", "dec", "flux_aper", "imaflags", "flags", "extra"],
           where=f"exposure_id = {loaded[1]:d}")
    with fits.open(out) as h:
        hdr, data = h[1].header, h[1].data
        assert hdr["NAXIS2"] == 360 and len(data) == 360
        names = [hdr[f"TTYPE{i}"] for i in range(1, hdr["TFIELDS"] + 1)]
        i_ra = names.index("ra") + 1
        assert hdr[f"TUNIT{i_ra}"] == "deg"
        assert hdr[f"TCOMM{i_ra}"].startswith("Right ascension")
        i_ap = names.index("flux_aper") + 1
        assert hdr[f"TFORM{i_ap}"] == "4E" and hdr[f"TUNIT{i_ap}"] == "adu"
        i_im = names.index("imaflags") + 1  # all NULL in this catalogue: the TNULL value
        assert np.all(data["imaflags"] == hdr[f"TNULL{i_im}"])
        db = dict(_db(conn, "SELECT id, flux_aper FROM detection WHERE exposure_id = %s", loaded[1]))
        np.testing.assert_allclose(data["flux_aper"], np.array([db[i] for i in data["id"]], dtype=np.float32))
        assert json.loads(data["extra"][0])  # JSON text, not truncated
    # exposure: timestamps as ISO-8601 strings, text header with newlines kept
    out2 = tmp_path / "exp.fits"
    export_table(conn, "exposure", out2)
    with fits.open(out2) as h:
        d = h[1].data
        from datetime import UTC, datetime

        stamps = [datetime.fromisoformat(s) for s in d["ingested_at"]]  # ISO 8601 with offset
        assert all(s.tzinfo is not None and abs((datetime.now(UTC) - s).days) < 1 for s in stamps)
        assert d["header"][0].count("\n") > 10


def test_parquet_field_metadata_vectors_and_row_groups(conn, loaded, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "det.parquet"
    # small CSV blocks from the server: many batches, one row group each (the streaming path)
    res = export_table(conn, "detection", out, block_bytes=64 << 10)
    f = pq.ParquetFile(out)
    assert f.metadata.num_rows == res.n_rows == 1334
    assert f.metadata.num_row_groups > 3
    sch = f.schema_arrow
    assert sch.field("ra").metadata[b"unit"] == b"deg"
    assert sch.field("mag_auto").metadata[b"unit"] == b"mag"
    assert sch.field("flux_aper").type.list_size == 4
    # astropy reads the units and descriptions back too (its table_meta_yaml header)
    import warnings

    from astropy.table import Table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = Table.read(out)
    assert len(ta) == 1334 and str(ta["ra"].unit) == "deg" and str(ta["mag_auto"].unit) == "mag"
    assert ta["ra"].description.startswith("Right ascension")
    t = f.read()
    n_null_db = _db(conn, "SELECT count(*) - count(mag_auto), count(*) - count(snr) FROM detection")[0]
    assert (t.column("mag_auto").null_count, t.column("snr").null_count) == n_null_db
    # same rows, same order as one big block
    one = tmp_path / "one.parquet"
    export_table(conn, "detection", one)
    t1 = pq.read_table(one)
    assert t1.column_names == t.column_names
    for n in t.column_names:
        a, b = t1.column(n).combine_chunks(), t.column(n).combine_chunks()
        if n.endswith("_aper"):  # NaN-padded vectors: NaN == NaN
            np.testing.assert_array_equal(np.asarray(a.values), np.asarray(b.values), err_msg=n)
        else:
            assert a.equals(b), n


def test_csv_and_ecsv(conn, loaded, tmp_path):
    out = tmp_path / "det.csv"
    export_table(conn, "SELECT id, ra, mag_aper, flux_aper, snr FROM detection ORDER BY id", out)
    t = _read(out, "ascii.csv")
    assert len(t) == 1334
    assert t.colnames == ["id", "ra", "mag_aper_1", "flux_aper_1", "flux_aper_2", "flux_aper_3", "flux_aper_4", "snr"]
    assert np.sum(~t["flux_aper_4"].mask) == 360  # NULL -> empty field
    ra = np.array([r[0] for r in _db(conn, "SELECT ra FROM detection ORDER BY id")])
    np.testing.assert_allclose(np.asarray(t["ra"]), ra, rtol=0, atol=1e-12)
    nh = tmp_path / "nh.csv"
    export_table(conn, "detection", nh, "csv", header=False, columns=["ra", "dec"])
    assert nh.read_text().splitlines()[0][0].isdigit()
    e = tmp_path / "det.ecsv"
    export_table(conn, "detection", e, columns=["id", "ra", "flux_aper", "extra", "mag_auto"])
    te = _read(e, "ascii.ecsv")
    assert len(te) == 1334 and str(te["ra"].unit) == "deg" and te["flux_aper"].shape == (1334, 4)
    assert te["ra"].description.startswith("Right ascension")
    n_null = conn.execute("SELECT count(*) FROM detection WHERE mag_auto IS NULL").fetchone()[0]
    assert int(np.sum(np.ma.getmaskarray(te["mag_auto"]))) == n_null  # NULL -> masked


def test_catalog_export_mag_cal(conn, loaded, tmp_path):
    # the catalogues have FLUX_AUTO but no MAG_AUTO: derive it as SExtractor would (MAG_ZEROPOINT 0)
    conn.execute("UPDATE detection SET mag_auto = -2.5 * log(flux_auto), magerr_auto = 1.0857 * fluxerr_auto / "
                 "flux_auto WHERE flux_auto > 0")
    run = start_run(conn, "test-calibrate", {})
    conn.execute("INSERT INTO zeropoint (exposure_id, band, zp, zp_err, method, ok, stage_run_id) VALUES "
                 "(%s, 'r', 27.18, 0.04, 'pp', true, %s), (%s, 'r', 25.0, 0.5, 'pp', false, %s)",
                 (loaded[0], run, loaded[1], run))
    oid = conn.execute("INSERT INTO object (ra, dec, stage_run_id) VALUES (219.8, -9.7, %s) RETURNING id",
                       (run,)).fetchone()[0]
    conn.execute("INSERT INTO detection_object (detection_id, object_id, stage_run_id) "
                 "SELECT id, %s, %s FROM detection WHERE exposure_id = %s AND number <= 5", (oid, run, loaded[0]))
    finish_run(conn, run, counts={})
    conn.commit()
    out = tmp_path / "cat.vot"
    res = export_catalog(conn, out)
    assert res.n_rows == 1334
    t = _read(out, "votable")
    assert str(t["mag_cal"].unit) == "mag" and "zeropoint" in t["mag_cal"].description
    assert str(t["mjd_mid"].unit) == "d"
    a = np.asarray(t["exposure_id"]) == loaded[0]
    good = a & ~np.ma.getmaskarray(t["mag_auto"])
    np.testing.assert_allclose((t["mag_cal"] - t["mag_auto"])[good], 27.18, atol=1e-4)
    assert np.all(t["mag_cal"].mask[~a])  # the failed zeropoint is not applied
    assert set(np.asarray(t["object_id"][~t["object_id"].mask])) == {oid}
    assert np.sum(~t["object_id"].mask) == 5
    # --where on the exposure alias
    res2 = export_catalog(conn, tmp_path / "c2.csv", where=f"e.id = {loaded[1]}")
    assert res2.n_rows == 360


@pytest.mark.skipif(STILTS is None, reason="stilts not installed")
@pytest.mark.parametrize("fmt", ["votable", "fits", "csv", "ecsv"])
def test_stilts_reads_exports(conn, loaded, tmp_path, fmt):
    out = tmp_path / f"det.{ {'votable': 'vot'}.get(fmt, fmt)}"
    export_table(conn, "SELECT id, ra, dec, flux_aper, mag_auto, extra FROM detection", out, fmt)
    r = subprocess.run([STILTS, "tpipe", f"in={out}", "omode=meta"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if fmt != "csv":  # CSV carries no units
        assert "ra(Double)/deg" in r.stdout
        assert "flux_aper(float[4])/adu" in r.stdout
        assert "mag_auto(Float)/mag" in r.stdout
    r = subprocess.run([STILTS, "tpipe", f"in={out}", "omode=count"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "1334"


def test_errors_leave_no_file(conn, loaded, tmp_path):
    out = tmp_path / "x.fits"
    with pytest.raises(CatdbError, match="no table or view named 'nosuch'"):
        export_table(conn, "nosuch", out)
    conn.rollback()
    with pytest.raises(CatdbError, match='column "nosuch" does not exist'):
        export_table(conn, "SELECT nosuch FROM detection", out)
    conn.rollback()
    with pytest.raises(CatdbError, match="unknown export format"):
        export_table(conn, "detection", out, "hdf5")
    with pytest.raises(CatdbError, match="cannot tell the format"):
        export_table(conn, "detection", tmp_path / "x.dat")
    with pytest.raises(CatdbError, match="neither a table/view name nor a query"):
        export_table(conn, "DELETE FROM detection", out)
    assert not out.exists()


def test_cli_export_and_ledger(db_url, loaded, tmp_path):
    def run(args, ok=True):
        r = CliRunner().invoke(cli, ["--db", db_url, *args], catch_exceptions=False)
        if ok:
            assert r.exit_code == 0, r.output
        return r

    out = tmp_path / "d.fits"
    r = run(["export", "detection", "-o", str(out), "--where", "flags = 0", "--columns", "ra,dec,flags"])
    assert "rows" in r.output
    t = _read(out, "fits")
    assert t.colnames == ["ra", "dec", "flags"] and np.all(t["flags"] == 0) and str(t["ra"].unit) == "deg"
    r = run(["export", "catalog", "-o", str(tmp_path / "c.parquet")])
    # read-only: a writing query is refused, and no file is left
    bad = tmp_path / "bad.csv"
    r = run(["export", "WITH x AS (DELETE FROM detection RETURNING id) SELECT * FROM x", "-o", str(bad)], ok=False)
    assert r.exit_code == 1 and not bad.exists()
    r = run(["export", "nosuch", "-o", str(bad)], ok=False)
    assert r.exit_code == 1 and "nosuch" in r.output
    # ledger of a run: printed, or CSV with -o
    from catdb.db.engine import connect

    with connect(db_url) as c:
        run_id = start_run(c, "test-chain", {})
        c.execute("INSERT INTO ledger (stage_run_id, step, filter, n_in, n_rejected, n_kept) VALUES "
                  "(%s, 1, 'flags', 100, 10, 90), (%s, 2, 'veto:tycho2', 90, 5, 85)", (run_id, run_id))
        finish_run(c, run_id, counts={})
        c.commit()
        lt = ledger_table(c, run_id=run_id)
        assert list(lt["n_kept"]) == [90, 85]
    r = run(["export", "ledger", str(run_id)])
    assert "veto:tycho2" in r.output and "n_rejected" in r.output
    lo = tmp_path / "ledger.csv"
    run(["export", "ledger", str(run_id), "-o", str(lo)])
    lc = _read(lo, "ascii.csv")
    assert list(lc["filter"]) == ["flags", "veto:tycho2"] and list(lc["n_in"]) == [100, 90]
    r = run(["export", "ledger", "--set", "nosuchset"], ok=False)
    assert r.exit_code == 1 and "nosuchset" in r.output


def test_batches_of_whole_rows_whatever_the_block_size(conn):
    """COPY rows split into blocks of any size (down to one row each) read back as the database holds them.

    Text with the CSV specials (commas, quotes, a newline), the empty string and NULL, and numbers,
    parsed one row per block and all in one block, must give the same values, NULL staying NULL.
    """
    from psycopg import sql

    from catdb.export.formats import describe, iter_batches

    q = sql.SQL("SELECT * FROM (VALUES (1, 'a,b', 1.5::float8), (2, E'x\\ny', NULL), (3, '', 2.0), "
                "(4, NULL, -0.25), (5, '\"q\"', 3.0)) AS t(i, s, x)")
    d = describe(conn, q)
    expect = {"c0": [1, 2, 3, 4, 5], "c1": ["a,b", "x\ny", "", None, '"q"'], "c2": [1.5, None, 2.0, -0.25, 3.0]}
    for block in (1, 8 << 20):
        batches = list(iter_batches(conn, d, block_bytes=block))
        assert len(batches) == (5 if block == 1 else 1)
        got = {k: [v for b in batches for v in b.column(k).to_pylist()] for k in expect}
        assert got == expect, block


def test_calibrated_error_is_null_when_not_known_and_the_zeropoint_method_is_said(fresh_db_url, tmp_path):
    """What a TOPCAT user reads in ``catdb export catalog`` and in the views carrying mag_cal: no zeropoint
    -> mag_cal and magerr_cal NULL; a zeropoint of unknown error -> mag_cal set, magerr_cal NULL (not the
    instrumental error passed off as the calibrated one); otherwise hypot(magerr_auto, zp_err); and
    zp_method says when mag_cal is on a relative (arbitrary) scale."""
    from astropy.io.votable import parse

    from catdb.db.engine import connect

    # exposure: (zeropoint method, zp, zp_err), None = no zeropoint
    zps = [None, ("pp", 25.0, None), ("pp", 25.0, 0.03), ("relative", 0.12, 0.01)]
    with connect(fresh_db_url) as c:
        run = start_run(c, "test-calibrate", {})
        eids = [c.execute("INSERT INTO exposure (path, mjd_mid, band, stage_run_id) VALUES (%s, %s, 'r', %s) "
                          "RETURNING id", (f"n/{i}.fits", 60000.1 + i / 100, run)).fetchone()[0] for i in range(4)]
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec, mag_auto, magerr_auto, flags, stage_run_id) "
                  "SELECT e, 1, 150.0, 2.0, 15.0, 0.04, 0, %s FROM unnest(%s::bigint[]) e", (run, eids))
        oid = c.execute("INSERT INTO object (ra, dec, stage_run_id) VALUES (150.0, 2.0, %s) RETURNING id",
                        (run,)).fetchone()[0]
        c.execute("INSERT INTO detection_object (detection_id, object_id, stage_run_id) "
                  "SELECT id, %s, %s FROM detection", (oid, run))
        for eid, zp in zip(eids, zps):
            if zp is not None:
                c.execute("INSERT INTO zeropoint (exposure_id, band, method, zp, zp_err, ok, stage_run_id) "
                          "VALUES (%s, 'r', %s, %s, %s, true, %s)", (eid, *zp, run))
        finish_run(c, run, counts={})
        c.commit()
        views = {v: {r[0]: r[1:] for r in c.execute(
            f"SELECT exposure_id, mag_cal, magerr_cal, zp_method FROM {v}"
            + (" WHERE kind = 'object' AND source = 'detection'" if v == "lightcurve_point" else ""))}
            for v in ("detection_calibrated", "exposure_catalog", "lightcurve_point")}
        lp_comment = c.execute("SELECT col_description('lightcurve_point'::regclass, a.attnum) FROM pg_attribute a "
                               "WHERE a.attrelid = 'lightcurve_point'::regclass AND a.attname = 'zp_method'"
                               ).fetchone()[0]
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "export", "catalog", "-o", str(tmp_path / "cat.vot")])
    assert r.exit_code == 0, r.output
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vot = parse(str(tmp_path / "cat.vot")).get_first_table()
    f = {x.name: x for x in vot.fields}
    t = vot.to_table()
    rows = {int(e): i for i, e in enumerate(t["exposure_id"])}
    assert sorted(rows) == eids
    mag, err = (np.ma.getmaskarray(t[k]) for k in ("mag_cal", "magerr_cal"))
    no_zp, no_err, ok, rel = (rows[e] for e in eids)
    assert mag[no_zp] and err[no_zp]                                           # no zeropoint: both NULL
    assert not mag[no_err] and t["mag_cal"][no_err] == pytest.approx(40.0) and err[no_err]  # zp_err unknown
    assert t["magerr_cal"][ok] == pytest.approx(np.hypot(0.04, 0.03), rel=1e-6)
    assert t["magerr_cal"][rel] == pytest.approx(np.hypot(0.04, 0.01), rel=1e-6)
    # zp_method: NULL (<TD/>) without a zeropoint, 'relative' for a relative calibration
    assert [str(t["zp_method"][i]) for i in (ok, rel)] == ["pp", "relative"]
    assert np.ma.getmaskarray(t["zp_method"])[no_zp] or t["zp_method"][no_zp] == ""
    assert "zp_err" in f["magerr_cal"].description and "NULL" in f["magerr_cal"].description
    assert "arbitrary scale" in f["zp_method"].description and f["zp_method"].ucd == "meta.code"
    # the views say the same
    for v, got in views.items():
        assert got[eids[0]] == (None, None, None), v
        assert got[eids[1]][0] == pytest.approx(40.0) and got[eids[1]][1:] == (None, "pp"), v
        assert got[eids[2]][1] == pytest.approx(np.hypot(0.04, 0.03), rel=1e-6) and got[eids[2]][2] == "pp", v
        assert got[eids[3]][0] == pytest.approx(15.12) and got[eids[3]][2] == "relative", v
    assert "arbitrary scale" in lp_comment
