"""The embedded server: start, status, stop, restart with data kept, clear errors."""
import os
import subprocess
import sys
import tempfile

import psycopg
import pytest

from catdb.db.server import EmbeddedServer
from catdb.errors import DatabaseUnavailable


@pytest.fixture
def own_server():
    base = tempfile.mkdtemp(prefix="catdb-srv-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"), port=5433)
    yield srv
    srv.stop(mode="immediate")


def test_start_status_stop_restart_keeps_data(own_server):
    srv = own_server
    assert not srv.is_initialised()
    srv.start()
    st = srv.status()
    assert st.running and st.initialised
    assert "PostgreSQL 1" in st.version
    assert st.q3c_available is True
    assert st.size_bytes > 1_000_000
    # Unix socket only, in the data directory
    assert (srv.data_dir / ".s.PGSQL.5433").exists()
    with psycopg.connect(srv.url()) as c:
        assert c.execute("SHOW listen_addresses").fetchone()[0] == ""
        assert c.execute("SHOW jit").fetchone()[0] == "off"
        c.execute("CREATE TABLE keep (x int)")
        c.execute("INSERT INTO keep VALUES (42)")
        c.commit()
    if os.geteuid() == 0:  # initdb refuses root: the server must run as an unprivileged user
        owner = srv.data_dir.stat().st_uid
        assert owner != 0
    assert srv.stop() is True
    assert not srv.status().running
    assert srv.stop() is False
    srv.start()
    with psycopg.connect(srv.url()) as c:
        assert c.execute("SELECT x FROM keep").fetchone()[0] == 42


def test_dead_server_gives_clear_error(own_server, monkeypatch):
    from catdb.db.engine import connect

    # a URL pointing at a socket directory where nothing listens
    url = f"postgresql://catdb@/catdb?host={own_server.data_dir}&port=5433"
    with pytest.raises(DatabaseUnavailable, match="cannot connect to postgresql://catdb@/catdb"):
        connect(url)
    env = {**os.environ, "CATDB_URL": url}
    p = subprocess.run([sys.executable, "-m", "catdb.cli.main", "db", "current"], capture_output=True,
                       text=True, env=env)
    assert p.returncode == 1
    assert p.stderr.startswith("Error: ")
    assert "Traceback" not in p.stderr


def test_root_home_not_traversable_is_explained(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("only meaningful as root")
    from catdb.errors import CatdbError

    d = tmp_path / "private"  # pytest's tmp dirs for root are mode 0700
    os.chmod(tmp_path.parent, 0o700)
    srv = EmbeddedServer(d / "pg")
    with pytest.raises(CatdbError, match="cannot enter"):
        srv.start()
