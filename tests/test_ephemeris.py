"""Stage ephemeris: targets known by name (JPL Horizons), cached, linked to their track.

Parser tests read real Horizons answers recorded by astroquery (tests/data/horizons/, see its
README).  The stage runs on the real Lowell night (23 frames reduced and extracted, associate
and movers run: real tracks) with the recorded-format answer for 5945 at the frames' mid-times
(tests/horizons_data.py: positions of MANIFEST mover 1, not a live call) and variants of it
(offset, uncertain, following mover 2, registered WCS).  The offline tests send real HTTP calls
to a closed local port (the network is closed here anyway): they fail, and the stage must record
that and go on.
"""
from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import InputError
from catdb.ingest import horizons as hz
from catdb.stages import run_stage
from tests.helpers import REPO
from tests.horizons_data import horizons_text, lowell_epochs, mover1_rates
from tests.lowell_night import MOVERS, mover_radec, needs_lowell, night_db_url

DATA = REPO / "tests" / "data" / "horizons"
LOWELL_ANSWER = DATA / "lowell42_5945_688.txt"


# -- identifiers and parser (no database) ----------------------------------------------------
@pytest.mark.parametrize("text, ident, id_type, cap", [
    ("2713 Luxembourg", "2713", "smallbody", False),
    ("(5945) Roachapproach", "5945", "smallbody", False),
    ("5945 Roachapproach (1984 CA)", "5945", "smallbody", False),
    ("5945", "5945", "smallbody", False),
    ("2019 AB", "2019 AB", "smallbody", False),
    ("2019AB12", "2019 AB12", "smallbody", False),
    ("(1935 UZ)", "1935 UZ", "smallbody", False),
    ("2040 P-L", "2040 P-L", "smallbody", False),
    ("C/2020 F3", "C/2020 F3", "designation", False),
    ("C/2020 F3 (NEOWISE)", "C/2020 F3", "designation", False),
    ("29P", "29P", "designation", True),
    ("1P/Halley", "1P", "designation", True),
    ("Ceres", "Ceres", "smallbody", False),
])
def test_object_header_to_horizons_id(text, ident, id_type, cap):
    t = hz.horizons_target(text)
    assert (t.id, t.id_type, t.closest_apparition) == (ident, id_type, cap)


@pytest.mark.parametrize("text", ["M31", "NGC 2264", "flat", "FOCUS", "", None, "field_3"])
def test_object_that_is_no_small_body_is_not_asked(text):
    assert hz.horizons_target(text) is None


def test_forced_id_type_passes_the_identifier():
    assert hz.horizons_target("499", "majorbody") == hz.HorizonsTarget("499", "majorbody", False, "499")


def test_reads_real_horizons_answers_recorded_by_astroquery():
    t = hz.read_horizons(DATA / "ceres_ephemerides_single.txt")
    assert t.meta["target_name"] == "1 Ceres (A801 AA)" and t.meta["center_site"] == "GEOCENTRIC"
    assert t.meta["center_geodetic"] == (0.0, 0.0, 0.0)
    r = t[0]
    # the values printed in the answer's data row (quantities 1, 3, 9, 19, 20, 24, 36)
    assert (r["jd"], r["mjd"]) == (2451544.5, 51544.0)
    assert (r["ra"], r["dec"], r["rate_ra"], r["rate_dec"]) == (188.70280, 9.09829, 34.40955, -2.68359)
    assert (r["mag"], r["r"], r["delta"], r["alpha"]) == (8.459, 2.551099027865, 2.26315121010004, 22.5698)
    assert (r["ra_3sigma"], r["dec_3sigma"]) == (0.0, 0.0)
    assert t["rate_ra"].unit == "arcsec/h" and t["delta"].unit == "AU"
    # an unnumbered asteroid with a poor orbit: huge 3-sigma uncertainties
    t = hz.read_horizons(DATA / "no_H.txt")
    assert t.meta["target_name"] == "(1935 UZ)" and len(t) == 1
    assert t["ra_3sigma"][0] > 1e6 and t["dec_3sigma"][0] > 1e6
    assert hz.horizons_target(t.meta["target_name"]).id == "1935 UZ"


