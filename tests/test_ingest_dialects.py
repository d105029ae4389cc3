"""Header dialects of small-telescope software: SBIG/TheSkyX, MaxIm DL, ACP, N.I.N.A.

The SBIG/TheSkyX tests read the real Wallace Astrophysical Observatory night in shared data.
The MaxIm DL, ACP and N.I.N.A. headers are synthetic, built from each program's documented
conventions (the source is named in each test); their LST cards are computed here with
astropy, independently of catdb's own sidereal time.
"""
from __future__ import annotations

import pytest
from astropy import units as u
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time

from catdb.errors import InputError
from catdb.ingest.headers import (check_obscode, detect_instrument, exposure_metadata, gmst_deg, read_header,
                                  write_default_keymaps)
from tests.helpers import WALLACE, requires_shared

needs_wallace = requires_shared("wallace2713-20181012")


def _meta(path, **kw):
    h, hdu = read_header(path)
    return exposure_metadata(h, detect_instrument(h), path=path, hdu=hdu, return_sources=True, **kw)


def _lst(date_obs: str, lon_east: float) -> str:
    """Local mean sidereal time 'hh mm ss.ss' at a UTC time and east longitude (astropy)."""
    t = Time(date_obs, scale="utc")
    lst = (t.sidereal_time("mean", "greenwich") + lon_east * u.deg).wrap_at(360 * u.deg)
    return lst.to_string(unit=u.hourangle, sep=" ", precision=2, pad=True)


@needs_wallace
def test_sbig_theskyx_science_frame():
    """Wallace frame 15: TheSkyX west-positive SITELONG, OBJCTRA in hours, scale from XPIXSZ/FOCALLEN."""
    row, src = _meta(WALLACE / "lux-180.000secs.Light.Open.00000015.fit")
    assert detect_instrument(read_header(WALLACE / "lux-180.000secs.Light.Open.00000015.fit")[0]) == "sbig_theskyx"
    # '+71 29 06.00' west-positive: Westford MA is 71.485 deg WEST
    assert row["site_lon"] == pytest.approx(-71.485, abs=1e-3)
    assert row["site_lat"] == pytest.approx(42.61, abs=1e-3)
    assert "west-positive, negated" in src["site_lon"] and "sign agrees with LST" in src["site_lon"]
    # local date at the start of the night: 02:03 UT on 2018-10-13 is the evening of 2018-10-12 in Massachusetts
    assert str(row["night"]) == "2018-10-12"
    # OBJCTRA '04 12 12.262' is hours: 63.051 deg; OBJCTDEC '+22 53 01.76'
    assert row["pointing_ra"] == pytest.approx(Angle("04h12m12.262s").deg, abs=1e-6)
    assert row["pointing_dec"] == pytest.approx(22 + 53 / 60 + 1.76 / 3600, abs=1e-6)
    assert row["ra_center"] is None and row["wcs_status"] == "none"  # a pointing is not a WCS
    # 206.265 x 24 um / 3910 mm (XPIXSZ is after binning, 1x1 here)
    assert row["pixscale"] == pytest.approx(206.265 * 24 / 3910, rel=1e-4)
    assert row["binning"] == "1x1" and row["gain"] == 2.07 and row["ccd_temp"] == pytest.approx(-19.977, abs=1e-3)
    assert row["image_type"] == "science" and row["saturation"] == 65535.0
    assert row["readnoise"] is None  # no card: unknown, not invented
    assert row["observatory_code"] is None and "--obscode" in src["observatory_code"]


@needs_wallace
def test_sbig_calibration_frames_and_obscode():
    bias, _ = _meta(WALLACE / "lux-180.000secs.Bias.Open.00000046.fit", obscode="810")
    dark, _ = _meta(WALLACE / "lux-180.000secs.Dark.Open.00000041.fit")
    focus, _ = _meta(WALLACE / "lux-10.000secs.Light.Open.00000001.fit")
    assert bias["image_type"] == "bias" and dark["image_type"] == "dark"
    assert bias["observatory_code"] == "810" and dark["exptime"] == 180.0
    # the focus run is labelled 'Light Frame': science by its label, 256x256 by its size
    assert focus["image_type"] == "science" and (focus["naxis1"], focus["naxis2"]) == (256, 256)
    with pytest.raises(InputError, match="not an MPC code"):
        check_obscode("81")


