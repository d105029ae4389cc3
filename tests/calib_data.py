"""Shared loaders for the calibration tests (real LCO catalogue + Gaia reference)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table
import astropy.units as u

from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"


def lco_matched_pairs(max_flag=3):
    """Detections of ldac_test_catalog.fits matched within 1" to GAIA-DR2.cat.

    Returns a dict of arrays: inst_mag (-2.5 log10 FLUX_AUTO), inst_err,
    ref_mag (Gaia DR2 G), ref_err, flags; only detections with FLAGS <= max_flag
    (PP's default maxflag 3).
    """
    cat_path, ref_path = LCO / "ldac_test_catalog.fits", LCO / "GAIA-DR2.cat"
    if not cat_path.exists() or not ref_path.exists():
        pytest.skip(f"real data not found under {LCO}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SCAMP writes TDISP E15, which astropy rejects
        with fits.open(cat_path) as h:
            det = Table(h["LDAC_OBJECTS"].data)
        with fits.open(ref_path) as h:
            ref = Table(h[2].data)
    c_det = SkyCoord(det["ALPHA_J2000"], det["DELTA_J2000"], unit="deg")
    c_ref = SkyCoord(ref["XWIN_WORLD"], ref["YWIN_WORLD"], unit="deg")
    idx, sep, _ = c_ref.match_to_catalog_sky(c_det)
    ok = sep < 1 * u.arcsec
    d = det[idx[ok]]
    flux = np.asarray(d["FLUX_AUTO"], float)
    fluxerr = np.asarray(d["FLUXERR_AUTO"], float)
    flags = np.asarray(d["FLAGS"])
    keep = flags <= max_flag
    with np.errstate(invalid="ignore", divide="ignore"):
        inst = -2.5 * np.log10(flux)
        inst_err = 2.5 / np.log(10) * fluxerr / flux
    return dict(inst_mag=inst[keep], inst_err=inst_err[keep],
                ref_mag=np.asarray(ref["MAG"][ok], float)[keep],
                ref_err=np.asarray(ref["MAGERR"][ok], float)[keep],
                n_ref=len(ref), n_det=len(det))