def test_horizons_error_answer_is_an_error_quoting_horizons():
    with pytest.raises(hz.HorizonsAnswerError, match="no TLIST values found") as e:
        hz.read_horizons(DATA / "tlist_error.txt")
    assert "tlist_error.txt" in str(e.value)


def test_malformed_answers_name_what_is_wrong(tmp_path):
    good = (DATA / "ceres_ephemerides_single.txt").read_text()
    p = tmp_path / "a.txt"
    p.write_text(good.replace("188.70280,", "188.70280,,"))
    with pytest.raises(InputError, match="row 1 has"):
        hz.read_horizons(p)
    p.write_text(good.replace("188.70280,", "12 34 48.67,"))
    with pytest.raises(InputError, match="ANG_FORMAT=DEG"):
        hz.read_horizons(p)
    p.write_text(good.replace("R.A._(ICRF)", "R.A._(a-app)").replace("R.A._(a-app), DEC_(ICRF), R.A._(a-app)",
                                                                   "R.A._(a-app), DEC_(ICRF), R.A._(a-apq)"))
    with pytest.raises(InputError, match="quantity 1"):
        hz.read_horizons(p)
    p.write_text("API VERSION: 1.2\nAPI SOURCE: NASA/JPL Horizons API\n\nNo matches found.\n")
    with pytest.raises(hz.HorizonsAnswerError, match="No matches found"):
        hz.read_horizons(p)


def test_epochs_matched_to_rows_within_a_second():
    t = Table({"mjd": [58568.1, 58568.2, 58568.3]})
    idx = hz.match_epochs(t, [58568.2 + 0.5 / 86400, 58568.1, 58568.25, 58568.3 - 2 / 86400])
    assert idx.tolist() == [1, 0, -1, -1]
    assert hz.match_epochs(t, [58568.24, 58568.29], max_diff_s=0.05 * 86400).tolist() == [1, 2]


@pytest.fixture
def unreachable_horizons(monkeypatch):
    """Route HTTPS through a proxy on a closed local port: a real call that fails at once, online or not."""
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.mark.usefixtures("unreachable_horizons")
def test_offline_call_fails_fast_and_is_returned_not_raised():
    sleeps = []
    table, attempts, msg = hz.query_horizons_retry(hz.horizons_target("5945"), "688", [58568.1], retries=1,
                                                   backoff=0.5, timeout=5, sleep=sleeps.append)
    assert table is None and attempts == 2 and sleeps == [0.5]
    assert msg.startswith("HorizonsUnavailable") and "offline" in msg


# -- the stage on the real Lowell night ------------------------------------------------------
pytestmark_db = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
                 pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    """The real night with real candidate tracks (associate + movers as in tests/test_stage_movers.py)."""
    if not LOWELL_ANSWER.is_file():
        pytest.skip(f"recorded answer missing: {LOWELL_ANSWER}")
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, steps=("tycho2", "associate"))
    c = connect(url)
    run_stage("movers", conn=c, params={"max_rate": "100", "min_detections": "8", "bright_refcat": "TYCHO2"})
    c.commit()
    yield c, url, _mover_tracks(c)
    c.close()


def _mover_tracks(conn):
    """MANIFEST mover -> candidate track whose detections follow it (median offset < 1.5"), found independently."""
    found = {}
    cands = [r[0] for r in conn.execute("SELECT id FROM track WHERE status = 'candidate' ORDER BY id")]
    for name in MOVERS:
        for tid in cands:
            mjd, ra, dec = np.array(conn.execute(
                "SELECT e.mjd_mid, d.ra, d.dec FROM track_detection td JOIN detection d ON d.id = td.detection_id "
                "JOIN exposure e ON e.id = d.exposure_id WHERE td.track_id = %s AND NOT td.outlier",
                (tid,)).fetchall()).T
            pra, pdec = mover_radec(name, mjd)
            if np.median(np.hypot((ra - pra) * np.cos(np.radians(dec)), dec - pdec) * 3600) < 1.5:
                found[name] = tid
    return found


