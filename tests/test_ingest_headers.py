"""Exposure metadata from every real header in the repository data (tests/data/lco, data/) and, where
present, the shared Wallace night."""
from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from astropy.io import fits
from astropy.time import Time
import astropy.units as u

from catdb.errors import InputError
from catdb.ingest.headers import (EXPOSURE_COLUMNS, detect_instrument, exposure_metadata, inherit_header,
                                  load_keymap, read_header, read_text_header, write_default_keymaps)
from catdb.ingest.sextractor import read_catalog
from tests.helpers import REPO_DATA, TEST_DATA

LOWELL = REPO_DATA / "lowell42-5945"
LCO = TEST_DATA / "lco"
SCIENCE = sorted((LOWELL / "science").glob("*.fits.fz"))


def _meta(path, hdr=None, **kw):
    if hdr is None:
        hdr, hdu = read_header(path)
    else:
        hdu = 0
    return exposure_metadata(hdr, detect_instrument(hdr), path=path, hdu=hdu, **kw)


@pytest.fixture(scope="module")
def lowell_rows():
    return [(_meta(p), fits.getheader(p, 1)) for p in SCIENCE]


def test_lowell_time_is_start_plus_half_exposure_and_matches_midtimjd(lowell_rows):
    assert len(lowell_rows) == 23
    for row, hdr in lowell_rows:
        assert set(row) == set(EXPOSURE_COLUMNS)
        # MIDTIMJD is a JD (Photometry Pipeline), an independent check of DATE-OBS+UTCSTART+EXPTIME/2
        assert abs(row["mjd_mid"] - (hdr["MIDTIMJD"] - 2400000.5)) * 86400 < 1.0
    mjd = np.array([r["mjd_mid"] for r, _ in lowell_rows])
    assert np.all(np.diff(mjd) > 0)
    # night of 2019-03-26, 02:27 to 08:07 UT (+ half of 300 s)
    first = (mjd[0] - 58568.0) * 24
    last = (mjd[-1] - 58568.0) * 24
    assert 2.45 < first < 2.55 and 8.1 < last < 8.25


def test_lowell_footprint_not_at_origin_and_site(lowell_rows):
    for row, _hdr in lowell_rows:
        assert row["ra_center"] == pytest.approx(124.62, abs=0.05)
        assert row["dec_center"] == pytest.approx(25.33, abs=0.05)
        # radius = half diagonal of 1432 x 1370 pixels at the WCS scale
        half_diag = math.hypot(row["naxis1"], row["naxis2"]) / 2 * row["pixscale"] / 3600
        assert row["radius"] == pytest.approx(half_diag, rel=0.02)
        centre = SkyCoord(row["ra_center"], row["dec_center"], unit="deg")
        corners = SkyCoord(row["corners"][0::2], row["corners"][1::2], unit="deg")
        assert np.allclose(corners.separation(centre).deg, row["radius"], rtol=0.02)
        assert row["site_height"] == 2206.0  # Lowell ALTITUDE is the site height in metres
        assert row["site_lon"] == pytest.approx(-111.5355)
        assert row["observatory_code"] == "688"
        assert row["band"] == "VR" and row["image_type"] == "science"
        assert row["gain"] == 4.95 and row["readnoise"] == 9.3 and row["binning"] == "3x3"
        assert "CRVAL1  =" in row["wcs_header"] and "'" not in row["wcs_header"].split("CRVAL1")[1][:30]
        assert len(row["sha256"]) == 64


def test_lowell_calibration_frames():
    bias = _meta(LOWELL / "zero" / "20190326.0001.fits.fz")
    assert bias["image_type"] == "bias" and bias["exptime"] == 0.0
    assert bias["ra_center"] is None and bias["corners"] is None  # 'Linear Unbinned ADC Pixels'
    flat_v = _meta(LOWELL / "flat" / "20190326.0100.fits.fz")
    flat_vr = _meta(LOWELL / "flat" / "20190326.0110.fits.fz")
    assert flat_v["image_type"] == "flat" and flat_v["band"] == "V" and flat_vr["band"] == "VR"
    assert flat_v["mjd_mid"] < flat_vr["mjd_mid"] < _meta(SCIENCE[0])["mjd_mid"]


