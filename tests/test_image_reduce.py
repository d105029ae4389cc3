"""CCD reduction of the real Lowell 42-inch frames (overscan, trim, bias, flat, WCS)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from photutils.centroids import centroid_2dg

from catdb.algorithms.reduce import (master_flat, overscan_trim, parse_section, read_raw,
                                     reduce_science)
from catdb.errors import InputError
from catdb.wcsutil import wcs_from_header
from tests.test_image_data import FLATS, SCIENCE, needs_data, reduced_frames

pytestmark = needs_data


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    return reduced_frames(tmp_path_factory)


def _box_sky(a, n=6, edge=0.0):
    ny, nx = a.shape
    ys = np.linspace(edge * ny, (1 - edge) * ny, n + 1).astype(int)
    xs = np.linspace(edge * nx, (1 - edge) * nx, n + 1).astype(int)
    return np.array([sigma_clipped_stats(a[ys[i]:ys[i + 1], xs[j]:xs[j + 1]],
                                         mask=~np.isfinite(a[ys[i]:ys[i + 1], xs[j]:xs[j + 1]]))[1]
                     for i in range(n) for j in range(n)])


def test_parse_section_is_fits_one_based():
    assert parse_section("[18:1382,1:1370]") == (18, 1382, 1, 1370)
    with pytest.raises(InputError, match="x1:x2"):
        parse_section("18:1382")


def test_flat_in_wrong_filter_is_skipped_and_reported(frames):
    flat = frames["flat"]
    skipped = {p.split("/")[-1]: why for p, why in flat.skipped}
    assert "20190326.0100.fits.fz" in skipped and "'V'" in skipped["20190326.0100.fits.fz"]
    assert len(flat.used) == 4
    assert np.median(flat.ccd.data) == pytest.approx(1.0, abs=1e-3)
    # vignetting: the corners of the master flat are much lower than the centre
    assert flat.ccd.data[5, 5] < 0.6


def test_no_flat_in_filter_raises():
    bias = read_raw(SCIENCE[0])  # any frame of the right shape after trimming
    bias = overscan_trim(bias)
    bias.data[:] = 0
    with pytest.raises(InputError, match="no usable flat in filter 'B'"):
        master_flat(FLATS, bias, filter="B")


def test_missing_biassec_names_keyword(tmp_path):
    ccd = read_raw(SCIENCE[0])
    del ccd.meta["BIASSEC"]
    with pytest.raises(InputError) as e:
        overscan_trim(ccd, path="x.fits")
    assert e.value.keyword == "BIASSEC"


def test_reduced_file_is_rice_float32_and_keeps_header(frames):
    raw_h = fits.getheader(SCIENCE[0], 1)
    with fits.open(frames["paths"][0]) as h:
        assert isinstance(h[1], fits.CompImageHDU)
        assert h[1].compression_type == "RICE_1"
        assert h[1].data.dtype == np.float32
        assert h[1].data.shape == (1370, 1365)          # TRIMSEC [18:1382,1:1370]
        red_h = h[1].header
    skip = {"BZERO", "BSCALE", "BITPIX", "NAXIS1", "NAXIS2", "SIMPLE", "HISTORY", "COMMENT", ""}
    missing = [k for k in raw_h if k not in skip and k not in red_h]
    assert missing == []
    assert red_h["OBJECT"] == "5945 Roachapproach" and red_h["EXPTIME"] == 300
    hist = "\n".join(str(c) for c in red_h["HISTORY"])
    assert "20190326.0129.fits.fz" in hist and "20190326.0001.fits.fz" in hist
    assert "catdb" in hist and "TRIM" in red_h and "CATDBVER" in red_h
    assert isinstance(red_h["CRVAL1"], float)          # quoted WCS strings were cast


def test_wcs_follows_the_trim(frames):
    raw_h = fits.getheader(SCIENCE[0], 1)
    red_h = fits.getheader(frames["paths"][0], 1)
    w_raw, w_red = wcs_from_header(raw_h), wcs_from_header(red_h)
    # pure geometry: reduced pixel (x, y) is raw pixel (x + 17, y)
    x = np.array([10.0, 700.0, 1300.0])
    y = np.array([20.0, 600.0, 1350.0])
    a = w_raw.pixel_to_world(x + 17, y)
    b = w_red.pixel_to_world(x, y)
    assert np.all(a.separation(b).arcsec < 1e-6)
    # a real star, centroided independently in raw and reduced pixels
    raw = fits.getdata(SCIENCE[0], 1).astype(float)
    red = fits.getdata(frames["paths"][0], 1)
    core = raw[400:1000, 417:1017]
    yy, xx = np.unravel_index(np.argmax(np.where(core < 30000, core, 0)), core.shape)
    yr, xr = yy + 400, xx + 417          # 0-based raw pixel of a bright unsaturated star
    cut_raw = raw[yr - 7:yr + 8, xr - 7:xr + 8]
    cut_red = red[yr - 7:yr + 8, xr - 17 - 7:xr - 17 + 8]
    cr = centroid_2dg(cut_raw - np.median(raw[yr - 30:yr + 30, xr - 30:xr + 30]))
    cd = centroid_2dg(cut_red - np.nanmedian(red[yr - 30:yr + 30, xr - 47:xr + 13]))
    s_raw = w_raw.pixel_to_world(xr - 7 + cr[0], yr - 7 + cr[1])
    s_red = w_red.pixel_to_world(xr - 17 - 7 + cd[0], yr - 7 + cd[1])
    assert s_raw.separation(s_red).arcsec < 0.01
    # and the field is where the header says, not at RA 0, Dec 0
    assert abs(s_red.ra.deg - 124.62) < 0.3 and abs(s_red.dec.deg - 25.33) < 0.3


def test_bias_removed_and_sky_flat(frames):
    raw = fits.getdata(SCIENCE[0], 1).astype(float)
    red = fits.getdata(frames["paths"][0], 1)
    red_h = fits.getheader(frames["paths"][0], 1)
    oscan = np.median(raw[:, 1387:1432])
    assert 1500 < oscan < 1800 and red_h["OSCNMED"] == pytest.approx(oscan, abs=1)
    sky_raw = np.median(raw[:, 17:1382])
    sky_red = np.nanmedian(red)
    # the sky level is the raw level minus the bias (overscan + residual), to ~2 %
    assert sky_red == pytest.approx(sky_raw - oscan, rel=0.02)
    # vignetting removed: whole-frame sky flat to < 2 % (raw: ~8 %), inner 80 % to < 1 %
    b_red, b_raw = _box_sky(red), _box_sky(raw[:, 17:1382] - oscan)
    assert b_red.std() / b_red.mean() < 0.02
    assert b_raw.std() / b_raw.mean() > 3 * b_red.std() / b_red.mean()
    inner = _box_sky(red, edge=0.1)
    assert inner.std() / inner.mean() < 0.01


def test_filter_mismatch_is_refused(frames, tmp_path):
    flat = frames["flat"].ccd.copy()
    flat.meta["FILTER"] = "V"
    with pytest.raises(InputError, match="differs from master flat filter"):
        reduce_science(SCIENCE[0], frames["bias"], flat, tmp_path / "x.fits.fz")


def test_already_trimmed_frame_refused(frames):
    ccd = read_raw(frames["paths"][0])
    with pytest.raises(InputError, match="already trimmed"):
        overscan_trim(ccd)
