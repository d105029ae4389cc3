"""The VASCO vetoes of stage veto: snr, fwhm_px, spread_model, clip, spikes, sso, dec; ledger exports.

Real inputs: the LCO SExtractor catalogue (no SPREAD_MODEL column), the VASCO60 detections
(positions only) and the recorded SkyBoT response; synthetic stars and detections where the
truth is known exactly (spike geometry, boundaries, NULLs).
"""
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner

from catdb.algorithms.veto import parse_steps
from catdb.cli.main import cli
from catdb.errors import CatdbError, StageError
from catdb.export.saved import saved_query
from catdb.ingest.load import ingest_catalogs
from catdb.ingest.vasco60 import load_vasco60
from catdb.stages import run_stage
from tests.helpers import TEST_DATA, VASCO, requires_shared
from tests.test_veto import _ledger, _survivors

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

LCO = TEST_DATA / "lco"
VOT = TEST_DATA / "skybot" / "skybot_query.vot"
VASCO_WHERE = "e.path LIKE 'vasco60:%'"
MORPHO = "flags,snr,fwhm_px,elongation,spread_model,clip"


@pytest.fixture(scope="module")
def db(db_url):
    from catdb.db.engine import connect

    c = connect(db_url)
    # VASCO60 (../shared only) for test_vasco60_positions_only_chain; the other tests use their own exposures
    info = (load_vasco60(c, VASCO / "source_extractor_final_filtered.csv", VASCO / "survivors.csv")
            if VASCO.is_dir() else None)
    lco = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
    c.commit()
    yield c, info, lco
    c.close()


def _rejected(conn, set_name):
    q, params, _ = saved_query("veto-rejected", {"set_name": set_name})
    return conn.execute(q, params).fetchall()


def _check_chain(conn, set_name, led):
    for k, (step, _, n_in, n_rej, n_kept, _) in enumerate(led):
        assert n_in - n_rej == n_kept
        assert len(_survivors(conn, set_name, step)) == n_kept
        if k:
            assert n_in == led[k - 1][4]
    # every rejected detection carries the step and veto that rejected it, once
    rej = _rejected(conn, set_name)
    by_step = {}
    for step, filt, det, *_ in rej:
        assert filt == led[step][1]
        by_step.setdefault(step, set()).add(det)
    assert len({r[2] for r in rej}) == len(rej) == sum(r[3] for r in led)
    for step, _, _, n_rej, _, _ in led[1:]:
        assert len(by_step.get(step, ())) == n_rej
    return by_step


def _exposure(conn, path, ra, dec, mjd=51544.5):
    return conn.execute("INSERT INTO exposure (path, hdu, image_type, mjd_mid, ra_center, dec_center, radius) "
                        "VALUES (%s, 0, 'science', %s, %s, %s, 0.2) RETURNING id", (path, mjd, ra, dec)).fetchone()[0]


def _detections(conn, eid, rows):
    """rows: dicts of detection columns (ra, dec required); returns their ids in order."""
    ids = []
    for k, r in enumerate(rows):
        cols = ["exposure_id", "number", *r]
        ids.append(conn.execute(
            "INSERT INTO detection ({}) VALUES ({}) RETURNING id".format(", ".join(cols),
                                                                         ", ".join(["%s"] * len(cols))),
            (eid, k + 1, *r.values())).fetchone()[0])
    return ids


def _offset(ra0, dec0, de, dn):
    """Position de, dn arcsec east/north of (ra0, dec0) on the tangent plane (small offsets)."""
    return (ra0 + de / 3600.0 / np.cos(np.radians(dec0))) % 360.0, dec0 + dn / 3600.0


