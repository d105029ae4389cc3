"""Curve of growth, PP aperture radius and aperture correction on a synthetic image of Gaussian stars.

No data needed: for a circular Gaussian PSF of width sigma the fraction of the flux inside radius
r is 1 - exp(-r^2 / (2 sigma^2)), which the measured growth curves must follow.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ndtr

from catdb.algorithms.forced import aperture_correction, curve_of_growth_radius, growth_fractions

SIGMA = 4.0
RADII = np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0, 14.0, 16.0, 20.0])
ANNULUS = (30.0, 45.0)


def _image(sources, shape=(400, 400), sky=100.0):
    """Sky plus Gaussian sources ((x, y, flux), 1-based pixel positions), integrated over each pixel."""
    img = np.full(shape, sky)
    xe = np.arange(shape[1] + 1) + 0.5  # pixel edges (pixel i spans i - 0.5 .. i + 0.5)
    ye = np.arange(shape[0] + 1) + 0.5
    for x0, y0, f in sources:
        px = np.diff(ndtr((xe - x0) / SIGMA))
        py = np.diff(ndtr((ye - y0) / SIGMA))
        img += f * np.outer(py, px)
    return img


STARS = [(70.5, 70.5, 5e4), (200.5, 70.5, 3e4), (330.5, 70.5, 8e4), (70.5, 330.5, 4e4), (330.5, 330.5, 6e4)]


def _enclosed(r):
    return 1 - np.exp(-np.asarray(r) ** 2 / (2 * SIGMA ** 2))


def test_growth_fractions_normalise_each_source_then_the_median():
    net = np.array([[1.0, 2.0, 4.0], [2.0, 4.0, 8.0], [np.nan, 1.0, 2.0], [1.0, 1.0, -1.0]])
    curve, n = growth_fractions(net)
    assert n == 2  # the NaN row and the one with negative flux in the largest aperture are left out
    assert curve == pytest.approx([0.25, 0.5, 1.0])
    assert growth_fractions(net[2:]) == (None, 0)


def test_pp_radius_and_aperture_correction_follow_the_gaussian_psf():
    target = (200.5, 200.5)
    img = _image(STARS + [(*target, 2e4)])
    star_xy = np.array([s[:2] for s in STARS])
    cog = curve_of_growth_radius(img, target, star_xy, RADII, annulus=ANNULUS)
    expect = _enclosed(RADII) / _enclosed(RADII[-1])
    assert cog.found and cog.n_stars == len(STARS) and cog.n_targets == 1
    # within 0.005: the exact aperture overlap takes the flux as uniform within a pixel, which
    # loses ~0.3 % of the peaked centre at these radii
    assert cog.star_fraction == pytest.approx(expect, abs=5e-3)
    assert cog.target_fraction == pytest.approx(expect, abs=5e-3)
    # the smallest radius with more than 70 % of the flux (target and stars alike)
    assert cog.radius == RADII[np.argmax(expect > 0.7)]
    # several targets of one exposure share the radius of their median curve
    two = curve_of_growth_radius(img, [target, target], star_xy, RADII, annulus=ANNULUS)
    assert two.radius == cog.radius and two.n_targets == 2
    ac, n = aperture_correction(img, star_xy, 6.0, 20.0, ANNULUS)
    assert n == len(STARS)
    assert ac == pytest.approx(2.5 * np.log10(_enclosed(6.0) / _enclosed(20.0)), abs=0.01)  # mag
    assert aperture_correction(img, star_xy, 20.0, 20.0, ANNULUS) == (0.0, 0)


def test_a_target_without_flux_takes_the_stars_curve():
    hole = (200.5, 200.5)
    img = _image(STARS + [(*hole, -2e4)])
    cog = curve_of_growth_radius(img, hole, np.array([s[:2] for s in STARS]), RADII, annulus=ANNULUS)
    assert cog.n_targets == 0
    assert np.array_equal(cog.target_fraction, cog.star_fraction)
