"""Stage veto on the real VASCO60 detections, Tycho-2 and a real LCO SExtractor catalogue."""
import functools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from catdb.algorithms.veto import parse_steps
from catdb.cli.main import cli
from catdb.errors import CatdbError, InputError, StageError
from catdb.ingest.load import ingest_catalogs, ingest_refcat
from catdb.ingest.vasco60 import load_vasco60, parse_overflow_isot
from catdb.stages import run_stage
from tests.helpers import TEST_DATA, VASCO, need_shared, requires_shared

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

TYCHO = TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz"
LCO = TEST_DATA / "lco"
VASCO_WHERE = "e.path LIKE 'vasco60:%'"
CHAIN_FREE = "flags,edge,elongation,fwhm,duplicates"


@functools.lru_cache(maxsize=1)
def _tycho_table():
    from astropy.table import Table

    return Table.read(TYCHO, format="ascii.csv")


def _tycho():
    from astropy.coordinates import SkyCoord

    t = _tycho_table()
    return SkyCoord(np.asarray(t["ra_deg"]), np.asarray(t["dec_deg"]), unit="deg")


@pytest.fixture(scope="module")
def db(db_url, tmp_path_factory):
    """VASCO60 loaded, the LDAC catalogue, and the Tycho-2 stars that can matter here.

    Ingesting all 362,950 stars takes most of a minute on the test machine; the stars farther
    than 150" from every detection can veto nothing at the radii used (<= 90"), so the test
    ingests the others (plus the first 2000 rows, for the synthetic on-star test) through the
    same reader and loader.
    """
    from astropy.coordinates import SkyCoord

    from catdb.db.engine import connect

    need_shared("vasco60")
    c = connect(db_url)
    info = load_vasco60(c, VASCO / "source_extractor_final_filtered.csv", VASCO / "survivors.csv")
    det = np.array(c.execute("SELECT ra, dec FROM detection").fetchall())
    ty = _tycho_table()
    _, sep, _ = _tycho().match_to_catalog_sky(SkyCoord(det[:, 0], det[:, 1], unit="deg"))
    keep = sep.arcsec < 150
    keep[:2000] = True
    sub = tmp_path_factory.mktemp("tycho") / "tycho2_near_detections.csv"
    ty[keep].write(sub, format="ascii.csv")
    ingest_refcat(c, sub)
    lco = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
    c.commit()
    yield c, info, lco
    c.close()


def _ledger(conn, run_id):
    return conn.execute("SELECT step, filter, n_in, n_rejected, n_kept, params FROM ledger WHERE stage_run_id = %s "
                        "ORDER BY step", (run_id,)).fetchall()


def _survivors(conn, set_name, step):
    return {r[0] for r in conn.execute("SELECT detection_id FROM survivor WHERE set_name = %s AND step = %s",
                                       (set_name, step))}


@requires_shared("vasco60/survivors.csv")
def test_overflowing_obs_dates_are_normalised():
    from astropy.table import Table
    from astropy.time import Time

    s = Table.read(VASCO / "survivors.csv", format="ascii.csv")
    txt = np.asarray(s["obs_date"]).astype(str)
    minutes = np.array([int(x[14:16]) for x in txt])
    assert (minutes >= 60).sum() > 0  # the real quirk is there
    mjd = parse_overflow_isot(txt)
    ok = minutes < 60  # astropy agrees where the value is valid ISO
    np.testing.assert_allclose(mjd[ok], Time(list(txt[ok]), format="isot", scale="utc").mjd, atol=1e-9)
    assert parse_overflow_isot(["1953-01-10T04:65:00"])[0] == pytest.approx(
        Time("1953-01-10T05:05:00", scale="utc").mjd, abs=1e-9)
    assert np.all((mjd > Time("1949-01-01").mjd) & (mjd < Time("1959-01-01").mjd))  # POSS-I years
    with pytest.raises(InputError, match="row 2.*1953-1-10"):
        parse_overflow_isot(["1953-01-10T04:65:00", "1953-1-10T04:65"], path="x.csv")


