"""catdb.algorithms.astrometry, catdb.ingest.scamp_run, catdb.ingest.astrometry_net on real headers and catalogues."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from astropy.io import fits

from catdb.algorithms.astrometry import (
    initial_wcs_header,
    parse_angle,
    pixscale_from_header,
    pointing_from_header,
    shift_wcs_frame,
    strip_wcs,
)
from catdb.wcsutil import wcs_from_header
from tests.helpers import REPO_DATA, SHARED_DATA, TEST_DATA, requires_shared

WALLACE = SHARED_DATA / "wallace2713-20181012" / "lux-180.000secs.Light.Open.00000015.fit"  # ../shared only
LOWELL = REPO_DATA / "lowell42-5945" / "science" / "20190326.0129.fits.fz"
LCO = TEST_DATA / "lco"

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning")


def test_sexagesimal_angles():
    assert parse_angle("04 12 12.262", hours=True) == pytest.approx(15 * (4 + 12 / 60 + 12.262 / 3600))
    assert parse_angle("+22 53 01.76", hours=False) == pytest.approx(22 + 53 / 60 + 1.76 / 3600)
    assert parse_angle("-09:46:03.82", hours=False) == pytest.approx(-(9 + 46 / 60 + 3.82 / 3600))
    assert parse_angle("-00 30 00", hours=False) == pytest.approx(-0.5)  # the sign of a zero degree field
    assert parse_angle(124.62, hours=True) == 124.62  # a number is degrees (FITS RA)
    assert parse_angle("", hours=True) is None and parse_angle("12 75 00", hours=True) is None


@requires_shared("wallace2713-20181012/lux-180.000secs.Light.Open.00000015.fit")
def test_wallace_pointing_and_scale_from_the_sbig_header():
    h = fits.getheader(WALLACE)
    ra, dec, src = pointing_from_header(h)
    assert src == "OBJCTRA/OBJCTDEC"
    assert ra == pytest.approx(63.051092, abs=1e-5) and dec == pytest.approx(22.883822, abs=1e-5)
    scale, how = pixscale_from_header(h)
    assert scale == pytest.approx(206.265 * 24 / 3910) and "XPIXSZ" in how  # 1.266"/px, XPIXSZ after binning


@pytest.mark.skipif(not LOWELL.is_file(), reason=f"Lowell frame not found at {LOWELL}")
def test_lowell_pointing_is_near_its_solution():
    h = fits.open(LOWELL)[1].header
    ra, dec, src = pointing_from_header(h)
    w = wcs_from_header(h)
    sep = np.hypot((ra - w.wcs.crval[0]) * np.cos(np.radians(dec)), dec - w.wcs.crval[1]) * 3600
    assert src == "RA/DEC" and sep < 60  # the commanded pointing is within an arcminute of the solution
    assert pixscale_from_header(strip_wcs(h))[0] == pytest.approx(0.981)
    assert not any(k.startswith(("CRVAL", "CD1_", "CTYPE")) for k in strip_wcs(h))


def test_initial_wcs_orientation():
    h = initial_wcs_header(10.0, 20.0, 1.0, 101, 101)
    w = wcs_from_header(h)
    (r0, d0), (rx, dx), (ry, dy) = w.all_pix2world([[51, 51], [61, 51], [51, 61]], 1)
    assert (r0, d0) == pytest.approx((10.0, 20.0))
    assert rx < r0 and dx == pytest.approx(d0, abs=1e-6)     # +x to the west: east left
    assert dy > d0 and ry == pytest.approx(r0, abs=1e-6)     # +y to the north
    assert (dy - d0) * 3600 == pytest.approx(10.0, rel=1e-3)
    # rotated 90 deg east of north: +y points east
    (r0, d0), (ry, dy) = wcs_from_header(initial_wcs_header(10.0, 20.0, 1.0, 101, 101, rotation=90)).all_pix2world(
        [[51, 51], [51, 61]], 1)
    assert ry > r0 and dy == pytest.approx(d0, abs=1e-6)
    assert np.linalg.det(wcs_from_header(initial_wcs_header(10, 20, 1, 9, 9, flip=True)).wcs.cd) > 0


def test_shift_wcs_frame_keeps_every_pixel_on_the_sky():
    h = initial_wcs_header(124.6, 25.3, 0.98, 1432, 1370)
    trimmed = shift_wcs_frame(h, (-17.0, 0.0))  # a product trimmed by 17 columns
    w, wt = wcs_from_header(h), wcs_from_header(trimmed)
    x, y = np.array([100.0, 700.0]), np.array([50.0, 1300.0])
    np.testing.assert_allclose(wt.all_pix2world(x - 17, y, 1), w.all_pix2world(x, y, 1), atol=1e-10)
    back = shift_wcs_frame(trimmed, (0.0, 0.0))
    assert back["CRPIX1"] == pytest.approx(h["CRPIX1"])


def test_astrometry_net_status_and_index_scales(monkeypatch, tmp_path):
    from catdb.ingest import astrometry_net as anet

    if shutil.which("solve-field") is None:
        st = anet.status()
        assert not st["installed"] and not st["usable"]
        assert st["message"] == "astrometry.net not installed (no solve-field on PATH): blind solving skipped"
    # index scale numbers: 2 sqrt(2)^N arcmin quads; Debian's tycho2-10 (64') cannot solve a 21.6' field
    assert anet.index_scales(["index-4207.fits", "index-4208-11.fits", "/x/index-tycho2-10.littleendian.fits"]) \
        == [7, 8, 10]
    assert not anet.field_fits_indexes(21.6, [10]) and anet.field_fits_indexes(21.6, [6, 10])
    # a fake solve-field on PATH with a too-coarse index: installed, but the field is too small
    bindir, idx = tmp_path / "bin", tmp_path / "idx"
    bindir.mkdir()
    idx.mkdir()
    (bindir / "solve-field").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "solve-field").chmod(0o755)
    (idx / "index-tycho2-10.fits").write_bytes(b"")
    monkeypatch.setenv("PATH", f"{bindir}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("CATDB_ASTROMETRY_INDEX", str(idx))
    st = anet.status(field_arcmin=21.6)
    assert st["installed"] and not st["usable"] and "smaller than the smallest installed quads" in st["message"]


@pytest.mark.skipif(shutil.which("scamp") is None, reason="scamp not installed")
@pytest.mark.skipif(not (LCO / "GAIA-DR2.cat").is_file(), reason=f"LCO data not found at {LCO}")
def test_scamp_solves_lco_catalogue_from_a_wrong_wcs(tmp_path):
    """SCAMP from an initial WCS 3.2' off, rotated 1.5 deg and 1 % too large: back within 0.1" of LCO's WCS."""
    from catdb.ingest.scamp_run import solve_catalog, write_reference_ldac
    from catdb.ingest.sextractor import read_catalogs

    cat = read_catalogs(LCO / "ldac_test_catalog.fits")[0]
    w0 = wcs_from_header(cat.header)
    th = np.radians(1.5)
    cd = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]) @ w0.wcs.cd * 1.01
    ini = initial_wcs_header(w0.wcs.crval[0] + 3 / 60 / np.cos(np.radians(w0.wcs.crval[1])), w0.wcs.crval[1] + 1 / 60,
                             1.0, 2, 2)
    ini["CRPIX1"], ini["CRPIX2"] = (float(v) for v in w0.wcs.crpix)
    ini["CD1_1"], ini["CD1_2"], ini["CD2_1"], ini["CD2_2"] = (float(v) for v in cd.ravel())
    with fits.open(LCO / "GAIA-DR2.cat") as hl:
        g = hl["LDAC_OBJECTS"].data
        ref = write_reference_ldac(tmp_path / "gaia.ldac", g["XWIN_WORLD"], g["YWIN_WORLD"], g["ERRAWIN_WORLD"] * 3600,
                                   g["MAG"], g["MAGERR"], g["OBSDATE"])
    sol = solve_catalog(LCO / "ldac_test_catalog.fits", ref, ini, tmp_path / "scamp",
                        naxis=(cat.header["NAXIS1"], cat.header["NAXIS2"]))
    assert sol.ok, sol.reason
    assert sol.n_ref >= 50 and 0 < sol.rms < 0.4 and sol.as_contrast > 2
    x, y = np.asarray(cat.table["XWIN_IMAGE"], float), np.asarray(cat.table["YWIN_IMAGE"], float)
    ra0, dec0 = w0.all_pix2world(x, y, 1)
    rai, deci = wcs_from_header(ini).all_pix2world(x, y, 1)
    ra, dec = wcs_from_header(sol.header).all_pix2world(x, y, 1)
    before = np.hypot((rai - ra0) * np.cos(np.radians(dec0)), deci - dec0) * 3600
    after = np.hypot((ra - ra0) * np.cos(np.radians(dec0)), dec - dec0) * 3600
    assert np.median(before) > 120
    assert np.median(after) < 0.1 and after.max() < 0.2
    # the acceptance rule: SCAMP writes a .head whatever it matched; too few matched stars is a failure
    strict = solve_catalog(LCO / "ldac_test_catalog.fits", ref, ini, tmp_path / "scamp_strict",
                           naxis=(cat.header["NAXIS1"], cat.header["NAXIS2"]), min_stars=10 * sol.n_ref)
    assert strict.header is not None and not strict.ok and "reference stars matched" in strict.reason
