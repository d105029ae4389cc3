"""The embedded server under concurrency, directories it must not touch, and databases of their own.

Each test that starts a cluster uses a fresh data directory under /tmp (traversable by the
``postgres`` user when running as root) and stops it at the end.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from catdb.db.server import EmbeddedServer
from tests.helpers import REPO, REPO_DATA


def _env(data_dir, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("CATDB_URL", "CATDB_DATABASE", "CATDB_READER_URL")}
    env["CATDB_DATA_DIR"] = str(data_dir)
    env.update(kw)
    return env


def _catdb(data_dir, *args, **env):
    return subprocess.Popen([sys.executable, "-m", "catdb.cli.main", *map(str, args)], cwd=REPO,
                            env=_env(data_dir, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def base():
    d = tempfile.mkdtemp(prefix="catdb-srv-", dir="/tmp")
    os.chmod(d, 0o755)
    yield Path(d)
    pg = Path(d) / "pg"
    if (pg / "PG_VERSION").exists():
        EmbeddedServer(pg).stop(mode="immediate")
    shutil.rmtree(d, ignore_errors=True)


def test_concurrent_commands_on_a_new_data_dir_all_succeed(base):
    """Two `server start` and four auto-starting `query` at once on a directory that does not exist yet."""
    pg = base / "pg"
    procs = [_catdb(pg, "server", "start") for _ in range(2)]
    procs += [_catdb(pg, "query", "-f", "csv", "SELECT 41 + 1 AS answer") for _ in range(4)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, outs
    for out, _ in outs[2:]:
        assert out.splitlines() == ["answer", "42"]
    assert sum("started" in o for o, _ in outs[:2]) >= 1
    assert (pg / "PG_VERSION").exists() and EmbeddedServer(pg).is_running()
    # stopped again: the same race on an existing cluster
    EmbeddedServer(pg).stop()
    procs = [_catdb(pg, "query", "-f", "csv", "SELECT 1 AS one") for _ in range(3)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, outs


def test_database_of_its_own(base, tmp_path):
    """--database / [pipeline] database: rows go to that database of the cluster, not to `catdb`."""
    pg = base / "pg"
    frames = sorted((REPO_DATA / "lowell42-5945" / "science").glob("*.fits.fz"))[:2]
    if not frames:
        pytest.skip(f"real data missing: {REPO_DATA / 'lowell42-5945' / 'science'}")
    pipe = tmp_path / "p.toml"
    paths = ", ".join(f'"{f}"' for f in frames)
    pipe.write_text(f'[pipeline]\nname = "t"\noutdir = "{tmp_path}/out"\ndatabase = "catdb_test_own"\n\n'
                    f'[[step]]\ningest = "image"\npaths = [{paths}]\ninstrument = "lowell42"\n')
    p = _catdb(pg, "run", str(pipe))
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, (out, err)
    assert "database: catdb_test_own" in out
    q = _catdb(pg, "--database", "catdb_test_own", "query", "-f", "csv", "SELECT count(*) AS n FROM exposure")
    assert q.communicate(timeout=120)[0].splitlines()[1] == "2"
    q = _catdb(pg, "query", "-f", "csv", "SELECT current_database() AS d, to_regclass('refcat_source') AS t")
    assert q.communicate(timeout=120)[0].splitlines()[1] == "catdb,"  # the default database is untouched
    q = _catdb(pg, "--database", "bad;name", "query", "SELECT 1")
    out, err = q.communicate(timeout=120)
    assert q.returncode == 1 and "database name" in err


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a directory that belongs to another user")
def test_directory_of_another_user_is_refused_untouched(base):
    import pwd

    other = pwd.getpwnam("nobody")
    d = base / "pg"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    os.chown(d, other.pw_uid, other.pw_gid)
    os.chmod(d, 0o755)
    before = (d.stat().st_uid, d.stat().st_mode, sorted(os.listdir(d)))
    p = _catdb(d, "server", "start")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "belongs to user 'nobody'" in err and "Traceback" not in err, err
    assert (d.stat().st_uid, d.stat().st_mode, sorted(os.listdir(d))) == before


def test_non_empty_non_cluster_directory_is_refused_untouched(base):
    d = base / "pg"
    d.mkdir()
    (d / "thesis.tex").write_text("\\documentclass{article}")
    before = (d.stat().st_uid, d.stat().st_mode, sorted(os.listdir(d)))
    p = _catdb(d, "query", "SELECT 1")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "not empty and holds no PostgreSQL cluster" in err, err
    assert (d.stat().st_uid, d.stat().st_mode, sorted(os.listdir(d))) == before


def test_too_long_socket_path_is_refused_before_initdb(base):
    d = base / ("x" * 60) / ("y" * 40) / "pg"
    assert len(str(d / ".s.PGSQL.5432")) > 107
    p = _catdb(d, "server", "start")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and "too long for the server's Unix socket" in err and "107" in err, err
    assert not d.exists()  # initdb never ran