def test_vasco_loader(db):
    conn, info, _ = db
    n_csv = sum(1 for _ in open(VASCO / "source_extractor_final_filtered.csv")) - 1
    assert info["n_detections"] == n_csv
    n_exp, n_det = conn.execute("SELECT count(DISTINCT e.id), count(*) FROM detection d JOIN exposure e "
                                "ON e.id = d.exposure_id WHERE e.path LIKE 'vasco60:%'").fetchone()
    assert (n_exp, n_det) == (info["n_exposures"], n_csv)
    # every detection lies within its tile's radius of the tile centre
    far = conn.execute("SELECT count(*) FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                       "WHERE e.path LIKE 'vasco60:%' AND q3c_dist(e.ra_center, e.dec_center, d.ra, d.dec) "
                       "> e.radius * 1.01 + 1e-6").fetchone()[0]
    assert far == 0
    with pytest.raises(InputError, match="already loaded"):
        load_vasco60(conn, VASCO / "source_extractor_final_filtered.csv")


def test_vasco_chain_ledger_and_published_survivors(db):
    conn, _, _ = db
    radius = 60.0
    res = run_stage("veto", conn=conn, where=VASCO_WHERE,
                    params={"set": "vasco", "steps": CHAIN_FREE + ",refcat:tycho2", "radius": radius})
    led = _ledger(conn, res.run_id)
    assert [r[1] for r in led] == ["input:detections", "flags", "edge", "elongation", "fwhm", "duplicates",
                                   "veto:tycho2"]
    for k, (step, _, n_in, n_rej, n_kept, _) in enumerate(led):
        assert n_in == n_rej + n_kept
        assert len(_survivors(conn, "vasco", step)) == n_kept
        if k:
            assert n_in == led[k - 1][4]  # chained
            assert _survivors(conn, "vasco", step) <= _survivors(conn, "vasco", step - 1)
    # the file has positions only: the pixel/shape vetoes cannot test anything and say so
    for r in led[2:5]:
        assert r[3] == 0 and r[5]["n_untested"] == r[2]
    assert led[6][3] > 0  # some detections lie within 60" of a Tycho-2 star
    # the published survivors: all among the inputs (matched by src_id), how many survive the chain
    from astropy.table import Table

    pub = set(np.asarray(Table.read(VASCO / "survivors.csv", format="ascii.csv")["src_id"]).astype(str))
    src = dict(conn.execute("SELECT d.extra->>'src_id', d.id FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                            "WHERE e.path LIKE 'vasco60:%'").fetchall())
    pub_ids = {src[s] for s in pub if s in src}
    assert len(pub_ids) == len(pub)
    free = _survivors(conn, "vasco", 5)
    final = _survivors(conn, "vasco", 6)
    print(f"published survivors: {len(pub_ids)} in input, {len(pub_ids & free)} survive {CHAIN_FREE}, "
          f"{len(pub_ids & final)} survive refcat:tycho2 at {radius}\"")
    assert pub_ids <= free
    # property, checked without q3c: every final survivor is >= radius from every Tycho-2 star,
    # every detection the refcat step rejected has a star within radius
    from astropy.coordinates import SkyCoord

    ty = _tycho()
    pos = dict((r[0], r[1:]) for r in conn.execute(
        "SELECT id, ra, dec FROM detection WHERE id = ANY(%s)", (list(free),)).fetchall())
    ids = np.array(sorted(pos))
    sc = SkyCoord([pos[i][0] for i in ids], [pos[i][1] for i in ids], unit="deg")
    _, sep, _ = sc.match_to_catalog_sky(ty)
    kept = np.isin(ids, list(final))
    assert np.all(sep.arcsec[kept] >= radius * (1 - 1e-9))
    assert np.all(sep.arcsec[~kept] < radius)
    assert (~kept).sum() == led[6][3]


def test_star_vetoed_offset_survives_and_rerun_replaces(db):
    conn, _, _ = db
    import astropy.units as u

    ty = _tycho()
    # a Tycho-2 star with no other star within 3 arcmin, a detection on it and one 1 arcmin north
    _, sep2, _ = ty[:2000].match_to_catalog_sky(ty, nthneighbor=2)
    star = ty[int(np.flatnonzero(sep2.arcmin > 3)[0])]
    off = star.directional_offset_by(0 * u.deg, 1 * u.arcmin)
    assert off.separation(ty).arcsec.min() > 50
    eid = conn.execute("INSERT INTO exposure (path, hdu, image_type, mjd_mid) VALUES ('synthetic-on-star', 0, "
                       "'science', 51544.5) RETURNING id").fetchone()[0]
    ids = [conn.execute("INSERT INTO detection (exposure_id, number, ra, dec) VALUES (%s, %s, %s, %s) RETURNING id",
                        (eid, k + 1, float(c.ra.deg), float(c.dec.deg))).fetchone()[0]
           for k, c in enumerate([star, off])]
    conn.commit()
    where = f"e.id = {eid}"
    r1 = run_stage("veto", conn=conn, where=where, params={"set": "onstar", "steps": "refcat:tycho2", "radius": 5})
    assert _survivors(conn, "onstar", 1) == {ids[1]}
    assert _ledger(conn, r1.run_id)[1][2:5] == (2, 1, 1)
    # another set on the same inputs is independent
    run_stage("veto", conn=conn, where=where, params={"set": "onstar-wide", "steps": "refcat:tycho2", "radius": 90})
    assert _survivors(conn, "onstar-wide", 1) == set()
    # re-running the same set replaces it: survivors and ledger only from the new run
    r2 = run_stage("veto", conn=conn, where=where, params={"set": "onstar", "steps": "refcat:tycho2", "radius": 70})
    runs = {r[0] for r in conn.execute("SELECT DISTINCT stage_run_id FROM survivor WHERE set_name = 'onstar'")}
    assert runs == {r2.run_id}
    assert _survivors(conn, "onstar", 1) == set()
    assert _ledger(conn, r1.run_id) == []
    assert _survivors(conn, "onstar-wide", 0) == set(ids)
    assert r2.counts["replaced_rows"] > 0


@pytest.mark.spatial_backends("q3c")  # the refcat veto runs on the port in the published-survivors chain
def test_chain_from_a_previous_set(db):
    conn, _, _ = db
    run_stage("veto", conn=conn, where=VASCO_WHERE, params={"set": "base", "steps": "flags,duplicates:5"})
    n_base = conn.execute("SELECT n_kept FROM ledger l JOIN stage_run r ON r.id = l.stage_run_id WHERE "
                          "r.params->>'set' = 'base' AND l.step = 2").fetchone()[0]
    res = run_stage("veto", conn=conn, where=VASCO_WHERE,
                    params={"set": "base-tycho", "input": "base", "steps": "refcat", "refcat": "tycho2",
                            "radius": 30})
    led = _ledger(conn, res.run_id)
    assert led[0][1] == "input:base:2" and led[0][2] == n_base
    assert led[1][2] == n_base and led[1][2] == led[1][3] + led[1][4]
    assert _survivors(conn, "base-tycho", 1) <= _survivors(conn, "base", 2)
    # input from a given step
    res = run_stage("veto", conn=conn, where=VASCO_WHERE,
                    params={"set": "base0", "input": "base:0", "steps": "refcat:TYCHO2@30"})
    assert _ledger(conn, res.run_id)[0][2] == len(_survivors(conn, "base", 0))


def test_catalogue_free_vetoes_on_real_sextractor_catalogue(db):
    conn, _, eid = db
    # a duplicate: a fainter copy 0.5" from an unflagged round source
    src = conn.execute("SELECT id, ra, dec, flux_auto FROM detection WHERE exposure_id = %s AND flags = 0 AND "
                       "elongation < 1.1 ORDER BY flux_auto DESC LIMIT 1", (eid,)).fetchone()
    dup = conn.execute(
        "INSERT INTO detection (exposure_id, number, ra, dec, x, y, flux_auto, elongation, fwhm_image, flags) "
        "SELECT exposure_id, 99999, ra, dec + 0.5 / 3600, x, y, flux_auto / 2, elongation, fwhm_image, flags "
        "FROM detection WHERE id = %s RETURNING id", (src[0],)).fetchone()[0]
    conn.commit()
    p = {"set": "lco", "steps": "flags,edge:20,elongation:1.5,fwhm:0.6..1.8,duplicates:2"}
    res = run_stage("veto", conn=conn, where=f"e.id = {eid}", params=p)
    led = _ledger(conn, res.run_id)
    assert all(r[2] == r[3] + r[4] for r in led)
    assert all(r[3] > 0 for r in led[1:])  # every veto removes something on a real catalogue

    def cols(step, q):
        return np.array(conn.execute(q + " WHERE d.id = ANY(%s)", (list(_survivors(conn, "lco", step)),)).fetchall(),
                        dtype=float)

    base = "SELECT d.flags, coalesce(d.xwin, d.x), coalesce(d.ywin, d.y), d.elongation, d.fwhm_image " \
           "FROM detection d"
    s0, s1, s2, s3, s4 = (cols(k, base) for k in range(5))
    assert np.all(s1[:, 0] == 0) and (s0[:, 0] > 0).sum() == led[1][3]
    naxis1, naxis2 = conn.execute("SELECT naxis1, naxis2 FROM exposure WHERE id = %s", (eid,)).fetchone()
    edge = np.minimum.reduce([s2[:, 1] - 0.5, naxis1 + 0.5 - s2[:, 1], s2[:, 2] - 0.5, naxis2 + 0.5 - s2[:, 2]])
    assert np.all(edge >= 20)
    assert np.all(s3[:, 3] <= 1.5)
    fw = np.array([r[0] for r in conn.execute("SELECT fwhm_image FROM detection WHERE exposure_id = %s AND flags = 0 "
                                              "AND fwhm_image > 0", (eid,))])
    med = np.median(fw)
    assert np.all((s4[:, 4] >= 0.6 * med - 1e-4) & (s4[:, 4] <= 1.8 * med + 1e-4))
    assert not np.all((s3[:, 4] >= 0.6 * med) & (s3[:, 4] <= 1.8 * med))
    final = _survivors(conn, "lco", 5)
    if src[0] in _survivors(conn, "lco", 4):
        assert src[0] in final and dup not in final  # the brighter one is kept


def test_bad_parameters_fail_cleanly(db):
    conn, _, eid = db
    before = conn.execute("SELECT count(*) FROM survivor").fetchone()[0]
    cases = [({"steps": "flags"}, "set"),
             ({"set": "x", "steps": "flags,wobble"}, "unknown veto 'wobble'"),
             ({"set": "x", "steps": "refcat:nosuch"}, "refcat 'nosuch'.*TYCHO2"),
             ({"set": "x", "steps": "refcat"}, "needs catalogue names"),
             ({"set": "x", "steps": "elongation:abc"}, "expected a number"),
             ({"set": "x", "input": "nosuchset", "steps": "flags"}, "no survivor set named 'nosuchset'"),
             ({"set": "x", "steps": "refcat:tycho2", "radius": -1}, "radius")]
    for params, msg in cases:
        with pytest.raises(StageError, match=msg):
            run_stage("veto", conn=conn, where=f"e.id = {eid}", params=params)
    assert conn.execute("SELECT count(*) FROM survivor").fetchone()[0] == before
    assert conn.execute("SELECT count(*) FROM survivor WHERE set_name = 'x'").fetchone()[0] == 0
    with pytest.raises(CatdbError):
        parse_steps("")


def test_cli_veto_and_ledger_export(db, db_url, tmp_path):
    _, _, eid = db

    def run(args):
        r = CliRunner().invoke(cli, ["--db", db_url, *args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r.output

    out = run(["stage", "veto", "--where", f"e.id = {eid}", "--set", "cli", "--steps", "flags,elongation:1.4"])
    assert "ok" in out
    # another set on the same exposures (the framework then marks the first run 'replaced')
    run(["stage", "veto", "--where", f"e.id = {eid}", "--set", "cli-other", "--steps", "flags"])
    printed = run(["export", "ledger", "--set", "cli"])
    assert "elongation" in printed and "n_rejected" in printed
    csv = tmp_path / "l.csv"
    run(["export", "ledger", "--set", "cli", "-o", str(csv)])
    from astropy.table import Table

    t = Table.read(csv, format="ascii.csv")
    assert list(t["filter"]) == ["input:detections", "flags", "elongation"]
    assert np.all(t["n_in"] == t["n_rejected"] + t["n_kept"])
    assert json.loads(t["params"][2])["elong_max"] == 1.4
    # survivors export with positions, via a query
    vot = tmp_path / "s.vot"
    run(["export", "SELECT s.step, d.ra, d.dec FROM survivor s JOIN detection d ON d.id = s.detection_id "
                   "WHERE s.set_name = 'cli'", "-o", str(vot)])
    tv = Table.read(vot)
    assert str(tv["ra"].unit) == "deg" and len(tv) == sum(t["n_kept"])


@pytest.mark.spatial_backends("q3c")  # the refcat veto runs on the port in the published-survivors chain
def test_vasco60_spikes_around_tycho2_stars(db):
    """spikes:tycho2 on the real VASCO60 detections: the rejected set is the cross computed in numpy."""
    conn, _, _ = db
    length, width, mag = 90.0, 4.0, 10.0
    res = run_stage("veto", conn=conn, where=VASCO_WHERE,
                    params={"set": "vasco-spikes", "steps": "spikes:tycho2,sso,refcat:tycho2", "radius": 30,
                            "spike_mag": mag, "spike_length": length, "spike_width": width})
    led = _ledger(conn, res.run_id)
    n_exp = conn.execute("SELECT count(*) FROM exposure WHERE path LIKE 'vasco60:%'").fetchone()[0]
    assert all(r[2] == r[3] + r[4] for r in led)
    # the stars the step used: Tycho-2 VT <= 10 (of the ingested subset)
    assert led[1][5]["n_stars"] == conn.execute("SELECT count(*) FROM refcat_source WHERE lower(catalog) = 'tycho2' "
                                                "AND (mags->>'VT')::float <= %s", (mag,)).fetchone()[0] > 0
    # no SkyBoT cone cached for the POSS-I tiles: the sso step tests nothing and says so
    sso = led[2][5]
    assert led[2][3] == 0 and sso["n_untested"] == led[2][2] and sso["n_exposures_no_cone"] > 0
    assert sso["n_exposures_no_cone"] <= n_exp and "no usable cached SkyBoT cone" in sso["note"]
    det = np.array(conn.execute("SELECT d.id, d.ra, d.dec FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                                "WHERE " + VASCO_WHERE + " ORDER BY d.id").fetchall())
    st = np.array(conn.execute("SELECT ra, dec FROM refcat_source WHERE lower(catalog) = 'tycho2' "
                               "AND (mags->>'VT')::float <= %s", (mag,)).fetchall())
    # independent check: offsets of every detection from every bright star near it (astropy + numpy, no q3c)
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    dc, sc = SkyCoord(det[:, 1], det[:, 2], unit="deg"), SkyCoord(st[:, 0], st[:, 1], unit="deg")
    i, j, _, _ = sc.search_around_sky(dc, np.hypot(length, width) * 1.01 * u.arcsec)
    de = np.abs(((det[i, 1] - st[j, 0] + 180) % 360 - 180) * np.cos(np.radians(st[j, 1]))) * 3600
    dn = np.abs(det[i, 2] - st[j, 1]) * 3600
    hit = ((dn <= width) & (de <= length)) | ((de <= width) & (dn <= length))
    truth = set(det[i[hit], 0].astype(int))
    rejected = _survivors(conn, "vasco-spikes", 0) - _survivors(conn, "vasco-spikes", 1)
    assert rejected == truth and len(truth) == led[1][3] > 0
    from astropy.table import Table

    pub = set(np.asarray(Table.read(VASCO / "survivors.csv", format="ascii.csv")["src_id"]).astype(str))
    src = dict(conn.execute("SELECT d.extra->>'src_id', d.id FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                            "WHERE e.path LIKE 'vasco60:%'").fetchall())
    n_pub = len({src[s] for s in pub} & rejected)
    print(f"VASCO60 spikes (Tycho-2 VT <= {mag}, {length}\" x {width}\"): {led[1][5]['n_stars']} stars, "
          f"{led[1][2]} -> {led[1][4]} ({led[1][3]} rejected, {n_pub} of them published survivors); "
          f"sso: {sso['n_exposures_no_cone']} tiles without a cone; "
          f"refcat:tycho2@30: {led[3][2]} -> {led[3][4]}")
