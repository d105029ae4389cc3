"""Ensemble calibration (calibrate method=ensemble) and the detection_calibrated view.

Simulated truth for the least-squares solution; the real LCO LDAC catalogue (copies with
injected offsets, like test_stage_calibrate's relative test); the real Lowell night.
"""
import numpy as np
import pytest

from catdb.errors import StageError
from catdb.schema.tables import QUALITY_FLAGS
from catdb.stages import run_stage
from catdb.algorithms.ensemble import ensemble_solve
from tests.helpers import TEST_DATA
from tests.lowell_night import needs_lowell, night_db_url
from tests.test_stage_calibrate import _copy, zp_row

LCO = TEST_DATA / "lco"


def _simulate(seed, n_exp=20, n_star=1500, noise=0.03, n_var=15, coverage=0.8):
    rng = np.random.default_rng(seed)
    offsets = rng.uniform(-0.6, 0.6, n_exp)
    true_mag = rng.uniform(14.0, 19.0, n_star)
    e, s = np.meshgrid(np.arange(n_exp), np.arange(n_star), indexing="ij")
    e, s = e.ravel(), s.ravel()
    keep = rng.random(e.size) < coverage  # not every star on every exposure
    e, s = e[keep], s[keep]
    variables = rng.choice(n_star, n_var, replace=False)
    amp = np.zeros(n_star)
    amp[variables] = rng.uniform(0.15, 0.5, n_var)
    phase = rng.uniform(0, 2 * np.pi, n_star)
    # calibrated = inst + zp: the instrumental magnitude is true - zp
    inst = true_mag[s] - offsets[e] + noise * rng.standard_normal(e.size) + amp[s] * np.sin(1.7 * e + phase[s])
    return e, s, inst, np.full(e.size, noise), offsets, true_mag, variables


@pytest.mark.parametrize("seed", [1, 2])
def test_solution_recovers_injected_offsets_and_rejects_variables(seed):
    e, s, inst, err, offsets, true_mag, variables = _simulate(seed)
    ref = 3
    sol = ensemble_solve(e, s, inst, err, offsets.size, true_mag.size, ref_exp=ref, zp_ref=offsets[ref])
    assert sol.zp[ref] == offsets[ref] and sol.zp_err[ref] == 0
    dev = np.abs(sol.zp - offsets)
    print(f"ensemble simulation seed {seed}: max |zp - injected| {dev.max():.4f} mag, median zp_err "
          f"{np.median(sol.zp_err):.4f}, {int((~sol.star_ok).sum())} stars rejected, {sol.iterations} iterations")
    assert dev.max() < 0.005
    # the formal errors describe the real deviations (neither 3x too small nor too large)
    others = np.arange(offsets.size) != ref
    ratio = np.sqrt(np.mean((dev[others] / sol.zp_err[others]) ** 2))
    print(f"  rms (zp - injected) / zp_err = {ratio:.2f}")
    assert 0.5 < ratio < 2
    # every variable rejected, hardly any constant star
    assert not sol.star_ok[variables].any()
    assert (~sol.star_ok).sum() <= variables.size + 0.02 * true_mag.size
    assert 0.8 < sol.chi2_red < 1.2
    assert np.nanmedian(np.abs(sol.mean_mag[sol.star_ok] - true_mag[sol.star_ok])) < 0.02


def test_solution_gauge_and_disconnected_exposures():
    e, s, inst, err, offsets, _, _ = _simulate(5, n_exp=6, n_star=200, n_var=0)
    # exposure 5 shares no star with the others: its stars are moved to new star indices
    s = np.where(e == 5, s + 200, s)
    sol = ensemble_solve(e, s, inst, err, 6, 400, ref_exp=0, zp_ref=25.0)
    assert np.isnan(sol.zp[5]) and np.isnan(sol.zp_err[5]) and sol.n_used[5] == 0
    assert np.allclose(sol.zp[:5] - 25.0, offsets[:5] - offsets[0], atol=0.01)
    with pytest.raises(ValueError, match="ref_exp 9"):
        ensemble_solve(e, s, inst, err, 6, 400, ref_exp=9)
    with pytest.raises(ValueError, match="1-D of one length"):
        ensemble_solve(e, s[:-1], inst, err, 6, 400)


