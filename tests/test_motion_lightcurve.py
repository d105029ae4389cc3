"""Lomb-Scargle period search on irregularly sampled synthetic light curves."""
import numpy as np
import pytest

from catdb.algorithms.lightcurve import period_search, plot_lightcurve, plot_periodogram
from catdb.errors import InputError


def nights(rng, n_nights=4, per_night=25, hours=5.7):
    """Irregular sampling: several nights of 5.7 h with random gaps, like the Lowell run."""
    t = [58568.1 + k * 1.0 + np.sort(rng.uniform(0, hours / 24, per_night)) for k in range(n_nights)]
    return np.concatenate(t)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_sinusoid_period_within_error(seed):
    rng = np.random.default_rng(seed)
    t = nights(rng)
    p_true = 0.1537  # d
    err = np.full(t.size, 0.03)
    mag = 17.0 + 0.15 * np.sin(2 * np.pi * t / p_true + 0.4) + rng.normal(0, 0.03, t.size)
    r = period_search(t, mag, err, min_period=0.02, max_period=2.0)
    assert abs(r.period - p_true) < 3 * r.period_err
    assert r.period_err < 0.002 * p_true  # the error is informative, not huge
    assert r.fap < 1e-10
    assert r.amplitude == pytest.approx(0.30, abs=0.03)
    assert r.phase.shape == t.shape and r.phase.min() >= 0 and r.phase.max() < 1


def test_double_peaked_asteroid_rotation_and_noise_fap():
    rng = np.random.default_rng(4)
    t = nights(rng, n_nights=3, per_night=40)
    rot = 7.3 / 24  # rotation period, d: two maxima per rotation
    mag = 16.5 + 0.2 * np.cos(4 * np.pi * t / rot) + 0.03 * np.cos(2 * np.pi * t / rot) \
        + rng.normal(0, 0.02, t.size)
    r = period_search(t, mag, np.full(t.size, 0.02), min_period=0.03, max_period=1.0,
                      double_peaked=True)
    assert abs(r.rotation_period - rot) < 3 * r.rotation_period_err
    assert r.summary()["rotation_period_h"] == pytest.approx(7.3, abs=0.05)
    # pure noise: the highest peak is not significant
    noise = period_search(t, 16.5 + rng.normal(0, 0.02, t.size), np.full(t.size, 0.02),
                          min_period=0.03, max_period=1.0)
    assert noise.fap > 0.01


def test_plots_written(tmp_path):
    rng = np.random.default_rng(5)
    t = nights(rng, n_nights=2)
    mag = 17 + 0.1 * np.sin(2 * np.pi * t / 0.2) + rng.normal(0, 0.02, t.size)
    r = period_search(t, mag, np.full(t.size, 0.02), min_period=0.05, max_period=1.0)
    for f, name in ((plot_lightcurve, "lc.png"), (plot_periodogram, "pg.png")):
        p = f(r, tmp_path / name)
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_bad_input():
    with pytest.raises(InputError, match="at least 5"):
        period_search([1, 2, 3], [1, 2, 3], [0.1, 0.1, 0.1])
    with pytest.raises(InputError, match="same time"):
        period_search(np.ones(6), np.arange(6.0))


def test_power_is_astropy_lomb_scargle_for_one_session():
    """The exact Fourier-series power equals astropy's generalised Lomb-Scargle (standard
    normalisation) for nterms 1 and 2 and one zero point."""
    from astropy.timeseries import LombScargle

    from catdb.algorithms.lightcurve import fourier_power

    rng = np.random.default_rng(7)
    t = nights(rng, n_nights=3, per_night=30)
    y = 15.0 + 0.1 * np.sin(2 * np.pi * t / 0.2) + rng.normal(0, 0.02, t.size)
    dy = rng.uniform(0.01, 0.03, t.size)
    f = np.linspace(1.0, 20.0, 500)
    for nterms in (1, 2):
        ours, _ = fourier_power(t, y, 1 / dy**2, np.zeros(t.size, dtype=np.int64), f, nterms)
        ref = LombScargle(t, y, dy, nterms=nterms).power(f, method="cython" if nterms == 1 else "chi2")
        np.testing.assert_allclose(ours, ref, atol=1e-9)


def test_peak_refined_beyond_a_coarse_grid():
    """With 2 samples per peak the grid step is ~1e-3 of the period; the refined peak lands within
    its (honest) error of the true period, much closer than the grid step, where the grid's own
    maximum is off by several errors."""
    rng = np.random.default_rng(11)
    t = nights(rng, n_nights=6, per_night=30)
    p_true = 0.2731
    mag = 16.0 + 0.12 * np.sin(2 * np.pi * t / p_true + 1.0) + rng.normal(0, 0.01, t.size)
    r = period_search(t, mag, np.full(t.size, 0.01), min_period=0.1, max_period=1.0, samples_per_peak=2)
    grid_best = 1 / r.frequency[np.argmax(r.power)]
    assert r.refined and r.grid_step_period > 20 * r.period_err  # the grid alone would not resolve it
    assert abs(r.period - p_true) < 3 * r.period_err
    assert abs(grid_best - p_true) > 3 * r.period_err  # what the old (unrefined) search reported
    assert r.period_err >= 1e-6 * r.grid_step_period  # never below the refinement precision


def test_fap_for_two_terms_is_a_probability():
    rng = np.random.default_rng(5)
    t = nights(rng, n_nights=3, per_night=30)
    rot = 0.31
    strong = 16.0 + 0.15 * np.cos(4 * np.pi * t / rot) + 0.05 * np.cos(2 * np.pi * t / rot + 0.3) \
        + rng.normal(0, 0.02, t.size)
    r = period_search(t, strong, np.full(t.size, 0.02), nterms=2, min_period=0.05, max_period=1.0,
                      n_bootstrap=99)
    assert r.fap_method.startswith("bootstrap") and r.n_bootstrap == 99
    assert 0 < r.fap <= 0.02  # = 1/(B+1): no shuffle reached the observed peak
    assert r.rotation_period == pytest.approx(rot, rel=0.01)  # two harmonics: the rotation period itself
    noise = period_search(t, 16.0 + rng.normal(0, 0.02, t.size), np.full(t.size, 0.02), nterms=2,
                          min_period=0.05, max_period=1.0, n_bootstrap=99)
    assert 0.05 < noise.fap <= 1
    # the cost bound: too many frequencies x points -> no FAP rather than an unbounded run
    capped = period_search(t, strong, np.full(t.size, 0.02), nterms=2, min_period=0.05, max_period=1.0,
                           max_bootstrap_cost=1e3)
    assert np.isnan(capped.fap) and capped.n_bootstrap == 0 and "max_bootstrap_cost" in capped.fap_method