def _maxim_header(**extra):
    """MaxIm DL 5.24 keyword set (MaxIm DL help 'FITS File Header Definitions'; SBFITSEXT 1.0)."""
    date = "2018-07-04T14:03:03"
    h = fits.Header()
    h["BITPIX"] = 16
    h["NAXIS"], h["NAXIS1"], h["NAXIS2"] = 2, 4864, 3232
    h["BZERO"], h["BSCALE"] = 32768.0, 1.0
    h["DATE-OBS"] = (date, "[ISO 8601] UTC date/time of exposure start")
    h["EXPTIME"] = (300.0, "[sec] Duration of exposure")
    h["CCD-TEMP"] = (-34.99, "CCD temperature at start of exposure in C")
    h["XPIXSZ"] = (14.8, "Pixel Width in microns (after binning)")
    h["YPIXSZ"] = (14.8, "Pixel Height in microns (after binning)")
    h["XBINNING"], h["YBINNING"] = 2, 2
    h["EGAIN"] = (1.5, "Electronic gain in e-/ADU")
    h["FILTER"] = "R"
    h["IMAGETYP"] = ("Light Frame", "Type of image")
    h["SITELAT"] = ("-31 16 24", "Latitude of the imaging location")
    h["SITELONG"] = ("149 03 52", "Longitude of the imaging location")
    h["FOCALLEN"] = (1425.0, "Focal length of telescope in mm")
    h["OBJCTRA"] = ("18 20 48.12", "Nominal Right Ascension of center of image")
    h["OBJCTDEC"] = ("-16 10 58.8", "Nominal Declination of center of image")
    h["SWCREATE"] = "MaxIm DL Version 5.24 140126 0KJR5"
    for k, v in extra.items():
        h[k.replace("_", "-")] = v
    return h


def test_maximdl_east_positive_and_binned_pixel_size():
    """MaxIm DL: SITELONG east-positive (Siding Spring 149 E), XPIXSZ after binning, OBJCTRA hours."""
    h = _maxim_header(ST=_lst("2018-07-04T14:03:03", 149.0644))
    row, src = exposure_metadata(h, return_sources=True)
    assert detect_instrument(h) == "maximdl"
    assert row["site_lon"] == pytest.approx(149.0644, abs=1e-3) and "sign agrees" in src["site_lon"]
    assert row["binning"] == "2x2"
    assert row["pixscale"] == pytest.approx(206.265 * 14.8 / 1425.0, rel=1e-4)  # not x 2 again
    assert row["pointing_ra"] == pytest.approx(Angle("18h20m48.12s").deg, abs=1e-6)
    assert row["pointing_dec"] == pytest.approx(-(16 + 10 / 60 + 58.8 / 3600), abs=1e-6)
    assert row["gain"] == 1.5 and row["ccd_temp"] == -34.99 and row["saturation"] == 65535.0


def test_site_longitude_sign_checked_against_lst():
    """A west-positive SITELONG in a dialect mapped east-positive is caught by LST - GMST."""
    date = "2018-10-13T02:03:10"
    h = _maxim_header(SITELONG="+71 29 06.00", SITELAT="+42 36 36.00", ST=_lst(date, -71.485))
    h["DATE-OBS"] = date
    row, src = exposure_metadata(h, "maximdl", return_sources=True)
    assert row["site_lon"] == pytest.approx(-71.485, abs=1e-3)
    assert "sign flipped" in src["site_lon"]
    # and catdb's GMST agrees with astropy's to well under a second of time
    t = Time(date, scale="utc")
    assert gmst_deg(t.mjd) == pytest.approx(t.sidereal_time("mean", "greenwich").deg, abs=0.01)


