import numpy as np
import pytest

from catdb.algorithms.photometry import (SOLAR_COLOURS, solar_selection, zeropoint_colour,
                                         zeropoint_pp, zeropoint_regression)
from tests.calib_data import lco_matched_pairs

EXPTIME = 115.0  # s, LCO 1-m kb76 exposure of ldac_test_catalog.fits (EXPTIME in LDAC_IMHEAD)


@pytest.fixture(scope="module")
def lco():
    return lco_matched_pairs()


def _synthetic(n=200, zp=25.3, seed=0, n_bad=10):
    rng = np.random.default_rng(seed)
    ref = rng.uniform(12.5, 17.5, n)
    inst_err = 0.003 * 10 ** (0.2 * (ref - 12.5))
    ref_err = np.full(n, 0.005)
    inst = ref - zp + rng.normal(0, np.hypot(inst_err, 0.01))
    inst[:n_bad] -= rng.uniform(0.3, 1.5, n_bad)  # blends: too bright
    return inst, inst_err, ref, ref_err


# --- real data: LCO 1-m, w band, against Gaia DR2 G -------------------------------------------

def test_real_lco_both_methods_agree(lco):
    pp = zeropoint_pp(lco["inst_mag"], lco["inst_err"], lco["ref_mag"], lco["ref_err"])
    rg = zeropoint_regression(lco["inst_mag"], lco["ref_mag"], lco["inst_err"], lco["ref_err"])
    assert pp.ok and rg.ok, (pp.reason, rg.reason)
    assert pp.n_matched >= 100
    # the two zeropoints agree within their combined errors
    assert abs(pp.zp - rg.zp) < np.hypot(pp.zp_err, rg.zp_err)
    # PP keeps at least half of the matched stars and more than the narrow regression window
    assert pp.n_used >= 0.5 * pp.n_matched
    assert pp.n_used > rg.n_used
    # regression: a near-unit slope and a good R2 on a linear CCD
    assert 0.95 < rg.slope < 1.05 and rg.r2 > 0.98
    # a 1-m telescope, clear filter w, against G: zeropoint for 1 ADU/s of about 23 mag
    zp_per_s = pp.zp - 2.5 * np.log10(EXPTIME)
    assert 22.5 < zp_per_s < 24.5


def test_real_lco_calibrated_mags_reproduce_gaia(lco):
    pp = zeropoint_pp(lco["inst_mag"], lco["inst_err"], lco["ref_mag"], lco["ref_err"])
    mag, err = pp.calibrate(lco["inst_mag"], lco["inst_err"])
    d = (lco["ref_mag"] - mag)[pp.used]
    assert abs(np.median(d)) < 0.02
    assert np.std(d) < 0.05
    assert np.all(err[pp.used] >= pp.zp_err)
    # residuals kept for diagnostics equal ref - calibrated for every valid pair
    np.testing.assert_allclose(pp.residuals, lco["ref_mag"] - mag, atol=1e-9)
    rg = zeropoint_regression(lco["inst_mag"], lco["ref_mag"], lco["inst_err"], lco["ref_err"])
    mag_r, err_r = rg.calibrate(lco["inst_mag"], lco["inst_err"])
    assert abs(np.median((lco["ref_mag"] - mag_r)[rg.used])) < 0.02
    assert np.all(np.isfinite(err_r[rg.used]))


def test_real_lco_regression_window_and_errors(lco):
    rg = zeropoint_regression(lco["inst_mag"], lco["ref_mag"], lco["inst_err"], lco["ref_err"],
                              mag_range=(13.0, 17.0), max_err=0.05)
    assert rg.ok
    used = rg.used
    assert np.all((lco["ref_mag"][used] > 13.0) & (lco["ref_mag"][used] < 17.0))
    assert np.all(lco["inst_err"][used] < 0.05)
    # clipping history: star counts never increase and the last step removed nothing
    assert np.all(np.diff(rg.steps["n"]) <= 0) and rg.steps["n"][-1] == rg.n_used


# --- synthetic checks of the algorithms' defining properties -------------------------------------

