"""Transformations checked against numbers worked by hand from the papers' coefficients,
and against real catalogue photometry."""
import numpy as np
import pytest
from astropy.table import Table

from catdb.algorithms.transforms import (REGISTRY, available, get_transformation,
                                         normalise_catalog, transform)
from tests.helpers import TEST_DATA


def one(x):
    return {k: np.array([v]) for k, v in x.items()}


# Hand calculations (written out so they can be checked on paper)
# PS1 star g=15.0 r=14.6 i=14.45 z=14.4, x = (g-r) = 0.4, x^2 = 0.16 (Tonry 2012 Table 6)
PS1 = dict(g=15.0, r=14.6, i=14.45, z=14.4)
PS1_EXPECTED = {
    "g": 15.0 + 0.013 + 0.145 * 0.4 + 0.019 * 0.16,      # 15.07404
    "r": 14.6 - 0.001 + 0.004 * 0.4 + 0.007 * 0.16,      # 14.60172
    "i": 14.45 - 0.005 + 0.011 * 0.4 + 0.010 * 0.16,     # 14.451
    "z": 14.4 + 0.013 - 0.039 * 0.4 - 0.012 * 0.16,      # 14.39548
    "B": 15.0 + 0.212 + 0.556 * 0.4 + 0.034 * 0.16,      # 15.43984
    "V": 14.6 + 0.005 + 0.462 * 0.4 + 0.013 * 0.16,      # 14.79188
    "R": 14.6 - 0.137 - 0.108 * 0.4 - 0.029 * 0.16,      # 14.41516
    "I": 14.45 - 0.366 - 0.136 * 0.4 - 0.018 * 0.16,     # 14.02672
}


@pytest.mark.parametrize("band,expected", [
    ("g", 15.07404), ("r", 14.60172), ("i", 14.451), ("z", 14.39548),
    ("B", 15.43984), ("V", 14.79188), ("R", 14.41516), ("I", 14.02672)])
def test_ps1_tonry_by_hand(band, expected):
    assert PS1_EXPECTED[band] == pytest.approx(expected, abs=1e-9)  # the hand arithmetic itself
    mag, err, ok = transform("PANSTARRS", band, one(PS1))
    assert ok[0] and mag[0] == pytest.approx(expected, abs=1e-9)
    assert err[0] == pytest.approx(get_transformation("PS1", band).scatter)  # no photometric error given


def test_ps1_linear_variant_by_hand():
    mag, _, _ = transform("PS1", "V", one(PS1), variant="linear")
    assert mag[0] == pytest.approx(14.6 + 0.006 + 0.474 * 0.4)  # 14.7956


# Gaia DR3: G=15, BP=15.5, RP=14.5 -> x = BP-RP = 1.0, so G - X = sum of the coefficients
@pytest.mark.parametrize("band,expected", [
    ("V", 15 - (-0.02704 + 0.01424 - 0.2156 + 0.01426)),               # 15.21414
    ("R", 15 - (-0.02275 + 0.3961 - 0.1243 - 0.01396 + 0.003775)),     # 14.761085
    ("I", 15 - (0.01753 + 0.76 - 0.0991)),                             # 14.32157
    ("g", 15 - (0.2199 - 0.6365 - 0.1548 + 0.0064)),                   # 15.565
    ("r", 15 - (-0.09837 + 0.08592 + 0.1907 - 0.1701 + 0.02263)),      # 14.96922
    ("i", 15 - (-0.293 + 0.6404 - 0.09609 - 0.002104))])               # 14.750794
def test_gaia_by_hand(band, expected):
    mag, _, ok = transform("GaiaDR3", band, one(dict(G=15.0, BP=15.5, RP=14.5)))
    assert ok[0] and mag[0] == pytest.approx(expected, abs=1e-9)


def test_gaia_at_bp_rp_2_by_hand():
    # x = 2: G - V = -0.02704 + 0.02848 - 0.8624 + 0.11408 = -0.74688
    mag, _, _ = transform("gaia", "V", one(dict(G=15.0, BP=16.0, RP=14.0)))
    assert mag[0] == pytest.approx(15.74688, abs=1e-9)


def test_sdss_chonis_gaskell_by_hand():
    m = one(dict(g=15.0, r=14.5, i=14.3))  # g-r = 0.5, r-i = 0.2
    expected = {"B": 15.0 + 0.327 * 0.5 + 0.216,       # 15.3795
                "V": 15.0 - 0.587 * 0.5 - 0.011,       # 14.6955
                "R": 14.5 - 0.272 * 0.2 - 0.159,       # 14.2866
                "I": 14.3 - 0.337 * 0.2 - 0.370}       # 13.8626
    for band, value in expected.items():
        mag, _, ok = transform("SDSS", band, m)
        assert ok[0] and mag[0] == pytest.approx(value, abs=1e-9), band
    # error: V = 0.413 g + 0.587 r - 0.011; sigma_g=0.01, sigma_r=0.02, coefficient errors 0.011, 0.022
    _, err, _ = transform("SDSS", "V", m, one(dict(g=0.01, r=0.02, i=0.0)))
    hand = np.sqrt((0.413 * 0.01) ** 2 + (0.587 * 0.02) ** 2 + 0.011 ** 2 + (0.5 * 0.022) ** 2)
    assert err[0] == pytest.approx(hand, rel=1e-9)  # 0.019922


