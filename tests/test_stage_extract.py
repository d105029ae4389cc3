"""Stage ``extract`` on reduced Lowell 42-inch frames: catalogues, detections, provenance, re-runs."""
from __future__ import annotations

import gzip

import numpy as np
import pytest

from catdb.db.engine import connect
from catdb.errors import CatdbError, StageError
from catdb.stages import run_stage
from tests.helpers import REPO_DATA, TEST_DATA
from tests.lowell_night import ingest_and_reduce, ingest_raw

LOWELL = REPO_DATA / "lowell42-5945"
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 132)]
TYCHO2 = TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz"

pytestmark = pytest.mark.skipif(not (LOWELL / "science").is_dir(), reason=f"real data not found at {LOWELL}")


def _tycho_in(ra0, dec0, radius):
    """Tycho-2 stars within ``radius`` deg of (ra0, dec0) (small-angle box, then exact)."""
    rows = []
    with gzip.open(TYCHO2, "rt") as f:
        next(f)
        for line in f:
            ra, dec, _ = line.split(",")
            if abs(float(dec) - dec0) < radius and abs(float(ra) - ra0) < radius / np.cos(np.radians(dec0)):
                rows.append((float(ra), float(dec)))
    return np.array(rows)


@pytest.fixture(scope="module")
def extracted(db_url, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("products")
    c = connect(db_url)
    sci, red = ingest_and_reduce(c, SCIENCE, outdir)
    res = run_stage("extract", conn=c, params={"outdir": str(outdir), "workers": 2,
                                               "phot_apertures": "6,10,16"})
    yield dict(conn=c, sci=sci, red=red, res=res, outdir=outdir)
    c.close()


def test_hundreds_of_detections_with_provenance(extracted):
    c, res = extracted["conn"], extracted["res"]
    assert res.counts["catalog"] == 2 and res.counts["image_kind"] == ["reduced"]
    per = dict(c.execute("SELECT exposure_id, count(*) FROM detection GROUP BY exposure_id").fetchall())
    assert sorted(per) == sorted(extracted["sci"])
    assert all(200 <= n <= 20000 for n in per.values()), per
    assert sum(per.values()) == res.counts["detection"]
    assert {r[0] for r in c.execute("SELECT DISTINCT stage_run_id FROM detection")} == {res.run_id}
    # three apertures as asked; x/y in the trimmed (reduced) frame
    naper, xmax = c.execute("SELECT max(array_length(flux_aper, 1)), max(x) FROM detection").fetchone()
    assert naper == 3 and xmax <= 1365.5
    rows = c.execute("SELECT p.exposure_id, p.path, p.hdu, p.meta, e.catalog_path, r.path FROM image_product p "
                     "JOIN exposure e ON e.id = p.exposure_id JOIN image_product r ON r.exposure_id = e.id "
                     "AND r.kind = 'reduced' WHERE p.kind = 'catalog' AND p.stage_run_id = %s",
                     (res.run_id,)).fetchall()
    assert len(rows) == 2
    for eid, path, hdu, meta, cat_path, red_path in rows:
        assert cat_path == path and hdu == 2 and meta["image"] == red_path
        assert meta["n_detections"] == per[eid] and meta["config"]["PHOT_APERTURES"] == "6.0,10.0,16.0"


def test_positions_match_tycho2(extracted):
    """The Tycho-2 stars inside the field have a detection within 2" on every exposure."""
    from astropy.coordinates import SkyCoord
    from astropy.io import fits

    from catdb.wcsutil import wcs_from_header

    c = extracted["conn"]
    for eid in extracted["sci"]:
        ra0, dec0, radius, red = c.execute(
            "SELECT e.ra_center, e.dec_center, e.radius, p.path FROM exposure e JOIN image_product p "
            "ON p.exposure_id = e.id AND p.kind = 'reduced' WHERE e.id = %s", (eid,)).fetchone()
        stars = _tycho_in(ra0, dec0, radius)
        h = fits.getheader(red, 1)
        x, y = wcs_from_header(h).world_to_pixel(SkyCoord(stars[:, 0], stars[:, 1], unit="deg"))
        inside = (x > 20) & (x < h["NAXIS1"] - 20) & (y > 20) & (y < h["NAXIS2"] - 20)
        stars = stars[inside]
        assert len(stars) == 3
        det = np.array(c.execute("SELECT ra, dec FROM detection WHERE exposure_id = %s", (eid,)).fetchall())
        sep = SkyCoord(stars[:, 0], stars[:, 1], unit="deg")[:, None].separation(
            SkyCoord(det[:, 0], det[:, 1], unit="deg")[None, :]).arcsec.min(axis=1)
        assert np.all(sep < 2.0), sep


def test_fwhm_updated(extracted):
    c = extracted["conn"]
    fwhm = [r[0] for r in c.execute("SELECT fwhm FROM exposure WHERE id = ANY(%s)", (extracted["sci"],))]
    assert all(1.0 < f < 6.0 for f in fwhm), fwhm  # arcsec, Anderson Mesa seeing
    assert extracted["res"].counts["fwhm_updated"] == 2


def test_rerun_replaces_detections_of_that_exposure(extracted):
    c = extracted["conn"]
    first, second = extracted["sci"]
    n2_before = c.execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (second,)).fetchone()[0]
    res2 = run_stage("extract", conn=c, where=f"e.id = {first}",
                     params={"outdir": str(extracted["outdir"]), "detect_thresh": 5,
                             "config": "DETECT_MINAREA=8,sex_BACK_SIZE=128"})
    n1, runs = c.execute("SELECT count(*), array_agg(DISTINCT stage_run_id) FROM detection WHERE exposure_id = %s",
                         (first,)).fetchone()
    assert runs == [res2.run_id] and n1 == res2.counts["detection"]
    assert res2.counts["detections_replaced"] > n1  # a 5-sigma threshold finds fewer sources
    assert c.execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (second,)).fetchone()[0] == n2_before
    cats = c.execute("SELECT exposure_id, stage_run_id, meta->'config' FROM image_product WHERE kind = 'catalog' "
                     "ORDER BY exposure_id").fetchall()
    assert [(r[0], r[1]) for r in cats] == [(first, res2.run_id), (second, extracted["res"].run_id)]
    assert cats[0][2]["DETECT_MINAREA"] == "8" and cats[0][2]["BACK_SIZE"] == "128"
    assert cats[0][2]["DETECT_THRESH"] == 5.0
    c.commit()


