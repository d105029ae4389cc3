"""The README's "Python API" section is a doctest: it runs on the bundled demo frames
(``data/lowell42-5945``) against a fresh database, from a scratch directory that links ``data/``."""
from __future__ import annotations

import doctest
import re

import pytest

from tests.helpers import REPO, REPO_DATA


def python_api_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Python API section has one python block"
    return blocks[0]


def test_readme_python_api_is_a_doctest_that_runs(fresh_db_url, tmp_path, monkeypatch):
    if not (REPO_DATA / "lowell42-5945" / "science").is_dir():
        pytest.skip("bundled demo data data/lowell42-5945/science missing")
    block = python_api_block()
    (tmp_path / "data").symlink_to(REPO_DATA)
    monkeypatch.chdir(tmp_path)
    test = doctest.DocTestParser().get_doctest(block, {"url": fresh_db_url}, "README.md[Python API]",
                                               str(REPO / "README.md"), 0)
    assert len(test.examples) >= 6
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = []
    runner.run(test, out=out.append)
    assert runner.failures == 0, "".join(out)
    # what the session wrote is there
    import csv

    with open(tmp_path / "exposures.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["path"].endswith(".fits.fz") for r in rows)
    assert "<h2>Exposures" in (tmp_path / "night.html").read_text()


def test_import_catdb_is_cheap_and_lists_the_api():
    import subprocess
    import sys

    code = ("import sys, catdb; heavy = [m for m in ('numpy', 'astropy', 'matplotlib', 'psycopg') "
            "if m in sys.modules]; print(heavy); print(sorted(set(catdb.__all__) - set(dir(catdb))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.stdout.split("\n")[:2] == ["[]", "[]"]
    import catdb

    for name in ("connect", "ingest_catalogs", "ingest_images", "run_stage", "query_table", "export"):
        f = getattr(catdb, name)
        assert callable(f) and "Parameters" in (f.__call__.__doc__ if name == "export" else f.__doc__), name
    import catdb.export.formats  # binding the subpackage keeps catdb.export the one export function

    assert catdb.export.__call__.__doc__ and not hasattr(catdb.export.formats, "export")
