"""Stage ``reduce`` on the real Lowell 42-inch frames: calibrations chosen from the database."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from catdb.db.engine import connect
from catdb.errors import StageError
from catdb.stages import run_stage
from tests.helpers import REPO_DATA
from tests.lowell_night import ingest_raw

LOWELL = REPO_DATA / "lowell42-5945"
BIASES = sorted((LOWELL / "zero").glob("*.fits.fz"))
FLATS = sorted((LOWELL / "flat").glob("*.fits.fz"))
V_FLAT = LOWELL / "flat" / "20190326.0100.fits.fz"
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 132)]

pytestmark = pytest.mark.skipif(not (LOWELL / "science").is_dir(), reason=f"real data not found at {LOWELL}")


@pytest.fixture(scope="module")
def reduced(db_url, tmp_path_factory):
    """Science (2 frames), bias and flats ingested; one reduce run over both science frames."""
    outdir = tmp_path_factory.mktemp("products")
    c = connect(db_url)
    sci = ingest_raw(c, SCIENCE)
    bias = ingest_raw(c, BIASES)
    flats = ingest_raw(c, FLATS)
    res = run_stage("reduce", conn=c, params={"outdir": str(outdir)})
    yield dict(conn=c, sci=sci, bias=bias, flats=flats, res=res, outdir=outdir)
    c.close()


def test_wrong_filter_flat_is_skipped_with_reason(reduced):
    c, res = reduced["conn"], reduced["res"]
    assert res.counts["master_bias"] == 1 and res.counts["master_flat"] == 1 and res.counts["reduced"] == 2
    skipped = {s["path"]: s["reason"] for s in res.counts["skipped"]}
    assert skipped == {str(V_FLAT.resolve()): "FILTER 'V', expected 'VR'"}
    v_id = c.execute("SELECT id FROM exposure WHERE filter = 'V' AND image_type = 'flat'").fetchone()[0]
    ids, meta = c.execute("SELECT input_ids, meta FROM image_product WHERE kind = 'master_flat'").fetchone()
    assert v_id not in ids
    assert sorted(ids) == sorted(set(reduced["flats"]) - {v_id})
    assert {"path": str(V_FLAT.resolve()), "reason": "FILTER 'V', expected 'VR'"} in meta["skipped"]
    assert meta["filter"] == "VR" and meta["binning"] == "3x3"
    bias_ids = c.execute("SELECT input_ids FROM image_product WHERE kind = 'master_bias'").fetchone()[0]
    assert sorted(bias_ids) == sorted(reduced["bias"])


def test_products_recorded_with_provenance(reduced):
    from catdb.ingest.load import sha256_file

    c, res = reduced["conn"], reduced["res"]
    rows = c.execute("SELECT exposure_id, path, sha256, hdu, band, input_ids, stage_run_id FROM image_product "
                     "WHERE kind = 'reduced' ORDER BY exposure_id").fetchall()
    assert [r[0] for r in rows] == sorted(reduced["sci"])
    for _eid, path, sha, hdu, band, inputs, run in rows:
        assert path.endswith(".fits.fz") and str(reduced["outdir"]) in path
        assert sha == sha256_file(path) and hdu == 1 and band == "VR" and run == res.run_id
        assert set(reduced["bias"]) <= set(inputs)
        with fits.open(path) as hl:
            h = hl[1].header
            assert h["ZEROCOR"] and h["FLATCOR"].startswith("Flat field: master VR flat of 4")
            assert hl[1].data.shape == (1370, 1365)  # TRIMSEC [18:1382,1:1370]
    master = c.execute("SELECT path FROM image_product WHERE kind = 'master_flat'").fetchone()[0]
    flat = fits.getdata(master)
    assert np.nanmedian(flat) == pytest.approx(1.0, abs=1e-3)
    st = c.execute("SELECT status, input_ids FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()
    assert st[0] == "ok" and sorted(st[1]) == sorted(reduced["sci"])


def test_reduced_wcs_and_levels_match_raw(reduced):
    """At the brightest star the reduced and raw WCS agree within 0.01"; sky level = raw - overscan - bias."""
    from astropy.coordinates import SkyCoord
    from scipy.ndimage import median_filter

    from catdb.wcsutil import wcs_from_header

    c = reduced["conn"]
    raw_path, red_path = c.execute(
        "SELECT e.path, p.path FROM image_product p JOIN exposure e ON e.id = p.exposure_id "
        "WHERE p.kind = 'reduced' ORDER BY e.id LIMIT 1").fetchone()
    with fits.open(red_path) as hl:
        red, rh = hl[1].data.astype(float), hl[1].header
    with fits.open(raw_path) as hl:
        raw, hh = hl[1].data.astype(float), hl[1].header
    sm = median_filter(np.nan_to_num(red), size=5)
    sm[:50], sm[-50:], sm[:, :50], sm[:, -50:] = 0, 0, 0, 0
    y, x = np.unravel_index(np.argmax(sm), sm.shape)  # 0-based pixel of the brightest star
    off = -rh["LTV1"], -rh["LTV2"]
    assert off == (17.0, 0.0)
    p_red = wcs_from_header(rh).pixel_to_world(x, y)
    p_raw = wcs_from_header(hh).pixel_to_world(x + off[0], y + off[1])
    assert p_red.separation(p_raw).arcsec < 0.01
    assert isinstance(p_red, SkyCoord)
    # the star is at the same place in the raw frame
    assert raw[y, int(x + off[0])] > np.median(raw) + 1000
    sky_red = np.nanmedian(red)
    sky_raw = np.median(raw[:, 17:1382]) - rh["OSCNMED"]
    assert sky_red == pytest.approx(sky_raw, rel=0.1)