# ------------------------------------------------------------------------------- real catalogue
def test_morphology_gates_on_real_sextractor_catalogue(db):
    conn, _, eid = db
    res = run_stage("veto", conn=conn, where=f"e.id = {eid}", params={"set": "lco-vasco", "steps": MORPHO})
    led = _ledger(conn, res.run_id)
    assert [r[1] for r in led] == ["input:detections", *MORPHO.split(",")]
    print("LCO morphology chain: " + ", ".join(f"{r[1]} {r[2]}-{r[3]}={r[4]}" for r in led))
    by_step = _check_chain(conn, "lco-vasco", led)
    assert all(led[k][3] > 0 for k in (1, 2, 3, 4, 6))  # each gate removes something on a real catalogue
    # the catalogue has no SPREAD_MODEL: nothing rejected, every input untested, and the ledger says so
    sm = led[5]
    assert sm[3] == 0 and sm[5]["n_untested"] == sm[2] and "no SPREAD_MODEL" in sm[5]["note"]
    assert sm[5]["spread_model_min"] == -0.002

    def cols(ids):
        return np.array(conn.execute("SELECT id, flags, snr, fwhm_image, elongation FROM detection "
                                     "WHERE id = ANY(%s) ORDER BY id", (sorted(ids),)).fetchall(), dtype=float)

    final = cols(_survivors(conn, "lco-vasco", 6))
    assert np.all(final[:, 1] == 0) and np.all(final[:, 2] > 30)
    assert np.all((final[:, 3] >= 2) & (final[:, 3] <= 7)) and np.all(final[:, 4] <= 1.3)
    # each rejected row fails the gate of its step
    assert np.all(cols(by_step[1])[:, 1] > 0)
    assert np.all(cols(by_step[2])[:, 2] <= 30)
    f = cols(by_step[3])[:, 3]
    assert np.all((f < 2) | (f > 7))
    assert np.all(cols(by_step[4])[:, 4] > 1.3)
    # the clip is astropy's sigma_clip (median, mad_std, 2 sigma, one iteration) on the step's input
    from astropy.stats import sigma_clip

    inp = cols(_survivors(conn, "lco-vasco", 5))
    mask = (sigma_clip(inp[:, 3], sigma=2, maxiters=1, cenfunc="median", stdfunc="mad_std").mask
            | sigma_clip(inp[:, 4], sigma=2, maxiters=1, cenfunc="median", stdfunc="mad_std").mask)
    assert set(inp[mask, 0].astype(int)) == by_step[6]
    assert led[6][5]["clip_sigma"] == 2.0 and led[6][5]["n_untested"] == 0


@requires_shared("vasco60")
def test_vasco60_positions_only_chain(db):
    conn, info, _ = db
    steps = "flags,snr,fwhm_px,spread_model,clip,dec:30..90,duplicates"
    res = run_stage("veto", conn=conn, where=VASCO_WHERE, params={"set": "vasco-gates", "steps": steps})
    led = _ledger(conn, res.run_id)
    print("VASCO60 chain: " + ", ".join(f"{r[1]} {r[2]}-{r[3]}={r[4]}" for r in led)
          + f"; {info['n_exposures']} tiles, {info['n_dated_exposures']} dated")
    by_step = _check_chain(conn, "vasco-gates", led)
    cols = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE table_name = "
                                       "'detection' ORDER BY ordinal_position")]
    filled = [c for c in cols if conn.execute(
        f"SELECT count(d.{c}) FROM detection d JOIN exposure e ON e.id = d.exposure_id WHERE {VASCO_WHERE}"
    ).fetchone()[0]]
    print(f"VASCO60 detection columns with values: {filled}")
    assert led[1][3] == 0  # FLAGS 0 by construction
    for r in led[2:6]:  # no SNR, FWHM, SPREAD_MODEL, ELONGATION in the file: untested, said so, nothing removed
        assert r[3] == 0 and r[5]["n_untested"] == r[2] and r[5]["note"]
    dec = np.array([r[0] for r in conn.execute(
        "SELECT d.dec FROM detection d JOIN exposure e ON e.id = d.exposure_id WHERE " + VASCO_WHERE)])
    assert led[6][3] == int(((dec < 30) | (dec > 90)).sum()) > 0
    assert np.all(np.array([r[0] for r in conn.execute(
        "SELECT dec FROM detection WHERE id = ANY(%s)", (list(by_step[6]),))]) < 30)
    assert min(r[0] for r in conn.execute("SELECT d.dec FROM survivor s JOIN detection d ON d.id = s.detection_id "
                                          "WHERE s.set_name = 'vasco-gates' AND s.step = 6")) >= 30


