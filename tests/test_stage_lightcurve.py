"""Stage lightcurve on the Lowell asteroid tracks: detections (real) and forced photometry (injected signal)."""
from __future__ import annotations

import numpy as np
import pytest

from catdb.errors import StageError
from catdb.stages import run_stage
from tests.lowell_night import mover_radec, needs_lowell, night_db_url

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, steps=("associate", "movers8"))
    c = connect(url)
    yield c, info
    c.close()


def _mover1_track(conn):
    for tid, mjd_ref in conn.execute("SELECT id, mjd_ref FROM track WHERE status = 'candidate'").fetchall():
        ra, dec = conn.execute("SELECT ra, dec FROM track WHERE id = %s", (tid,)).fetchone()
        pra, pdec = mover_radec("mover1", mjd_ref)
        if np.hypot((ra - pra) * np.cos(np.radians(dec)), dec - pdec) * 3600 < 2:
            return tid
    raise AssertionError("mover 1 track not found")


def test_lightcurve_of_candidate_tracks_from_detections(night, tmp_path):
    conn, info = night
    res = run_stage("lightcurve", conn=conn, params={"outdir": str(tmp_path)})
    n_cand = conn.execute("SELECT count(*) FROM track WHERE status = 'candidate'").fetchone()[0]
    assert res.input_count == n_cand and res.counts["lightcurve_period"] == n_cand
    tid = _mover1_track(conn)
    n_pts, period, rot, amp, fap = conn.execute(
        "SELECT n_points, period, rotation_period, amplitude, fap FROM lightcurve_period WHERE track_id = %s",
        (tid,)).fetchone()
    mags = np.array([r[0] for r in conn.execute(
        "SELECT d.mag_auto FROM track_detection td JOIN detection d ON d.id = td.detection_id "
        "WHERE td.track_id = %s AND NOT td.outlier", (tid,)).fetchall()])
    assert n_pts == mags.size >= 20
    assert rot == pytest.approx(2 * period)                  # double-peaked by default
    span_h = 24 * float(np.ptp([r[0] for r in conn.execute(
        "SELECT e.mjd_mid FROM track_detection td JOIN detection d ON d.id = td.detection_id "
        "JOIN exposure e ON e.id = d.exposure_id WHERE td.track_id = %s", (tid,)).fetchall()]))
    assert 0 < period <= 1.01 * span_h                       # within the searched range (up to the span)
    assert 0 < amp <= np.ptp(mags) + 0.05 and 0 <= fap <= 1  # model amplitude within the data's range
    assert res.counts["source"][str(tid)] == "detections (instrumental)"
    png = res.counts["png"][str(tid)]
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # re-run replaces the periods of the same tracks
    run_stage("lightcurve", conn=conn, params={"outdir": str(tmp_path)})
    assert conn.execute("SELECT count(*) FROM lightcurve_period").fetchone()[0] == n_cand
    conn.commit()


def test_forced_photometry_preferred_and_injected_period_recovered(night, tmp_path):
    """Forced magnitudes carrying a 2.5 h double-peaked light curve (1.25 h sinusoid): the rotation
    period comes back within its error, from forced_source rather than the detections."""
    conn, info = night
    tid = _mover1_track(conn)
    run_id = conn.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('test-forced', 't', 'ok') "
                          "RETURNING id").fetchone()[0]
    p_true = 1.25 / 24
    conn.execute(
        "INSERT INTO forced_source (track_id, exposure_id, ra, dec, mag, mag_err, band, stage_run_id) "
        "SELECT %s, e.id, 124.6, 25.3, 17 + 0.2 * sin(2 * pi() * e.mjd_mid / %s), 0.01, 'R', %s "
        "FROM exposure e", (tid, p_true, run_id))
    res = run_stage("lightcurve", conn=conn, params={"track_id": str(tid), "outdir": str(tmp_path)})
    assert res.input_count == 1 and res.counts["source"][str(tid)] == "forced_source"
    rot, err, amp, n = conn.execute("SELECT rotation_period, period_err, amplitude, n_points FROM lightcurve_period "
                                    "WHERE track_id = %s", (tid,)).fetchone()
    assert n == len(info["exposure_ids"])
    assert rot == pytest.approx(2 * 1.25, abs=max(3 * 2 * err, 0.02))
    assert amp == pytest.approx(0.4, abs=0.02)
    conn.rollback()


def test_flagged_exposures_and_forced_points_are_left_out(night, tmp_path):
    """exclude_flagged (default): a QA-flagged exposure (e.g. a twilight frame) and a saturated forced
    measurement do not enter the period search; exclude_flagged=false keeps every point."""
    conn, info = night
    tid = _mover1_track(conn)
    run_id = conn.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('test-forced', 't', 'ok') "
                          "RETURNING id").fetchone()[0]
    conn.execute(
        "INSERT INTO forced_source (track_id, exposure_id, ra, dec, mag, mag_err, band, flags, stage_run_id) "
        "SELECT %s, e.id, 124.6, 25.3, 17 + 0.2 * sin(2 * pi() * e.mjd_mid / %s), 0.01, 'R', "
        "CASE WHEN e.id = %s THEN 2 ELSE 0 END, %s FROM exposure e", (tid, 1.25 / 24, info["exposure_ids"][5], run_id))
    conn.execute("UPDATE exposure SET quality_flags = 1 WHERE id = ANY(%s)", (info["exposure_ids"][-2:],))
    res = run_stage("lightcurve", conn=conn, params={"track_id": str(tid), "outdir": str(tmp_path)})
    n = conn.execute("SELECT n_points FROM lightcurve_period WHERE track_id = %s", (tid,)).fetchone()[0]
    assert n == len(info["exposure_ids"]) - 3 and res.counts["source"][str(tid)] == "forced_source"
    assert res.counts["points_excluded"] >= 3
    run_stage("lightcurve", conn=conn, params={"track_id": str(tid), "outdir": str(tmp_path),
                                              "exclude_flagged": "false"})
    n = conn.execute("SELECT n_points FROM lightcurve_period WHERE track_id = %s", (tid,)).fetchone()[0]
    assert n == len(info["exposure_ids"])
    conn.rollback()


def test_bad_targets_are_refused(night, tmp_path):
    conn, _ = night
    with pytest.raises(StageError, match="no track 999999"):
        run_stage("lightcurve", conn=conn, params={"track_id": "999999", "outdir": str(tmp_path)})
    # an object seen on 2 frames has too few points for a period
    oid = conn.execute("SELECT id FROM object WHERE n_detections = 2 LIMIT 1").fetchone()[0]
    with pytest.raises(StageError, match=f"object_id {oid}: no period search possible"):
        run_stage("lightcurve", conn=conn, params={"object_id": str(oid), "outdir": str(tmp_path)})
    assert conn.execute("SELECT count(*) FROM lightcurve_period WHERE object_id = %s", (oid,)).fetchone() == (0,)