def _import(conn, tmp_path, name="answer.txt", *, mover="mover1", d_ra=0.0, d_dec=0.0, sigma=None, delta=None,
            site=True):
    """A Horizons answer for target 5945 at the frames' mid-times along ``mover``, shifted by (d_ra cos dec, d_dec)"."""
    mjd, geo, code = lowell_epochs()
    ra, dec = mover_radec(mover, mjd)
    ra = ra + d_ra / 3600 / np.cos(np.radians(dec))
    dec = dec + d_dec / 3600
    ((t1, r1, d1), (t2, r2, d2)), _ = MOVERS[mover]
    dt_h = (t2 - t1) * 24
    rra, rdec = (r2 - r1) * np.cos(np.radians((d1 + d2) / 2)) * 3600 / dt_h, (d2 - d1) * 3600 / dt_h
    text = horizons_text("5945 Roachapproach", mjd, ra, dec, np.full(mjd.size, rra), np.full(mjd.size, rdec),
                         site_name=f"({code}) Anderson Mesa" if site else "GEOCENTRIC",
                         geodetic=geo if site else (0.0, 0.0, 0.0), ra_3sigma=sigma, dec_3sigma=sigma, delta=delta)
    p = tmp_path / name
    p.write_text(text)
    return hz.import_horizons(conn, p)