# ------------------------------------------------------------------------------- synthetic truth
def test_threshold_gates_boundaries_and_nulls(db):
    conn, _, _ = db
    eid = _exposure(conn, "synthetic-gates", 10.0, 0.0)
    ra = [10.0 + k * 0.01 for k in range(5)]
    ids = _detections(conn, eid, [
        {"ra": ra[0], "dec": -0.5, "snr": 29.9, "spread_model": -0.003, "fwhm_image": 1.9},
        {"ra": ra[1], "dec": 0.0, "snr": 30.0, "spread_model": -0.002, "fwhm_image": 2.0},
        {"ra": ra[2], "dec": 0.2, "snr": 30.1, "spread_model": -0.001, "fwhm_image": 7.0},
        {"ra": ra[3], "dec": 0.6, "snr": 500.0, "spread_model": 0.01, "fwhm_image": 7.1},
        {"ra": ra[4], "dec": 0.3, "snr": None, "spread_model": None, "fwhm_image": None}])
    conn.commit()
    where = f"e.id = {eid}"

    def final(steps, **params):
        res = run_stage("veto", conn=conn, where=where, params={"set": "gates", "steps": steps, **params})
        led = _ledger(conn, res.run_id)
        return {ids.index(i) for i in _survivors(conn, "gates", len(led) - 1)}, led[-1][5]

    assert final("snr")[0] == {2, 3, 4}
    kept, p = final("snr:100")
    assert kept == {3, 4} and p["snr_min"] == 100 and p["n_untested"] == 1
    kept, p = final("spread_model")
    assert kept == {2, 3, 4} and p["n_untested"] == 1 and p["note"].startswith("1 detection")
    assert final("spread_model:-0.0025")[0] == {1, 2, 3, 4}
    assert final("fwhm_px")[0] == {1, 2, 4}
    assert final("fwhm_px:1.95..7.05")[0] == {1, 2, 4}
    assert final("fwhm_px", fwhm_px_min=1.0, fwhm_px_max=8.0)[0] == {0, 1, 2, 3, 4}
    assert final("dec:-0.1..0.25")[0] == {1, 2}
    kept, p = final("dec", dec_min=0.25)
    assert kept == {3, 4} and (p["dec_min"], p["dec_max"]) == (0.25, 90.0)
    assert [s.kind for s in parse_steps("spread_model:-0.002,dec:-30..-10,snr:5,clip:3,fwhm_px:2..7")] == [
        "spread_model", "dec", "snr", "clip", "fwhm_px"]


def test_spikes_cross_geometry(db):
    conn, _, _ = db
    ra0, dec0 = 120.0, 60.0  # cos(dec) = 0.5: RA offsets twice the angle
    conn.execute("INSERT INTO refcat_source (catalog, source_id, ra, dec, mags) VALUES "
                 "('brightsyn', 'S', %s, %s, '{\"V\": 8.0, \"B\": 9.0}'), "
                 "('brightsyn', 'F', %s, %s, '{\"V\": 14.0}'), "
                 "('brightsyn', 'W', 359.9999, -20.0, '{\"V\": 7.0}')", (ra0, dec0, ra0, dec0 + 0.1))
    eid = _exposure(conn, "synthetic-spikes", ra0, dec0)
    # (dE, dN) arcsec from star S, and whether the default cross (L 30", w 3") rejects it
    offs = [((20, 1), True), ((20, 5), False), ((2, -25), True), ((10, 10), False), ((40, 0), False),
            ((-29, -2.5), True), ((0, 150), False), ((0, 200), False)]
    pos = [_offset(ra0, dec0, de, dn) for (de, dn), _ in offs]
    # on the faint star F (mag 14 > spike_mag 12): on-axis 10" and kept
    pos.append(_offset(ra0, dec0 + 0.1, 10, 0))
    ids = _detections(conn, eid, [{"ra": r, "dec": d} for r, d in pos])
    # across RA 0 from star W: 20" east along the RA spike
    eid2 = _exposure(conn, "synthetic-spikes-wrap", 0.0, -20.0)
    wrap = _detections(conn, eid2, [{"ra": _offset(359.9999, -20.0, 20, 1)[0], "dec": -20.0 + 1 / 3600},
                                    {"ra": _offset(359.9999, -20.0, 20, 6)[0], "dec": -20.0 + 6 / 3600}])
    conn.commit()
    where = f"e.id IN ({eid}, {eid2})"
    res = run_stage("veto", conn=conn, where=where, params={"set": "spk", "steps": "spikes:brightsyn"})
    led = _ledger(conn, res.run_id)
    assert led[1][1] == "spikes:brightsyn" and led[1][5]["n_stars"] == 2  # S and W; F is too faint
    kept = _survivors(conn, "spk", 1)
    truth = {i for i, (_, rej) in zip(ids, offs) if not rej} | {ids[-1], wrap[1]}
    assert kept == truth
    # brightness-scaled spikes: L = 30" x 10**(0.2 (12 - 8)) = 189" for S
    res = run_stage("veto", conn=conn, where=where,
                    params={"set": "spk", "steps": "spikes:brightsyn", "spike_scale": True})
    kept = _survivors(conn, "spk", 1)
    assert {ids.index(i) for i in kept if i in ids} == {1, 3, 7, 8}
    # spike_mag override and band: in B, S (9.0) is fainter than 8.5 and vetoes nothing
    res = run_stage("veto", conn=conn, where=f"e.id = {eid}",
                    params={"set": "spk", "steps": "spikes:brightsyn@8.5", "spike_band": "B"})
    led = _ledger(conn, res.run_id)
    assert led[1][3] == 0 and led[1][5]["n_stars"] == 0 and "no star" in led[1][5]["note"]


