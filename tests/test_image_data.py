"""Shared real-data helpers for the image tests (reduced Lowell 42-inch frames).

Reduction of the three science frames runs once per test session: every
``tests/test_image_*.py`` module defines its fixture through :func:`reduced_frames`,
which caches the result at module level (pytest would otherwise rebuild a
session fixture imported into several modules once per module).
"""
from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import REPO_DATA

LOWELL = REPO_DATA / "lowell42-5945"
BIASES = sorted((LOWELL / "zero").glob("*.fits.fz"))
FLATS = sorted((LOWELL / "flat").glob("*.fits.fz"))
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 132, 135)]

# Known mover 1 of MANIFEST.md (two JD / RA / Dec points; linear motion between them)
MOVER1 = ((2458568.60418, 124.62662, 25.34294), (2458568.84034, 124.63359, 25.32967))

_CACHE: dict = {}

needs_data = pytest.mark.skipif(not (LOWELL / "science").is_dir(),
                                reason=f"real data not found at {LOWELL}")


def reduced_frames(tmp_path_factory):
    """Reduce :data:`SCIENCE` once; return dict(paths=[...], bias=..., flat=...)."""
    if "frames" not in _CACHE:
        from catdb.algorithms.reduce import master_bias, master_flat, reduce_science
        out = tmp_path_factory.mktemp("reduced")
        bias = master_bias(BIASES)
        flat = master_flat(FLATS, bias, filter="VR")
        paths = [reduce_science(p, bias, flat, out / p.name) for p in SCIENCE]
        _CACHE["frames"] = dict(paths=paths, bias=bias, flat=flat, dir=out)
    return _CACHE["frames"]


def mover1_radec(jd):
    """Linear interpolation of mover 1's RA/Dec (deg) at Julian Date ``jd``."""
    (t1, r1, d1), (t2, r2, d2) = MOVER1
    f = (np.asarray(jd) - t1) / (t2 - t1)
    return r1 + f * (r2 - r1), d1 + f * (d2 - d1)


def test_data_present():
    """The real Lowell frames the image tests rely on are where MANIFEST.md says."""
    assert len(BIASES) == 5 and len(FLATS) == 5
    assert all(p.exists() for p in SCIENCE)
