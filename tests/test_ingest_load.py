"""Ingest into the database: real catalogues and images, atomic, idempotent, strict."""
import shutil

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import InputError
from catdb.ingest.load import ingest_catalogs, ingest_images, ingest_refcat
from tests.helpers import REPO_DATA, TEST_DATA

LCO = TEST_DATA / "lco"
LOWELL = REPO_DATA / "lowell42-5945"


def count(conn, sql, *a):
    return conn.execute(sql, a).fetchone()[0]


def test_ldac_catalogue_loads_exposure_and_detections(conn):
    res = ingest_catalogs(conn, [LCO / "ldac_test_catalog.fits"])
    assert res[0].status == "loaded" and res[0].n_rows == 974
    eid = res[0].exposure_ids[0]
    e = conn.execute("SELECT filter, exptime, mjd_mid, ra_center, dec_center, stage_run_id, catalog_sha256 "
                     "FROM exposure WHERE id = %s", (eid,)).fetchone()
    assert e[0] == "w" and e[1] == 115.0
    # 2016-04-28T20:11:54 + 57.5 s
    assert e[2] == pytest.approx(57506.8415972 + 57.5 / 86400, abs=2e-5)
    assert e[3] == pytest.approx(219.836, abs=0.01) and e[4] == pytest.approx(-9.768, abs=0.01)
    assert count(conn, "SELECT count(*) FROM detection WHERE exposure_id = %s", eid) == 974
    # every detection points at the ingest run; the run is recorded with counts
    assert count(conn, "SELECT count(DISTINCT stage_run_id) FROM detection WHERE exposure_id = %s", eid) == 1
    st = conn.execute("SELECT stage, status, counts FROM stage_run WHERE id = %s", (e[5],)).fetchone()
    assert st[0] == "ingest-catalog" and st[1] == "ok" and st[2]["detection"] == 974
    # detections within the footprint, and unknown columns kept in extra
    assert count(conn, "SELECT count(*) FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                       "WHERE e.id = %s AND q3c_join(e.ra_center, e.dec_center, d.ra, d.dec, e.radius)", eid) == 974
    # re-ingest: unchanged, no duplicates
    res2 = ingest_catalogs(conn, [LCO / "ldac_test_catalog.fits"])
    assert res2[0].status == "unchanged"
    assert count(conn, "SELECT count(*) FROM detection WHERE exposure_id = %s", eid) == 974


def test_corrupt_catalogue_writes_nothing(conn, tmp_path):
    n_before = count(conn, "SELECT count(*) FROM detection")
    good = tmp_path / "good.fits"
    shutil.copy(LCO / "oracdr_test_catalog.fits", good)
    with pytest.raises(InputError, match="ldac_test_catalog_corrupt.fits"):
        ingest_catalogs(conn, [good, LCO / "ldac_test_catalog_corrupt.fits"])
    # the good file before it is kept (its own transaction), nothing of the bad one
    assert count(conn, "SELECT count(*) FROM detection") == n_before + 360
    assert count(conn, "SELECT count(*) FROM exposure WHERE catalog_path LIKE %s", "%ldac_test_catalog_corrupt%") == 0
    assert count(conn, "SELECT count(*) FROM stage_run WHERE stage = 'ingest-catalog' AND status = 'failed' "
                       "AND error LIKE %s", "%corrupt%") == 1


def test_changed_catalogue_needs_replace(conn, tmp_path):
    from astropy.io import fits

    p = tmp_path / "cat.fits"
    shutil.copy(LCO / "CatalogFiles" / sorted(x.name for x in (LCO / "CatalogFiles").iterdir())[0], p)
    r = ingest_catalogs(conn, [p])[0]
    with fits.open(p, mode="update") as hl:
        hl[1].data = hl[1].data[:10]
    with pytest.raises(InputError, match="--replace"):
        ingest_catalogs(conn, [p])
    r2 = ingest_catalogs(conn, [p], replace=True)[0]
    assert r2.status == "replaced" and r2.n_rows == 10
    assert count(conn, "SELECT count(*) FROM exposure WHERE id = %s", r.exposure_ids[0]) == 0


def test_lowell_images_quoted_wcs_and_calibration_frames(conn):
    paths = [LOWELL / "science" / "20190326.0126.fits.fz", LOWELL / "zero" / "20190326.0001.fits.fz",
             LOWELL / "flat" / "20190326.0100.fits.fz"]
    res = ingest_images(conn, paths)
    ids = [r.exposure_ids[0] for r in res]
    rows = conn.execute("SELECT image_type, filter, ra_center, dec_center, mjd_mid, exptime, hdu FROM exposure "
                        "WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
    sci, bias, flat = rows
    assert sci[0] == "science" and bias[0] == "bias" and flat[0] == "flat"
    assert flat[1] == "V"  # the one flat in the wrong filter is recognisable
    assert sci[2] == pytest.approx(124.62, abs=0.02) and sci[3] == pytest.approx(25.33, abs=0.02)
    # DATE-OBS is a date only: mid-exposure from UTCSTART + EXPTIME/2 (JD 2458568.60418 at start+mid)
    assert sci[4] == pytest.approx(2458568.60418 - 2400000.5, abs=1e-4)
    assert sci[5] == 300.0 and sci[6] == 1  # .fits.fz: the image is HDU 1


def test_mef_raw_frame_one_exposure_per_extension(conn):
    res = ingest_images(conn, [LCO / "mef_raw_test_frame.fits"])
    assert len(res[0].exposure_ids) == 4
    hdus = [r[0] for r in conn.execute("SELECT hdu FROM exposure WHERE id = ANY(%s) ORDER BY hdu",
                                       (res[0].exposure_ids,))]
    assert hdus == [1, 2, 3, 4]


def test_refcat_gaia(conn):
    r = ingest_refcat(conn, LCO / "GAIA-DR2.cat", catalog="gaia-dr2", band="G")
    assert r.n_rows == 249
    row = conn.execute("SELECT count(*), min((mags->>'G')::float), max(epoch) FROM refcat_source "
                       "WHERE catalog = 'gaia-dr2'").fetchone()
    assert row[0] == 249 and 8 < row[1] < 20 and row[2] == pytest.approx(2015.5)
    again = ingest_refcat(conn, LCO / "GAIA-DR2.cat", catalog="gaia-dr2", band="G")
    assert again.status == "unchanged"  # same file, same content: nothing done
    assert count(conn, "SELECT count(*) FROM refcat_source WHERE catalog = 'gaia-dr2'") == 249


def test_cli_ingest_bad_file_exit_status(db_url, tmp_path):
    bad = tmp_path / "notfits.fits"
    bad.write_text("hello")
    r = CliRunner().invoke(cli, ["--db", db_url, "-q", "ingest", "catalog", str(bad)])
    assert r.exit_code == 2  # every file failed: bad input
    assert "notfits.fits" in r.output
    r = CliRunner().invoke(cli, ["--db", db_url, "-q", "ingest", "catalog", str(LCO / "ldac_test_catalog.fits")])
    assert r.exit_code == 0 and "exposure" in r.output