def test_sso_against_the_recorded_skybot_response(db, db_url, tmp_path):
    from catdb.ingest import skybot as sb

    conn, _, _ = db
    vot = sb.read_skybot_votable(VOT)
    epoch = sb.epoch_to_mjd(vot.meta["epoch"])
    with_cone = _exposure(conn, "synthetic-sso", vot.meta["ra"], vot.meta["dec"], mjd=epoch)
    no_cone = _exposure(conn, "synthetic-sso-nocone", vot.meta["ra"], vot.meta["dec"], mjd=epoch)
    conn.commit()
    sb.import_skybot_votable(conn, VOT, with_cone)
    ra, dec = np.asarray(vot["ra"], float), np.asarray(vot["dec"], float)
    rows = ([dict(zip(("ra", "dec"), _offset(r, d, 0, 3))) for r, d in zip(ra, dec)]
            + [dict(zip(("ra", "dec"), _offset(r, d, 15, 0))) for r, d in zip(ra, dec)])
    near = _detections(conn, with_cone, rows[:len(ra)])
    far = _detections(conn, with_cone, rows[len(ra):])
    other = _detections(conn, no_cone, rows[:len(ra)])
    conn.commit()
    where = f"e.id IN ({with_cone}, {no_cone})"
    res = run_stage("veto", conn=conn, where=where, params={"set": "sso", "steps": "sso"})
    led = _ledger(conn, res.run_id)
    p = led[1][5]
    assert led[1][3] == len(near) == len(vot) and _survivors(conn, "sso", 1) == set(far) | set(other)
    # the exposure without a cached cone is named, its detections counted untested
    assert p["n_exposures_no_cone"] == 1 and p["exposures_no_cone"] == [no_cone]
    assert p["n_untested"] == len(other) and "no usable cached SkyBoT cone" in p["note"]
    assert p["radius_arcsec"] == 10.0 and p["n_predictions"] == len(vot)
    res = run_stage("veto", conn=conn, where=where, params={"set": "sso", "steps": "sso:20"})
    assert _survivors(conn, "sso", 1) == set(other)
    # the ledger exports: CSV and JSON, one schema, rejected_pct
    runner = CliRunner()
    out = {}
    for fmt in ("csv", "json"):
        path = str(tmp_path / f"ledger.{fmt}")
        r = runner.invoke(cli, ["--db", db_url, "export", "ledger", "--set", "sso", "-o", path],
                          catch_exceptions=False)
        assert r.exit_code == 0, r.output
        out[fmt] = path
    from astropy.table import Table

    t = Table.read(out["csv"], format="ascii.csv")
    with open(out["json"]) as f:
        js = json.load(f)
    assert t.colnames == list(js[0]) == ["stage_run_id", "stage", "step", "filter", "n_in", "n_rejected", "n_kept",
                                         "rejected_pct", "params"]
    assert [r["n_rejected"] for r in js] == list(t["n_rejected"]) == [0, len(vot)]
    assert js[1]["rejected_pct"] == pytest.approx(100.0 * len(vot) / js[1]["n_in"], abs=1e-4)
    assert json.loads(t["params"][1]) == js[1]["params"]
    assert all({"veto", "arg", "n_untested", "note"} <= set(r["params"]) for r in js)