# ----------------------------------------------------------------------------- database, real LDAC
@pytest.fixture(scope="module")
def copies(db_url):
    """The real LDAC exposure plus 4 copies with injected offsets and 8 variable stars, associated."""
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_catalogs

    deltas = [0.25, -0.4, 1.1, 0.05]
    with connect(db_url) as c:
        eid = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
        c.execute("SELECT setseed(0.3)")
        ids = [eid] + [_copy(c, eid, f"ens-{i}", d, keep="true") for i, d in enumerate(deltas)]
        # variables: 8 bright stars, changing by +-0.3 mag from copy to copy
        c.execute("UPDATE detection SET mag_auto = mag_auto + 0.3 * (CASE WHEN exposure_id %% 2 = 0 THEN 1 ELSE -1 "
                  "END) WHERE exposure_id = ANY(%s) AND number = ANY(%s)",
                  (ids[1:], c.execute("SELECT array_agg(number) FROM (SELECT number FROM detection WHERE "
                                      "exposure_id = %s AND flags = 0 AND magerr_auto < 0.01 ORDER BY number "
                                      "LIMIT 8) s", (eid,)).fetchone()[0]))
        c.commit()
        run_stage("associate", conn=c, where=f"e.id = ANY(ARRAY{ids})", params={"min_epochs": "3"})
        c.commit()
    return dict(ids=ids, deltas=[0.0] + deltas)


def test_ensemble_on_real_catalogue_copies(conn, copies):
    ids, deltas = copies["ids"], copies["deltas"]
    where = f"e.id = ANY(ARRAY{ids})"
    res = run_stage("calibrate", conn=conn, where=where, params={"method": "ensemble", "reference": str(ids[0])})
    assert res.counts["zeropoint"] == 5 and res.counts["bad_zeropoint"] == 0
    ref = zp_row(conn, ids[0])
    assert ref["zp"] == 0 and ref["ok"] and ref["method"] == "ensemble" and ref["run"] == res.run_id
    for eid, d in zip(ids[1:], deltas[1:]):
        z = zp_row(conn, eid)
        print(f"ensemble LDAC copies: injected {d:+.3f} recovered {-z['zp']:+.4f} +- {z['zp_err']:.4f} "
              f"(n_used {z['n_used']}/{z['n_matched']})")
        assert z["ok"] and z["zp"] == pytest.approx(-d, abs=0.01) and 0 < z["zp_err"] < 0.01
        assert z["n_used"] >= 100 and len(z["residuals"]["ref_id"]) == z["n_used"]
        assert abs(np.median(z["residuals"]["residual"])) < 0.01
    # the 8 variables are rejected: their objects are listed and used by no exposure
    var_obj = {r[0] for r in conn.execute(
        "SELECT dl.object_id FROM detection d JOIN detection_object dl ON dl.detection_id = d.id "
        "WHERE d.exposure_id = %s AND d.number IN (SELECT number FROM detection WHERE exposure_id = %s "
        "AND flags = 0 AND magerr_auto < 0.01 ORDER BY number LIMIT 8)", (ids[0], ids[0])).fetchall()}
    assert len(var_obj) == 8 and var_obj <= set(ref["residuals"]["rejected_objects"])
    for eid in ids:
        assert not var_obj & set(zp_row(conn, eid)["residuals"]["ref_id"])
    # the same offsets as the relative method (independent code path: pairs to the reference)
    run_stage("calibrate", conn=conn, where=where, params={"method": "relative", "reference": str(ids[0])})
    rel = {eid: zp_row(conn, eid)["zp"] for eid in ids}
    # re-running ensemble replaces the relative rows: one zeropoint per exposure, new run
    res2 = run_stage("calibrate", conn=conn, where=where,
                     params={"method": "ensemble", "reference": str(ids[2]), "zp_ref": "25"})
    for eid, d in zip(ids, deltas):
        z = zp_row(conn, eid)
        assert z["run"] == res2.run_id and z["method"] == "ensemble"
        assert z["zp"] == pytest.approx(25 + (rel[eid] - rel[ids[2]]), abs=0.01)
        assert z["zp"] == pytest.approx(25 + deltas[2] - d, abs=0.015)
    assert conn.execute("SELECT count(*) FROM zeropoint WHERE exposure_id = ANY(%s)", (ids,)).fetchone()[0] == 5
    conn.commit()


