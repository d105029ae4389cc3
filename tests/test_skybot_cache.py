"""Stage skybot with its cache (skybot_query, skybot_object), rate-vector tie-break, service failures.

Real Lowell exposures (12 frames, MJDs, centres, observatory 688) with two tracks along the
MANIFEST movers (tests/track_db.py); the SkyBoT service is replaced by functions returning
known objects on the MANIFEST motion, or failing; the recorded SkyBoT response of
tests/data/skybot is imported into the cache for a synthetic exposure at its field and epoch.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
from astropy.io.votable import parse_single_table
from astropy.table import Table
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.db.copy import copy_table
from catdb.errors import InputError
from catdb.ingest import skybot as sb
from catdb.stages import run_stage
from catdb.db.provenance import start_run
from tests.helpers import TEST_DATA
from tests.lowell_night import mover_radec, needs_lowell
from tests.track_db import build

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning"), pytest.mark.spatial_backends]

VOT = TEST_DATA / "skybot" / "skybot_query.vot"
#: MANIFEST rates of mover 1 (dRA cos dec, dDec) ["/h]
M1_RATE = (4.0, -8.4)


@pytest.fixture(scope="module")
def db(db_url):
    from catdb.db.engine import connect

    c = connect(db_url)
    info = build(c)
    yield c, info
    c.close()


def _reset(conn):
    conn.execute("DELETE FROM skybot_query")
    conn.execute("UPDATE track SET skybot_name = NULL, skybot_sep = NULL, skybot_rate_diff = NULL, "
                 "skybot_delta = NULL, designation = NULL")
    conn.commit()


def _objects(rows):
    """A SkyBoT result table (columns of read_skybot_votable) from dicts."""
    cols = ["number", "name", "class", "ra", "dec", "V", "pos_err", "center_dist", "rate_ra", "rate_dec",
            "dist_geo", "dist_helio"]
    if not rows:
        return Table({c: np.array([], dtype=str if c in ("number", "name", "class") else float) for c in cols})
    return Table({c: np.array([r[c] for r in rows]) for c in cols})


def _known(name, number, ra, dec, rate, delta, cls="MB>Inner"):
    return {"number": number, "name": name, "class": cls, "ra": float(ra), "dec": float(dec), "V": 17.5,
            "pos_err": 0.05, "center_dist": 100.0, "rate_ra": rate[0], "rate_dec": rate[1], "dist_geo": delta,
            "dist_helio": delta + 0.95}


class FakeService:
    """Stands in for sb.query_skybot: (5945) Roachapproach on mover 1; failures on demand."""

    def __init__(self, fail=None):
        self.calls = []
        self.fail = fail or {}   # call index within an exposure -> exception, by exposure epoch

    def __call__(self, ra, dec, radius_arcsec, epoch, location="500", timeout=None):
        self.calls.append((round(epoch, 6), location, timeout))
        plan = self.fail.get(round(epoch, 6))
        if plan:
            exc = plan.pop(0) if isinstance(plan, list) else plan
            if exc is not None:
                raise exc
        r, d = mover_radec("mover1", epoch)
        return _objects([_known("Roachapproach", "5945", r, d, M1_RATE, 1.92)])


def _track(conn, tid):
    return conn.execute("SELECT skybot_name, designation, skybot_sep, skybot_rate_diff, skybot_delta FROM track "
                        "WHERE id = %s", (tid,)).fetchone()


def test_service_results_cached_and_reused(db, monkeypatch):
    conn, info = db
    _reset(conn)
    t1, t2 = info["tracks"]["mover1"]["id"], info["tracks"]["mover2"]["id"]
    conn.execute("UPDATE track SET skybot_name = '2019 RB21', designation = '2019 RB21' WHERE id = %s", (t2,))
    n = info["exposure_ids"].size
    fake = FakeService()
    monkeypatch.setattr(sb, "query_skybot", fake)
    r1 = run_stage("skybot", conn=conn)
    # one cone per exposure, at mid-exposure, from Lowell's MPC code (688, from the headers)
    assert len(fake.calls) == n and {c[1] for c in fake.calls} == {"688"}
    np.testing.assert_allclose(sorted(c[0] for c in fake.calls), info["mjd"], atol=1e-6)
    assert r1.counts["ok"] == n and r1.counts["cached"] == 0 and r1.counts["matched"] == 1
    q = conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 'ok'), min(stage_run_id), max(stage_run_id), "
                     "min(observatory_code), sum(n_rows) FROM skybot_query").fetchone()
    assert q == (n, n, r1.run_id, r1.run_id, "688", n)
    # cone radius: the exposure's centre-to-corner radius plus the 60" margin
    rad = conn.execute("SELECT max(abs(q.radius - (e.radius * 3600 + 60))) FROM skybot_query q "
                       "JOIN exposure e ON e.id = q.exposure_id").fetchone()[0]
    assert rad < 1e-6
    name, des, sep, rdiff, delta = _track(conn, t1)
    assert name == "5945 Roachapproach" and des == "5945" and delta == pytest.approx(1.92)
    assert sep < 0.5           # the fake predictions sit on the MANIFEST motion the detections follow
    assert rdiff < 0.3         # track rate vs MANIFEST rate (+4.0, -8.4)"/h
    # track 2 was named '2019 RB21' (by an earlier identification): no known object near it now -> cleared
    assert _track(conn, t2)[:2] == (None, None)
    conn.commit()

    # second run: same cones -> read from the cache, the service is not called
    fake2 = FakeService()
    monkeypatch.setattr(sb, "query_skybot", fake2)
    r2 = run_stage("skybot", conn=conn)
    assert fake2.calls == [] and r2.counts["cached"] == n and r2.counts["matched"] == 1
    assert _track(conn, t1)[:2] == ("5945 Roachapproach", "5945")
    assert conn.execute("SELECT count(*), max(stage_run_id) FROM skybot_object").fetchone() == (n, r1.run_id)
    # a wider cone than cached (larger margin) is asked again
    r3 = run_stage("skybot", conn=conn, params={"margin": "120"})
    assert len(fake2.calls) == n and r3.counts["cached"] == 0
    # refresh: asked again, the cache replaced (not duplicated), provenance the new run
    r4 = run_stage("skybot", conn=conn, params={"refresh": "true", "margin": "120"})
    assert len(fake2.calls) == 2 * n
    assert conn.execute("SELECT count(*), min(stage_run_id) FROM skybot_object").fetchone() == (n, r4.run_id)
    conn.commit()


def _cache_directly(conn, info, objects_at):
    """skybot_query + skybot_object rows per exposure built directly: objects_at(mjd) -> list of dicts."""
    run = start_run(conn, "test-skybot-cache", {"what": "SkyBoT cache rows built directly"})
    rows = conn.execute("SELECT id, mjd_mid, ra_center, dec_center FROM exposure WHERE id = ANY(%s)",
                        (info["exposure_ids"].tolist(),)).fetchall()
    for eid, mjd, ra, dec in rows:  # loop over exposures
        sb.store_skybot(conn, exposure_id=eid, epoch=mjd, ra=ra, dec=dec, radius_arcsec=1200, observatory="688",
                        table=_objects(objects_at(mjd)), run_id=run, source="test: built directly", attempts=0)
    return run


def test_rate_vector_breaks_the_tie(db, monkeypatch):
    """Two known objects near track 1: the nearer one moves the wrong way, the other as the track."""
    conn, info = db
    _reset(conn)
    t1 = info["tracks"]["mover1"]["id"]
    rra, rde = conn.execute("SELECT rate_ra, rate_dec FROM track WHERE id = %s", (t1,)).fetchone()
    wrong = (rra + 15.0, rde + 10.0)          # 18.0"/h off the measured rate vector

    def objects_at(mjd):
        r, d = mover_radec("mover1", mjd)
        cosd = np.cos(np.radians(d))
        out = [_known("Roachapproach", "5945", r + 3.0 / 3600 / cosd, d, (rra + 0.3, rde - 0.4), 1.92),
               _known("2010 AB1", "", r, d + 1.0 / 3600, wrong, 2.75)]
        if abs(mjd - info["mjd"][6]) < 1e-6:   # a third object, right on the track but on one exposure only
            out.append(_known("2003 CR9", "", r, d + 0.2 / 3600, (rra, rde), 3.1))
        return out

    _cache_directly(conn, info, objects_at)
    calls = []
    monkeypatch.setattr(sb, "query_skybot", lambda *a, **k: calls.append(a))
    res = run_stage("skybot", conn=conn)
    assert calls == []                                   # everything came from the cache
    assert res.counts["matched"] == 1 and res.counts["ambiguous"] == 1
    name, des, sep, rdiff, delta = _track(conn, t1)
    assert (name, des) == ("5945 Roachapproach", "5945")
    assert sep == pytest.approx(3.0, abs=0.05)           # the 3" offset put in, RA cos dec
    assert rdiff == pytest.approx(0.5, abs=1e-6)         # |(+0.3, -0.4)|"/h
    assert delta == pytest.approx(1.92)                  # the chosen object's distance, not the other's
    # position alone (rate_weight 0) takes the nearer object: the rate vector is what decided
    run_stage("skybot", conn=conn, params={"rate_weight": "0"})
    name, des, sep, rdiff, delta = _track(conn, t1)
    assert (name, des) == ("2010 AB1", "2010 AB1") and sep == pytest.approx(1.0, abs=0.05)
    assert rdiff == pytest.approx(np.hypot(15, 10), abs=1e-6) and delta == pytest.approx(2.75)
    # max_rate_diff rejects the wrong mover outright; re-running replaced the previous answer
    res = run_stage("skybot", conn=conn, params={"rate_weight": "0", "max_rate_diff": "5"})
    assert _track(conn, t1)[:2] == ("5945 Roachapproach", "5945") and res.counts["ambiguous"] == 0
    # the object on one detection of 12 is a chance coincidence (min_fraction 0.5); without that test it wins
    run_stage("skybot", conn=conn, params={"min_fraction": "0"})
    assert _track(conn, t1)[:2] == ("2003 CR9", "2003 CR9")
    # a larger separation than the radius: no identification, and the stage's earlier designation goes
    run_stage("skybot", conn=conn, params={"radius": "0.5"})
    assert _track(conn, t1)[:2] == (None, None)
    conn.rollback()


def test_failed_and_slow_service_retried_reported_rest_matched(db, monkeypatch):
    conn, info = db
    _reset(conn)
    t1 = info["tracks"]["mover1"]["id"]
    mjd = np.round(info["mjd"], 6)
    n = mjd.size
    flaky, dead = mjd[2], mjd[5]
    fake = FakeService(fail={flaky: [sb.SkybotUnavailable("HTTP 503 Service Unavailable"), None],
                             dead: sb.SkybotUnavailable("ReadTimeout: read timed out (timeout=5.0)")})
    sleeps = []
    monkeypatch.setattr(sb, "query_skybot", fake)
    monkeypatch.setattr(sb.time, "sleep", sleeps.append)
    res = run_stage("skybot", conn=conn, params={"retries": "2", "backoff": "0.5", "timeout": "5"})
    assert {c[2] for c in fake.calls} == {5.0}                        # the timeout reaches the query
    # the flaky exposure succeeded on its 2nd attempt, the dead one was tried 3 times, backoff 0.5 s, 1 s
    assert len(fake.calls) == n + 1 + 2 and sleeps == [0.5, 0.5, 1.0]
    assert res.counts["ok"] == n - 1 and res.counts["failed"] == 1
    q = {round(m, 6): (s, a, msg) for m, s, a, msg in conn.execute(
        "SELECT mjd_epoch, status, attempts, message FROM skybot_query").fetchall()}
    assert q[flaky] == ("ok", 2, None)
    assert q[dead][0] == "failed" and q[dead][1] == 3 and "timed out" in q[dead][2]
    assert len(res.counts["failed_exposures"]) == 1 and "timed out" in res.counts["last_error"]
    # the stage run is ok and the exposures that worked were matched
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (res.run_id,)).fetchone() == ("ok",)
    assert _track(conn, t1)[:2] == ("5945 Roachapproach", "5945")
    conn.commit()
    # next run: only the failed exposure is asked again
    fake2 = FakeService()
    monkeypatch.setattr(sb, "query_skybot", fake2)
    res = run_stage("skybot", conn=conn)
    assert [c[0] for c in fake2.calls] == [dead] and res.counts["cached"] == n - 1 and res.counts["ok"] == 1
    assert conn.execute("SELECT count(*) FROM skybot_query WHERE status = 'failed'").fetchone()[0] == 0
    conn.commit()
    # service down: after max_failures consecutive failed exposures no more calls; the run still succeeds
    # and the tracks keep their identification (no cone could be checked)
    down = FakeService(fail={m: sb.SkybotUnavailable("cannot reach the SkyBoT service") for m in mjd})
    monkeypatch.setattr(sb, "query_skybot", down)
    res = run_stage("skybot", conn=conn, params={"refresh": "true", "retries": "1", "max_failures": "2"})
    assert len(down.calls) == 2 * 2 and res.counts["not_attempted"] == n - 2 and res.counts["failed"] == n
    assert res.counts["tracks_unchecked"] == 2 and res.counts["matched"] == 0
    assert _track(conn, t1)[:2] == ("5945 Roachapproach", "5945")
    msgs = [r[0] for r in conn.execute("SELECT message FROM skybot_query WHERE attempts = 0").fetchall()]
    assert len(msgs) == n - 2 and all("not attempted: 2 consecutive exposures failed" in m for m in msgs)
    assert "cannot reach" in res.counts["last_error"]
    conn.rollback()


def test_query_timeout_and_backoff(monkeypatch):
    """query_skybot hands the timeout to astroquery; a timeout becomes SkybotUnavailable; backoff doubles."""
    import requests
    from astroquery.imcce import Skybot, conf

    seen = []

    def slow(*a, **k):
        seen.append(conf.timeout)
        raise requests.exceptions.ReadTimeout("read timed out")

    monkeypatch.setattr(Skybot, "cone_search", slow)
    with pytest.raises(sb.SkybotUnavailable, match="ReadTimeout"):
        sb.query_skybot(124.6, 25.3, 900, 58568.7, location="688", timeout=7)
    assert seen == [7]
    sleeps = []
    t, attempts, msg = sb.query_skybot_retry(124.6, 25.3, 900, 58568.7, "688", retries=3, backoff=2,
                                             timeout=2.5, sleep=sleeps.append)
    assert t is None and attempts == 4 and sleeps == [2, 4, 8] and "ReadTimeout" in msg and seen[-1] == 3


def _vot_exposures(conn, offsets_min):
    """Exposures at the recorded SkyBoT field (RA 81.2833 Dec +4.4928) at 2025-01-02 + offsets (geocentre)."""
    ep = 60677.0
    eids = [conn.execute("INSERT INTO exposure (path, mjd_mid, ra_center, dec_center, radius, observatory_code) "
                         "VALUES (%s, %s, 81.2833, 4.49278, 0.15, '500') RETURNING id",
                         (f"synthetic_skybot_{k}.fits", ep + m / 1440)).fetchone()[0]
            for k, m in enumerate(offsets_min)]
    return eids


def test_recorded_votable_imported_and_matched_offline(db, db_url, monkeypatch):
    conn, _ = db
    eids = _vot_exposures(conn, [-60, 15, 60])
    conn.commit()
    try:
        _recorded_votable(conn, db_url, eids, monkeypatch)
    finally:
        conn.rollback()
        conn.execute("DELETE FROM track WHERE id IN (SELECT td.track_id FROM track_detection td JOIN detection d "
                     "ON d.id = td.detection_id WHERE d.exposure_id = ANY(%s))", (eids,))
        conn.execute("DELETE FROM exposure WHERE id = ANY(%s)", (eids,))
        conn.commit()


def _recorded_votable(conn, url, eids, monkeypatch):
    runner = CliRunner()
    # a response of another epoch (2025-01-02) for a 2019 Lowell exposure: refused, nothing written
    lowell = conn.execute("SELECT min(id) FROM exposure WHERE path NOT LIKE 'synthetic%'").fetchone()[0]
    before = conn.execute("SELECT count(*) FROM skybot_query").fetchone()[0]
    r = runner.invoke(cli, ["--db", url, "skybot", "import", str(VOT), "--exposure", str(lowell)])
    assert r.exit_code == 1 and "skybot_query.vot" in r.output and "from the mid-time" in r.output
    assert conn.execute("SELECT count(*) FROM skybot_query").fetchone()[0] == before
    # the right exposure (15 min after the SkyBoT epoch)
    r = runner.invoke(cli, ["--db", url, "skybot", "import", str(VOT), "--exposure", str(eids[1])])
    assert r.exit_code == 0, r.output
    assert "4 known objects cached" in r.output and "-15.0 min" in r.output
    raw = parse_single_table(str(VOT)).to_table()
    got = conn.execute("SELECT number, name, class, ra, dec, rate_ra, rate_dec, dist_geo, dist_helio, mjd_epoch "
                       "FROM skybot_object WHERE exposure_id = %s ORDER BY id", (eids[1],)).fetchall()
    assert [g[1] for g in got] == [str(v) for v in raw["name"]]
    assert [g[0] for g in got] == ["229762", "523748", None, None]       # '-' in SkyBoT: unnumbered -> NULL
    # SkyBoT rates are arcsec/h (VOTable unit) and distances au: stored as given
    np.testing.assert_allclose([g[5] for g in got], np.asarray(raw["dracosdec"], float), rtol=0, atol=1e-9)
    np.testing.assert_allclose([g[6] for g in got], np.asarray(raw["ddec"], float), rtol=0, atol=1e-9)
    np.testing.assert_allclose([g[7] for g in got], np.asarray(raw["dgeo"], float), rtol=0, atol=1e-9)
    assert {g[9] for g in got} == {60677.0}
    q = conn.execute("SELECT status, n_rows, attempts, observatory_code, radius, source FROM skybot_query "
                     "WHERE exposure_id = %s", (eids[1],)).fetchone()
    assert q[:5] == ("ok", 4, 0, "500", 720.0) and q[5].endswith("skybot_query.vot")
    listed = runner.invoke(cli, ["--db", url, "skybot", "list", "--exposure", str(eids[1])]).output
    assert "ok" in listed and "1 cones" in listed

    # tracks on (229762) G!kun||'homdima and the fast 2019 RB21 (29.5"/h), detections 0.5" off the predictions
    vot = sb.read_skybot_votable(VOT)
    mjd = 60677.0 + np.array([-60, 15, 60]) / 1440
    run = start_run(conn, "test-movers", {"what": "tracks on the recorded SkyBoT objects"})
    tids = {}
    for k in (0, 2):   # two tracks
        dt_h = (mjd - 60677.0) * 24
        dec = vot["dec"][k] + vot["rate_dec"][k] * dt_h / 3600 + 0.5 / 3600
        ra = vot["ra"][k] + vot["rate_ra"][k] * dt_h / 3600 / np.cos(np.radians(dec))
        det = np.array([r[0] for r in conn.execute(
            "INSERT INTO detection (exposure_id, number, ra, dec, stage_run_id) SELECT * FROM "
            "unnest(%s::bigint[], %s::int[], %s::float8[], %s::float8[], %s::bigint[]) RETURNING id",
            (eids, [1, 2, 3], ra.tolist(), dec.tolist(), [run] * 3)).fetchall()])
        tids[k] = conn.execute(
            "INSERT INTO track (n_detections, mjd_first, mjd_last, ra, dec, mjd_ref, rate_ra, rate_dec, status, "
            "stage_run_id) VALUES (3, %s, %s, %s, %s, %s, %s, %s, 'candidate', %s) RETURNING id",
            (mjd[0], mjd[-1], ra[1], dec[1], mjd[1], float(vot["rate_ra"][k]) + 0.2, float(vot["rate_dec"][k]),
             run)).fetchone()[0]
        copy_table(conn, "track_detection", {"detection_id": det}, constants={"track_id": tids[k], "outlier": False})
    conn.commit()
    calls = []
    monkeypatch.setattr(sb, "query_skybot", lambda *a, **k: calls.append(a))
    # offline: cached cones only; the match radius 3" needs the 15 min propagation (2019 RB21 moves 7.4")
    res = run_stage("skybot", conn=conn, where="e.path LIKE 'synthetic_skybot%'",
                    params={"cache_only": "true", "radius": "3"})
    assert calls == [] and res.counts["cached"] == 1 and res.counts["not_cached"] == 2
    assert res.counts["matched"] == 2 and res.counts["tracks_checked"] == 2
    n0 = _track(conn, tids[0])
    assert n0[:2] == ("229762 G!kun||'homdima", "229762") and n0[2] == pytest.approx(0.5, abs=0.02)
    assert n0[3] == pytest.approx(0.2, abs=1e-6) and n0[4] == pytest.approx(float(raw["dgeo"][0]))
    n2 = _track(conn, tids[2])
    assert n2[:2] == ("2019 RB21", "2019 RB21") and n2[2] == pytest.approx(0.5, abs=0.02)
    assert n2[4] == pytest.approx(1.594366842)
    conn.rollback()
    # a VOTable that is not one: clear error naming the file
    bad = TEST_DATA / "mpc" / next(p.name for p in (TEST_DATA / "mpc").iterdir())
    with pytest.raises(InputError, match=bad.name):
        sb.import_skybot_votable(conn, bad, eids[1])
    conn.rollback()


def test_run_time_from_cache_on_lowell_tracks(db, monkeypatch, capsys):
    """Figure for the issue: the skybot stage on the Lowell track DB, every cone from the cache."""
    conn, info = db
    _reset(conn)
    _cache_directly(conn, info, lambda mjd: [_known("Roachapproach", "5945", *mover_radec("mover1", mjd),
                                                    M1_RATE, 1.92)])
    conn.commit()
    monkeypatch.setattr(sb, "query_skybot", lambda *a, **k: pytest.fail("service called"))
    t0 = time.perf_counter()
    res = run_stage("skybot", conn=conn)
    dt = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\nskybot stage from cache: {dt:.3f} s, {res.counts['exposures']} exposures, "
              f"{res.counts['tracks']} tracks, {res.counts['known_objects']} cached predictions")
    assert res.counts["cached"] == info["exposure_ids"].size and res.counts["matched"] == 1
    conn.rollback()