def test_rerun_replaces_products(reduced, tmp_path):
    c = reduced["conn"]
    first = reduced["sci"][0]
    res2 = run_stage("reduce", conn=c, where=f"e.id = {first}", params={"outdir": str(reduced["outdir"])})
    rows = c.execute("SELECT exposure_id, stage_run_id FROM image_product WHERE kind = 'reduced' "
                     "ORDER BY exposure_id").fetchall()
    assert rows == [(first, res2.run_id), (reduced["sci"][1], reduced["res"].run_id)]
    masters = c.execute("SELECT kind, stage_run_id FROM image_product WHERE kind LIKE 'master%' ORDER BY kind"
                        ).fetchall()
    assert masters == [("master_bias", res2.run_id), ("master_flat", res2.run_id)]
    assert res2.counts["replaced_masters"] == 2 and res2.counts["replaced_rows"] == 1
    c.commit()


def test_no_flat_in_filter_is_an_error_with_require_flat_then_reduced_by_default(fresh_db_url, tmp_path):
    c = connect(fresh_db_url)
    try:
        sci = ingest_raw(c, SCIENCE[:1])
        ingest_raw(c, BIASES[:2])
        ingest_raw(c, [V_FLAT])
        with pytest.raises(StageError) as ei:
            run_stage("reduce", conn=c, params={"outdir": str(tmp_path), "require_flat": "true"})
        msg = str(ei.value)
        assert f"exposure {sci[0]}" in msg and "filter='VR'" in msg and "only in filter(s) ['V']" in msg
        assert c.execute("SELECT count(*) FROM image_product").fetchone()[0] == 0
        assert c.execute("SELECT status FROM stage_run WHERE stage = 'reduce'").fetchone()[0] == "failed"
        assert not list(tmp_path.rglob("*.fits*"))  # failed before writing any file

        res = run_stage("reduce", conn=c, params={"outdir": str(tmp_path)})  # require_flat defaults to false
        assert res.counts["reduced"] == 1 and res.counts["master_flat"] == 0 and res.counts["not_flat_fielded"] == 1
        assert any("reduced without a flat: NOT flat-fielded" in n for n in res.counts["notes"])
        path, meta = c.execute("SELECT path, meta FROM image_product WHERE kind = 'reduced'").fetchone()
        assert meta["flat"].startswith("none: not flat-fielded") and meta["master_flat"] is None
        assert meta["flat_fielded"] is False and meta["overscan"].startswith("Overscan section is [1388:1432,1:1370]")
        assert fits.getheader(path, 1)["FLATCOR"].startswith("none: not flat-fielded")
        c.commit()
    finally:
        c.close()


def test_no_bias_is_a_clear_error(fresh_db_url, tmp_path):
    c = connect(fresh_db_url)
    try:
        sci = ingest_raw(c, SCIENCE[:1])
        with pytest.raises(StageError, match=rf"exposure {sci[0]} .*no bias frame in the database with "
                                             r"instrument='nasa42', binning='3x3'"):
            run_stage("reduce", conn=c, params={"outdir": str(tmp_path)})
        assert c.execute("SELECT count(*) FROM image_product").fetchone()[0] == 0
    finally:
        c.close()


def _pixels_md5(path) -> str:
    import hashlib

    with fits.open(path) as hl:
        return hashlib.md5(np.ascontiguousarray(hl[1].data).tobytes()).hexdigest()


def test_reducing_twice_gives_the_same_pixels_and_detections(fresh_db_url, tmp_path):
    """Two reduce + extract runs of one frame: identical reduced pixels, identical detections.

    The reduced frame is a lossy (quantised, subtractively dithered) Rice-compressed float
    image; with a clock-based dither seed every run stored different pixels (one quantisation
    step, sigma_sky/16) and SExtractor found a few sources more or fewer.
    """
    c = connect(fresh_db_url)
    try:
        sci = ingest_raw(c, SCIENCE[:1])
        # two bias and two VR flats keep the masters quick
        ingest_raw(c, BIASES[:2])
        ingest_raw(c, [f for f in FLATS if f != V_FLAT][:2])
        runs = []
        for name in ("first", "second"):
            out = tmp_path / name
            run_stage("reduce", conn=c, params={"outdir": str(out)})
            red = c.execute("SELECT path FROM image_product WHERE kind = 'reduced' ORDER BY id DESC LIMIT 1"
                            ).fetchone()[0]
            assert str(out) in red
            ext = run_stage("extract", conn=c, params={"outdir": str(out), "detect_thresh": 3.0,
                                                       "config": "ANALYSIS_THRESH=3", "workers": 1})
            det = c.execute("SELECT x, y, flux_auto, flags FROM detection WHERE exposure_id = %s "
                            "ORDER BY x, y", (sci[0],)).fetchall()
            runs.append((red, ext.counts["detection"], det))
        (red1, n1, det1), (red2, n2, det2) = runs
        assert _pixels_md5(red1) == _pixels_md5(red2)
        with fits.open(red1, disable_image_compression=True) as hl:
            seed = hl[1].header["ZDITHER0"]  # the fixed seed is recorded in the file
        assert 1 <= seed <= 10000 and fits.getheader(red2, 1, disable_image_compression=True)["ZDITHER0"] == seed
        assert n1 == n2 > 500
        assert det1 == det2
        c.commit()
    finally:
        c.close()


def test_frames_of_a_night_get_different_dither_seeds(reduced):
    """Each frame has its own fixed seed, so the frames' quantisation noise is not correlated in a stack."""
    paths = [r[0] for r in reduced["conn"].execute(
        "SELECT path FROM image_product WHERE kind = 'reduced' ORDER BY exposure_id").fetchall()]
    seeds = [fits.getheader(p, 1, disable_image_compression=True)["ZDITHER0"] for p in paths]
    assert len(paths) == 2 and seeds[0] != seeds[1]