def test_full_vasco_chain_ledger_schema(db, db_url, tmp_path):
    conn, _, eid = db
    conn.execute("INSERT INTO refcat_source (catalog, source_id, ra, dec, mags) SELECT 'lco-bright', d.number::text, "
                 "d.ra, d.dec, jsonb_build_object('w', d.mag_auto + 25) FROM detection d WHERE d.exposure_id = %s "
                 "ORDER BY d.flux_auto DESC NULLS LAST LIMIT 5", (eid,))
    conn.commit()
    steps = MORPHO + ",spikes:lco-bright@30,sso,dec:-10..-9.5,duplicates"
    res = run_stage("veto", conn=conn, where=f"e.id = {eid}", params={"set": "lco-all", "steps": steps})
    led = _ledger(conn, res.run_id)
    print("LCO full chain: " + ", ".join(f"{r[1]} {r[2]}-{r[3]}={r[4]}" for r in led))
    _check_chain(conn, "lco-all", led)
    assert led[8][5]["n_exposures_no_cone"] == 1 and led[8][5]["n_untested"] == led[8][2]
    path = tmp_path / "ledger.json"
    r = CliRunner().invoke(cli, ["--db", db_url, "export", "ledger", "--set", "lco-all", "-o", str(path)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with open(path) as f:
        js = json.load(f)
    assert len(js) == len(led) and len({tuple(r) for r in js}) == 1
    assert all({"veto", "arg", "n_untested", "note"} <= set(r["params"]) for r in js)
    for a, b in itertools.pairwise(js):
        assert b["n_in"] == a["n_kept"] and b["n_in"] - b["n_rejected"] == b["n_kept"]
    # the rejected detections, as a user asks for them (read-only role, CSV)
    r = CliRunner().invoke(cli, ["--db", db_url, "query", "--saved", "veto-rejected", "--param", "set_name=lco-all",
                                 "-f", "csv", "-o", str(tmp_path / "rejected.csv")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    from astropy.table import Table

    rej = Table.read(tmp_path / "rejected.csv", format="ascii.csv")
    assert len(rej) == sum(x["n_rejected"] for x in js)
    counts = {f: int((rej["filter"] == f).sum()) for f in set(rej["filter"])}
    assert counts == {x["filter"]: x["n_rejected"] for x in js if x["n_rejected"]}


def test_bad_new_parameters_fail_cleanly(db):
    conn, _, eid = db
    before = conn.execute("SELECT count(*) FROM survivor").fetchone()[0]
    cases = [({"set": "x", "steps": "fwhm_px:7..2"}, "range is empty"),
             ({"set": "x", "steps": "dec:-10"}, "expected a range"),
             ({"set": "x", "steps": "snr:abc"}, "expected a number"),
             ({"set": "x", "steps": "fwhm_px:-1..2"}, "non-negative"),
             ({"set": "x", "steps": "spikes"}, "needs catalogue names"),
             ({"set": "x", "steps": "spikes:nosuch"}, "refcat 'nosuch'"),
             ({"set": "x", "steps": "dec", "dec_min": 10, "dec_max": 0}, "dec_min"),
             ({"set": "x", "steps": "clip", "clip_sigma": 0}, "clip_sigma"),
             ({"set": "x", "steps": "spikes:lco-bright", "spike_width": -1}, "spike_width"),
             ({"set": "x", "steps": "sso", "sso_radius": 0}, "sso_radius")]
    for params, msg in cases:
        with pytest.raises(StageError, match=msg):
            run_stage("veto", conn=conn, where=f"e.id = {eid}", params=params)
    # a non-finite number is refused when the parameters are parsed, before a run is recorded
    n_runs = conn.execute("SELECT count(*) FROM stage_run").fetchone()[0]
    for v in (float("nan"), "inf"):
        with pytest.raises(CatdbError, match="sso_radius: expected a finite number"):
            run_stage("veto", conn=conn, where=f"e.id = {eid}", params={"set": "x", "steps": "sso", "sso_radius": v})
    assert conn.execute("SELECT count(*) FROM stage_run").fetchone()[0] == n_runs
    assert conn.execute("SELECT count(*) FROM survivor").fetchone()[0] == before
    with pytest.raises(CatdbError, match="unknown veto"):
        parse_steps("spike")


def test_help_lists_the_vetoes(db_url):
    r = CliRunner().invoke(cli, ["--db", db_url, "stage", "veto", "--help"])
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    for kind in ("snr", "fwhm_px", "spread_model", "clip", "spikes", "sso", "dec", "refcat"):
        assert kind in text


def test_spikes_along_the_pixel_axes_of_a_rotated_wcs(db):
    """spike_axes=pixel: the cross follows the detector axes of a frame rotated by 30 deg."""
    from astropy.wcs import WCS

    conn, _, _ = db
    ra0, dec0, scale, rot = 200.0, 20.0, 0.5, np.radians(30.0)  # 0.5"/pix, +y axis 30 deg east of north
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval, w.wcs.crpix = [ra0, dec0], [1000.0, 1000.0]
    s = scale / 3600.0
    w.wcs.cd = [[-s * np.cos(rot), s * np.sin(rot)], [s * np.sin(rot), s * np.cos(rot)]]
    cards = "\n".join(str(c) for c in w.to_header().cards)
    eid = conn.execute("INSERT INTO exposure (path, hdu, image_type, mjd_mid, ra_center, dec_center, radius, "
                       "wcs_header, wcs_status) VALUES ('synthetic-rotated', 0, 'science', 51544.5, %s, %s, 0.2, %s, "
                       "'header') RETURNING id",
                       (ra0, dec0, cards)).fetchone()[0]
    conn.execute("INSERT INTO refcat_source (catalog, source_id, ra, dec, mags) VALUES "
                 "('rotsyn', 'R', %s, %s, '{\"V\": 6.0}')", (ra0, dec0))
    # pixel offsets from the star (at CRPIX): along x, along y, off-axis; and whether on the pixel cross
    pix = [((40, 2), True), ((-2, -50), True), ((40, 8), False), ((20, 20), False)]
    world = w.pixel_to_world([1000 - 1 + dx for (dx, _), _ in pix], [1000 - 1 + dy for (_, dy), _ in pix])
    ids = _detections(conn, eid, [{"ra": float(c.ra.deg), "dec": float(c.dec.deg)} for c in world])
    conn.commit()
    p = {"set": "rot", "steps": "spikes:rotsyn", "spike_length": 30, "spike_width": 2}  # 60 x 4 pix
    res = run_stage("veto", conn=conn, where=f"e.id = {eid}", params={**p, "spike_axes": "pixel"})
    led = _ledger(conn, res.run_id)
    assert _survivors(conn, "rot", 1) == {i for i, (_, on) in zip(ids, pix) if not on}
    assert led[1][5]["spike_axes"] == "pixel" and led[1][5]["n_exposures_no_wcs"] == 0
    # along RA/Dec the rotated spikes are missed: the two on-axis detections are 30 deg off both lines
    run_stage("veto", conn=conn, where=f"e.id = {eid}", params=p)
    assert _survivors(conn, "rot", 1) == set(ids)
    # an exposure without a WCS falls back to RA/Dec, and the ledger says so
    bare = _exposure(conn, "synthetic-rotated-nowcs", ra0, dec0)
    _detections(conn, bare, [{"ra": ra0 + 10 / 3600 / np.cos(np.radians(dec0)), "dec": dec0}])
    conn.commit()
    res = run_stage("veto", conn=conn, where=f"e.id IN ({eid}, {bare})", params={**p, "spike_axes": "pixel"})
    led = _ledger(conn, res.run_id)
    assert led[1][3] == 3 and led[1][5]["n_exposures_no_wcs"] == 1 and "without a WCS" in led[1][5]["note"]
