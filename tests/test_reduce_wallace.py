"""Stage ``reduce`` on the real Wallace night (SBIG STL-1001 under TheSkyX): no overscan, darks, no flat.

Issue #13: reduce refused 'Bias Frame', asked for BIASSEC, never used the darks, and the focus run
(14 subframes of 256x256 labelled 'Light Frame') broke the stages after it.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from catdb.errors import StageError
from catdb.schema.tables import QUALITY_FLAGS
from catdb.stages import run_stage
from catdb.stages.base import StageContext, get_stage
from tests.helpers import WALLACE as W, requires_shared

SCIENCE = sorted(W.glob("lux-180.000secs.Light.Open.*.fit"))
FOCUS = sorted(W.glob("lux-10.000secs.Light.Open.*.fit"))
BIAS = sorted(W.glob("lux-180.000secs.Bias.Open.*.fit"))
DARK = sorted(W.glob("lux-180.000secs.Dark.Open.*.fit"))
NOT_REDUCED = QUALITY_FLAGS["not_reduced"]

pytestmark = requires_shared("wallace2713-20181012")


def _connect(url):
    from catdb.db.engine import connect

    return connect(url)


def _ingest(conn, paths, **kw):
    from catdb.ingest.load import ingest_images

    return [i for r in ingest_images(conn, paths, obscode="810", **kw) for i in r.exposure_ids]


@pytest.fixture(scope="module")
def night(db_url, tmp_path_factory):
    """The whole night ingested (25 science, 14 focus, 10 bias, 5 dark) and reduced once."""
    outdir = tmp_path_factory.mktemp("wallace")
    c = _connect(db_url)
    sci, focus, bias, dark = (_ingest(c, p) for p in (SCIENCE, FOCUS, BIAS, DARK))
    res = run_stage("reduce", conn=c, params={"outdir": str(outdir)})
    yield dict(conn=c, sci=sci, focus=focus, bias=bias, dark=dark, res=res, outdir=outdir)
    c.close()


def test_counts_and_left_out_focus_frames(night):
    c, res = night["conn"], night["res"]
    assert (len(night["sci"]), len(night["focus"]), len(night["bias"]), len(night["dark"])) == (25, 14, 10, 5)
    assert res.counts["reduced"] == 25 and res.counts["master_bias"] == 1 and res.counts["master_dark"] == 1
    assert res.counts["master_flat"] == 0 and res.counts["not_flat_fielded"] == 25
    assert res.counts["dark"] == {"matched": 25} and res.counts["left_out"] == 14
    left = {s["path"]: s["reason"] for s in res.counts["skipped"] if s["kind"] == "science"}
    assert sorted(left) == sorted(str(p.resolve()) for p in FOCUS)
    assert all("256x256 pixels" in r and "1024x1024 pixels" in r and "not_reduced" in r for r in left.values())
    flags = dict(c.execute("SELECT id, quality_flags FROM exposure WHERE image_type = 'science'").fetchall())
    assert all(flags[i] & NOT_REDUCED for i in night["focus"])
    assert not any(flags[i] & NOT_REDUCED for i in night["sci"])
    c.commit()


def test_products_say_what_was_applied(night):
    c = night["conn"]
    rows = c.execute("SELECT exposure_id, path, input_ids, meta FROM image_product WHERE kind = 'reduced' "
                     "ORDER BY exposure_id").fetchall()
    assert [r[0] for r in rows] == sorted(night["sci"])
    for _eid, path, inputs, meta in rows:
        assert meta["overscan"].startswith("none: no BIASSEC")
        assert meta["dark"]["mode"] == "matched" and meta["dark"]["dark_exptime"] == 180.0
        assert meta["flat_fielded"] is False and meta["flat"].startswith("none: not flat-fielded")
        assert sorted(inputs) == sorted(night["bias"] + night["dark"])
        h = fits.getheader(path, 1)
        assert h["FLATCOR"].startswith("none: not flat-fielded") and "matched" in h["DARKCOR"]
        assert (h["NAXIS1"], h["NAXIS2"]) == (1024, 1024)  # whole frame: nothing trimmed
    dark_meta = c.execute("SELECT meta FROM image_product WHERE kind = 'master_dark'").fetchone()[0]
    assert dark_meta["exptime"] == 180.0 and len(dark_meta["used"]) == 5


def test_reduced_frame_levels_and_hot_pixels(night):
    """Sky level = raw - bias - dark; a hot pixel of the dark is removed; saturation lowered by the bias."""
    from scipy.ndimage import median_filter

    c = night["conn"]
    raw_path, red_path = c.execute(
        "SELECT e.path, p.path FROM image_product p JOIN exposure e ON e.id = p.exposure_id "
        "WHERE p.kind = 'reduced' ORDER BY e.mjd_mid LIMIT 1").fetchone()
    mb = fits.getdata(c.execute("SELECT path FROM image_product WHERE kind = 'master_bias'").fetchone()[0])
    md = fits.getdata(c.execute("SELECT path FROM image_product WHERE kind = 'master_dark'").fetchone()[0])
    raw = fits.getdata(raw_path).astype(float)
    red = fits.getdata(red_path, 1).astype(float)
    # bias about 1000 ADU (pedestal included), dark current about 30 ADU in 180 s at -20 C
    assert 900 < np.median(mb) < 1100 and 10 < np.median(md) < 60
    assert np.median(red) == pytest.approx(np.median(raw) - np.median(mb) - np.median(md), rel=0.005)
    # flat background: no bias structure left (12 boxes agree to 2 %; there is no flat, so vignetting stays)
    boxes = [np.median(red[y:y + 256, x:x + 256]) for y in range(0, 1024, 256) for x in range(0, 1024, 256)]
    assert np.std(boxes) / np.mean(boxes) < 0.05
    # a moderately hot pixel (300..5000 ADU in the master dark, far from saturating the sky)
    hot = (md > 300) & (md < 5000)
    assert hot.sum() > 100
    sky_red = median_filter(red, size=7)
    sky_raw = median_filter(raw, size=7)
    excess_raw = np.median((raw - sky_raw)[hot] / md[hot])
    excess_red = np.median((red - sky_red)[hot] / md[hot])
    assert excess_raw == pytest.approx(1.0, abs=0.1) and abs(excess_red) < 0.1
    y, x = np.unravel_index(np.argmax(np.where(hot, md, 0)), md.shape)
    noise = 1.4826 * np.median(np.abs(red - np.median(red)))
    assert (raw - sky_raw)[y, x] > 10 * noise and abs((red - sky_red)[y, x]) < 3 * noise
    h = fits.getheader(red_path, 1)
    assert h["SATURATE"] == pytest.approx(65535 - float(np.median(mb)) - float(np.median(md)), abs=1.0)


def test_later_stages_leave_the_focus_frames_out(night):
    """The default selection of the stages after reduce skips the left-out frames, even when named."""
    c = night["conn"]
    ctx = StageContext(conn=c, run_id=0, params={}, where=None)
    assert sorted(get_stage("extract").select(ctx)) == sorted(night["sci"])
    # qa-background measures the reduced pixels (no WCS needed); a focus frame named in --where is still left out
    two = night["sci"][:2] + night["focus"][:1]
    res = run_stage("qa-background", conn=c, where=f"e.id IN ({','.join(map(str, two))})")
    assert res.input_count == 2
    med = dict(c.execute("SELECT id, bkg_median FROM exposure WHERE id = ANY(%s)", (two,)).fetchall())
    assert med[night["focus"][0]] is None and all(3000 < med[i] < 6000 for i in night["sci"][:2])
    c.commit()


def test_report_says_not_flat_fielded(night, tmp_path):
    from catdb.export.report import write_report

    html = write_report(night["conn"], tmp_path / "r.html").read_text()
    assert "25 of 25 reduced exposures are NOT flat-fielded" in html
    assert "bias + dark (matched); NOT flat-fielded" in html
    assert "14 science exposures were left out of the reduction" in html


def test_no_darks_no_flats_still_reduces(fresh_db_url, tmp_path):
    c = _connect(fresh_db_url)
    try:
        sci = _ingest(c, SCIENCE[:2])
        _ingest(c, BIAS[:3])
        res = run_stage("reduce", conn=c, params={"outdir": str(tmp_path)})
        assert res.counts["reduced"] == 2 and res.counts["master_dark"] == 0 and res.counts["dark"] == {"none": 2}
        assert any("no dark frame of this geometry" in n for n in res.counts["notes"])
        meta = c.execute("SELECT meta FROM image_product WHERE kind = 'reduced' AND exposure_id = %s",
                         (sci[0],)).fetchone()[0]
        assert meta["dark"].startswith("none") and meta["flat_fielded"] is False
        c.commit()
    finally:
        c.close()


def test_dark_of_another_size_is_named_and_not_used(fresh_db_url, tmp_path):
    c = _connect(fresh_db_url)
    try:
        _ingest(c, SCIENCE[:1])
        _ingest(c, BIAS[:3])
        wrong = _ingest(c, FOCUS[:1], image_type="dark")  # a 256x256 frame stored as a dark
        res = run_stage("reduce", conn=c, params={"outdir": str(tmp_path)})
        assert res.counts["reduced"] == 1 and res.counts["master_dark"] == 0
        why = [s["reason"] for s in res.counts["skipped"] if s["kind"] == "dark"]
        assert why == ["dark of 256x256 pixels, binning 1x1, HDU 0: differs from the science frames "
                       "(1024x1024 pixels, binning 1x1, HDU 0); not used"]
        assert wrong and any("no dark frame of this geometry" in n for n in res.counts["notes"])
        c.commit()
    finally:
        c.close()


def test_science_frames_without_a_bias_of_their_size_are_a_clear_error(fresh_db_url, tmp_path):
    c = _connect(fresh_db_url)
    try:
        focus = _ingest(c, FOCUS[:2])  # only 256x256 science frames: they are the night's geometry
        _ingest(c, BIAS[:2])
        with pytest.raises(StageError, match=r"no bias frame in the database with .*naxis1=256, naxis2=256.* "
                                             r"\(bias frames found only with other sizes/binnings: "
                                             r"\['1024x1024 binning 1x1'\]\)"):
            run_stage("reduce", conn=c, params={"outdir": str(tmp_path)})
        assert c.execute("SELECT count(*) FROM image_product").fetchone()[0] == 0
        assert len(focus) == 2
    finally:
        c.close()


def test_dark_scaled_by_exposure_time_and_reduced_frame_refused(tmp_path):
    """A dark of another exposure time is scaled by the ratio of exposure times (ccdproc subtract_dark)."""
    from catdb.algorithms.reduce import master_bias, master_dark, prepare_frame, read_raw, reduce_science
    from catdb.errors import InputError

    bias = master_bias(BIAS[:3])
    dark = master_dark(DARK[:3], bias)
    assert dark.ccd.meta["EXPTIME"] == 180.0
    full = reduce_science(SCIENCE[0], bias, None, tmp_path / "a.fits.fz", master_dark=dark)
    half = reduce_science(SCIENCE[0], bias, None, tmp_path / "b.fits.fz", master_dark=dark, exptime=90.0)
    h = fits.getheader(half, 1)
    assert "scaled x0.5" in h["DARKCOR"] and "matched x1" in fits.getheader(full, 1)["DARKCOR"]
    diff = fits.getdata(half, 1).astype(float) - fits.getdata(full, 1).astype(float)
    # half the dark was subtracted: the difference is half the master dark (to the quantisation noise)
    assert np.median(diff - 0.5 * dark.ccd.data) == pytest.approx(0.0, abs=1.0)
    with pytest.raises(InputError, match="already reduced"):
        prepare_frame(read_raw(full))
    with pytest.raises(InputError, match="expected a dark"):
        master_dark(BIAS[:1], bias)


def test_ingest_cli_obscode_and_missing_wcs_note(fresh_db_url):
    """`catdb ingest image --obscode 810` stores the code; the summary says the frames have no WCS."""
    from click.testing import CliRunner

    from catdb.cli.main import cli

    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "--quiet", "ingest", "image", "--obscode", "810",
                                 *map(str, SCIENCE[:2] + BIAS[:1])], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "2 exposures have no WCS (wcs_status none): run catdb stage solve" in r.output
    assert "no observatory code" not in r.output
    c = _connect(fresh_db_url)
    try:
        rows = c.execute("SELECT observatory_code, site_lon, night FROM exposure ORDER BY id").fetchall()
        assert {r[0] for r in rows} == {"810"} and all(abs(r[1] + 71.485) < 1e-3 for r in rows)
    finally:
        c.close()
    bad = CliRunner().invoke(cli, ["--db", fresh_db_url, "ingest", "image", "--obscode", "Wallace", str(SCIENCE[0])])
    assert bad.exit_code != 0 and "not an MPC code" in bad.output
