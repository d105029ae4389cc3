"""Stage calibrate on real data: LCO LDAC catalogue against Gaia DR2, and relative (ensemble) zeropoints."""
import numpy as np
import pytest

from catdb.algorithms import photometry
from catdb.errors import CatdbError, StageError
from catdb.schema.tables import QUALITY_FLAGS
from catdb.stages import run_stage
from tests.helpers import TEST_DATA

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

LCO = TEST_DATA / "lco"
BAD = QUALITY_FLAGS["bad_zeropoint"]


@pytest.fixture(scope="module")
def db_url(lco_gaia):
    """The module's database: a copy of conftest's ``lco_gaia`` (the LCO frame and Gaia DR2 as 'gaia-dr2')."""
    return lco_gaia[0]


@pytest.fixture(scope="module")
def ldac(lco_gaia):
    """Id of the exposure of the real LDAC catalogue (band 'w')."""
    return lco_gaia[1]


def zp_row(conn, eid):
    rows = conn.execute("SELECT zp, zp_err, n_matched, n_used, slope, chi2_red, r2, scatter, ok, residuals, band, "
                        "refcat, method, color_term, stage_run_id FROM zeropoint WHERE exposure_id = %s",
                        (eid,)).fetchall()
    assert len(rows) == 1, rows
    keys = "zp zp_err n_matched n_used slope chi2_red r2 scatter ok residuals band refcat method color_term run"
    return dict(zip(keys.split(), rows[0]))


def matched_arrays(conn, eid, catalog="gaia-dr2", band="G", radius=2.0, errmax=0.1):
    """Independent cross-match (astropy, nearest Gaia star within 2") with the stage's cuts."""
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    det = np.array(conn.execute(
        "SELECT ra, dec, mag_auto::float8, magerr_auto::float8 FROM detection WHERE exposure_id = %s AND flags = 0 "
        "AND flux_auto > 0", (eid,)).fetchall(), dtype=float)
    # the LDAC has FLUX_AUTO only: ingest stores mag_auto = -2.5 log10(FLUX_AUTO) (zeropoint 0)
    assert np.allclose(det[:, 2], -2.5 * np.log10(np.array(conn.execute(
        "SELECT flux_auto::float8 FROM detection WHERE exposure_id = %s AND flags = 0 AND flux_auto > 0",
        (eid,)).fetchall(), dtype=float)[:, 0]), atol=1e-5)
    inst, err = det[:, 2], det[:, 3]
    good = err <= errmax
    det, inst, err = det[good], inst[good], err[good]
    ref = np.array(conn.execute(
        "SELECT ra, dec, (mags->>%s)::float, (mag_errs->>%s)::float FROM refcat_source WHERE catalog = %s",
        (band, band, catalog)).fetchall(), dtype=float)
    idx, sep, _ = SkyCoord(det[:, 0], det[:, 1], unit="deg").match_to_catalog_sky(
        SkyCoord(ref[:, 0], ref[:, 1], unit="deg"))
    ok = sep < radius * u.arcsec
    return inst[ok], err[ok], ref[idx[ok], 2], ref[idx[ok], 3]