def test_bad_inputs_are_clear_errors(fresh_db_url, tmp_path):
    from catdb.stages.extract import parse_config

    assert parse_config("PHOT_APERTURES=4,8,12,BACK_SIZE=128") == {"PHOT_APERTURES": "4,8,12", "BACK_SIZE": "128"}
    with pytest.raises(CatdbError, match="'DETECT MINAREA' is not a SExtractor keyword"):
        parse_config("detect minarea=3")
    with pytest.raises(CatdbError, match="CATALOG_NAME is set by the extract stage"):
        parse_config("CATALOG_NAME=x.cat")
    c = connect(fresh_db_url)
    try:
        sci = ingest_raw(c, SCIENCE[:1])
        with pytest.raises(StageError, match=rf"exposure {sci[0]} .* has no reduced product: run 'catdb stage "
                                             r"reduce'"):
            run_stage("extract", conn=c, params={"outdir": str(tmp_path)})
        with pytest.raises(StageError, match="phot_apertures: expected comma-separated diameters"):
            run_stage("extract", conn=c, params={"outdir": str(tmp_path), "use_raw": "true",
                                                 "phot_apertures": "4;8"})
        assert c.execute("SELECT count(*) FROM detection").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM image_product").fetchone()[0] == 0
        assert [r[0] for r in c.execute("SELECT status FROM stage_run WHERE stage = 'extract'")] == ["failed"] * 2
    finally:
        c.close()


def test_no_seeing_no_class_star(fresh_db_url, tmp_path):
    """A frame with too few stars to measure its seeing: CLASS_STAR (computed for catdb.sex's placeholder
    SEEING_FWHM) is not stored; the reason is in the catalogue product and the run's counts."""
    import json

    from astropy.io import fits

    from catdb.db.copy import copy_table
    from catdb.db.provenance import finish_run, start_run
    from catdb.wcsutil import clean_wcs_header

    c = connect(fresh_db_url)
    (eid,) = ingest_raw(c, SCIENCE[:1])
    with fits.open(SCIENCE[0]) as hl:
        hdr = clean_wcs_header(hl[1].header)
        shape = hl[1].data.shape
    rng = np.random.default_rng(3)
    img = rng.normal(1000.0, 10.0, shape).astype(np.float32)          # sky, no star but three
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    for x0, y0 in ((300, 400), (700, 800), (1000, 300)):
        img += (20000.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 1.2 ** 2))).astype(np.float32)
    for k in ("XTENSION", "PCOUNT", "GCOUNT", "EXTNAME", "BZERO", "BSCALE"):
        hdr.remove(k, ignore_missing=True, remove_all=True)
    path = tmp_path / "three_stars.fits"
    fits.PrimaryHDU(img, header=hdr).writeto(path, output_verify="silentfix")
    run = start_run(c, "test-reduce", {})
    copy_table(c, "image_product", {"exposure_id": np.array([eid], dtype=np.int64),
                                    "path": np.array([str(path)], dtype=object)},
               constants={"kind": "reduced", "hdu": 0, "stage_run_id": run})
    finish_run(c, run, counts={"image_product": 1})
    c.commit()
    res = run_stage("extract", conn=c, params={"outdir": str(tmp_path), "detect_thresh": "5"})
    assert res.counts["class_star_null_no_seeing"] == [eid]
    n, n_cs = c.execute("SELECT count(*), count(class_star) FROM detection WHERE exposure_id = %s",
                        (eid,)).fetchone()
    assert n >= 3 and n_cs == 0
    meta = c.execute("SELECT meta FROM image_product WHERE exposure_id = %s AND kind = 'catalog'", (eid,)).fetchone()[0]
    meta = meta if isinstance(meta, dict) else json.loads(meta)
    assert meta["seeing_fwhm"] is None and meta["seeing_source"].startswith("unknown: fewer than 5")
    c.close()