def test_lco_processed_header():
    hdr = read_text_header(LCO / "example_lco_proc_hdr")
    assert detect_instrument(hdr) == "lco1m"
    row, src = _meta(LCO / "example_lco_proc_hdr", hdr, return_sources=True)
    assert row["mjd_mid"] == pytest.approx(hdr["MJD-OBS"] + 50.0 / 86400, abs=1e-5)
    assert row["observatory_code"] == "K92"  # cpt dome B
    assert row["site_height"] == 1760.0 and src["site_height"] == "HEIGHT"  # not ALTITUDE (pointing)
    assert row["fwhm"] == pytest.approx(2.110, abs=1e-3) and row["band"] == "w"
    assert row["ra_center"] == pytest.approx(272.953, abs=0.01)


def test_lco_ldac_catalogue_header():
    cat = read_catalog(LCO / "ldac_test_catalog.fits")
    row = exposure_metadata(cat.header, detect_instrument(cat.header), path=cat.path, hdu=cat.hdu)
    assert row["instrument"] == "kb76" and row["exptime"] == 115.0 and row["band"] == "w"
    assert row["mjd_mid"] == pytest.approx(cat.header["MJD-OBS"] + 57.5 / 86400, abs=1e-5)
    assert row["ra_center"] == pytest.approx(219.836, abs=0.01)
    assert row["dec_center"] == pytest.approx(-9.768, abs=0.01)
    assert row["pixscale"] == pytest.approx(0.467, rel=0.01)


def test_lco_fits10_catalogue_headers_have_no_wcs():
    for p in [LCO / "oracdr_test_catalog.fits", *sorted((LCO / "CatalogFiles").glob("*_cat.fits"))]:
        cat = read_catalog(p)
        row = exposure_metadata(cat.header, detect_instrument(cat.header), path=p, hdu=0)
        assert detect_instrument(cat.header) == "lco1m"
        assert row["mjd_mid"] == pytest.approx(cat.header["MJD-OBS"] + cat.header["EXPTIME"] / 2 / 86400,
                                               abs=1e-5)
        assert row["ra_center"] is None
        assert row["observatory_code"] in ("K91", "K92", "K93", "V37", "V39")


def test_pp_header_lsc():
    row = _meta(LCO / "example_pp_hdr")
    assert row["instrument"] == "fa15" and row["observatory_code"] == "W85"
    assert row["site_lat"] == pytest.approx(-30.1673833)
    h = read_text_header(LCO / "example_pp_hdr")
    # real quirk: MJD-OBS is 12.7 s earlier than DATE-OBS/UTSTART; DATE-OBS is used (lco1m rule order)
    # and agrees with the end time: UTSTOP - EXPTIME/2
    stop = Time("2022-07-31T" + h["UTSTOP"], scale="utc")
    assert row["mjd_mid"] == pytest.approx((stop - h["EXPTIME"] / 2 * u.s).mjd, abs=0.1 / 86400)
    assert (row["mjd_mid"] - h["EXPTIME"] / 2 / 86400 - h["MJD-OBS"]) * 86400 == pytest.approx(12.7, abs=0.2)
    # quoted TPV WCS cards: centre near the pointing RA/DEC keywords
    assert row["ra_center"] == pytest.approx(Angle(h["RA"], unit=u.hourangle).deg, abs=0.1)


def test_kpno_mosaic_extension_inherits_primary():
    pri = read_text_header(LCO / "example_kpno_mef_prihdr")
    ext = read_text_header(LCO / "example_kpno_mef_extnhdr")
    assert "TELESCOP" not in ext
    hdr = inherit_header(pri, ext)
    assert detect_instrument(hdr) == "kpno_mosaic" and detect_instrument(ext) == "kpno_mosaic"
    row = exposure_metadata(hdr, "kpno_mosaic", path=None)
    assert row["band"] == "R" and row["filter"] == "R Harris k1004"
    assert row["mjd_mid"] == pytest.approx(hdr["MJD-OBS"] + 60.0 / 86400, abs=1e-6)
    assert row["observatory_code"] == "695" and row["site_lon"] < -111
    # TNX read as TAN: chip centre within the 0.6 deg mosaic of the pointing
    point = SkyCoord(hdr["RA"], hdr["DEC"], unit=(u.hourangle, u.deg))
    assert SkyCoord(row["ra_center"], row["dec_center"], unit="deg").separation(point).deg < 0.6
    assert row["naxis1"] == 2136 and row["gain"] == 3.1