def test_pp_and_regression_against_gaia(conn, ldac):
    inst, err, ref, referr = matched_arrays(conn, ldac)
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2", "band": "G"})
    pp = zp_row(conn, ldac)
    direct = photometry.zeropoint_pp(inst, err, ref, referr)
    assert pp["ok"] and pp["method"] == "pp" and pp["band"] == "G" and pp["refcat"] == "gaia-dr2"
    assert pp["n_matched"] == direct.n_matched == inst.size and pp["n_used"] == direct.n_used >= 20
    assert pp["zp"] == pytest.approx(direct.zp, abs=1e-9)
    assert pp["zp_err"] == pytest.approx(direct.zp_err, abs=1e-9)
    assert pp["chi2_red"] == pytest.approx(direct.chi2_red, rel=1e-7) and pp["slope"] == 1
    assert len(pp["residuals"]["ref_id"]) == pp["n_used"] == len(pp["residuals"]["residual"])
    assert abs(np.median(pp["residuals"]["residual"])) < 0.05

    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}",
              params={"refcat": "gaia-dr2", "band": "G", "method": "regression", "mag_max": "17"})
    rg = zp_row(conn, ldac)  # replaced the pp row: one zeropoint per exposure
    d2 = photometry.zeropoint_regression(inst, ref, err, referr, mag_range=(12, 17))
    assert rg["ok"] and rg["method"] == "regression" and rg["n_used"] == d2.n_used >= 20
    assert rg["zp"] == pytest.approx(d2.zp, abs=1e-9) and rg["slope"] == pytest.approx(d2.slope, abs=1e-9)
    assert rg["r2"] == pytest.approx(d2.r2, abs=1e-12) and rg["r2"] >= 0.98
    print(f"calibrate LDAC w vs Gaia G: pp zp {pp['zp']:.4f} +- {pp['zp_err']:.4f} (n_used {pp['n_used']}/"
          f"{pp['n_matched']}); regression zp {rg['zp']:.4f} +- {rg['zp_err']:.4f} slope {rg['slope']:.4f} "
          f"R2 {rg['r2']:.5f} (n_used {rg['n_used']})")
    assert abs(pp["zp"] - rg["zp"]) < np.hypot(pp["zp_err"], rg["zp_err"])
    # the documented calibrated-magnitude query gives Gaia G back for the matched stars
    cal = conn.execute(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(-2.5 * log(d.flux_auto) + z.zp "
        "- (r.mags->>'G')::float)) FROM detection d JOIN zeropoint z USING (exposure_id) "
        "JOIN refcat_source r ON r.id = ANY(ARRAY(SELECT jsonb_array_elements_text(z.residuals->'ref_id'))::bigint[]) "
        "AND q3c_join(d.ra, d.dec, r.ra, r.dec, 1/3600.0) WHERE z.ok AND d.exposure_id = %s", (ldac,)).fetchone()[0]
    assert cal < 0.05
    assert conn.execute("SELECT quality_flags & %s FROM exposure WHERE id = %s", (BAD, ldac)).fetchone()[0] == 0
    conn.commit()


def test_rerun_replaces_and_too_few_stars_flag(conn, ldac):
    r1 = run_stage("calibrate", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2", "band": "G"})
    # a 0.1-mag window holds two stars: no zeropoint, flagged
    r2 = run_stage("calibrate", conn=conn, where=f"e.id = {ldac}",
                   params={"refcat": "gaia-dr2", "band": "G", "mag_min": "13.7", "mag_max": "13.85"})
    z = zp_row(conn, ldac)
    assert z["run"] == r2.run_id and not z["ok"] and z["zp"] is None and z["n_matched"] < 3
    assert "need 3" in z["residuals"]["reason"]
    assert conn.execute("SELECT quality_flags & %s FROM exposure WHERE id = %s", (BAD, ldac)).fetchone()[0] == BAD
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (r1.run_id,)).fetchone()[0] == "replaced"
    # a bad regression (R2 threshold above what real data give): zeropoint kept, ok false, flagged
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}",
              params={"refcat": "gaia-dr2", "band": "G", "method": "regression", "mag_max": "17", "r2_min": "0.99999"})
    z = zp_row(conn, ldac)
    assert not z["ok"] and z["zp"] is not None and "R2" in z["residuals"]["reason"]
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2", "band": "G"})
    assert zp_row(conn, ldac)["ok"]
    assert conn.execute("SELECT quality_flags & %s FROM exposure WHERE id = %s", (BAD, ldac)).fetchone()[0] == 0
    conn.commit()


def test_bad_parameters_write_nothing(conn, ldac):
    before = conn.execute("SELECT count(*), sum(stage_run_id) FROM zeropoint").fetchone()
    with pytest.raises(CatdbError, match="parameter method: expected one of"):
        run_stage("calibrate", conn=conn, params={"method": "magic"})
    with pytest.raises(StageError, match="no reference catalogue named 'apass'.*gaia-dr2"):
        run_stage("calibrate", conn=conn, params={"refcat": "apass", "band": "G"})
    with pytest.raises(StageError, match=r"no magnitudes in band\(s\) \['w'\].*\['G'\]"):
        run_stage("calibrate", conn=conn, params={"refcat": "gaia-dr2"})  # exposure band w, Gaia has G
    with pytest.raises(StageError, match="mag_column.*mag_aper\\[N\\]"):
        run_stage("calibrate", conn=conn, params={"refcat": "gaia-dr2", "band": "G", "mag_column": "mag_best"})
    with pytest.raises(StageError, match="BP.*needed"):
        run_stage("calibrate", conn=conn, params={"refcat": "gaia-dr2", "transform": "gaia->r"})
    with pytest.raises(StageError, match="transform.*no transformation"):
        run_stage("calibrate", conn=conn, params={"refcat": "gaia-dr2", "transform": "tycho->V"})
    assert conn.execute("SELECT count(*), sum(stage_run_id) FROM zeropoint").fetchone() == before
    conn.commit()