def test_acp_site_from_long_obs():
    """ACP on MaxIm DL: LAT-OBS/LONG-OBS decimal '[deg +E WGS84]', RA/DEC '[hms J2000]' sexagesimal.

    Card set of a real ACP + MaxIm DL 5.24 header (iTelescope T33, Siding Spring; the
    ``header_maximdl`` sample of bcolyn/PhotonFinder tests/sample_headers.py).
    """
    h = _maxim_header()
    del h["SITELAT"], h["SITELONG"], h["OBJCTRA"], h["OBJCTDEC"]
    h["LAT-OBS"] = (-31.2736111111, "[deg +N WGS84] Geodetic latitude")
    h["LONG-OBS"] = (149.064444444, "[deg +E WGS84] Geodetic longitude")
    h["ALT-OBS"] = (1165.0, "[metres] Altitude above mean sea level")
    h["RA"] = ("18 20 48.12", "[hms J2000] Target right ascension")
    h["DEC"] = ("-16 10 58.8", "[dms +N J2000] Target declination")
    h["ST"] = (_lst("2018-07-04T14:03:03", 149.064444444), "Local apparent sidereal time of exp. start")
    row, src = exposure_metadata(h, return_sources=True)
    assert detect_instrument(h) == "acp"
    assert row["site_lon"] == pytest.approx(149.0644, abs=1e-3) and src["site_lon"].startswith("LONG-OBS")
    assert row["site_height"] == 1165.0 and row["site_lat"] == pytest.approx(-31.2736, abs=1e-4)
    assert row["pointing_ra"] == pytest.approx(275.2005, abs=1e-4)


def test_nina_degrees_and_binned_pixel_size():
    """N.I.N.A.: RA/DEC '[deg]' of the mount, XPIXSZ = pixel size x binning, decimal east SITELONG.

    Conventions from N.I.N.A.'s FITS documentation and NINATest/FITSTest.cs
    (FITSCameraMetaDataPopulated: XPIXSZ = PixelSize * BinX; FITSTelescopeMetaDataPopulated:
    RA in degrees; FITSObserverMetaDataPopulated).
    """
    h = fits.Header()
    h["IMAGETYP"] = ("DARKFLAT", "Type of exposure")
    h["EXPOSURE"] = (2.5, "[s] Exposure duration")
    h["DATE-OBS"] = ("2021-03-02T20:19:00.455", "Time of observation (UTC)")
    h["XBINNING"], h["YBINNING"] = 2, 2
    h["GAIN"] = (120, "Sensor gain")
    h["EGAIN"] = (1.00224, "[e-/ADU] Electrons per A/D unit")
    h["XPIXSZ"] = (9.26, "[um] Pixel X axis size")
    h["CCD-TEMP"] = (-10.0, "[degC] CCD temperature")
    h["FOCALLEN"] = (400.0, "[mm] Focal length")
    h["RA"] = (83.82417125, "[deg] RA of telescope")
    h["DEC"] = (-5.385491085, "[deg] Declination of telescope")
    h["OBJCTRA"] = ("05 35 17", "[H M S] RA of imaged object")
    h["SITELAT"] = (51.05, "[deg] Observation site latitude")
    h["SITELONG"] = (3.72, "[deg] Observation site longitude")
    h["SWCREATE"] = ("N.I.N.A. 1.10.2.90", "Software that created this file")
    row, src = exposure_metadata(h, return_sources=True)
    assert detect_instrument(h) == "nina"
    assert row["image_type"] == "dark" and row["exptime"] == 2.5
    assert row["gain"] == pytest.approx(1.00224)  # EGAIN, not the gain setting 120
    assert row["pointing_ra"] == pytest.approx(83.82417125) and row["pointing_dec"] == pytest.approx(-5.385491)
    assert row["pixscale"] == pytest.approx(206.265 * 9.26 / 400.0, rel=1e-4)
    assert row["site_lon"] == 3.72 and row["binning"] == "2x2"


def test_numeric_ra_in_hours_by_comment():
    h = fits.Header({"DATE-OBS": "2023-06-10T21:38:19", "EXPTIME": 15.0})
    h["RA"] = (5.5, "[h] Observe object RA coordinate (J2000)")
    h["DEC"] = (20.0, "[deg] Observe object DEC coordinate (J2000)")
    assert exposure_metadata(h, "generic")["pointing_ra"] == pytest.approx(82.5)


def test_default_keymaps_are_written_with_the_dialects(tmp_path):
    names = {p.name for p in write_default_keymaps(tmp_path)}
    assert {"sbig_theskyx.toml", "maximdl.toml", "acp.toml", "nina.toml", "generic.toml"} <= names
