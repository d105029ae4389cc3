"""Small robustness items: a bad DATE-OBS is named with its value; the read-only role is refused the
ingest lock (see also tests/test_robust_identity.py)."""
import pytest
from astropy.io import fits

from catdb.errors import InputError
from catdb.ingest.headers import load_keymap, mid_exposure_mjd
from tests.helpers import REPO_DATA

RAW = REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz"


@pytest.mark.skipif(not RAW.exists(), reason=f"real data missing: {RAW}")
def test_bad_date_obs_is_named_with_its_value():
    h = fits.getheader(RAW, 1)
    km = load_keymap("lowell42")
    mjd, src = mid_exposure_mjd(h, km, exptime=h["EXPTIME"])
    assert "DATE-OBS" in src and "UTCSTART" in src
    h["DATE-OBS"] = "2019-13-45"
    with pytest.raises(InputError) as e:
        mid_exposure_mjd(h, km, path="frame.fits", exptime=h["EXPTIME"])
    msg = str(e.value)
    assert "DATE-OBS='2019-13-45'" in msg and e.value.keyword == "DATE-OBS" and "frame.fits" in msg