def test_transform_and_colour_term(conn, ldac):
    # a PS1-like catalogue built from the Gaia stars: r = G, g - r = c varying from star to star
    conn.execute(
        "INSERT INTO refcat_source (catalog, source_id, ra, dec, epoch, mags, mag_errs) "
        "SELECT 'ps1-like', source_id, ra, dec, epoch, jsonb_build_object('g', g + c, 'r', g, "
        "'i', g - 0.3 * c), jsonb_build_object('g', e, 'r', e, 'i', e) FROM (SELECT source_id, ra, dec, epoch, "
        "(mags->>'G')::float AS g, (mag_errs->>'G')::float AS e, 0.2 + 0.8 * mod(id * 7919, 97) / 97.0 AS c "
        "FROM refcat_source WHERE catalog = 'gaia-dr2') s")
    conn.commit()
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}", params={"refcat": "ps1-like", "band": "r"})
    zr = zp_row(conn, ldac)
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}", params={"refcat": "ps1-like", "transform": "ps1->R"})
    zR = zp_row(conn, ldac)
    assert zR["band"] == "R" and "PS1->R" in zR["refcat"] and "Tonry" in zR["refcat"]
    # R = r - 0.137 - 0.108 c - 0.029 c^2 (Tonry et al. 2012): the zeropoint shifts by about that mean
    shift = np.mean(np.array(zR["residuals"]["ref_mag"]) - np.array(zR["residuals"]["inst_mag"])) - \
        np.mean(np.array(zr["residuals"]["ref_mag"]) - np.array(zr["residuals"]["inst_mag"]))
    assert -0.137 - 0.108 - 0.029 < shift < -0.137 - 0.108 * 0.2 - 0.029 * 0.04
    assert zR["zp"] - zr["zp"] == pytest.approx(shift, abs=0.02)
    # colour term: ref i - inst = zp - 0.3 c with g - i = 1.3 c -> coefficient -0.3/1.3 in g-i
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}",
              params={"refcat": "ps1-like", "band": "i", "color_term": "g-i"})
    zc = zp_row(conn, ldac)
    assert zc["ok"] and zc["color_term"] == pytest.approx(-0.3 / 1.3, abs=0.03)
    assert zc["zp"] == pytest.approx(zr["zp"], abs=0.05)
    assert conn.execute("SELECT color_index FROM zeropoint WHERE exposure_id = %s", (ldac,)).fetchone()[0] == "g-i"
    # solar: only stars within 0.2 mag of the Sun's g-r 0.44 and r-i 0.11 (PP --solar)
    run_stage("calibrate", conn=conn, where=f"e.id = {ldac}",
              params={"refcat": "ps1-like", "band": "r", "solar": "true"})
    zs = zp_row(conn, ldac)
    cols = np.array(conn.execute(
        "SELECT (mags->>'g')::float - (mags->>'r')::float, (mags->>'r')::float - (mags->>'i')::float "
        "FROM refcat_source WHERE id = ANY(%s)", (zs["residuals"]["ref_id"],)).fetchall())
    assert zs["ok"] and 3 <= zs["n_used"] < zr["n_used"] and len(cols) == zs["n_used"]
    assert np.all(np.abs(cols[:, 0] - 0.44) <= 0.2 + 1e-9) and np.all(np.abs(cols[:, 1] - 0.11) <= 0.2 + 1e-9)
    conn.commit()


def _copy(conn, eid, path, delta, jitter_arcsec=0.1, keep="number %% 10 <> 0"):
    """Copy of the real exposure with instrumental magnitudes + delta (+ noise at magerr) and jittered positions."""
    new = conn.execute(
        "INSERT INTO exposure (path, hdu, image_type, band, mjd_mid, site_lon, fwhm) SELECT %s, 0, image_type, "
        "band, mjd_mid, site_lon, fwhm FROM exposure WHERE id = %s RETURNING id", (path, eid)).fetchone()[0]
    conn.execute(
        "INSERT INTO detection (exposure_id, number, ra, dec, flags, snr, flux_auto, fluxerr_auto, mag_auto, "
        "magerr_auto) SELECT %s, number, ra + (random() - 0.5) * %s / 3600, dec + (random() - 0.5) * %s / 3600, "
        "flags, snr, flux_auto, fluxerr_auto, -2.5 * log(flux_auto) + %s "
        "+ 1.0857 * fluxerr_auto / flux_auto * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random()), "
        "1.0857 * fluxerr_auto / flux_auto FROM detection WHERE exposure_id = %s AND flux_auto > 0 AND " + keep,
        (new, 2 * jitter_arcsec, 2 * jitter_arcsec, delta, eid))
    return new


