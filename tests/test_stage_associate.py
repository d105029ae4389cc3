"""Stage associate on the real Lowell night (23 frames): objects, movers as orphans, replace, incremental."""
from __future__ import annotations

import time

import numpy as np
import pytest

from catdb.errors import StageError
from catdb.stages import run_stage
from tests.lowell_night import mover_radec, needs_lowell, night_db_url

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning"), pytest.mark.spatial_backends]

#: the Tycho-2 star (VT 9.1) on the field, see tests/test_ingest_sextractor.py: saturated (FLAGS 6)
TYC = (124.5690, 25.4079)


def _star(conn, exposure_id):
    """Position of the highest-SNR (< 300) unflagged detection within 6' of an exposure's centre."""
    return conn.execute("SELECT d.ra, d.dec FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                        "WHERE e.id = %s AND d.flags = 0 AND d.snr < 300 "
                        "AND q3c_radial_query(d.ra, d.dec, e.ra_center, e.dec_center, 0.1) "
                        "ORDER BY d.snr DESC LIMIT 1", (exposure_id,)).fetchone()


def _n_good_near(conn, ra, dec, exposure_ids):
    return conn.execute("SELECT count(*) FROM detection WHERE q3c_radial_query(ra, dec, %s, %s, 2 / 3600.) "
                        "AND flags <= 3 AND snr >= 5 AND exposure_id = ANY(%s)",
                        (ra, dec, list(exposure_ids))).fetchone()[0]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db)
    c = connect(url)
    yield c, info
    c.close()


def _nearest_object(conn, ra, dec):
    return conn.execute("SELECT id, kind, n_epochs, n_detections, q3c_dist(ra, dec, %s, %s) * 3600 FROM object "
                        "ORDER BY q3c_dist(ra, dec, %s, %s) LIMIT 1", (ra, dec, ra, dec)).fetchone()


def test_associate_lowell_night(night):
    conn, info = night
    n_exp = len(info["exposure_ids"])
    t0 = time.perf_counter()
    res = run_stage("associate", conn=conn)
    print(f"\nassociate: {time.perf_counter() - t0:.1f} s, counts {res.counts}")
    c = res.counts
    n_good = conn.execute("SELECT count(*) FROM detection WHERE flags <= 3 AND snr >= 5").fetchone()[0]
    # every good detection is linked exactly once, and every row points to this run
    assert c["detection_object"] == n_good == conn.execute("SELECT count(*) FROM detection_object").fetchone()[0]
    assert conn.execute("SELECT count(DISTINCT stage_run_id) FROM object").fetchone() == (1,)
    assert conn.execute("SELECT sum(n_detections) FROM object").fetchone()[0] == n_good
    # an object has at most one detection per exposure for well-separated stars: most objects do
    n_multi = conn.execute("SELECT count(*) FROM object WHERE n_detections > n_epochs").fetchone()[0]
    assert n_multi < 0.01 * c["object"]
    # the saturated Tycho-2 star (FLAGS 6 on every frame) is left out: no object within 10"
    assert _nearest_object(conn, *TYC)[4] > 10
    # a bright unsaturated star is one static object within 0.5" of its position, seen on every frame
    star = _star(conn, info["exposure_ids"][0])
    oid, kind, n_ep, n_det, sep = _nearest_object(conn, *star)
    assert kind == "static" and n_ep == n_det == _n_good_near(conn, *star, info["exposure_ids"]) == n_exp
    assert sep < 0.5
    # hundreds of stars are seen on every frame
    assert conn.execute("SELECT count(*) FROM object WHERE n_epochs = %s", (n_exp,)).fetchone()[0] > 300
    # the two MANIFEST asteroids (9.3 and 15.1 "/h, 2.3-3.8" per 15 min) are not chained into stars:
    # the object nearest to each of their positions is an orphan (or moving), on every frame
    for name in ("mover1", "mover2"):
        for eid, mjd in conn.execute("SELECT id, mjd_mid FROM exposure ORDER BY mjd_mid").fetchall()[::5]:
            ra, dec = mover_radec(name, mjd)
            row = conn.execute(
                "SELECT o.kind, o.n_epochs, q3c_dist(d.ra, d.dec, %s, %s) * 3600 FROM detection d "
                "JOIN detection_object l ON l.detection_id = d.id JOIN object o ON o.id = l.object_id "
                "WHERE d.exposure_id = %s ORDER BY q3c_dist(d.ra, d.dec, %s, %s) LIMIT 1",
                (float(ra), float(dec), eid, float(ra), float(dec))).fetchone()
            assert row[2] < 1.5, (name, mjd, row)
            assert row[0] == "moving" or row[1] < 4, (name, mjd, row)
    # instrumental photometry recorded as such: band VR:inst, mean mag = mean of mag_auto
    band, mean_mag, n = conn.execute(
        "SELECT o.band, o.mean_mag, o.n_detections FROM object o WHERE o.id = %s", (oid,)).fetchone()
    assert band.endswith(":inst")
    mags = np.array([r[0] for r in conn.execute(
        "SELECT d.mag_auto FROM detection d JOIN detection_object l ON l.detection_id = d.id "
        "WHERE l.object_id = %s", (oid,)).fetchall()])
    assert abs(mean_mag - np.median(mags)) < 0.05 and mags.size == n
    conn.commit()


