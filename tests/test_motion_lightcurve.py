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