def test_pp_recovers_known_zeropoint_despite_blends():
    inst, ie, ref, re = _synthetic()
    r = zeropoint_pp(inst, ie, ref, re)
    assert r.ok and r.method == "pp"
    assert r.zp == pytest.approx(25.3, abs=3 * r.zp_err_fit + 0.005)
    assert not r.used[:10].any()  # the blends are rejected
    # the chosen step is the minimum reduced chi2 among steps keeping >= half of the stars
    eligible = r.steps["n"] >= 0.5 * r.n_matched
    assert r.chi2_red == pytest.approx(np.min(r.steps["chi2_red"][eligible]))


def test_pp_min_fraction_and_error_floor():
    inst, ie, ref, re = _synthetic(n_bad=0)
    r = zeropoint_pp(inst, ie, ref, np.zeros_like(re), min_frac=0.9)  # zero ref errors: floored
    assert r.ok and r.n_used >= 0.9 * r.n_matched
    assert np.isfinite(r.zp_err) and r.zp_err >= 0.01


def test_pp_too_few_stars_and_bad_values():
    r = zeropoint_pp([-10.0, -11.0, 99.0, np.nan], [0.01] * 4, [15.0, 14.0, 13.0, 12.0], [0.01] * 4)
    assert not r.ok and "2 valid" in r.reason and np.isnan(r.zp)
    assert r.calibrate([-10.0])[0][0] != r.calibrate([-10.0])[0][0]  # NaN
    with pytest.raises(ValueError):
        zeropoint_pp([1, 2, 3], [0.1] * 3, [1, 2], [0.1] * 2)
    with pytest.raises(ValueError):
        zeropoint_pp([1, 2, 3], [0.1] * 3, [1, 2, 3], [0.1] * 3, min_frac=2)


def test_regression_recovers_slope_and_flags_low_r2():
    rng = np.random.default_rng(5)
    inst = rng.uniform(-16, -11, 300)
    ref = 27.0 + 0.97 * inst + rng.normal(0, 0.01, inst.size)
    ref[:15] += 0.8
    r = zeropoint_regression(inst, ref, mag_range=None)
    assert r.ok and r.slope == pytest.approx(0.97, abs=0.005)
    assert r.intercept == pytest.approx(27.0, abs=0.08)
    assert not r.used[:15].any()
    # a calibration with scatter comparable to the magnitude range is flagged by R2
    noisy = 27.0 + inst + rng.normal(0, 1.0, inst.size)
    bad = zeropoint_regression(inst, noisy, mag_range=None)
    assert not bad.ok and bad.r2 < 0.98 and "R2" in bad.reason
    few = zeropoint_regression(inst[:3], ref[:3], mag_range=None)
    assert not few.ok and "need 4" in few.reason


def test_colour_term_fit():
    rng = np.random.default_rng(7)
    n = 300
    colour = rng.uniform(0.2, 1.6, n)  # BP-RP
    ref = rng.uniform(13, 17, n)
    inst = ref - 24.0 - 0.12 * colour + rng.normal(0, 0.015, n)
    inst[:8] += 0.5
    err = np.full(n, 0.015)
    r = zeropoint_colour(inst, err, ref, err * 0, colour)
    assert r.ok
    assert r.colour_term == pytest.approx(0.12, abs=3 * r.colour_term_err)
    assert r.zp == pytest.approx(24.0, abs=3 * r.zp_err)
    assert not r.used[:8].any()
    mag, _ = r.calibrate(inst, err, colour=colour)
    assert np.median(np.abs(mag - ref)[8:]) < 0.02
    with pytest.raises(ValueError):
        r.calibrate(inst)
    # PP with the fitted colour term held fixed gives the same zeropoint
    pp = zeropoint_pp(inst, err, ref, err * 0, colour=colour, colour_term=r.colour_term)
    assert pp.zp == pytest.approx(r.zp, abs=0.01)


def test_solar_selection():
    gr = np.array([0.44, 0.60, 0.30, 0.44, np.nan])
    ri = np.array([0.11, 0.11, 0.11, 0.40, 0.11])
    np.testing.assert_array_equal(solar_selection({"g-r": gr, "r-i": ri}),
                                  [True, True, True, False, False])
    np.testing.assert_array_equal(solar_selection({"g-r": gr}, tol=0.1), [True, False, False, True, False])
    assert SOLAR_COLOURS == {"g-r": 0.44, "r-i": 0.11}
    with pytest.raises(ValueError):
        solar_selection({"B-V": gr})
