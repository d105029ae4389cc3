"""Paths of the tests' real data, and the marker of tests that need the team's shared data.

Data the project may redistribute ships with the repository: ``data/`` (the demo night,
``data/MANIFEST.md``) and ``tests/data/`` (``tests/data/README.md``: sources and licences).  The
rest lives in ``../shared/data`` beside the repository (``MANIFEST.md`` there); a test that needs it
is marked :func:`requires_shared` and skips, naming the missing path, on a clone alone.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared() -> Path:
    env = os.environ.get("CATDB_SHARED_DATA")
    if env:
        return Path(env)
    for anc in [REPO, *REPO.parents]:
        cand = anc / "shared" / "data"
        if cand.is_dir():
            return cand
    return REPO.parent / "shared" / "data"


#: ``../shared/data`` beside the repository (real data with its MANIFEST.md); may be absent
SHARED_DATA = _find_shared()
#: the repository's bundled demo data
REPO_DATA = REPO / "data"
#: real data shipped for the tests (tests/data/README.md)
TEST_DATA = REPO / "tests" / "data"

#: the demo night (23 raw Lowell 42-inch frames, biases, flats), shipped in data/
LOWELL = REPO_DATA / "lowell42-5945"
#: LCO SExtractor/SCAMP outputs and a Gaia DR2 reference catalogue (GPL-3.0), shipped
LCO = TEST_DATA / "lco"
#: MPC 80-column records (GPL-3.0), shipped
MPC = TEST_DATA / "mpc"
#: a recorded SkyBoT response (BSD-3), shipped
SKYBOT_VOT = TEST_DATA / "skybot" / "skybot_query.vot"
#: all-sky Tycho-2 (decoded astrometry.net index, BSD-2), shipped
TYCHO2_CSV = TEST_DATA / "tycho2" / "tycho2_index10_radec_vt.csv.gz"
#: the Wallace night (83 MB, no licence): ../shared only
WALLACE = SHARED_DATA / "wallace2713-20181012"
#: the VASCO60 survivors and detections (no licence): ../shared only
VASCO = SHARED_DATA / "vasco60"


def _missing_reason(relpaths) -> str:
    missing = [p for p in relpaths if not (SHARED_DATA / p).exists()]
    if not missing:
        return ""
    return (f"needs the team's shared data {', '.join(str(SHARED_DATA / p) for p in missing)} "
            f"(not redistributable with the repository; see tests/data/README.md)")


def need_shared(*relpaths: str) -> None:
    """In a fixture: skip its tests unless every ``relpath`` exists under ``../shared/data``."""
    reason = _missing_reason(relpaths)
    if reason:
        pytest.skip(reason)


def requires_shared(*relpaths: str):
    """Skip unless every ``relpath`` exists under the team's shared data (``../shared/data``).

    Parameters
    ----------
    *relpaths : str
        Paths relative to ``../shared/data``, e.g. ``"wallace2713-20181012"``.

    Returns
    -------
    pytest.MarkDecorator
        Usable on a test, a class, or as ``pytestmark`` of a module.
    """
    reason = _missing_reason(relpaths)
    return pytest.mark.skipif(bool(reason), reason=reason)