def test_swope_header():
    h = read_text_header(LCO / "swope_test_header")
    row = _meta(LCO / "swope_test_header", h)
    assert detect_instrument(h) == "swope"
    assert row["gain"] == 1.04 and row["readnoise"] == 3.0 and row["binning"] == "1x1"
    # DATE-OBS and UT-DATE+UT-TIME agree; UT-END - UT-TIME equals EXPTIME
    assert row["mjd_mid"] == pytest.approx(59847.0 + (3 * 3600 + 26 * 60 + 46 + 5) / 86400, abs=1e-6)
    assert row["site_lon"] == pytest.approx(-70.698)


def test_date_only_and_time_keyword_rules():
    h = fits.Header({"DATE-OBS": "2019-03-26", "TIME-OBS": "02:27:31.13", "EXPTIME": 300.0})
    row = exposure_metadata(h, "generic")
    assert row["mjd_mid"] == pytest.approx(58568.0 + (2 * 3600 + 27 * 60 + 31.13 + 150) / 86400, abs=1e-8)
    h = fits.Header({"DATE-OBS": "26/03/99", "UT": "01:00:00", "EXPTIME": 0.0})  # legacy dd/mm/yy
    assert exposure_metadata(h, "generic")["mjd_mid"] == pytest.approx(51263.0 + 1 / 24, abs=1e-8)
    h = fits.Header({"JD": 2458568.5, "EXPTIME": 60.0})
    assert exposure_metadata(h, "generic")["mjd_mid"] == pytest.approx(58568.0 + 30 / 86400)


def test_missing_required_keyword_names_it_and_file():
    hdr = fits.getheader(SCIENCE[0], 1)
    del hdr["EXPTIME"]
    with pytest.raises(InputError) as e:
        exposure_metadata(hdr, "lowell42", path=SCIENCE[0])
    assert "EXPTIME" in str(e.value) and SCIENCE[0].name in str(e.value)
    hdr = fits.getheader(SCIENCE[0], 1)
    for k in ("UTCSTART", "UTC-OBS", "UTCEND", "MIDTIMJD"):
        del hdr[k]
    with pytest.raises(InputError) as e:
        exposure_metadata(hdr, "lowell42", path=SCIENCE[0])
    assert "UTCSTART" in str(e.value) and "DATE-OBS" in str(e.value)


def test_write_and_load_user_keymaps(tmp_path):
    written = write_default_keymaps(tmp_path)
    assert {p.name for p in written} >= {"generic.toml", "lowell42.toml", "lco1m.toml",
                                         "kpno_mosaic.toml", "swope.toml"}
    km = load_keymap(tmp_path / "swope.toml")
    assert km["keywords"]["gain"] == ["EGAIN"] and "RDNOISE" in load_keymap("generic")["keywords"]["readnoise"]
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[keywords]\nexposure_time = ["EXPTIME"]\n')
    with pytest.raises(InputError, match="exposure_time"):
        load_keymap(bad)
    with pytest.raises(InputError, match="unknown keymap"):
        load_keymap("no_such_instrument")


def test_timesys_scales_are_converted_and_an_unknown_one_is_refused():
    """TIMESYS names the scale of the header's times: TT (also as the deprecated TDT/ET) is 69.184 s
    ahead of UTC in 2019, GPS 18 s; a scale catdb cannot convert is an error naming TIMESYS, not UTC."""
    base = {"MJD-OBS": 58568.1, "EXPTIME": 60.0}
    utc = exposure_metadata(fits.Header({**base, "TIMESYS": "UTC approximate"}), "generic")["mjd_mid"]
    assert utc == pytest.approx(58568.1 + 30 / 86400, abs=1e-9)
    for sysname, ahead in (("TT", 69.184), ("TDT", 69.184), ("ET", 69.184), ("GPS", 18.0), ("IAT", 37.0)):
        row, src = exposure_metadata(fits.Header({**base, "TIMESYS": sysname}), "generic", return_sources=True)
        assert (utc - row["mjd_mid"]) * 86400 == pytest.approx(ahead, abs=1e-3), sysname
        assert f"TIMESYS {sysname}" in src["mjd_mid"]
    for bad in ("LOCAL", "MST"):
        with pytest.raises(InputError, match=f"TIMESYS '{bad}'") as e:
            exposure_metadata(fits.Header({**base, "TIMESYS": bad}), "generic", path="frame.fits")
        assert e.value.keyword == "TIMESYS" and "frame.fits" in str(e.value)
