"""One IMAGETYP vocabulary for ingest and reduction (catdb.imagetypes)."""
from __future__ import annotations

import pytest
from astropy.io import fits

from catdb.algorithms.reduce import frame_type
from catdb.imagetypes import CATDB_TYPES, normalise_image_type
from catdb.ingest.headers import exposure_metadata


@pytest.mark.parametrize("raw, want", [
    # SBFITSEXT 1.0 (TheSkyX, MaxIm DL, CCDOps, APT)
    ("Light Frame", "science"), ("Bias Frame", "bias"), ("Dark Frame", "dark"), ("Flat Field", "flat"),
    ("Flat Frame", "flat"), ("Tricolor Image", "tricolor"),
    # IRAF / NOAO / Lowell / LCO
    ("object", "science"), ("zero", "bias"), ("SKYFLAT", "flat"), ("domeflat", "flat"), ("LAMPFLAT", "flat"),
    ("EXPOSE", "science"), ("focus", "focus"), ("comp", "arc"),
    # N.I.N.A. / SGP / Seestar
    ("LIGHT", "science"), ("DARK", "dark"), ("BIAS", "bias"), ("FLAT", "flat"), ("DARKFLAT", "dark"),
    ("light", "science"), ("Light_Frame", "science"), (" BIAS  FRAME ", "bias"),
])
def test_every_dialect_maps_to_a_catdb_type(raw, want):
    assert normalise_image_type(raw) == want
    assert want in CATDB_TYPES


def test_unknown_value_is_kept_not_guessed():
    assert normalise_image_type("Test Pattern") == "test pattern"
    assert normalise_image_type("") is None and normalise_image_type(None) is None


def test_keymap_override_wins():
    assert normalise_image_type("experimental", {"experimental": "science"}) == "science"


@pytest.mark.parametrize("raw", ["Bias Frame", "Dark Frame", "Flat Field", "Light Frame", "zero", "SKYFLAT",
                                 "DARKFLAT", "object"])
def test_ingest_and_reduce_agree(raw):
    """The failure of issue #13: ingest mapped 'Bias Frame' to bias, reduce's own table refused it."""
    h = fits.Header({"IMAGETYP": raw, "DATE-OBS": "2018-10-13T02:03:10", "EXPTIME": 1.0})
    assert exposure_metadata(h, "generic")["image_type"] == frame_type(h)
