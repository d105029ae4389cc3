"""Stage ``forced`` on reduced Lowell 42-inch frames: a real asteroid track, bright stars, user positions."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord

from catdb.db.engine import connect
from catdb.errors import StageError
from catdb.stages import run_stage
from catdb.db.provenance import start_run
from tests.helpers import REPO_DATA
from tests.lowell_night import ingest_and_reduce

LOWELL = REPO_DATA / "lowell42-5945"
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 135)]
N = len(SCIENCE)
# known mover 1 of MANIFEST.md: (JD, RA, Dec) at two epochs
MOVER1 = ((2458568.60418, 124.62662, 25.34294), (2458568.84034, 124.63359, 25.32967))

pytestmark = [pytest.mark.skipif(not (LOWELL / "science").is_dir(), reason=f"real data not found at {LOWELL}"),
              pytest.mark.spatial_backends]


def mover1_at(mjd):
    """MANIFEST positions of mover 1, linearly interpolated (RA, Dec in deg)."""
    (t1, r1, d1), (t2, r2, d2) = MOVER1
    f = (np.asarray(mjd) + 2400000.5 - t1) / (t2 - t1)
    return r1 + f * (r2 - r1), d1 + f * (d2 - d1)


@pytest.fixture(scope="module")
def lowell(db_url, tmp_path_factory):
    outdir = tmp_path_factory.mktemp("products")
    c = connect(db_url)
    sci, _ = ingest_and_reduce(c, SCIENCE, outdir)
    run_stage("extract", conn=c, params={"outdir": str(outdir), "phot_apertures": "6,10,16",
                                               "config": "SEEING_FWHM=2.5"})  # skips the seeing pass
    # the track of mover 1 as the movers stage would write it (rates in "/h, RA rate times cos dec)
    (t1, r1, d1), (t2, r2, d2) = MOVER1
    hours = (t2 - t1) * 24.0
    rate_ra = (r2 - r1) * np.cos(np.radians(d1)) * 3600 / hours
    rate_dec = (d2 - d1) * 3600 / hours
    run = start_run(c, "test-movers", {})
    track = c.execute("INSERT INTO track (n_detections, ra, dec, mjd_ref, rate_ra, rate_dec, rate, status, "
                      "designation, stage_run_id) VALUES (3, %s, %s, %s, %s, %s, %s, 'candidate', '5945?', %s) "
                      "RETURNING id", (r1, d1, t1 - 2400000.5, rate_ra, rate_dec, np.hypot(rate_ra, rate_dec),
                                       run)).fetchone()[0]
    c.commit()
    yield dict(conn=c, sci=sci, outdir=outdir, track=track, run=run)
    c.close()


def test_track_positions_and_auto_radius(lowell):
    c = lowell["conn"]
    res = run_stage("forced", conn=c, params={"tracks": "status = 'candidate'", "radius": "auto"})
    rows = c.execute("SELECT f.exposure_id, e.mjd_mid, f.ra, f.dec, f.flux, f.flux_err, f.aperture_radius, f.flags, "
                     "f.mag, f.label, f.object_id FROM forced_source f JOIN exposure e ON e.id = f.exposure_id "
                     "WHERE f.track_id = %s ORDER BY e.mjd_mid", (lowell["track"],)).fetchall()
    assert [r[0] for r in rows] == sorted(lowell["sci"])
    for eid, mjd, ra, dec, flux, ferr, rad, flags, mag, label, obj in rows:
        ra_m, dec_m = mover1_at(mjd)
        assert SkyCoord(ra, dec, unit="deg").separation(SkyCoord(ra_m, dec_m, unit="deg")).arcsec < 0.5
        assert flux / ferr > 20  # the bright asteroid is measured, not sky
        assert flags == 8 and mag is None and label == "5945?" and obj is None  # no zeropoint yet
        auto = res.counts["radius_auto"][str(eid)]
        assert auto["found"] and rad == auto["radius"] and 1.5 <= rad <= 8
        # SExtractor found the asteroid at the predicted place
        det = np.array(c.execute("SELECT ra, dec FROM detection WHERE exposure_id = %s", (eid,)).fetchall())
        sep = SkyCoord(det[:, 0], det[:, 1], unit="deg").separation(SkyCoord(ra, dec, unit="deg")).arcsec
        assert sep.min() < 2.0


def _bright_isolated_stars(c, eid, n=12):
    det = np.array(c.execute("SELECT ra, dec, snr, class_star, flags, x, y FROM detection WHERE exposure_id = %s",
                             (eid,)).fetchall(), dtype=float)
    sky = SkyCoord(det[:, 0], det[:, 1], unit="deg")
    idx, d2, _ = sky.match_to_catalog_sky(sky, nthneighbor=2)
    ok = ((det[:, 2] > 100) & (det[:, 3] > 0.9) & (det[:, 4] == 0) & (d2.arcsec > 25)
          & (det[:, 5] > 40) & (det[:, 5] < 1325) & (det[:, 6] > 40) & (det[:, 6] < 1330))
    sel = det[ok]
    return sel[np.argsort(-sel[:, 2])][:n]


def test_bright_stars_match_sextractor_apertures_and_zeropoint(lowell):
    c = lowell["conn"]
    e1, e2 = sorted(lowell["sci"])
    stars = _bright_isolated_stars(c, e1)
    assert len(stars) >= 6
    run = start_run(c, "test-associate", {})
    for ra, dec in stars[:, :2]:
        c.execute("INSERT INTO object (ra, dec, kind, n_detections, n_epochs, stage_run_id) "
                  "VALUES (%s, %s, 'static', 3, 3, %s)", (ra, dec, run))
    c.execute("INSERT INTO zeropoint (exposure_id, band, zp, zp_err, method, ok, stage_run_id) "
              "VALUES (%s, 'R', 24.5, 0.03, 'pp', true, %s)", (e2, run))
    c.commit()
    res = run_stage("forced", conn=c, params={"objects": "kind = 'static'", "radius": "5"})
    assert res.counts["forced_source"] == N * len(stars)
    rows = np.array(c.execute("SELECT exposure_id, flux, flux_err, NULL, mag, mag_err, flags, ra, dec "
                              "FROM forced_source WHERE object_id IS NOT NULL AND stage_run_id = %s",
                              (res.run_id,)).fetchall(), dtype=float)
    assert len(rows) == N * len(stars)
    for eid in lowell["sci"]:  # SExtractor FLUX_APER (diameter 10 pix) of the nearest detection
        det = np.array(c.execute("SELECT ra, dec, flux_aper[2] FROM detection WHERE exposure_id = %s",
                                 (eid,)).fetchall(), dtype=float)
        mine = rows[:, 0] == eid
        idx, sep, _ = SkyCoord(rows[mine, 7], rows[mine, 8], unit="deg").match_to_catalog_sky(
            SkyCoord(det[:, 0], det[:, 1], unit="deg"))
        assert np.all(sep.arcsec < 2.0)
        rows[mine, 3] = det[idx, 2]
    ratio = rows[:, 1] / rows[:, 3]  # forced r=5 pix vs SExtractor FLUX_APER diameter 10 pix
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    assert np.all(np.abs(ratio - 1) < 0.05), ratio
    # calibrated where a zeropoint exists, flagged 8 elsewhere
    cal = rows[rows[:, 0] == e2]
    assert np.all(cal[:, 6].astype(int) & 8 == 0)
    # total magnitudes: the aperture flux corrected with the bright stars' growth curve (r = 5 -> 10 pix)
    ac = np.array([r[0] for r in c.execute("SELECT aper_corr FROM forced_source WHERE stage_run_id = %s "
                                           "AND exposure_id = %s", (res.run_id, e2)).fetchall()])
    assert np.unique(ac).size == 1 and -0.2 < ac[0] < 0
    assert np.allclose(cal[:, 4], 24.5 - 2.5 * np.log10(cal[:, 1]) + ac[0])
    # ... as SExtractor's apertures of the same stars say (r = 5 vs 8 pix: a little less light outside)
    f = np.array(c.execute("SELECT flux_aper[2], flux_aper[3] FROM detection WHERE exposure_id = %s AND flags = 0 "
                           "AND class_star >= 0.8 AND snr >= 50 ORDER BY snr DESC LIMIT 50", (e2,)).fetchall())
    sex_corr = 2.5 * np.log10(np.median(f[:, 0] / f[:, 1]))
    assert sex_corr - 0.03 < ac[0] <= sex_corr + 0.005, (ac[0], sex_corr)
    assert np.allclose(cal[:, 5], np.hypot(2.5 / np.log(10) * cal[:, 2] / cal[:, 1], 0.03))
    assert c.execute("SELECT DISTINCT band FROM forced_source WHERE exposure_id = %s AND object_id IS NOT NULL",
                     (e2,)).fetchall() == [("R",)]
    unc = rows[rows[:, 0] != e2]
    assert np.all(unc[:, 6].astype(int) & 8 == 8) and np.all(np.isnan(unc[:, 4]))

    # re-run: the object rows are replaced, the track rows stay
    n_track = c.execute("SELECT count(*) FROM forced_source WHERE track_id IS NOT NULL").fetchone()[0]
    res2 = run_stage("forced", conn=c, params={"objects": "kind = 'static'", "radius": "5"})
    assert res2.counts["replaced_rows"] == N * len(stars)
    assert c.execute("SELECT count(*), min(stage_run_id), max(stage_run_id) FROM forced_source "
                     "WHERE object_id IS NOT NULL").fetchone() == (N * len(stars), res2.run_id, res2.run_id)
    assert c.execute("SELECT count(*) FROM forced_source WHERE track_id IS NOT NULL").fetchone()[0] == n_track
    c.commit()


def test_user_positions(lowell, tmp_path):
    c = lowell["conn"]
    e1 = sorted(lowell["sci"])[0]
    det = np.array(c.execute("SELECT ra, dec, snr FROM detection WHERE exposure_id = %s", (e1,)).fetchall())
    ra0, dec0 = c.execute("SELECT ra_center, dec_center FROM exposure WHERE id = %s", (e1,)).fetchone()
    # a blank-sky position: the grid point near the centre farthest from any detection and
    # more than 3' from bright (S/N > 300) stars, whose halos hide faint detections
    g = np.stack(np.meshgrid(ra0 + np.linspace(-0.1, 0.1, 41), dec0 + np.linspace(-0.1, 0.1, 41)), -1).reshape(-1, 2)
    grid = SkyCoord(g[:, 0], g[:, 1], unit="deg")
    _, d2, _ = grid.match_to_catalog_sky(SkyCoord(det[:, 0], det[:, 1], unit="deg"))
    bright = det[det[:, 2] > 300]
    _, db, _ = grid.match_to_catalog_sky(SkyCoord(bright[:, 0], bright[:, 1], unit="deg"))
    score = np.where(db.arcsec > 180, d2.arcsec, 0)
    blank = g[np.argmax(score)]
    assert score.max() > 15
    csv = tmp_path / "targets.csv"
    csv.write_text("RA,Dec,label,comment\n"
                   f"124.5689621,25.4079208,TYC near centre,VT 9.1\n"
                   f"{blank[0]:.7f},{blank[1]:.7f},blank sky,\n"
                   "10.0,10.0,elsewhere,not in any exposure\n")
    res = run_stage("forced", conn=c, params={"positions": str(csv), "radius": "4"})
    rows = c.execute("SELECT label, flux, flux_err, object_id, track_id FROM forced_source "
                     "WHERE stage_run_id = %s ORDER BY label", (res.run_id,)).fetchall()
    assert [r[0] for r in rows] == ["TYC near centre"] * N + ["blank sky"] * N
    assert all(r[3] is None and r[4] is None for r in rows)
    blank_rows = [r for r in rows if r[0] == "blank sky"]
    assert all(abs(f) < 5 * e for _, f, e, _, _ in blank_rows), (blank, blank_rows)  # no source
    assert all(f / e > 100 for lab, f, e, _, _ in rows if lab.startswith("TYC"))
    # re-running with the same file replaces exactly these rows
    res2 = run_stage("forced", conn=c, params={"positions": str(csv), "radius": "4"})
    assert res2.counts["replaced_rows"] == 2 * N
    # without an aperture correction: aper_corr is NULL (not a 0 that looks measured), flag 32 says mag is
    # the aperture magnitude; with one, the flag is clear and aper_corr measured
    sql_ac = ("SELECT count(*), count(aper_corr), count(*) FILTER (WHERE flags & 32 = 32) FROM forced_source "
              "WHERE stage_run_id = %s")
    assert c.execute(sql_ac, (res2.run_id,)).fetchone() == (2 * N, 2 * N, 0)
    res3 = run_stage("forced", conn=c, params={"positions": str(csv), "radius": "4",
                                               "aperture_correction": "false"})
    assert c.execute(sql_ac, (res3.run_id,)).fetchone() == (2 * N, 0, 2 * N)
    c.commit()


def test_bad_positions_file_is_a_clear_error(lowell, tmp_path):
    c = lowell["conn"]
    before = c.execute("SELECT count(*) FROM forced_source").fetchone()[0]
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,declination\n124.6,25.3\n")
    with pytest.raises(StageError, match=r"bad.csv, dec: missing column\(s\) dec: expected ra,dec\[,label\].*"
                                         r"found ra, declination"):
        run_stage("forced", conn=c, params={"positions": str(bad), "radius": "4"})
    bad.write_text("ra,dec\n124.6,25.3\n124.7,abc\n")
    with pytest.raises(StageError, match=r"bad.csv, row 2, dec: dec = '?abc'? is not a number"):
        run_stage("forced", conn=c, params={"positions": str(bad), "radius": "4"})
    with pytest.raises(StageError, match="positions file not found"):
        run_stage("forced", conn=c, params={"positions": str(tmp_path / "nope.csv")})
    with pytest.raises(StageError, match="needs targets"):
        run_stage("forced", conn=c)
    assert c.execute("SELECT count(*) FROM forced_source").fetchone()[0] == before
    assert {r[0] for r in c.execute("SELECT status FROM stage_run WHERE stage = 'forced' "
                                    "ORDER BY id DESC LIMIT 4")} == {"failed"}
    c.commit()


def test_unknown_read_noise_uses_the_measured_background_noise(lowell, tmp_path):
    """An exposure without a read noise: errors from the annulus' measured variance (counted in the run), close
    to the CCD equation's with the real read noise -- not the CCD equation with a read noise of 0."""
    c = lowell["conn"]
    e1 = sorted(lowell["sci"])[0]
    csv = tmp_path / "star.csv"
    csv.write_text("ra,dec,label\n124.5689621,25.4079208,TYC near centre\n124.60,25.36,sky\n")
    params = {"positions": str(csv), "radius": "4", "aperture_correction": "false"}
    sql_err = "SELECT label, flux_err FROM forced_source WHERE stage_run_id = %s AND exposure_id = %s ORDER BY label"
    r_ccd = run_stage("forced", conn=c, params=params)
    ccd = c.execute(sql_err, (r_ccd.run_id, e1)).fetchall()
    assert r_ccd.counts["noise_measured_no_readnoise"] == []
    rn = c.execute("SELECT readnoise FROM exposure WHERE id = %s", (e1,)).fetchone()[0]
    c.execute("UPDATE exposure SET readnoise = NULL WHERE id = %s", (e1,))
    try:
        r_meas = run_stage("forced", conn=c, params=params)
        meas = c.execute(sql_err, (r_meas.run_id, e1)).fetchall()
        assert r_meas.counts["noise_measured_no_readnoise"] == [e1]
        assert [m[0] for m in meas] == [x[0] for x in ccd] == ["TYC near centre", "sky"]
        for (_, e_ccd), (_, e_meas) in zip(ccd, meas):
            assert e_meas == pytest.approx(e_ccd, rel=0.3)
    finally:
        c.execute("UPDATE exposure SET readnoise = %s WHERE id = %s", (rn, e1))
        c.commit()
