"""Reference catalogue readers on the real files."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
import astropy.units as u
from astropy.time import Time

from catdb.errors import InputError
from catdb.ingest.refcat import REFCAT_COLUMNS, read_refcat
from catdb.ingest.sextractor import detection_columns, read_catalog
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"


def _coords(r):
    return SkyCoord(r["ra"] * u.deg, r["dec"] * u.deg)


def test_scamp_gaia_refcat_calibrates_the_ldac_catalogue():
    ref = read_refcat(LCO / "GAIA-DR2.cat")
    assert set(ref) == set(REFCAT_COLUMNS) and len(ref["ra"]) == 249
    assert ref["catalog"][0] == "GAIA-DR2" and list(ref["mags"]) == ["G"]
    assert np.all(ref["epoch"] == 2015.5)
    assert np.all((ref["ra_err"] > 0) & (ref["ra_err"] < 50))  # deg -> mas, Gaia DR2 errors
    det = detection_columns(read_catalog(LCO / "ldac_test_catalog.fits")).columns
    good = (det["flags"] == 0) & (det["snr"] > 20)
    idx, sep, _ = _coords(ref).match_to_catalog_sky(SkyCoord(det["ra"][good], det["dec"][good], unit="deg"))
    ok = sep.arcsec < 1.5
    assert ok.sum() > 50 and np.median(sep.arcsec[ok]) < 0.5
    # one zeropoint for all matched stars: G = -2.5 log10(flux) + ZP with a small scatter
    zp = ref["mags"]["G"][ok] + 2.5 * np.log10(det["flux_auto"][good][idx[ok]])
    mad = np.median(np.abs(zp - np.median(zp)))
    assert mad < 0.1 and 20 < np.median(zp) < 30


def test_vizier_ucac4():
    r = read_refcat(LCO / "test_catalog_subs_UCAC4.dat")
    assert r["catalog"][0] == "UCAC4" and len(r["ra"]) == 1607
    assert len(set(r["source_id"])) == 1607 and r["source_id"][0] == "625-088765"
    t = Table.read(LCO / "test_catalog_subs_UCAC4.dat", format="ascii.csv")
    assert np.allclose(r["ra"], t["_RAJ2000"], atol=2e-6) and np.all(r["epoch"] == 2000.0)
    assert set(r["mags"]) >= {"B", "V", "g", "r", "i", "J", "H", "K"}
    # APASS errors are stored in 0.01 mag: converted they are small; raw they would be > 1 mag
    for b in "BVgri":
        e = r["mag_errs"][b][np.isfinite(r["mag_errs"][b])]
        assert len(e) > 400 and np.median(e) < 0.1 and e.max() <= 0.99
    jk = r["mags"]["J"] - r["mags"]["K"]
    assert np.nanmedian(jk) == pytest.approx(0.6, abs=0.3)  # field stars
    assert np.nanmax(np.abs(r["pmra"])) < 1000 and np.nanmedian(r["ra_err"]) < 200  # mas


def test_ppmxl_and_ucac4_agree_on_common_stars():
    ucac = read_refcat(LCO / "test_catalog_subs_UCAC4.dat")
    ppm = read_refcat(LCO / "test_catalog_subs_PPMXL.dat")
    assert ppm["catalog"][0] == "PPMXL" and len(ppm["ra"]) == 737 and "b1" in ppm["mags"]
    idx, sep, _ = _coords(ppm).match_to_catalog_sky(_coords(ucac))
    ok = sep.arcsec < 0.5
    assert ok.sum() > 300
    # both carry 2MASS J: identical for the same star
    dj = ppm["mags"]["J"][ok] - ucac["mags"]["J"][idx[ok]]
    assert np.nanmedian(np.abs(dj)) < 0.002
    dpm = ppm["pmra"][ok] - ucac["pmra"][idx[ok]]
    assert np.nanmedian(np.abs(dpm)) < 10  # mas/yr, same units (cos dec included in both)


def test_tycho2_all_sky_positions_are_at_epoch_1991_25():
    r = read_refcat(TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz")
    assert r["catalog"][0] == "TYCHO2" and len(r["ra"]) == 362950 and list(r["mags"]) == ["VT"]
    assert np.all(r["epoch"] == 1991.25) and np.all(np.isnan(r["pmra"]))
    cat = _coords(r)
    # high proper-motion bright stars (J2000 ICRS positions and proper motions, Hipparcos)
    for ra, dec, pmra, pmdec in [("14h15m39.672s", "+19d10m56.67s", -1093.39, -2000.06),   # Arcturus
                                 ("07h39m18.119s", "+05d13m29.96s", -714.59, -1036.80)]:   # Procyon
        s = SkyCoord(ra, dec, pm_ra_cosdec=pmra * u.mas / u.yr, pm_dec=pmdec * u.mas / u.yr,
                     obstime=Time("J2000"), distance=10 * u.pc)
        at = s.apply_space_motion(Time(r["epoch"][0], format="jyear"))
        i, sep, _ = SkyCoord(at.ra, at.dec).match_to_catalog_sky(cat)
        assert sep.arcsec[0] < 0.5 and r["mags"]["VT"][i] < 1.0
        assert SkyCoord(ra, dec).separation(cat[i]).arcsec > 5  # J2000 epoch would be wrong


def test_generic_votable_with_units_and_column_options(tmp_path):
    t = Table({"RA": [10.0, 10.1], "DE": [-5.0, -5.1], "eRA": [0.01, 0.02], "name": ["a", "b"],
               "Gaia_G": [12.0, 13.0]})
    t["eRA"].unit = u.arcsec
    p = tmp_path / "x.xml"
    t.write(p, format="votable")
    r = read_refcat(p, catalog="mine", columns={"ra": "RA", "dec": "DE", "ra_err": "eRA", "source_id": "name",
                                                 "mags": {"G": "Gaia_G"}}, epoch=2016.0)
    assert list(r["source_id"]) == ["a", "b"] and np.allclose(r["ra_err"], [10.0, 20.0])  # arcsec -> mas
    assert np.allclose(r["mags"]["G"], [12, 13]) and np.all(r["epoch"] == 2016.0) and r["catalog"][0] == "mine"
    with pytest.raises(InputError, match="no RA/Dec"):
        read_refcat(p)
    bad = tmp_path / "bad.csv"
    bad.write_text("ra,dec\n10,95\n")
    with pytest.raises(InputError) as e:
        read_refcat(bad)
    assert "row 1" in str(e.value) and "bad.csv" in str(e.value)


def test_skybot_votable_sexagesimal():
    r = read_refcat(TEST_DATA / "skybot" / "skybot_query.vot", catalog="skybot")
    centre = SkyCoord(81.2833, 4.4928, unit="deg")
    assert np.all(_coords(r).separation(centre).arcsec < 720)  # the cone radius of the query
    assert "V" in r["mags"]
