"""Stage ``coadd`` on three reduced Lowell 42-inch frames, detection on the stack, forced photometry back."""
from __future__ import annotations

import gzip

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from catdb.db.engine import connect
from catdb.stages import run_stage
from tests.helpers import REPO_DATA, TEST_DATA
from tests.lowell_night import ingest_and_reduce

LOWELL = REPO_DATA / "lowell42-5945"
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 132, 135)]
TYCHO2 = TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz"

pytestmark = pytest.mark.skipif(not (LOWELL / "science").is_dir(), reason=f"real data not found at {LOWELL}")


@pytest.fixture(scope="module")
def stacked(db_url, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("products")
    c = connect(db_url)
    sci, _ = ingest_and_reduce(c, SCIENCE, outdir)
    res = run_stage("coadd", conn=c, params={"outdir": str(outdir), "detect": "true"})
    yield dict(conn=c, sci=sci, res=res, outdir=outdir)
    c.close()


def _sky_rms(data, b=4):
    """Sigma-clipped rms of background-subtracted b x b pixel block sums ("empty apertures": they
    integrate the pixel-to-pixel noise correlation that the reprojection's interpolation adds)."""
    from astropy.stats import sigma_clipped_stats
    from photutils.background import Background2D

    data = data - Background2D(data, 64, filter_size=3, coverage_mask=~np.isfinite(data),
                               fill_value=np.nan).background
    ny, nx = (s // b * b for s in data.shape)
    blocks = data[:ny, :nx].reshape(ny // b, b, nx // b, b).sum(axis=(1, 3))
    return sigma_clipped_stats(blocks[np.isfinite(blocks)], sigma=3, maxiters=10)[2]


def test_coadd_product_is_deeper_than_single_frames(stacked):
    c, res = stacked["conn"], stacked["res"]
    assert res.counts["coadd"] == 1 and res.counts["inputs"] == 3
    path, ids, band, exp_id, run, meta = c.execute(
        "SELECT path, input_ids, band, exposure_id, stage_run_id, meta FROM image_product WHERE kind = 'coadd'"
    ).fetchone()
    assert sorted(ids) == sorted(stacked["sci"]) and band == "VR" and exp_id is None and run == res.run_id
    with fits.open(path) as hl:
        img, h = hl[0].data, hl[0].header
    mjds = [r[0] for r in c.execute("SELECT mjd_mid FROM exposure WHERE id = ANY(%s)", (stacked["sci"],))]
    assert h["NCOMBINE"] == 3 and min(mjds) < h["MJD-MID"] < max(mjds) and meta["ncombine"] == 3
    single = c.execute("SELECT path FROM image_product WHERE kind = 'reduced' ORDER BY exposure_id LIMIT 1"
                       ).fetchone()[0]
    # three background-weighted frames: sky noise down by about sqrt(3) (0.58)
    ratio = _sky_rms(img) / _sky_rms(fits.getdata(single, 1).astype(float))
    assert 0.45 < ratio < 0.72, ratio


def test_coadd_objects_and_forced_on_single_exposures(stacked):
    c, res = stacked["conn"], stacked["res"]
    n_obj = c.execute("SELECT count(*) FROM object WHERE kind = 'coadd' AND stage_run_id = %s",
                      (res.run_id,)).fetchone()[0]
    assert n_obj == res.counts["object"] and 200 < n_obj < 20000
    cat = c.execute("SELECT path, meta FROM image_product WHERE kind = 'catalog' AND exposure_id IS NULL").fetchone()
    assert cat[1]["n_objects"] == n_obj and cat[0].endswith(".cat")
    obj = np.array(c.execute("SELECT ra, dec, mean_mag FROM object WHERE kind = 'coadd'").fetchall(), dtype=float)
    # the Tycho-2 stars of the field are coadd objects (within 2")
    ra0, dec0 = c.execute("SELECT avg(ra_center), avg(dec_center) FROM exposure WHERE id = ANY(%s)",
                          (stacked["sci"],)).fetchone()
    tyc = []
    with gzip.open(TYCHO2, "rt") as f:
        next(f)
        for line in f:
            ra, dec, _ = map(float, line.split(","))
            if abs(dec - dec0) < 0.2 and abs(ra - ra0) < 0.2 / np.cos(np.radians(dec0)):
                tyc.append((ra, dec))
    tyc = np.array(tyc)
    assert len(tyc) >= 3
    _, sep, _ = SkyCoord(tyc[:, 0], tyc[:, 1], unit="deg").match_to_catalog_sky(
        SkyCoord(obj[:, 0], obj[:, 1], unit="deg"))
    assert np.sum(sep.arcsec < 2.0) >= 3, sep.arcsec

    # the LSST flow: forced photometry of the coadd objects on the single exposures
    # (the 300 brightest keep the test quick: photometry costs ~5 ms per position and exposure)
    mag_cut = float(np.sort(obj[:, 2])[299])
    fr = run_stage("forced", conn=c, params={"objects": f"kind = 'coadd' AND mean_mag <= {mag_cut!r}",
                                             "radius": "4"})
    n_sel = int(np.sum(obj[:, 2] <= mag_cut))
    rows = np.array(c.execute(
        "SELECT f.exposure_id, f.flux, f.flux_err, o.mean_mag FROM forced_source f JOIN object o ON o.id = f.object_id "
        "WHERE f.stage_run_id = %s AND f.flags & 7 = 0", (fr.run_id,)).fetchall(), dtype=float)
    assert set(rows[:, 0].astype(int)) == set(stacked["sci"])
    # every selected object is measured on (nearly) every exposure: the frames overlap but for a few pixels
    assert 0.98 * 3 * n_sel <= fr.counts["forced_source"] <= 3 * n_sel
    n_sat = c.execute("SELECT count(*) FROM forced_source WHERE stage_run_id = %s AND flags & 2 = 2",
                      (fr.run_id,)).fetchone()[0]
    assert len(rows) + n_sat >= 0.9 * fr.counts["forced_source"]  # the brightest are saturated, few at edges
    # brighter on the coadd -> brighter on every single exposure (rank correlation)
    from scipy.stats import spearmanr

    for eid in stacked["sci"]:
        r = rows[rows[:, 0] == eid]
        good = np.isfinite(r[:, 3]) & (r[:, 1] / r[:, 2] > 10)
        assert spearmanr(-r[good, 3], r[good, 1]).statistic > 0.9
    c.commit()


def test_report_shows_the_coadd_and_its_objects(stacked, tmp_path):
    from matplotlib.image import imread

    from catdb.export.report import write_report

    c = stacked["conn"]
    path = write_report(c, tmp_path / "r.html", png_dir=tmp_path / "png")
    html = path.read_text()
    assert "<h2>Coadd and forced photometry of its objects" in html and "section failed" not in html
    n_obj = c.execute("SELECT count(*) FROM object WHERE kind = 'coadd'").fetchone()[0]
    assert f"3 exposures stacked (band VR, stage run {stacked['res'].run_id}); {n_obj} coadd objects" in html
    img = imread(tmp_path / "png" / "coadd.png")
    # a stretched sky image with orange object circles, not a blank panel
    assert img.shape[0] > 400 and np.unique(img[..., 0]).size > 50
    orange = (img[..., 0] > 0.8) & (img[..., 1] > 0.35) & (img[..., 1] < 0.65) & (img[..., 2] < 0.3)
    assert orange.sum() > 200