def test_ensemble_bad_input_writes_nothing(conn, copies):
    ids = copies["ids"]
    before = conn.execute("SELECT count(*), sum(stage_run_id) FROM zeropoint").fetchone()
    with pytest.raises(StageError, match="reference: exposure 999999 is not among the selected"):
        run_stage("calibrate", conn=conn, where=f"e.id = ANY(ARRAY{ids})",
                  params={"method": "ensemble", "reference": "999999"})
    with pytest.raises(StageError, match="min_exposures: expected >= 2"):
        run_stage("calibrate", conn=conn, where=f"e.id = ANY(ARRAY{ids})",
                  params={"method": "ensemble", "min_exposures": "1"})
    lonely = conn.execute("INSERT INTO exposure (path, band) VALUES ('lonely', 'w') RETURNING id").fetchone()[0]
    conn.execute("INSERT INTO detection (exposure_id, number, ra, dec, mag_auto, magerr_auto) "
                 "VALUES (%s, 1, 10, 10, -9, 0.01)", (lonely,))
    conn.commit()
    with pytest.raises(StageError, match="run `catdb stage associate`"):
        run_stage("calibrate", conn=conn, where=f"e.id = {lonely}", params={"method": "ensemble"})
    assert conn.execute("SELECT count(*), sum(stage_run_id) FROM zeropoint").fetchone() == before
    assert conn.execute("SELECT status, error FROM stage_run ORDER BY id DESC LIMIT 1").fetchone()[0] == "failed"
    conn.execute("DELETE FROM exposure WHERE id = %s", (lonely,))
    conn.commit()


