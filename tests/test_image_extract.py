"""SExtractor wrapper on a reduced real Lowell frame (Rice-compressed, string WCS in raw)."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from catdb.errors import InputError
from catdb.ingest.extract import SExtractorError, extract, header_config, sextractor_binary
from catdb.wcsutil import wcs_from_header
from tests.test_image_data import SCIENCE, needs_data, reduced_frames

pytestmark = [needs_data, pytest.mark.skipif(
    not any(__import__("shutil").which(b) for b in ("source-extractor", "sex")),
    reason="SExtractor binary not installed"),
    pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")]


@pytest.fixture(scope="session")
def frames(tmp_path_factory):
    return reduced_frames(tmp_path_factory)


@pytest.fixture(scope="session")
def ldac(frames, tmp_path_factory):
    out = tmp_path_factory.mktemp("sex") / "r129.ldac"
    return extract(frames["paths"][0], out)


def test_header_config_from_lowell_header():
    h = fits.getheader(SCIENCE[0], 1)
    cfg = header_config(h)
    assert cfg["GAIN"] == pytest.approx(4.95)                 # AGAIN_01
    # pixel scale from the (cast) SCAMP CD matrix, ~1.107"/px; NOT the header's nominal
    # SECPIXX 0.981 (the Tycho-2 test below shows the CD matrix is the right one)
    cd = np.array([[float(h["CD1_1"]), float(h["CD1_2"])], [float(h["CD2_1"]), float(h["CD2_2"])]])
    assert cfg["PIXEL_SCALE"] == pytest.approx(np.sqrt(abs(np.linalg.det(cd))) * 3600, rel=1e-3)


def test_ldac_has_hundreds_of_sources_on_the_field(ldac, frames):
    with fits.open(ldac) as h:
        assert [x.name for x in h][1:] == ["LDAC_IMHEAD", "LDAC_OBJECTS"]
    t = Table.read(ldac, hdu="LDAC_OBJECTS")
    good = t[(t["FLAGS"] == 0) & (t["FLUX_AUTO"] > 10 * t["FLUXERR_AUTO"])]
    assert len(good) > 300
    # sky positions are on the Lowell field (RA 124.62, Dec 25.33), not at RA 0, Dec 0
    assert abs(np.median(t["ALPHA_J2000"]) - 124.62) < 0.2
    assert abs(np.median(t["DELTA_J2000"]) - 25.33) < 0.2
    assert t["FLUX_APER"].shape[1] == 6
    # SExtractor's world coordinates are the image WCS (TAN + TPV) at XWIN/YWIN (1-based)
    w = wcs_from_header(fits.getheader(frames["paths"][0], 1))
    sky = w.pixel_to_world(good["XWIN_IMAGE"] - 1, good["YWIN_IMAGE"] - 1)
    d_ra = (sky.ra.deg - good["ALPHAWIN_J2000"]) * np.cos(np.radians(25.33)) * 3600
    d_dec = (sky.dec.deg - good["DELTAWIN_J2000"]) * 3600
    assert np.max(np.hypot(d_ra, d_dec)) < 0.05
    # seeing a few arcsec for this site/night, stars are points
    fwhm = np.median(good["FWHM_WORLD"]) * 3600
    assert 1.0 < fwhm < 5.0
    assert np.sum(good["CLASS_STAR"] > 0.8) > 100


def test_brightest_sources_are_tycho2_stars(ldac):
    """The three Tycho-2 stars within 0.3 deg are the brightest detections, within 2"."""
    from astropy.coordinates import SkyCoord
    from tests.helpers import TEST_DATA
    tyc = Table.read(TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz", format="ascii.csv")
    t = Table.read(ldac, hdu="LDAC_OBJECTS")
    c = SkyCoord(tyc["ra_deg"], tyc["dec_deg"], unit="deg")
    near = c[c.separation(SkyCoord(124.6186, 25.3289, unit="deg")).deg < 0.3]
    assert len(near) >= 2
    det = SkyCoord(t["ALPHA_J2000"], t["DELTA_J2000"], unit="deg")
    idx, sep, _ = near.match_to_catalog_sky(det)
    assert np.all(sep.arcsec < 2.0)
    rank = np.argsort(np.argsort(t["MAG_AUTO"]))
    assert np.all(rank[idx] < 10)


def test_ldac_imhead_carries_numeric_wcs(ldac):
    with fits.open(ldac) as h:
        # astropy strips trailing blanks of the card string: rebuild from the raw bytes
        text = np.asarray(h["LDAC_IMHEAD"].data).tobytes().decode("ascii")
    hdr = fits.Header.fromstring(text)
    assert isinstance(hdr["CRVAL1"], float) and hdr["OBJECT"] == "5945 Roachapproach"


def test_config_overrides_and_aperture_count(frames, tmp_path):
    out = extract(frames["paths"][0], tmp_path / "c.fits", catalog_type="FITS_1.0",
                  config={"DETECT_THRESH": 10, "PHOT_APERTURES": [6, 12], "MAG_ZEROPOINT": 25})
    t = Table.read(out, hdu=1)
    assert t["FLUX_APER"].shape[1] == 2
    base = Table.read(extract(frames["paths"][0], tmp_path / "d.fits", catalog_type="FITS_1.0",
                              config={"DETECT_THRESH": 10}), hdu=1)
    assert len(t) == len(base)
    # MAG_ZEROPOINT shifts every magnitude by 25
    assert np.median(t["MAG_AUTO"] - (-2.5 * np.log10(t["FLUX_AUTO"]))) == pytest.approx(25, abs=1e-3)


def test_raw_compressed_frame_with_string_wcs(tmp_path):
    out = extract(SCIENCE[1], tmp_path / "raw.ldac", config={"DETECT_THRESH": 5})
    t = Table.read(out, hdu="LDAC_OBJECTS")
    assert len(t) > 100 and abs(np.median(t["ALPHA_J2000"]) - 124.62) < 0.3


def test_failure_reports_sextractor_stderr(frames, tmp_path):
    assert sextractor_binary()
    with pytest.raises(SExtractorError, match="stderr") as e:
        extract(frames["paths"][0], tmp_path / "x.ldac", config={"FILTER_NAME": "/nonexistent.conv"})
    assert "nonexistent.conv" in str(e.value)


def test_missing_image_is_input_error(tmp_path):
    with pytest.raises(InputError):
        extract(tmp_path / "none.fits", tmp_path / "x.ldac")
