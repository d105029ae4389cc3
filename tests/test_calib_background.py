import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats

from astropy.nddata import CCDData

from catdb.algorithms.background import background_stats, source_mask
from catdb.algorithms.reduce import overscan_trim
from catdb.errors import InputError
from tests.helpers import REPO_DATA

FRAME = REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz"


@pytest.fixture(scope="module")
def lowell():
    if not FRAME.exists():
        pytest.skip("real Lowell frame missing")
    with fits.open(FRAME) as h:
        raw = np.asarray(h[1].data)
        header = h[1].header
    img = overscan_trim(CCDData(raw.astype(np.float32), unit="adu", meta=header), path=FRAME).data
    return raw, header, img, background_stats(img)


def test_overscan_and_trim_on_raw_lowell_frame(lowell):
    raw, header, img, _ = lowell
    # TRIMSEC [18:1382,1:1370] -> 1365 columns x 1370 rows
    assert img.shape == (1370, 1365)
    overscan = np.median(raw[:, 1387:1432])  # BIASSEC [1388:1432,1:1370], 0-based columns 1387..1431
    assert 1000 < overscan < 3000  # a real bias level, not zero
    raw_sky = np.median(raw[:, 17:1382])
    assert np.median(img) == pytest.approx(raw_sky - overscan, abs=5)


def test_background_of_real_frame(lowell):
    _, header, img, s = lowell
    gain, rdnoise = header["AGAIN_01"], header["ARDNS_01"]  # e-/ADU, e-
    assert s["median"] == pytest.approx(np.median(img), rel=0.02)
    # the noise cannot be below photon + read noise of the sky level
    photon = np.sqrt(s["median"] * gain + rdnoise ** 2) / gain
    assert photon * 0.95 < s["std"] < photon * 5  # raw frame: not flat-fielded, so above photon noise
    assert s["mad"] > 0 and s["mad_std"] == pytest.approx(1.4826 * s["mad"], rel=1e-4)
    # stars are masked: the clipped background mean and scatter lie below those of the unmasked frame
    # (a plain np.mean would not do: the trimmed frame still has dark, unexposed edge rows/columns)
    mean_all, _, std_all = sigma_clipped_stats(img, sigma=3.0, maxiters=10)
    assert s["mean"] < mean_all and s["std"] < std_all
    assert 0.001 < s["source_fraction"] < 0.5
    assert s["n_pixels"] < img.size


def test_recovers_known_background_with_stars():
    rng = np.random.default_rng(11)
    ny, nx = 300, 300
    img = rng.normal(1000.0, 20.0, (ny, nx))
    yy, xx = np.mgrid[:ny, :nx]
    for x0, y0, amp in rng.uniform([10, 10, 500], [290, 290, 20000], (40, 3)):
        img += amp * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * 2.0 ** 2))
    s = background_stats(img)
    assert s["median"] == pytest.approx(1000.0, abs=1.0)
    assert s["std"] == pytest.approx(20.0, rel=0.03)
    naive = np.std(img)
    assert naive > 1.5 * s["std"]  # without the mask the stars inflate the scatter
    bad = np.zeros(img.shape, bool)
    bad[:, :50] = True
    img[:, :50] = 1e6  # a bad region given as mask is ignored
    assert background_stats(img, mask=bad)["median"] == pytest.approx(1000.0, abs=1.0)
    assert source_mask(img[:, 50:]).mean() < 0.3


def test_bad_input():
    hdr = fits.Header({"BIASSEC": "[19:20,1:10]", "TRIMSEC": "[1:2000,1:10]"})
    with pytest.raises(InputError, match="TRIMSEC"):
        overscan_trim(CCDData(np.zeros((10, 20)), unit="adu", meta=hdr), path="x.fits")
    hdr = fits.Header({"BIASSEC": "1:2,3:4", "TRIMSEC": "[1:18,1:10]"})
    with pytest.raises(InputError, match="BIASSEC"):
        overscan_trim(CCDData(np.zeros((10, 20)), unit="adu", meta=hdr))
    with pytest.raises(ValueError):
        background_stats(np.zeros(10))
    with pytest.raises(ValueError):
        background_stats(np.full((5, 5), np.nan))