def test_detection_calibrated_view(conn, copies):
    ids = copies["ids"]
    run_stage("calibrate", conn=conn, where=f"e.id = ANY(ARRAY{ids})",
              params={"method": "ensemble", "reference": str(ids[0]), "zp_ref": "23.5"})
    conn.commit()
    rows = np.array(conn.execute(
        "SELECT v.exposure_id, v.mag_auto, v.magerr_auto, v.mag_cal, v.magerr_cal, v.zp, v.zp_err, "
        "z.zp, z.zp_err FROM detection_calibrated v JOIN zeropoint z ON z.id = v.zeropoint_id "
        "WHERE v.exposure_id = ANY(%s) AND v.mag_auto IS NOT NULL", (ids,)).fetchall(), dtype=float)
    assert len(rows) == conn.execute("SELECT count(*) FROM detection WHERE exposure_id = ANY(%s) "
                                     "AND mag_auto IS NOT NULL", (ids,)).fetchone()[0]
    assert np.allclose(rows[:, 3], rows[:, 1] + rows[:, 7], atol=1e-5)
    assert np.allclose(rows[:, 4], np.hypot(rows[:, 2], rows[:, 8]), atol=1e-6)
    # the same star has the same calibrated magnitude on every copy (injected offsets removed)
    spread = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM (SELECT max(v.mag_cal) - min(v.mag_cal) AS s "
        "FROM detection_calibrated v JOIN detection_object dl ON dl.detection_id = v.id "
        "WHERE v.exposure_id = ANY(%s) AND v.flags = 0 AND v.magerr_auto < 0.02 GROUP BY dl.object_id "
        "HAVING count(*) = 5) q", (ids,)).fetchone()[0]
    raw = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) FROM (SELECT max(v.mag_auto) - min(v.mag_auto) AS s "
        "FROM detection_calibrated v JOIN detection_object dl ON dl.detection_id = v.id "
        "WHERE v.exposure_id = ANY(%s) AND v.flags = 0 AND v.magerr_auto < 0.02 GROUP BY dl.object_id "
        "HAVING count(*) = 5) q", (ids,)).fetchone()[0]
    print(f"detection_calibrated: median range of a bright star over 5 copies {spread:.4f} mag "
          f"calibrated, {raw:.4f} instrumental")
    assert spread < 0.1 and raw > 1.0
    # a not-ok zeropoint is not used; the exposure's quality flags are shown
    conn.execute("UPDATE zeropoint SET ok = false WHERE exposure_id = %s", (ids[1],))
    conn.execute("UPDATE exposure SET quality_flags = %s WHERE id = %s", (QUALITY_FLAGS["bad_zeropoint"], ids[1]))
    got = conn.execute("SELECT count(*), count(mag_cal), min(quality_flags), max(zp_band) FROM detection_calibrated "
                       "WHERE exposure_id = %s", (ids[1],)).fetchone()
    assert got[0] > 0 and got[1] == 0 and got[2] == QUALITY_FLAGS["bad_zeropoint"] and got[3] is None
    assert conn.execute("SELECT DISTINCT zp_band, zp_method FROM detection_calibrated WHERE exposure_id = %s",
                        (ids[0],)).fetchall() == [("w", "ensemble")]
    conn.rollback()
    # readable by the read-only role, with units from the column comments
    assert conn.execute("SELECT has_table_privilege('catdb_reader', 'detection_calibrated', 'SELECT')").fetchone()[0]
    from catdb.export.table import query_table

    t = query_table(conn, "SELECT mag_cal, magerr_cal, ra FROM detection_calibrated LIMIT 3")
    assert str(t["mag_cal"].unit) == "mag" and str(t["ra"].unit) == "deg"
    conn.rollback()


@needs_lowell
def test_ensemble_on_the_lowell_night(pg_server, template_db):
    """12 real frames of one night: ensemble vs relative zeropoints, scatter of static stars."""
    import psycopg

    url, info = night_db_url(pg_server, template_db)
    ids = info["exposure_ids"][::2]
    where = f"e.id = ANY(ARRAY{ids})"
    with psycopg.connect(url) as c:
        run_stage("associate", conn=c, where=where)
        c.commit()
        res = run_stage("calibrate", conn=c, where=where, params={"method": "ensemble"})
        c.commit()
        ens = dict(c.execute("SELECT exposure_id, zp FROM zeropoint WHERE ok").fetchall())
        info_e = c.execute("SELECT residuals->'reference_exposure', n_used, scatter, residuals FROM zeropoint "
                           "WHERE residuals ? 'rejected_objects'").fetchone()
        n_rej = len(info_e[3]["rejected_objects"])
        ref = int(info_e[0])
        run_stage("calibrate", conn=c, where=where, params={"method": "relative", "reference": str(ref)})
        c.commit()
        rel = dict(c.execute("SELECT exposure_id, zp FROM zeropoint WHERE ok").fetchall())
    assert res.counts["zeropoint"] == len(ids) and res.counts["ok"] == len(ids)
    d = np.array([ens[i] - rel[i] for i in ids])
    z = np.array([ens[i] for i in ids])
    print(f"Lowell night, {len(ids)} frames: ensemble zp range {np.ptp(z):.3f} mag, std {np.std(z):.4f}; "
          f"|ensemble - relative| max {np.abs(d).max():.4f} mag; reference {ref} n_used {info_e[1]}, "
          f"star scatter {info_e[2]:.4f} mag, {n_rej} objects rejected")
    assert ens[ref] == 0 and np.abs(d).max() < 0.02
    assert info_e[1] > 200 and n_rej > 0
