import numpy as np
import pytest
from matplotlib import cbook

from catdb.algorithms.robust import iqr_bounds, iqr_outliers, mad_std, robust_stats
from tests.calib_data import lco_matched_pairs


def _fliers(values):
    """Outliers as matplotlib's boxplot (used by Automatic-SSOs) finds them."""
    stats = cbook.boxplot_stats(values, whis=1.5)[0]
    return np.isin(values, stats["fliers"])


def test_matches_matplotlib_boxplot_fliers():
    rng = np.random.default_rng(1)
    v = np.concatenate([rng.normal(0.3, 0.05, 40), [0.9, 1.4, -0.2]])  # median separations, arcsec
    np.testing.assert_array_equal(iqr_outliers(v, side="both"), _fliers(v))
    assert iqr_outliers(v, side="upper")[-3:-1].all() and not iqr_outliers(v, side="upper")[-1]
    assert iqr_outliers(v, side="lower")[-1]


def test_groups_are_independent_and_vectorised():
    """Per-night flags equal those of each night processed alone (nights of different size)."""
    rng = np.random.default_rng(2)
    nights = np.repeat(["2019-03-26", "2019-03-27", "2019-03-28"], [30, 7, 12])
    v = np.where(nights == "2019-03-27", rng.normal(5, 1, nights.size), rng.normal(1, 0.1, nights.size))
    v[3] = 3.0  # an outlier on night 1, normal on night 2's scale
    v[40] = np.nan
    rng.shuffle(order := np.arange(v.size))
    v, nights = v[order], nights[order]
    flags = iqr_outliers(v, nights, side="both")
    for night in np.unique(nights):
        sel = nights == night
        finite = np.isfinite(v[sel])
        alone = np.zeros(sel.sum(), bool)
        alone[finite] = _fliers(v[sel][finite])
        np.testing.assert_array_equal(flags[sel], alone)
    assert flags[np.flatnonzero(order == 3)[0]]
    assert not flags[np.isnan(v)].any()
    b = iqr_bounds(v, nights)
    assert list(b.groups) == sorted(set(nights)) and b.n.sum() == np.isfinite(v).sum()


def test_bad_arguments():
    with pytest.raises(ValueError):
        iqr_outliers([1, 2, 3], side="top")
    with pytest.raises(ValueError):
        iqr_outliers([1, 2, 3], groups=[1, 2])


def test_real_zeropoint_residuals_flag_mismatched_stars():
    """On real Gaia-matched LCO photometry, the IQR rule flags the blends (residual off by > 0.3 mag)."""
    p = lco_matched_pairs(max_flag=99)
    resid = p["ref_mag"] - p["inst_mag"]
    out = iqr_outliers(resid, side="both")
    gross = np.abs(resid - np.median(resid)) > 0.3
    assert gross.sum() >= 2
    assert out[gross].all()
    assert out.mean() < 0.2  # the bulk of good stars is kept


def test_mad_std_and_robust_stats():
    rng = np.random.default_rng(3)
    v = rng.normal(10.0, 2.0, 20000)
    v[:200] = 1e4  # 1% wild values
    assert mad_std(v) == pytest.approx(2.0, rel=0.05)
    s = robust_stats(np.append(v, np.nan))
    assert s["n"] == v.size
    assert s["median"] == pytest.approx(10.0, abs=0.1)
    assert s["biweight_scale"] == pytest.approx(2.0, rel=0.05)
    assert s["std"] == pytest.approx(2.0, rel=0.05)
    assert np.isnan(robust_stats([np.nan])["median"])
