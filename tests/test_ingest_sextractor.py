"""SExtractor catalogue reading: real LCO catalogues and a real source-extractor run."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits

from catdb.errors import InputError
from catdb.ingest.sextractor import DETECTION_COLUMNS, detection_columns, read_catalog
from catdb.wcsutil import clean_wcs_header
from tests.helpers import REPO_DATA, TEST_DATA

LCO = TEST_DATA / "lco"
LOWELL_FRAME = REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz"
SEX_SHARE = "/usr/share/source-extractor"


def test_ldac_catalogue_and_header_rebuilt_from_raw_cards():
    cat = read_catalog(LCO / "ldac_test_catalog.fits")
    assert cat.format == "FITS_LDAC" and len(cat) == 974 and len(cat.table.colnames) == 42
    assert cat.hdu == 2
    h = cat.header
    # values only right if the 80-char cards were split correctly from the raw bytes
    assert h["INSTRUME"] == "kb76" and h["EXPTIME"] == 115.0 and h["FILTER"] == "w"
    assert h["DATE-OBS"] == "2016-04-28T20:11:54.303" and h["NAXIS1"] == 2028
    assert h["CRVAL1"] == pytest.approx(219.8356990768)
    # SExtractor configuration cards at the very end survive (last card before END)
    assert "SEXDWSCL" in h


def test_ldac_detection_columns():
    cat = read_catalog(LCO / "ldac_test_catalog.fits")
    det = detection_columns(cat)
    c = det.columns
    assert set(c) == set(DETECTION_COLUMNS) and len(det) == 974
    assert det.source["ra"] == "ALPHA_J2000" and det.source["x"] == "XWIN_IMAGE"
    # positions inside the image footprint
    assert np.all((c["x"] > 0) & (c["x"] < 2029)) and np.all((c["y"] > 0) & (c["y"] < 2039))
    sep = SkyCoord(c["ra"], c["dec"], unit="deg").separation(SkyCoord(219.836, -9.768, unit="deg")).deg
    assert sep.max() < 0.2  # 2028 x 2038 pix at 0.467" -> half diagonal 0.19 deg
    # errors: deg^2 variances -> arcsec, bright sources better than faint
    assert np.nanmedian(c["ra_err"]) < 0.5 and np.all(c["ra_err"] >= 0)
    bright = c["snr"] > 100
    assert np.median(c["ra_err"][bright]) < np.median(c["ra_err"][~bright])
    # FWHM in arcsec from FWHM_IMAGE x WCS scale: stars near the header seeing L1FWHM
    good = (c["snr"] > 50) & (c["flags"] == 0)
    assert np.median(c["fwhm"][good]) == pytest.approx(cat.header["L1FWHM"], rel=0.15)
    assert "FWHM_IMAGE" in det.source["fwhm"]
    # unknown columns kept
    assert "MU_THRESHOLD" in det.extra and "ISO0" in det.extra and len(det.extra["ISO0"]) == 974
    # not in this catalogue -> NaN, and said so
    assert np.all(np.isnan(c["mag_auto"])) and det.source["mag_auto"] == "missing"


def test_fits10_catalogues_with_split_aperture_columns():
    for p, n in [(LCO / "oracdr_test_catalog.fits", 360),
                 (LCO / "CatalogFiles" / "cpt1m010-kb70-20160210-0365-e90_cat.fits", 45),
                 (LCO / "CatalogFiles" / "elp1m008-fl05-20160217-0218-e90_cat.fits", 319)]:
        cat = read_catalog(p)
        assert cat.format == "FITS_1.0" and len(cat) == n and cat.header["ORIGIN"].startswith("LCO")
        det = detection_columns(cat)
        c = det.columns
        assert c["flux_aper"].shape == (n, 4) and det.source["flux_aper"] == "FLUX_APER1..FLUX_APER4"
        good = (c["flags"] == 0) & (c["flux_aper"][:, 0] > 0)
        # larger apertures hold more flux for most sources
        assert np.mean(c["flux_aper"][good, 3] >= c["flux_aper"][good, 0]) > 0.9
        # no WCS in the primary header: FWHM via the PIXSCALE keyword
        assert "PIXSCALE" in det.source["fwhm"]
        assert np.allclose(c["fwhm"], c["fwhm_image"] * cat.header["PIXSCALE"])
        assert "TCORR" in det.extra and "AIRMASS" in det.extra


def test_corrupt_and_non_catalogue_files():
    with pytest.raises(InputError) as e:
        read_catalog(LCO / "ldac_test_catalog_corrupt.fits")
    assert "ldac_test_catalog_corrupt.fits" in str(e.value) and "END" in str(e.value)
    with pytest.raises(InputError, match="not a SExtractor catalogue"):
        read_catalog(LCO / "example_scamp.xml")
    with pytest.raises(InputError, match="cannot open"):
        read_catalog(LCO / "no_such_file.fits")


def test_truncated_data_detected(tmp_path):
    raw = (LCO / "ldac_test_catalog.fits").read_bytes()
    bad = tmp_path / "cut.fits"
    bad.write_bytes(raw[: len(raw) - 2880 * 20])  # headers intact, table data cut short
    with pytest.raises(InputError) as e:
        read_catalog(bad)
    assert "cut.fits" in str(e.value) and "truncated" in str(e.value)


# ----------------------------------------------------------------- real source-extractor run
PARAMS = """NUMBER
X_IMAGE
Y_IMAGE
XWIN_IMAGE
YWIN_IMAGE
ALPHAWIN_J2000
DELTAWIN_J2000
ERRX2WIN_WORLD
ERRY2WIN_WORLD
FLUX_AUTO
FLUXERR_AUTO
MAG_AUTO
MAGERR_AUTO
FLUX_APER(3)
FLUXERR_APER(3)
MAG_APER(3)
MAGERR_APER(3)
FLUX_MAX
FWHM_IMAGE
FWHM_WORLD
A_IMAGE
B_IMAGE
THETA_IMAGE
ELONGATION
CLASS_STAR
FLAGS
BACKGROUND
ISOAREA_IMAGE
"""


@pytest.fixture(scope="module")
def sex_run(tmp_path_factory):
    if shutil.which("source-extractor") is None:
        pytest.skip("source-extractor binary not installed")
    d = tmp_path_factory.mktemp("sex")
    hdu = fits.open(LOWELL_FRAME)[1]
    # 400 x 400 cutout around the Tycho-2 star at RA 124.5690 Dec 25.4079 (raw pixel ~873, 935)
    x0, y0 = 672, 734
    data = hdu.data[y0:y0 + 400, x0:x0 + 400].astype(np.float32)
    hdr = clean_wcs_header(hdu.header)
    hdr["CRPIX1"] -= x0
    hdr["CRPIX2"] -= y0
    for k in ("BZERO", "BSCALE"):
        hdr.remove(k, ignore_missing=True)
    img = d / "cut.fits"
    fits.PrimaryHDU(data, hdr).writeto(img)
    (d / "p.param").write_text(PARAMS)
    out = {}
    for ctype, name in (("FITS_LDAC", "cut.ldac"), ("ASCII_HEAD", "cut.txt")):
        subprocess.run(["source-extractor", str(img), "-c", f"{SEX_SHARE}/default.sex",
                        "-PARAMETERS_NAME", str(d / "p.param"), "-FILTER_NAME", f"{SEX_SHARE}/default.conv",
                        "-STARNNW_NAME", f"{SEX_SHARE}/default.nnw", "-CATALOG_TYPE", ctype,
                        "-CATALOG_NAME", str(d / name), "-PHOT_APERTURES", "4,8,12", "-GAIN", "4.95",
                        "-DETECT_THRESH", "3", "-VERBOSE_TYPE", "QUIET", "-CHECKIMAGE_TYPE", "NONE"],
                       check=True, cwd=d, timeout=60)
        out[ctype] = d / name
    return img, out


def test_ascii_head_reads_back_like_ldac(sex_run):
    img, out = sex_run
    ldac = read_catalog(out["FITS_LDAC"])
    asc = read_catalog(out["ASCII_HEAD"])
    assert ldac.format == "FITS_LDAC" and asc.format == "ASCII_HEAD"
    assert len(ldac) == len(asc) > 20
    assert ldac.table.colnames == asc.table.colnames
    assert asc.table["MAG_APER"].shape == (len(asc), 3)
    assert ldac.header["OBJECT"] == "5945 Roachapproach" and ldac.header["NAXIS1"] == 400
    disp = {c.name: c.disp for c in fits.open(out["FITS_LDAC"])[2].columns}
    for name in ldac.table.colnames:
        a, b = np.asarray(asc.table[name], float), np.asarray(ldac.table[name], float)
        m = re.fullmatch(r"F\d+\.(\d+)", disp[name] or "")
        if m:  # fixed-point text: equal to the printed decimals
            np.testing.assert_allclose(a, b, rtol=0, atol=0.51 * 10.0 ** -int(m.group(1)), err_msg=name)
        else:  # G12.7 / E18.10 / I: equal to the printed significant digits
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-30, err_msg=name)
    da, dl = detection_columns(asc, pixscale=1.107), detection_columns(ldac)
    for k in ("number", "x", "y", "flux_auto", "flags"):
        np.testing.assert_allclose(da.columns[k], dl.columns[k], rtol=1e-6, atol=1e-4)
    np.testing.assert_allclose(da.columns["mag_aper"], dl.columns["mag_aper"], atol=1e-4)


def test_sextractor_positions_match_wcs_and_tycho2(sex_run):
    img, out = sex_run
    cat = read_catalog(out["FITS_LDAC"])
    det = detection_columns(cat)
    assert det.source["ra"] == "ALPHAWIN_J2000"
    # our WCS path (XWIN/YWIN through astropy TPV) agrees with SExtractor's own ALPHAWIN
    t = cat.table.copy()
    t.remove_columns(["ALPHAWIN_J2000", "DELTAWIN_J2000"])
    from catdb.ingest.sextractor import SExCatalog
    det2 = detection_columns(SExCatalog(cat.path, cat.format, cat.header, t, cat.hdu))
    assert det2.source["ra"] == "WCS(XWIN_IMAGE, YWIN_IMAGE)"
    sep = SkyCoord(det.columns["ra"], det.columns["dec"], unit="deg").separation(
        SkyCoord(det2.columns["ra"], det2.columns["dec"], unit="deg")).arcsec
    assert np.max(sep) < 0.05
    # the brightest source is the Tycho-2 star (VT 9.1): the header WCS is right (not RA 0, Dec 0)
    i = np.nanargmax(det.columns["flux_auto"])
    star = SkyCoord(124.5689621, 25.4079208, unit="deg")
    assert SkyCoord(det.columns["ra"][i], det.columns["dec"][i], unit="deg").separation(star).arcsec < 2.0
    assert np.all(np.isfinite(det.columns["fwhm"])) and det.source["fwhm"] == "FWHM_WORLD*3600"
