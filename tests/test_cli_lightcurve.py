"""catdb lightcurve / period / cutouts on real Lowell exposures with tracks along the MANIFEST movers."""
from __future__ import annotations

import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from click.testing import CliRunner

from catdb.cli.main import cli
from tests.helpers import TEST_DATA
from tests.lowell_night import needs_lowell
from tests.track_db import AMP, P_TRUE_H, build

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]

SKYBOT_VOT = TEST_DATA / "skybot" / "skybot_query.vot"


@pytest.fixture(scope="module")
def db(db_url):
    from catdb.db.engine import connect

    c = connect(db_url)
    info = build(c)
    c.close()
    return db_url, info


def run(url, *args, code=0):
    r = CliRunner().invoke(cli, ["--db", url, *args])
    assert r.exit_code == code, (r.output, r.exception)
    return r


def test_lightcurve_table_csv_votable_png(db, tmp_path):
    url, info = db
    t1 = info["tracks"]["mover1"]
    out = tmp_path / "lc.csv"
    run(url, "lightcurve", f"track:{t1['id']}", "-o", str(out), "--png", str(tmp_path / "lc.png"))
    t = Table.read(out, format="ascii.csv")
    forced = t[t["source"] == "forced"]
    det = t[t["source"] == "detection"]
    assert len(forced) == len(det) == info["mjd"].size
    np.testing.assert_allclose(forced["mjd"], info["mjd"], atol=1e-9)
    np.testing.assert_allclose(forced["mag"], info["forced_mag"], atol=1e-9)
    # detections are calibrated with the exposure's zeropoint: mag_auto + 25
    np.testing.assert_allclose(np.sort(det["mag"]), np.sort(t1["mag"]), atol=1e-4)
    assert np.all(det["calibrated"])
    assert set(det["zp_method"]) == {"pp"}              # absolute: fitted to a reference catalogue
    np.testing.assert_allclose(det["mag_err"], np.hypot(det["magerr_inst"], 0.02), atol=1e-6)
    assert (tmp_path / "lc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a bare id is a track; VOTable carries units
    run(url, "lightcurve", str(t1["id"]), "-o", str(tmp_path / "lc.vot"))
    v = Table.read(tmp_path / "lc.vot")
    assert str(v["mjd"].unit) == "d" and str(v["mag"].unit) == "mag" and len(v) == len(t)
    # printed table
    out = run(url, "lightcurve", f"track:{t1['id']}").output
    assert "forced" in out and "detection" in out


def test_period_recovers_injected_sinusoid(db, tmp_path):
    url, info = db
    tid = info["tracks"]["mover1"]["id"]
    png = tmp_path / "fold.png"
    out = run(url, "period", f"track:{tid}", "--png", str(png)).output
    m = re.search(r"P\s+=\s+([\d.]+) \+- ([\d.]+) h", out)
    p, err = float(m.group(1)), float(m.group(2))
    assert p == pytest.approx(P_TRUE_H, abs=max(3 * err, 0.01))
    m2 = re.search(r"2P = ([\d.]+)", out)
    assert float(m2.group(1)) == pytest.approx(2 * p, abs=2e-4)
    amp = float(re.search(r"amplitude \(peak to peak\)\s+= ([\d.]+)", out).group(1))
    assert amp == pytest.approx(2 * AMP, abs=0.02)
    fap = float(re.search(r"FAP = ([\d.e+-]+),", out).group(1))
    assert fap < 1e-6
    assert f"{info['mjd'].size} forced points" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # with two Fourier terms the same period comes back; the Baluev FAP is not defined there, a
    # bootstrap FAP is given instead (a probability, small for this injected signal)
    out2 = run(url, "period", str(tid), "--nterms", "2").output
    p2 = float(re.search(r"P\s+=\s+([\d.]+)", out2).group(1))
    assert p2 == pytest.approx(P_TRUE_H, abs=0.02)
    fap2 = float(re.search(r"FAP = ([\d.e+-]+),", out2).group(1))
    assert 0 < fap2 <= 0.05 and "bootstrap" in out2
    # detections only: a different light curve (no 1.25 h signal injected there)
    out3 = run(url, "period", str(tid), "--source", "detection").output
    assert f"{info['mjd'].size} detection points" in out3


def test_light_time_from_skybot_match_or_refused(db, tmp_path):
    url, info = db
    t1, t2 = info["tracks"]["mover1"]["id"], info["tracks"]["mover2"]["id"]
    # track 1 has no SkyBoT identification: refused with a clear message, exit 1
    r = run(url, "lightcurve", str(t1), "--light-time", code=1)
    assert "no SkyBoT identification" in r.output and "--delta" in r.output
    # track 2 is SkyBoT's '2019 RB21' (recorded response: Dg = 1.594366842 au)
    # the recorded response is of 2025-01-02: its distances do not apply to a 2019 night
    r = run(url, "lightcurve", str(t2), "--light-time", "--skybot-votable", str(SKYBOT_VOT), code=1)
    assert "epoch 2025-01-02" in r.output and "does not apply" in r.output
    # the same response with its epoch set to the track's night (derived copy, only the epoch changed)
    vot = tmp_path / "skybot_2019.vot"
    vot.write_text(SKYBOT_VOT.read_text().replace('value="2025-01-02 00:00:00.00"', 'value="2019-03-26 05:00:00.00"'))
    out = tmp_path / "lt.csv"
    run(url, "lightcurve", str(t2), "--light-time", "--skybot-votable", str(vot), "-o", str(out))
    t = Table.read(out, format="ascii.csv")
    np.testing.assert_allclose(np.sort(t["mjd"]), info["mjd"], atol=1e-9)   # mjd stays the observed epoch
    lt_s = (t["mjd"] - t["mjd_lt"]) * 86400                                 # mjd_lt: the light-time corrected one
    np.testing.assert_allclose(lt_s, 1.594366842 * 499.004784, atol=0.01)  # ~795.6 s
    v = tmp_path / "lt.vot"
    run(url, "lightcurve", str(t2), "--delta", "1.5", "-o", str(v))
    v = Table.read(v)
    assert str(v["mjd_lt"].unit) == "d" and "light-time corrected" in v["mjd_lt"].description.lower()
    np.testing.assert_allclose((v["mjd"] - v["mjd_lt"]) * 86400, 1.5 * 499.004784, atol=1e-3)
    # an explicit distance works for any track
    r = run(url, "period", str(t1), "--light-time", "--delta", "2.0")
    assert "delta 2.0000 au, given" in r.output


def test_bad_targets_exit_nonzero(db, tmp_path):
    url, _ = db
    assert "no track 999999" in run(url, "lightcurve", "999999", code=1).output
    assert "no object 5" in run(url, "period", "object:5", code=1).output
    assert "expected 'track:ID'" in run(url, "lightcurve", "star:3", code=1).output
    assert "expected 'track:ID'" in run(url, "period", "track:abc", code=1).output
    assert "no track 424242" in run(url, "cutouts", "--track", "424242", "-o", str(tmp_path), code=1).output
    r = run(url, "lightcurve", "1", "-o", str(tmp_path / "lc.txt"), code=1)
    assert "lc.txt" in r.output and ".csv" in r.output


def test_cutouts_fits_with_wcs_and_strip(db, tmp_path):
    url, info = db
    t1 = info["tracks"]["mover1"]
    # default: every candidate track, one directory each
    run(url, "cutouts", "-o", str(tmp_path), "--size", "30")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"track{t['id']}" for t in info["tracks"].values())
    d = tmp_path / f"track{t1['id']}"
    files = sorted(d.glob("*.fits"))
    assert len(files) == info["mjd"].size
    for f in files[::5]:
        with fits.open(f) as h:
            hdr, data = h[0].header, h[0].data
        assert data.shape[0] == data.shape[1] and data.shape[0] % 2 == 1     # odd: a central pixel
        w = WCS(hdr)
        scale = float(np.mean(proj_plane_pixel_scales(w))) * 3600            # the header's own WCS scale
        assert abs(data.shape[0] * scale - 30) <= scale                     # 30" on the sky, to a pixel
        x, y = w.world_to_pixel_values(hdr["RA_DET"], hdr["DEC_DET"])
        c = (data.shape[0] - 1) / 2
        assert abs(x - c) < 1 and abs(y - c) < 1                            # the detection at the centre
        # the bright asteroid (mover 1) is the brightest thing near the centre
        assert np.nanmax(data[int(c) - 3:int(c) + 4, int(c) - 3:int(c) + 4]) > np.nanmedian(data) + 500
        assert hdr["TRACK"] == t1["id"] and np.min(np.abs(info["mjd"] - hdr["MJD-MID"])) < 1e-9
    assert (d / f"track{t1['id']}_strip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_links_cutouts(db, tmp_path):
    from catdb.db.engine import connect
    from catdb.export.report import write_report

    url, info = db
    t1 = info["tracks"]["mover1"]["id"]
    run(url, "cutouts", "--track", str(t1), "-o", str(tmp_path / "cutouts"))
    assert [p.name for p in (tmp_path / "cutouts").iterdir()] == [f"track{t1}"]     # --track: that one only
    with connect(url) as c:
        html = write_report(c, tmp_path / "night.html").read_text()
    assert f'href="cutouts/track{t1}/track{t1}_strip.png"' in html
    assert f'href="cutouts/track{t1}/track{t1}_001_' in html


def test_object_light_curve_and_too_few_points(db, tmp_path):
    """An object's light curve comes from its linked detections; a period needs 5 of them."""
    from catdb.db.engine import connect

    url, info = db
    t2 = info["tracks"]["mover2"]
    with connect(url) as c:
        oids = []
        for ids in (t2["detection_ids"], info["tracks"]["mover1"]["detection_ids"][:3]):
            oid = c.execute("INSERT INTO object (ra, dec, kind, n_detections, stage_run_id) VALUES "
                            "(%s, %s, 'static', %s, %s) RETURNING id",
                            (float(t2["ra"][0]), float(t2["dec"][0]), len(ids), info["run_id"])).fetchone()[0]
            c.execute("INSERT INTO detection_object (detection_id, object_id, stage_run_id) "
                      "SELECT unnest(%s::bigint[]), %s, %s", (ids.tolist(), oid, info["run_id"]))
            oids.append(oid)
        c.commit()
    out = tmp_path / "obj.csv"
    run(url, "lightcurve", f"object:{oids[0]}", "-o", str(out))
    t = Table.read(out, format="ascii.csv")
    assert len(t) == info["mjd"].size and set(t["source"]) == {"detection"}
    np.testing.assert_allclose(np.sort(t["mag"]), np.sort(t2["mag"]), atol=1e-4)
    r = run(url, "lightcurve", f"object:{oids[0]}", "--light-time", "--delta", "1", code=1)
    assert "needs a track" in r.output
    r = run(url, "period", f"object:{oids[1]}", code=1)
    assert "3 detection magnitudes" in r.output and "at least 5" in r.output


def test_mag_err_unknown_when_the_zeropoint_error_is(db, tmp_path):
    """A calibrated point whose zeropoint has no error: mag_err is empty, not the instrumental error alone."""
    from catdb.db.engine import connect

    url, info = db
    t1 = info["tracks"]["mover1"]
    c = connect(url)
    eid = c.execute("SELECT min(exposure_id) FROM zeropoint").fetchone()[0]
    c.execute("UPDATE zeropoint SET zp_err = NULL WHERE exposure_id = %s", (eid,))
    c.commit()
    try:
        out = tmp_path / "lc.csv"
        run(url, "lightcurve", f"track:{t1['id']}", "-o", str(out))
        t = Table.read(out, format="ascii.csv")
        t = t[t["source"] == "detection"]
        one = t[t["exposure_id"] == eid]
        assert len(one) == 1 and str(one["calibrated"][0]) == "True" and not np.isfinite(one["mag_err"][0])
        assert np.isfinite(np.asarray(t[t["exposure_id"] != eid]["mag_err"], dtype=float)).all()
    finally:
        c.execute("UPDATE zeropoint SET zp_err = 0.02 WHERE exposure_id = %s", (eid,))
        c.commit()
        c.close()