def _no_service(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("the stage called Horizons although every exposure was cached")
    monkeypatch.setattr(hz, "query_horizons", boom)


def _links(conn):
    return conn.execute("SELECT target, track_id, mode, n_exposures, sep_median, offset_spread, rate_diff, "
                        "n_candidates, target_name FROM ephemeris_target ORDER BY id").fetchall()


class TestStage:
    pytestmark = pytestmark_db

    def test_recorded_answer_identifies_the_target_track(self, night, monkeypatch):
        conn, url, movers = night
        assert {"mover1", "mover2"} <= set(movers), "the movers stage should find both MANIFEST movers"
        n_exp = conn.execute("SELECT count(*) FROM exposure WHERE image_type = 'science'").fetchone()[0]
        r = hz.import_horizons(conn, LOWELL_ANSWER)
        assert (r["target"], r["n_exposures"], r["ok"], r["location_kind"]) == ("5945", n_exp, n_exp, "site")
        # the cache holds what the answer says, per exposure (values at its mid-time; n.a. -> NULL)
        rows = conn.execute("SELECT e.mjd_mid, q.mjd_epoch, q.ra, q.dec, q.rate_ra, q.rate_dec, q.delta, q.ra_3sigma, "
                            "q.status, q.target FROM ephemeris q JOIN exposure e ON e.id = q.exposure_id "
                            "ORDER BY e.mjd_mid").fetchall()
        mjd, epoch, ra, dec, rra, rdec = (np.array([x[k] for x in rows], float) for k in range(6))
        np.testing.assert_allclose(epoch, mjd, atol=2e-9)
        pra, pdec = mover_radec("mover1", mjd)
        np.testing.assert_allclose(ra, pra, atol=1e-8)
        np.testing.assert_allclose(dec, pdec, atol=1e-8)
        np.testing.assert_allclose(rra, mover1_rates()[0], atol=1e-5)
        assert {x[6] for x in rows} == {None} and {x[7] for x in rows} == {None}
        assert {(x[8], x[9]) for x in rows} == {("ok", "5945")}

        _no_service(monkeypatch)
        res = run_stage("ephemeris", conn=conn)
        c = res.counts
        assert c["targets"] == ["5945"] and c["cached"] == n_exp and "service_calls" not in c
        assert c["linked"] == 1
        link = c["links"]["5945"]
        print("ephemeris counts", c)
        assert link["track"] == movers["mover1"] and link["mode"] == "position"
        assert link["n_candidates"] == 1            # mover 2 and the other candidates do not follow it
        assert link["sep_median"] < 1.5 and link["rate_diff"] < 1.0
        (tgt, tid, mode, n, sep, spread, rdiff, ncand, name), = _links(conn)
        assert (tgt, tid, mode, ncand, name) == ("5945", movers["mover1"], "position", 1, "5945 Roachapproach")
        n_det = conn.execute("SELECT count(*) FROM track_detection WHERE track_id = %s AND NOT outlier",
                             (tid,)).fetchone()[0]
        assert n == n_det and sep == pytest.approx(link["sep_median"], abs=1e-3)
        # run again: same answer, same link (replaced, not duplicated)
        run_stage("ephemeris", conn=conn)
        assert [x[1] for x in _links(conn)] == [movers["mover1"]]

    def test_lightcurve_export_and_summary_pick_the_linked_target(self, night, tmp_path):
        from catdb.export.api import lightcurve_query
        from catdb.db.provenance import finish_run, start_run
        from catdb.summary import ephemeris_targets

        conn, url, movers = night
        t1, t2 = movers["mover1"], movers["mover2"]
        assert [x[1] for x in _links(conn)] == [t1]
        # forced photometry: more unflagged points on mover 2, so the old rule (most points) would pick it
        ex = [r[0] for r in conn.execute("SELECT id FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid")]
        run = start_run(conn, "test-forced", {})
        with conn.transaction():
            for tid, n in ((t1, 10), (t2, 20)):
                conn.execute(
                    "INSERT INTO forced_source (exposure_id, track_id, ra, dec, flux, flux_err, mag, mag_err, band, "
                    "flags, stage_run_id) SELECT unnest(%s::bigint[]), %s, 124.6, 25.3, 1000, 10, 17, 0.01, 'R', 0, %s",
                    (ex[:n], tid, run))
            finish_run(conn, run, counts={})
        got = {r[0] for r in conn.execute(lightcurve_query()).fetchall()}
        assert got == {t1}
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM ephemeris_target")
            got = {r[0] for r in conn.execute(lightcurve_query()).fetchall()}
            assert got == {t2}                          # without a link: the candidate with most points
        assert ephemeris_targets(conn)[0][:2] == ("5945", t1)
        # the run summary names the target's track and reports its period, not the latest one
        from types import SimpleNamespace

        from catdb.summary import print_summary

        with conn.transaction(force_rollback=True):
            for tid, period in ((t1, 2.5), (t2, 3.3)):   # mover 2's period written last
                conn.execute("INSERT INTO lightcurve_period (track_id, n_points, period, period_err, "
                             "rotation_period, amplitude, fap, stage_run_id) VALUES (%s, 20, %s, 0.1, %s, 0.2, "
                             "0.001, %s)", (tid, period, 2 * period, run))
            lines = []
            print_summary(conn, SimpleNamespace(extra={}, name="t", outdir=tmp_path), [], 1.0, echo=lines.append)
        text = "\n".join(lines)
        assert f"target 5945 Roachapproach (JPL Horizons ephemeris): track {t1}, " in text
        assert f"target light curve (track {t1}, 20 points; ephemeris target): period 2.50" in text
        # offline (no ephemeris link): the known mover of the pipeline's summary, not the latest period written
        known = {"summary": {"known_mover": [{"name": "mover 1", "jd": [2458568.60418, 2458568.84034],
                                              "ra": [124.62662, 124.63359], "dec": [25.34294, 25.32967]}]}}
        for extra, want in ((known, f"track {t1}, 20 points; known mover mover 1): period 2.50"),
                            ({}, f"track {t2}, 30 points; no target identified: the candidate light curve with the "
                                 "most points): period 3.30")):
            with conn.transaction(force_rollback=True):
                conn.execute("DELETE FROM ephemeris_target")
                for tid, period, n in ((t1, 2.5, 20), (t2, 3.3, 30)):
                    conn.execute("INSERT INTO lightcurve_period (track_id, n_points, period, period_err, "
                                 "rotation_period, amplitude, fap, stage_run_id) VALUES (%s, %s, %s, 0.1, %s, 0.2, "
                                 "0.001, %s)", (tid, n, period, 2 * period, run))
                conn.execute("INSERT INTO lightcurve_period (track_id, n_points, period, period_err, rotation_period, "
                             "amplitude, fap, stage_run_id) SELECT id, 5, 9.9, 0.1, 19.8, 0.2, 0.5, %s FROM track "
                             "WHERE id NOT IN (%s, %s) LIMIT 1", (run, t1, t2))  # written last, fewest points
                lines = []
                print_summary(conn, SimpleNamespace(extra=extra, name="t", outdir=tmp_path), [], 1.0,
                              echo=lines.append)
            assert f"target light curve ({want}" in "\n".join(lines), lines
        conn.execute("DELETE FROM forced_source WHERE stage_run_id = %s", (run,))
        conn.commit()

    def test_offset_beyond_tolerance_not_linked_unless_uncertain(self, night, tmp_path, monkeypatch):
        conn, url, movers = night
        _no_service(monkeypatch)
        # 12" off in Dec with a tight ephemeris: no track within max(5", 0.14") -> no link, nearest reported
        _import(conn, tmp_path, d_dec=12.0, sigma=0.1)
        c = run_stage("ephemeris", conn=conn).counts
        assert c["linked"] == 0 and _links(conn) == []
        near = c["links"]["5945"]["nearest"]
        assert near["track"] == movers["mover1"] and 10.5 < near["sep_median"] < 13.5
        assert near["uncertainty"] == pytest.approx(np.hypot(0.1, 0.1), abs=1e-3) and near["limit_sep"] == 5.0
        # the same offset with a 3-sigma uncertainty of 15" (RA, Dec): within U = 21" -> linked
        _import(conn, tmp_path, d_dec=12.0, sigma=15.0)
        c = run_stage("ephemeris", conn=conn).counts
        link = c["links"]["5945"]
        assert link["track"] == movers["mover1"] and link["limit_sep"] == pytest.approx(np.hypot(15, 15), abs=1e-3)
        # a geocentric answer: the parallax (8.794"/delta) is added to the uncertainty
        r = _import(conn, tmp_path, d_dec=12.0, sigma=0.1, delta=1.0, site=False)
        assert (r["location"], r["location_kind"]) == ("500", "geocentre")
        c = run_stage("ephemeris", conn=conn).counts
        assert c["links"]["5945"]["track"] is None
        assert c["links"]["5945"]["nearest"]["uncertainty"] == pytest.approx(np.hypot(0.1, 0.1) + 8.794, abs=1e-3)
        r = _import(conn, tmp_path, d_dec=12.0, sigma=0.1, delta=0.5, site=False)
        c = run_stage("ephemeris", conn=conn).counts
        assert c["links"]["5945"]["track"] == movers["mover1"]    # U = 17.7" > 12"

    def test_registered_wcs_compares_motion_only(self, night, tmp_path, monkeypatch):
        conn, url, movers = night
        _no_service(monkeypatch)
        conn.execute("UPDATE exposure SET wcs_status = 'registered' WHERE image_type = 'science'")
        conn.commit()
        try:
            # 40" off (an unknown absolute frame): the motion of mover 1 -> its track, the offset never used
            _import(conn, tmp_path, d_ra=30.0, d_dec=-26.0, sigma=0.1)
            c = run_stage("ephemeris", conn=conn).counts
            link = c["links"]["5945"]
            print("motion-mode link", link)
            assert link["track"] == movers["mover1"] and link["mode"] == "motion"
            assert link["sep_median"] is None and link["offset_spread"] < 1.5 and "not the absolute" in link["note"]
            (_, tid, mode, _, sep, *_), = _links(conn)
            assert (tid, mode, sep) == (movers["mover1"], "motion", None)
            # the motion of mover 2 shifted the same way -> mover 2's track (15"/h, another direction)
            _import(conn, tmp_path, mover="mover2", d_ra=30.0, d_dec=-26.0, sigma=0.1)
            c = run_stage("ephemeris", conn=conn).counts
            assert c["links"]["5945"]["track"] == movers["mover2"]
            assert [x[1] for x in _links(conn)] == [movers["mover2"]]
        finally:
            conn.rollback()
            conn.execute("UPDATE exposure SET wcs_status = 'header' WHERE image_type = 'science'")
            conn.commit()
        # with the absolute (header) WCS the same 40" offset is too far
        c = run_stage("ephemeris", conn=conn).counts
        assert c["links"]["5945"]["track"] is None and c["links"]["5945"]["nearest"]["mode"] == "position"
        assert _links(conn) == []

    @pytest.mark.usefixtures("unreachable_horizons")
    def test_offline_records_failed_and_the_run_goes_on(self, night):
        conn, url, movers = night
        conn.execute("DELETE FROM ephemeris")
        conn.commit()
        n_exp = conn.execute("SELECT count(*) FROM exposure WHERE image_type = 'science'").fetchone()[0]
        res = run_stage("ephemeris", conn=conn, params={"retries": "0"})
        c = res.counts
        assert res.status == "ok" and c["ok"] == 0 and c["failed"] == n_exp and c["linked"] == 0
        assert c["service_calls"] == 1 and "offline" in c["last_error"] and "offline_or_failed" in c
        rows = conn.execute("SELECT DISTINCT status, target, id_type, location, location_kind, attempts, source, "
                            "ra IS NULL, stage_run_id FROM ephemeris").fetchall()
        assert rows == [("failed", "5945", "smallbody", "688", "code", 1, "JPL Horizons", True, res.run_id)]
        assert conn.execute("SELECT count(*) FROM ephemeris WHERE message LIKE 'HorizonsUnavailable: cannot reach%%'"
                            ).fetchone()[0] == n_exp
        # a run whose calls failed is not "up to date" for `catdb run`: the next pipeline run retries it
        from catdb.pipeline import _up_to_date

        assert c["incomplete"] is True
        assert _up_to_date(conn, "ephemeris", {"retries": "0"}, None) is None
        # batches of 5 epochs: after 2 failed calls the service is taken to be down, the rest not attempted
        c = run_stage("ephemeris", conn=conn, params={"retries": "0", "batch": "5", "max_failures": "2"}).counts
        assert c["service_calls"] == 2 and c["not_attempted"] == n_exp - 10 and c["failed"] == n_exp
        assert conn.execute("SELECT count(*) FROM ephemeris").fetchone()[0] == n_exp   # replaced, not added
        # no observatory code: the site from the headers; neither: the geocentre, said so
        conn.execute("UPDATE exposure SET observatory_code = NULL WHERE image_type = 'science'")
        ids = [r[0] for r in conn.execute("SELECT id FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid "
                                          "LIMIT 2")]
        conn.execute("UPDATE exposure SET site_lon = NULL WHERE id = ANY(%s)", (ids,))
        conn.commit()
        try:
            c = run_stage("ephemeris", conn=conn, params={"retries": "0", "max_failures": "9"}).counts
            assert c["geocentric"] == 2
            locs = dict(conn.execute("SELECT location_kind, min(location) FROM ephemeris GROUP BY 1").fetchall())
            assert locs == {"geocentre": "500", "site": "-111.535500,35.096750,2.2060"}
        finally:
            conn.rollback()
            conn.execute("UPDATE exposure SET observatory_code = '688', site_lon = -111.5355 "
                         "WHERE image_type = 'science'")
            conn.commit()
        # cache_only: no call at all, nothing usable, nothing linked
        c = run_stage("ephemeris", conn=conn, params={"cache_only": "true"}).counts
        assert c["not_cached"] == n_exp and "service_calls" not in c and c["linked"] == 0
        # an OBJECT that names no small body is not asked about; --target overrides OBJECT
        c = run_stage("ephemeris", conn=conn, params={"target": "C/2020 F3", "cache_only": "true"}).counts
        assert c["targets"] == ["C/2020 F3"]
        with pytest.raises(Exception, match="not a Horizons small-body identifier"):
            run_stage("ephemeris", conn=conn, params={"target": "M31"})
        conn.rollback()

    def test_cli_import_list_and_help(self, night):
        conn, url, movers = night
        runner = CliRunner()
        r = runner.invoke(cli, ["--db", url, "ephemeris", "import", str(LOWELL_ANSWER)])
        assert r.exit_code == 0, r.output
        assert "target 5945 (5945 Roachapproach): 23 exposures cached" in r.output
        r = runner.invoke(cli, ["--db", url, "stage", "ephemeris", "--cache-only", "true"])
        assert r.exit_code == 0, r.output
        assert "linked=1" in r.output
        r = runner.invoke(cli, ["--db", url, "ephemeris", "list"])
        assert r.exit_code == 0 and f"target 5945 (5945 Roachapproach) -> track {movers['mover1']}: position" \
            in r.output
        r = runner.invoke(cli, ["stage", "ephemeris", "--help"])
        assert r.exit_code == 0 and "--target" in r.output and "--tolerance" in r.output
