"""Co-add of three reduced Lowell frames: noise, astrometry, flux scale, provenance."""
from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.stats import sigma_clipped_stats
from photutils.centroids import centroid_2dg

from catdb.algorithms.coadd import coadd, frame_mjd_mid
from catdb.algorithms.forced import forced_photometry
from catdb.errors import InputError
from catdb.wcsutil import wcs_from_header
from tests.test_image_data import needs_data, reduced_frames

pytestmark = [needs_data, pytest.mark.filterwarnings("ignore:The fit may not have converged")]


@pytest.fixture(scope="session")
def stacks(tmp_path_factory):
    fr = reduced_frames(tmp_path_factory)
    out = tmp_path_factory.mktemp("coadd")
    three = coadd(fr["paths"], out / "coadd3.fits")
    one = coadd(fr["paths"][:1], out / "coadd1.fits")
    return dict(three=three, one=one, frames=fr["paths"])


def _sky_rms(path):
    d = fits.getdata(path, 0)
    ny, nx = d.shape
    return sigma_clipped_stats(d[ny // 4:3 * ny // 4, nx // 4:3 * nx // 4], sigma=3)[2]


def test_coadd_noise_drops_as_sqrt_n(stacks):
    single = _sky_rms(stacks["one"])         # same resampling as the stack
    stacked = _sky_rms(stacks["three"])
    assert 0.45 < stacked / single < 0.70    # 1/sqrt(3) = 0.577
    raw = sigma_clipped_stats(fits.getdata(stacks["frames"][1], 1)[300:1000, 300:1000])[2]
    assert stacked < 0.6 * raw               # also far below an un-resampled single frame


def test_coadd_header_provenance_and_maps(stacks):
    with fits.open(stacks["three"]) as h:
        hdr = h[0].header
        assert [x.name for x in h] == ["PRIMARY", "WEIGHT", "NCOMBINE"]
        nmap = h["NCOMBINE"].data
    hist = "\n".join(str(c) for c in hdr["HISTORY"])
    for p in stacks["frames"]:
        assert p.name in hist
    assert hdr["NCOMBINE"] == 3 and hdr["TEXPTIME"] == pytest.approx(900)
    assert hdr["FILTER"] == "VR"
    # weighted-mean gain of three equal-gain exposures is close to 3 x 4.95 e-/ADU
    assert hdr["GAIN"] == pytest.approx(3 * 4.95, rel=0.05)
    mjds = [frame_mjd_mid(fits.getheader(p, 1)) for p in stacks["frames"]]
    assert min(mjds) <= hdr["MJD-MID"] <= max(mjds)
    ny, nx = nmap.shape
    assert np.median(nmap[ny // 4:3 * ny // 4, nx // 4:3 * nx // 4]) == 3


def test_coadd_stars_at_catalogue_positions_with_same_flux(stacks):
    one_h = fits.getheader(stacks["frames"][0], 1)
    one = fits.getdata(stacks["frames"][0], 1)
    co, co_h = fits.getdata(stacks["three"], 0), fits.getheader(stacks["three"], 0)
    w1, wc = wcs_from_header(one_h), wcs_from_header(co_h)
    # bright unsaturated stars of the first frame (local maxima well above sky)
    ny, nx = one.shape
    core = np.nan_to_num(one[200:ny - 200, 200:nx - 200])
    from scipy.ndimage import maximum_filter
    peaks = (core == maximum_filter(core, 15)) & (core > 3000) & (core < 30000)
    ys, xs = np.nonzero(peaks)
    assert len(xs) >= 10
    keep = np.argsort(core[ys, xs])[::-1][:25]              # the 25 brightest
    ys, xs = ys[keep] + 200, xs[keep] + 200
    cen = np.array([centroid_2dg(one[y - 6:y + 7, x - 6:x + 7]
                                 - np.nanmedian(one[y - 20:y + 21, x - 20:x + 21]))
                    for x, y in zip(xs, ys)])                  # loop over a handful of stars
    sky = w1.pixel_to_world(xs - 6 + cen[:, 0], ys - 6 + cen[:, 1])
    xc, yc = wc.world_to_pixel(sky)
    seps = []
    for x, y, s in zip(xc, yc, sky):            # loop over a handful of stars
        xi, yi = int(round(x)), int(round(y))
        cut = co[yi - 6:yi + 7, xi - 6:xi + 7]
        cx, cy = centroid_2dg(cut - np.nanmedian(cut))
        seps.append(wc.pixel_to_world(xi - 6 + cx, yi - 6 + cy).separation(s).arcsec)
    assert np.median(seps) < 0.15                # well below a pixel (1.1")
    f1 = forced_photometry(one, one_h, sky.ra.deg, sky.dec.deg, [6.0], (15, 25), 4.95, 9.3)
    fc = forced_photometry(co, co_h, sky.ra.deg, sky.dec.deg, [6.0], (15, 25),
                           co_h["GAIN"], 9.3, noise="measured")
    ratio = fc["flux_aper"][:, 0] / f1["flux_aper"][:, 0]
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)   # same ADU per exposure


def test_bad_weights(stacks):
    with pytest.raises(InputError, match="weights"):
        coadd(stacks["frames"], stacks["three"].with_name("x.fits"), weights=[1, 2])
    with pytest.raises(InputError):
        coadd([], stacks["three"].with_name("y.fits"))


def test_frame_mjd_mid_does_not_guess():
    """A start time without EXPTIME is not the middle, a bare date is not a time: None, not a number."""
    h = fits.Header({"DATE-OBS": "2019-03-26", "TIME-OBS": "02:27:31", "EXPTIME": 300.0})
    assert frame_mjd_mid(h) is None  # midnight + 150 s before
    h = fits.Header({"MJD-OBS": 58568.1})
    assert frame_mjd_mid(h) is None  # the start taken as the middle before
    h = fits.Header({"DATE-OBS": "2019-03-26", "UTCSTART": "02:27:31", "EXPTIME": 300.0})
    assert frame_mjd_mid(h) == pytest.approx(58568.0 + (2 * 3600 + 27 * 60 + 31 + 150) / 86400, abs=1e-9)
