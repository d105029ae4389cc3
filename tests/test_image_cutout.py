"""Cutouts of the real asteroid across epochs and the vetting strip PNG."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from catdb.algorithms.cutout import cutout_strip_png, cutouts
from catdb.errors import InputError
from tests.test_image_data import SCIENCE, mover1_radec, needs_data, reduced_frames

pytestmark = needs_data


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    return reduced_frames(tmp_path_factory)


@pytest.fixture(scope="session")
def mover_stamps(frames):
    stamps, jds = [], []
    for p in frames["paths"]:                     # one stamp per epoch
        jd = fits.getheader(p, 1)["MIDTIMJD"]
        ra, dec = mover1_radec(jd)
        stamps.append(cutouts(p, ra, dec, 30.0)[0])
        jds.append(jd)
    return stamps, jds


def test_asteroid_is_at_the_centre_of_every_stamp(mover_stamps):
    stamps, _ = mover_stamps
    for s in stamps:
        assert s.shape[0] == s.shape[1] and s.shape[0] % 2 == 1
        assert abs(s.shape[0] - 30.0 / 1.107) <= 1.5          # pixel scale of the WCS
        c = s.shape[0] // 2
        yy, xx = np.unravel_index(np.nanargmax(s), s.shape)
        assert np.hypot(yy - c, xx - c) <= 1.5
        assert s[c, c] - np.nanmedian(s) > 10 * np.nanstd(s[:5])   # a real source, not sky


def test_raw_frame_with_string_wcs_gives_same_stamp(frames):
    ra, dec = mover1_radec(fits.getheader(SCIENCE[0], 1)["MIDTIMJD"])
    raw = cutouts(SCIENCE[0], ra, dec, 20.0, return_cutout2d=True)[0]
    red = cutouts(frames["paths"][0], ra, dec, 20.0, return_cutout2d=True)[0]
    # same sky pixel: raw x = reduced x + 17 (TRIMSEC starts at column 18)
    assert raw.position_original[0] - red.position_original[0] == pytest.approx(17, abs=0.01)
    assert raw.position_original[1] == pytest.approx(red.position_original[1], abs=0.01)


def test_off_image_and_edge_stamps(frames):
    h = fits.getheader(frames["paths"][0], 1)
    stamps = cutouts(frames["paths"][0], [h["CRVAL1"], h["CRVAL1"] + 5.0],
                     [h["CRVAL2"], h["CRVAL2"]], 10.0)
    assert np.isfinite(stamps[0]).all() and np.isnan(stamps[1]).all()
    with pytest.raises(InputError, match="size_arcsec"):
        cutouts(frames["paths"][0], 124.6, 25.3, 0)


def test_strip_png(mover_stamps, tmp_path):
    import matplotlib.image as mpimg
    stamps, jds = mover_stamps
    labels = [f"MJD {jd - 2400000.5:.4f}" for jd in jds]
    out = cutout_strip_png(stamps, tmp_path / "strip.png", labels=labels, title="mover 1",
                           panel_inches=1.5, dpi=80)
    png = mpimg.imread(out)
    assert png.shape[1] == pytest.approx(3 * 1.5 * 80, abs=2)
    # every third of the strip holds a stamp with structure (not a blank panel)
    thirds = np.array_split(png[..., :3].mean(axis=2), 3, axis=1)
    assert all(t.std() > 0.05 for t in thirds)
    with pytest.raises(InputError, match="labels"):
        cutout_strip_png(stamps, tmp_path / "x.png", labels=["a"])
