"""``catdb extract`` on real raw Lowell 42-inch frames (.fits.fz, quoted-string WCS)."""
from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.db.engine import connect
from tests.helpers import REPO_DATA
from tests.test_image_data import mover1_radec

SCI = REPO_DATA / "lowell42-5945" / "science"
FRAMES = [SCI / "20190326.0126.fits.fz", SCI / "20190326.0129.fits.fz"]

pytestmark = [
    pytest.mark.skipif(not SCI.is_dir(), reason=f"real data not found at {SCI}"),
    pytest.mark.skipif(not any(shutil.which(b) for b in ("source-extractor", "sex")),
                       reason="SExtractor binary not installed"),
    pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
    pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning"),
]


def run(url, *args):
    return CliRunner().invoke(cli, ["--db", url, "-q", "extract", *map(str, args)])


def _nrows(cat):
    with fits.open(cat) as hl:
        return len(hl["LDAC_OBJECTS"].data)


def test_extract_and_ingest_two_frames_in_parallel(fresh_db_url, tmp_path):
    out = tmp_path / "cats"
    r = run(fresh_db_url, *FRAMES, "--out", out, "-j", "2")
    assert r.exit_code == 0, r.output
    cats = [out / "20190326.0126.cat", out / "20190326.0129.cat"]
    for c in cats:  # FITS_LDAC: the image header (numeric WCS) then the objects, as SCAMP reads it
        with fits.open(c) as hl:
            assert [h.name for h in hl[1:]] == ["LDAC_IMHEAD", "LDAC_OBJECTS"]
    assert re.search(r"files: 2 ok, 0 unchanged, 0 failed; 2 exposures, (\d+) detections", r.output), r.output
    with connect(fresh_db_url) as conn:
        rows = conn.execute(
            "SELECT e.id, e.path, e.hdu, e.mjd_mid, e.catalog_path, count(d.id), "
            " count(*) FILTER (WHERE q3c_join(e.ra_center, e.dec_center, d.ra, d.dec, e.radius)) "
            "FROM exposure e JOIN detection d ON d.exposure_id = e.id GROUP BY e.id ORDER BY e.path").fetchall()
        assert [(row[1], row[2]) for row in rows] == [(str(f.resolve()), 1) for f in FRAMES]
        for row, c in zip(rows, cats):
            assert row[4] == str(c.resolve())
            assert row[5] == _nrows(c) > 500  # every source of the catalogue, each on the frame's footprint
            assert row[6] == row[5]
            # the real asteroid (5945) Roachapproach (MANIFEST mover 1) is detected where it should be:
            # the string WCS was cast, otherwise positions would be near RA 0, Dec 0
            ra, dec = mover1_radec(row[3] + 2400000.5)
            sep = conn.execute("SELECT min(q3c_dist(ra, dec, %s, %s)) * 3600 FROM detection "
                               "WHERE exposure_id = %s", (float(ra), float(dec), row[0])).fetchone()[0]
            assert sep < 2.0
        n_before = conn.execute("SELECT count(*) FROM exposure").fetchone()[0]
    # re-running replaces the earlier exposure and detections, no duplicates
    r = run(fresh_db_url, FRAMES[0], "--out", out)
    assert r.exit_code == 0 and "replaced" in r.output, r.output
    with connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM exposure").fetchone()[0] == n_before
        n = conn.execute("SELECT count(*) FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                         "WHERE e.path = %s", (str(FRAMES[0].resolve()),)).fetchone()[0]
        assert n == _nrows(cats[0])


def test_no_ingest_next_to_image_and_config(fresh_db_url, tmp_path):
    img = tmp_path / FRAMES[0].name
    shutil.copy(FRAMES[0], img)
    r = run(fresh_db_url, img, "--no-ingest")
    assert r.exit_code == 0, r.output
    cat = tmp_path / "20190326.0126.cat"
    assert cat.is_file() and "not ingested" in r.output
    n_default = _nrows(cat)
    # a higher detection threshold gives fewer sources, all brighter than the threshold
    r = run(fresh_db_url, img, "--no-ingest", "--out", tmp_path / "t5", "--config", "DETECT_THRESH=10")
    assert r.exit_code == 0, r.output
    with fits.open(tmp_path / "t5" / cat.name) as hl:
        t = hl["LDAC_OBJECTS"].data
        assert 0 < len(t) < n_default
    with connect(fresh_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM exposure").fetchone()[0] == 0
    r = run(fresh_db_url, img, "--no-ingest", "--config", "CATALOG_NAME=x.cat")
    assert r.exit_code == 2 and "CATALOG_NAME" in r.output


def test_weight_and_flag_maps(fresh_db_url, tmp_path):
    ny, nx = fits.getdata(FRAMES[0], 1).shape
    half = nx // 2
    w = np.ones((ny, nx), np.float32)
    w[:, :half] = 0  # left half has no weight: nothing detected there
    fl = np.zeros((ny, nx), np.int16)
    fl[: ny // 2, :] = 4  # bottom half flagged
    fits.PrimaryHDU(w).writeto(tmp_path / "w.fits")
    fits.PrimaryHDU(fl).writeto(tmp_path / "f.fits")
    r = run(fresh_db_url, FRAMES[1], "--out", tmp_path, "--weight", tmp_path / "w.fits", "--flag", tmp_path / "f.fits")
    assert r.exit_code == 0, r.output
    with connect(fresh_db_url) as conn:
        x, y, a, imaflags = map(np.array, zip(*conn.execute(
            "SELECT x, y, a_image, imaflags FROM detection").fetchall()))
    assert len(x) > 100
    assert np.all(x > half - 5)  # SExtractor: weight 0 pixels are not detected on
    # IMAFLAGS_ISO: OR of the flag map over the isophote; compact sources away from the edge of
    # the flagged half (huge raw-frame isophotes reach across it)
    compact = a < 5
    assert np.all(imaflags[y < ny / 2 - 10] == 4)
    assert np.all(imaflags[compact & (y > ny / 2 + 10)] == 0) and (compact & (y > ny / 2 + 10)).sum() > 50
    # a weight map is for one image
    r = run(fresh_db_url, *FRAMES, "--weight", tmp_path / "w.fits")
    assert r.exit_code == 2 and "one IMAGE" in r.output


def test_bad_image_does_not_stop_the_others(fresh_db_url, tmp_path):
    bad = tmp_path / "junk.fits"
    bad.write_text("not a FITS image\n")
    r = run(fresh_db_url, bad, FRAMES[0], "--out", tmp_path)
    assert r.exit_code == 1, r.output
    assert "junk.fits" in r.output
    assert re.search(r"files: 1 ok, 0 unchanged, 1 failed; 1 exposure,", r.output), r.output
    r = run(fresh_db_url, bad, "--out", tmp_path)
    assert r.exit_code == 2 and re.search(r"0 ok, 0 unchanged, 1 failed", r.output), r.output


def test_config_defaults_writes_sextractor_files(tmp_path):
    r = CliRunner().invoke(cli, ["config", "defaults", str(tmp_path / "cfg")])
    assert r.exit_code == 0, r.output
    sex, par = tmp_path / "cfg" / "catdb.sex", tmp_path / "cfg" / "catdb.param"
    assert sex.is_file() and par.is_file()
    assert re.search(r"^PHOT_APERTURES\s+\S", sex.read_text(), re.MULTILINE)
    assert {"NUMBER", "ALPHAWIN_J2000", "DELTAWIN_J2000", "FLUX_AUTO"} <= set(par.read_text().split())
    assert (tmp_path / "cfg" / "lowell42.toml").is_file()
    # an edited copy is kept: defaults does not overwrite
    sex.write_text("# mine\n")
    CliRunner().invoke(cli, ["config", "defaults", str(tmp_path / "cfg")])
    assert sex.read_text() == "# mine\n"


def test_extract_after_ingest_image_same_exposure_key(fresh_db_url, tmp_path):
    """``ingest image`` then ``extract --hdu 1``: one exposure per (image, HDU), now with its detections."""
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "image", str(FRAMES[1])])
    assert r.exit_code == 0, r.output
    r = run(fresh_db_url, FRAMES[1], "--out", tmp_path, "--hdu", "1")
    assert r.exit_code == 0, r.output
    with connect(fresh_db_url) as conn:
        rows = conn.execute("SELECT e.path, e.hdu, e.image_type, e.exptime, count(d.id) FROM exposure e "
                            "LEFT JOIN detection d ON d.exposure_id = e.id GROUP BY e.id").fetchall()
    assert rows == [(str(FRAMES[1].resolve()), 1, "science", 300.0, _nrows(tmp_path / "20190326.0129.hdu1.cat"))]
