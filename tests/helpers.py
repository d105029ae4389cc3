"""Paths shared by the tests."""
from __future__ import annotations

import os
from pathlib import Path

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


#: ``../shared/data`` beside the repository (real data with its MANIFEST.md)
SHARED_DATA = _find_shared()
#: the repository's bundled demo data
REPO_DATA = REPO / "data"