def test_2mass_hodgkin_by_hand():
    m = one(dict(J=12.0, H=11.5, Ks=11.3))  # J-H = 0.5, J-K = 0.7
    expected = {"Z": 12.0 + 0.95 * 0.5,             # 12.475
                "Y": 12.0 + 0.50 * 0.5 + 0.08,      # 12.33
                "J": 12.0 - 0.065 * 0.5,            # 11.9675
                "H": 11.5 + 0.070 * 0.7 - 0.030,    # 11.519
                "K": 11.3 + 0.010 * 0.7}            # 11.307
    for band, value in expected.items():
        mag, _, ok = transform("2MASS", band, m)
        assert ok[0] and mag[0] == pytest.approx(value, abs=1e-9), band


def test_validity_ranges():
    # Gaia i is valid only for 0.5 <= BP-RP <= 2.0
    mag, err, ok = transform("GaiaDR3", "i", dict(G=np.full(3, 15.0), BP=np.array([15.2, 16.0, 17.5]),
                                                  RP=np.full(3, 15.0)))
    np.testing.assert_array_equal(ok, [False, True, False])
    assert np.isnan(mag[0]) and np.isnan(err[2]) and np.isfinite(mag[1])
    # Chonis & Gaskell need 0.08 < r-i < 0.5 even for V; NaN inputs are invalid
    _, _, ok = transform("APASS", "V", dict(g=np.array([15.0, 15.0, np.nan]), r=np.array([14.5, 14.5, 14.5]),
                                            i=np.array([14.3, 13.5, 14.3])))
    np.testing.assert_array_equal(ok, [True, False, False])
    _, _, ok = transform("2MASS", "J", one(dict(J=12.0, H=10.5, K=10.0)))  # J-H = 1.5: giant/reddened
    assert not ok[0]


def test_error_propagation_gaia():
    t = get_transformation("GaiaDR3", "V")
    m = one(dict(G=15.0, BP=15.5, RP=14.5))
    _, err0, _ = t.apply(m)
    assert err0[0] == pytest.approx(t.scatter)
    _, err1, _ = t.apply(m, one(dict(G=0.01, BP=0.02, RP=0.02)))
    # dV/dBP = -P'(x): P'(1) = 0.01424 - 0.4312 + 0.04278 = -0.37418
    hand = np.sqrt(0.01 ** 2 + 2 * (0.37418 * 0.02) ** 2 + t.scatter ** 2)
    assert err1[0] == pytest.approx(hand, rel=1e-6)


def test_tonry_and_chonis_gaskell_agree():
    """PS1 -> V directly (Tonry) and PS1 -> SDSS (Tonry) -> V (Chonis & Gaskell) agree within 0.03 mag."""
    gr = np.linspace(0.3, 1.1, 9)
    ps1 = dict(g=15.0 + gr, r=np.full(gr.size, 15.0), i=np.full(gr.size, 14.8))
    v_direct, _, ok1 = transform("PS1", "V", ps1)
    sdss = {b: transform("PS1", b, ps1)[0] for b in "gri"}
    v_via, _, ok2 = transform("SDSS", "V", sdss)
    both = ok1 & ok2
    assert both.sum() >= 7
    assert np.max(np.abs(v_direct - v_via)[both]) < 0.03


def test_real_ucac4_apass_v_from_gri():
    """UCAC4 APASS V against V from APASS g, r, i (Chonis & Gaskell): median difference < 0.05 mag."""
    path = TEST_DATA / "lco" / "test_catalog_subs_UCAC4.dat"
    if not path.exists():
        pytest.skip("real data missing")
    t = Table.read(path, format="ascii.csv")

    def col(name, scale=1.0):
        return np.ma.asarray(t[name]).astype(float).filled(np.nan) * scale

    # UCAC4 stores the APASS errors as integers in units of 0.01 mag
    mags = {b: col(f"{b}mag") for b in "gri"}
    errs = {b: col(f"e_{b}mag", 0.01) for b in "gri"}
    for band in "VB":
        ref = col(f"{band}mag")
        mag, err, ok = transform("APASS", band, mags, errs)
        both = ok & np.isfinite(ref)
        assert both.sum() >= 100
        d = ref[both] - mag[both]
        assert abs(np.median(d)) < 0.05, band
        assert np.median(np.abs(d) / np.hypot(err[both], 0.03)) < 2  # errors are realistic


def test_registry_and_lookup_errors():
    cats = {t.catalog for t in available()}
    assert cats == {"PS1", "SDSS", "GaiaDR3", "2MASS"}
    assert all(t.reference and t.limits for t in REGISTRY.values())
    assert {t.target for t in available("gaia")} == {"V", "R", "I", "g", "r", "i"}
    assert get_transformation("PS1", "Rc") is get_transformation("ps1", "R")
    with pytest.raises(KeyError, match="offers"):
        get_transformation("SDSS", "K")
    with pytest.raises(ValueError):
        normalise_catalog("GaiaDR2")
    with pytest.raises(KeyError, match="missing"):
        transform("GaiaDR3", "V", dict(G=np.ones(2), BP=np.ones(2)))
