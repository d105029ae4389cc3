"""The package's layers hold (import-linter contracts in pyproject.toml), ruff finds nothing, every stage is under the
no-stage-imports-another contract, and `catdb --help` does not load the heavy libraries."""
import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import REPO


def _env():
    # this checkout's catdb, not an installed one
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _lint_imports():
    """The lint-imports executable of this interpreter's environment, else the one on PATH."""
    here = Path(sys.executable).parent / "lint-imports"
    return str(here) if here.exists() else shutil.which("lint-imports")


def test_import_contracts_kept():
    """`lint-imports`: the layers (cli -> pipeline -> stages -> export -> ingest -> {algorithms, db}
    -> {schema, spatial}), algorithms without a database, no stage importing another, no import
    cycle in any package."""
    exe = _lint_imports()
    if exe is None:
        pytest.skip("lint-imports is not installed (import-linter, in catdb's test extra: pip install -e '.[test]')")
    r = subprocess.run([exe, "--no-cache"], capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
    assert r.returncode == 0, "import contracts broken (pyproject.toml [tool.importlinter]):\n" + r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_every_stage_module_is_in_the_independence_contract():
    """A new stage module must be listed, or it could import another stage unchecked."""
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    listed = {m for c in cfg["contracts"] if c["type"] == "independence" for m in c["modules"]}
    stages = {f"catdb.stages.{m.name}" for m in pkgutil.iter_modules([str(REPO / "catdb" / "stages")])
              if m.name != "base" and not m.name.startswith("_")}
    assert len(stages) >= 16
    assert stages == listed, (f"not in the independence contract: {sorted(stages - listed)}; "
                              f"listed but gone: {sorted(listed - stages)}")


def test_cli_start_up_loads_no_heavy_library():
    """`catdb --help` imports the command modules only: astropy, scipy, matplotlib and alembic (each
    0.2-0.6 s to import) wait until a command needs them (the cli keeps those imports lazy)."""
    code = ("import sys; from click.testing import CliRunner; from catdb.cli.main import cli; "
            "r = CliRunner().invoke(cli, ['--help']); assert r.exit_code == 0, r.output; "
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=_env(),
                       timeout=300)
    assert r.returncode == 0, r.stderr
    loaded = set(r.stdout.split())
    assert "catdb" in loaded and "click" in loaded
    heavy = loaded & {"astropy", "scipy", "matplotlib", "alembic", "photutils", "reproject", "ccdproc", "pyarrow"}
    assert not heavy, f"catdb --help imports {sorted(heavy)}"


def test_ruff_clean():
    """`ruff check` (configuration in pyproject.toml: pyflakes, pycodestyle, bugbear, pyupgrade at
    120 columns) finds nothing in the package, the tests, the benchmarks and the tools."""
    here = Path(sys.executable).parent / "ruff"
    exe = str(here) if here.exists() else shutil.which("ruff")
    if exe is None:
        pytest.skip("ruff is not installed (in catdb's test extra: pip install -e '.[test]')")
    r = subprocess.run([exe, "check", "--no-cache", "catdb", "tests", "bench", "tools"], capture_output=True,
                       text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, "ruff check found problems:\n" + r.stdout[-5000:] + r.stderr