def test_relative_recovers_injected_offsets(conn, ldac):
    conn.execute("SELECT setseed(0.1)")
    deltas = [0.25, -0.4, 1.1, 0.05]
    copies = [_copy(conn, ldac, f"rel-{i}", d) for i, d in enumerate(deltas)]
    conn.commit()
    where = f"e.id = ANY(ARRAY[{ldac}, {', '.join(map(str, copies))}])"
    res = run_stage("calibrate", conn=conn, where=where, params={"method": "relative"})
    assert res.counts["zeropoint"] == 5 and res.counts["bad_zeropoint"] == 0
    ref = zp_row(conn, ldac)  # auto: the original has the most detections
    assert ref["zp"] == 0 and ref["ok"] and ref["method"] == "relative" and ref["band"] == "w"
    for eid, d in zip(copies, deltas):
        z = zp_row(conn, eid)
        print(f"relative: injected {d:+.3f} recovered {-z['zp']:+.4f} +- {z['zp_err']:.4f} (n_used {z['n_used']})")
        assert z["ok"] and z["zp"] == pytest.approx(-d, abs=0.01)
        assert 0 < z["zp_err"] < 0.01 and z["n_used"] >= 100
        assert z["residuals"]["reference_exposure"] == ldac and z["refcat"].startswith(f"exposure {ldac}")
    # an explicit reference and an absolute zeropoint for it
    res = run_stage("calibrate", conn=conn, where=where,
                    params={"method": "relative", "reference": str(copies[2]), "zp_ref": "25"})
    assert zp_row(conn, copies[2])["zp"] == 25
    assert zp_row(conn, ldac)["zp"] == pytest.approx(25 + deltas[2], abs=0.01)
    assert zp_row(conn, copies[0])["zp"] == pytest.approx(25 + deltas[2] - deltas[0], abs=0.015)
    assert conn.execute("SELECT count(*) FROM zeropoint WHERE exposure_id = ANY(%s)",
                        ([ldac] + copies,)).fetchone()[0] == 5
    with pytest.raises(StageError, match="no exposure with id 999999"):
        run_stage("calibrate", conn=conn, where=where, params={"method": "relative", "reference": "999999"})
    conn.commit()


def test_pp_in_chunks_of_exposures_equals_one_query(conn, ldac, monkeypatch):
    """pp matches and writes EXPOSURES_PER_QUERY exposures at a time: the rows are those of one query."""
    from catdb.stages import calibrate

    conn.execute("SELECT setseed(0.3)")
    copies = [_copy(conn, ldac, f"chunk-{i}", d) for i, d in enumerate([0.3, -0.2, 0.7, 0.1])]
    copies.append(_copy(conn, ldac, "chunk-few", 0.0, keep="number <= 2"))  # too few stars: flagged
    conn.commit()
    ids = [ldac] + copies
    where = f"e.id = ANY(ARRAY[{', '.join(map(str, ids))}])"
    cols = ("exposure_id, zp, zp_err, n_matched, n_used, slope, chi2_red, r2, scatter, ok, residuals, band, "
            "refcat, method")

    def rows():
        return conn.execute(f"SELECT {cols} FROM zeropoint WHERE exposure_id = ANY(%s) ORDER BY exposure_id",
                            (ids,)).fetchall()

    def flagged():
        return conn.execute("SELECT id FROM exposure WHERE id = ANY(%s) AND quality_flags & %s <> 0 ORDER BY id",
                            (ids, BAD)).fetchall()

    params = {"refcat": "gaia-dr2", "band": "G"}
    one = run_stage("calibrate", conn=conn, where=where, params=params)
    whole, whole_flags = rows(), flagged()
    monkeypatch.setattr(calibrate, "EXPOSURES_PER_QUERY", 2)
    three = run_stage("calibrate", conn=conn, where=where, params=params)  # 3 chunks: 2 + 2 + 2
    counts = {k: one.counts[k] for k in ("zeropoint", "ok", "bad_zeropoint")}
    assert counts == {k: three.counts[k] for k in counts} == {"zeropoint": 6, "ok": 5, "bad_zeropoint": 1}
    assert rows() == whole and flagged() == whole_flags == [(copies[-1],)]
    assert sum(r[9] for r in whole) == 5 and all(len(r[10]["ref_id"]) == r[4] for r in whole if r[9])
    conn.commit()
