"""Forced aperture photometry and PP curve-of-growth radius on a reduced Lowell frame."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catdb.algorithms.forced import (FLAG_EDGE, FLAG_MASKED, FLAG_SATURATED,
                                     curve_of_growth_radius, forced_photometry)
from catdb.errors import InputError
from catdb.ingest.extract import extract
from catdb.wcsutil import wcs_from_header
from tests.test_image_data import mover1_radec, needs_data, reduced_frames

pytestmark = [needs_data, pytest.mark.skipif(
    not any(__import__("shutil").which(b) for b in ("source-extractor", "sex")),
    reason="SExtractor binary not installed")]

GAIN, RDNOISE = 4.95, 9.3          # AGAIN_01, ARDNS_01 of the Lowell header
DIAMETERS = np.array([4, 6, 8, 10, 14, 20])   # catdb.sex PHOT_APERTURES


@pytest.fixture(scope="session")
def frame(tmp_path_factory):
    path = reduced_frames(tmp_path_factory)["paths"][0]
    cat = extract(path, tmp_path_factory.mktemp("forced") / "f.ldac")
    with fits.open(path) as h:
        img, hdr = h[1].data.astype(float), h[1].header
    t = Table.read(cat, hdu="LDAC_OBJECTS")
    ny, nx = img.shape
    stars = t[(t["FLAGS"] == 0) & (t["FLUX_AUTO"] > 100 * t["FLUXERR_AUTO"])
              & (t["X_IMAGE"] > 40) & (t["X_IMAGE"] < nx - 40)
              & (t["Y_IMAGE"] > 40) & (t["Y_IMAGE"] < ny - 40)]
    return dict(img=img, hdr=hdr, cat=t, stars=stars)


def test_forced_flux_matches_sextractor_flux_aper(frame):
    s = frame["stars"]
    assert len(s) > 50
    f = forced_photometry(frame["img"], frame["hdr"], s["ALPHAWIN_J2000"], s["DELTAWIN_J2000"],
                          DIAMETERS / 2.0, (15, 25), GAIN, RDNOISE,
                          saturation=frame["hdr"]["SATURATE"])
    assert f["flux_aper"].shape == (len(s), len(DIAMETERS))
    # positions from the WCS land on SExtractor's XWIN/YWIN (both 1-based)
    assert np.max(np.hypot(f["x"] - s["XWIN_IMAGE"], f["y"] - s["YWIN_IMAGE"])) < 0.01
    ratio = f["flux_aper"] / s["FLUX_APER"]
    assert np.all(np.abs(np.median(ratio, axis=0) - 1) < 0.02)
    assert np.mean(np.abs(ratio[:, 3] - 1) < 0.05) > 0.9        # radius 5 px, per star
    # errors: same order as SExtractor's (which uses the measured background rms)
    assert 0.7 < np.median(f["fluxerr_aper"][:, 3] / s["FLUXERR_APER"][:, 3]) < 1.3
    assert np.all(f["flags"] == 0)
    m = f["mag_aper"][:, 3]
    assert np.allclose(m, -2.5 * np.log10(f["flux_aper"][:, 3]))


def test_ccd_noise_model_matches_measured_sky_noise(frame):
    """Gain and read noise from the header predict the measured sky scatter (~15 %)."""
    s = frame["stars"]
    f = forced_photometry(frame["img"], frame["hdr"], s["ALPHAWIN_J2000"], s["DELTAWIN_J2000"],
                          [5.0], (15, 25), GAIN, RDNOISE)
    model = np.sqrt(f["background"] / GAIN + (RDNOISE / GAIN) ** 2)
    assert 0.8 < np.median(f["background_rms"] / model) < 1.3
    g = forced_photometry(frame["img"], frame["hdr"], s["ALPHAWIN_J2000"], s["DELTAWIN_J2000"],
                          [5.0], (15, 25), GAIN, RDNOISE, noise="measured")
    assert np.all(g["fluxerr_aper"] >= 0) and np.allclose(g["flux_aper"], f["flux_aper"])


def test_flags_edge_saturated_masked_and_outside(frame):
    img, hdr = frame["img"], frame["hdr"]
    w = wcs_from_header(hdr)
    t = frame["cat"]
    brightest = t[np.argmax(t["FLUX_MAX"])]
    s0 = frame["stars"][0]
    edge = w.pixel_to_world(2.0, 600.0)           # 0-based (2, 600): 3 px from the left edge
    outside = w.pixel_to_world(-100.0, 600.0)
    ra = [brightest["ALPHA_J2000"], s0["ALPHAWIN_J2000"], edge.ra.deg, outside.ra.deg]
    dec = [brightest["DELTA_J2000"], s0["DELTAWIN_J2000"], edge.dec.deg, outside.dec.deg]
    mask = np.zeros(img.shape, bool)
    mask[int(round(s0["YWIN_IMAGE"])) - 1, int(round(s0["XWIN_IMAGE"])) - 1] = True
    f = forced_photometry(img, hdr, ra, dec, [3.0, 5.0], (15, 25), GAIN, RDNOISE, mask=mask,
                          saturation=hdr["SATURATE"])
    assert brightest["FLUX_MAX"] + brightest["BACKGROUND"] >= hdr["SATURATE"] - 1
    assert f["flags"][0] & FLAG_SATURATED
    assert f["flags"][1] & FLAG_MASKED and not f["flags"][1] & FLAG_EDGE
    assert f["flags"][2] & FLAG_EDGE and np.isfinite(f["flux_aper"][2, 0])
    assert f["flags"][3] & FLAG_EDGE and np.all(np.isnan(f["flux_aper"][3]))
    assert f["x"][2] == pytest.approx(3.0) and f["y"][2] == pytest.approx(601.0)


def test_curve_of_growth_radius_for_the_asteroid(frame):
    img, hdr = frame["img"], frame["hdr"]
    w = wcs_from_header(hdr)
    ra, dec = mover1_radec(hdr["MIDTIMJD"])
    x0, y0 = w.all_world2pix([ra], [dec], 0)
    target = (x0[0] + 1, y0[0] + 1)
    s = frame["stars"]
    # the asteroid is detected by SExtractor within 2 px of its expected position
    assert np.min(np.hypot(frame["cat"]["X_IMAGE"] - target[0],
                           frame["cat"]["Y_IMAGE"] - target[1])) < 2.0
    radii = np.arange(1.0, 12.5, 0.5)
    cog = curve_of_growth_radius(img, target, np.column_stack([s["XWIN_IMAGE"], s["YWIN_IMAGE"]]),
                                 radii)
    assert cog.found and cog.n_stars == len(s)
    i = np.searchsorted(radii, cog.radius)
    assert cog.target_fraction[i] > 0.7 and cog.star_fraction[i] > 0.7
    assert abs(cog.target_fraction[i] - cog.star_fraction[i]) < 0.05
    if i > 0:   # smallest such radius
        prev = i - 1
        assert not (cog.target_fraction[prev] > 0.7 and cog.star_fraction[prev] > 0.7
                    and abs(cog.target_fraction[prev] - cog.star_fraction[prev]) < 0.05)
    # the star curve rises monotonically to 1; the radius is of the order of the FWHM
    # (PP's 70 % criterion gives radii of about one FWHM for a well-sampled PSF)
    assert np.all(np.diff(cog.star_fraction) > -0.01) and cog.star_fraction.max() == 1.0
    assert cog.target_fraction.max() == 1.0
    fwhm = np.median(s["FWHM_IMAGE"])
    assert 0.5 * fwhm < cog.radius < 3 * fwhm


def test_bad_inputs(frame):
    with pytest.raises(InputError, match="gain"):
        forced_photometry(frame["img"], frame["hdr"], [124.6], [25.3], [3], (10, 20), 0, 9)
    with pytest.raises(InputError, match="annulus"):
        forced_photometry(frame["img"], frame["hdr"], [124.6], [25.3], [3], (20, 10), 5, 9)
    with pytest.raises(InputError, match="increasing"):
        curve_of_growth_radius(frame["img"], (500, 500), [[600, 600]], [3, 2, 1])