def test_rerun_replaces_and_calibrated_magnitudes(night):
    conn, info = night
    first = run_stage("associate", conn=conn)
    n_obj = conn.execute("SELECT count(*) FROM object").fetchone()[0]
    # an ok zeropoint on every exposure: the summary switches to calibrated magnitudes
    zrun = conn.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('test-zp', 'test', 'ok') "
                        "RETURNING id").fetchone()[0]
    conn.execute("INSERT INTO zeropoint (exposure_id, band, zp, method, ok, stage_run_id) "
                 "SELECT id, 'R', 25.0, 'pp', true, %s FROM exposure", (zrun,))
    second = run_stage("associate", conn=conn)
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == n_obj   # replaced, not duplicated
    assert conn.execute("SELECT DISTINCT stage_run_id FROM object").fetchall() == [(second.run_id,)]
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (first.run_id,)).fetchone() == ("replaced",)
    assert second.counts["objects_calibrated"] == n_obj and second.counts["objects_instrumental"] == 0
    oid = _nearest_object(conn, *_star(conn, info["exposure_ids"][0]))[0]
    band, mean_mag = conn.execute("SELECT band, mean_mag FROM object WHERE id = %s", (oid,)).fetchone()
    inst = conn.execute("SELECT avg(d.mag_auto) FROM detection d JOIN detection_object l ON l.detection_id = d.id "
                        "WHERE l.object_id = %s", (oid,)).fetchone()[0]
    assert band == "R" and mean_mag == pytest.approx(inst + 25.0, abs=0.05)
    conn.execute("DELETE FROM zeropoint")
    conn.commit()


def test_incremental_matches_new_exposures_to_existing_objects(night):
    conn, info = night
    ids = info["exposure_ids"]
    old, new = ids[:-3], ids[-3:]
    conn.execute("DELETE FROM object")
    run_stage("associate", conn=conn, where=f"e.id = ANY(ARRAY{old}::bigint[])")
    star = _star(conn, ids[0])
    oid, _, n_ep, _, _ = _nearest_object(conn, *star)
    assert n_ep == len(old)
    n_before = conn.execute("SELECT count(*) FROM object").fetchone()[0]
    inc = run_stage("associate", conn=conn, params={"incremental": "true"})
    assert sorted(conn.execute("SELECT input_ids FROM stage_run WHERE id = %s", (inc.run_id,)).fetchone()[0]) == new
    # the bright star keeps its object and now has every epoch; its summary was recomputed
    oid2, _, n_ep2, _, _ = _nearest_object(conn, *star)
    assert oid2 == oid and n_ep2 == len(ids)
    assert conn.execute("SELECT stage_run_id FROM object WHERE id = %s", (oid,)).fetchone()[0] == inc.run_id
    # most new detections matched existing objects; every good detection is linked once
    assert inc.counts["detections_matched"] > 0.7 * inc.counts["detections_used"]
    n_good = conn.execute("SELECT count(*) FROM detection WHERE flags <= 3 AND snr >= 5").fetchone()[0]
    assert conn.execute("SELECT count(*) FROM detection_object").fetchone()[0] == n_good
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == n_before + inc.counts["object"]
    assert conn.execute("SELECT sum(n_detections) FROM object").fetchone()[0] == n_good
    # nothing new: a second incremental run has no input and changes nothing
    again = run_stage("associate", conn=conn, params={"incremental": "true"})
    assert again.input_count == 0 and again.counts["detection_object"] == 0
    conn.commit()


def test_bad_radius_and_missing_epoch_are_refused(night):
    conn, info = night
    with pytest.raises(StageError, match="radius"):
        run_stage("associate", conn=conn, params={"radius": "0"})
    eid = info["exposure_ids"][0]
    mjd = conn.execute("SELECT mjd_mid FROM exposure WHERE id = %s", (eid,)).fetchone()[0]
    conn.execute("UPDATE exposure SET mjd_mid = NULL WHERE id = %s", (eid,))
    conn.commit()
    n = conn.execute("SELECT count(*) FROM object").fetchone()[0]
    with pytest.raises(StageError, match=f"exposure {eid} has no mjd_mid"):
        run_stage("associate", conn=conn)
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == n   # nothing half-written
    conn.execute("UPDATE exposure SET mjd_mid = %s WHERE id = %s", (mjd, eid))
    conn.commit()
