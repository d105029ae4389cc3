"""A throw-away PostgreSQL 15 server for the spatial tests.

``pg_conninfo`` is a session fixture yielding a libpq conninfo string for a fresh
cluster (initdb into a temp dir, Unix socket only, ``jit=off``) that has the q3c
extension available.  The lead's project-wide server fixture can replace it later:
tests only depend on the fixture name ``pg_conninfo``.
"""
from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("CATDB_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _run(cmd, user):
    kw = {"user": user} if user else {}
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


class TempPostgres:
    """initdb + pg_ctl start of a private cluster; ``stop()`` removes it."""

    def __init__(self):
        if not (PG_BIN / "initdb").exists():
            raise FileNotFoundError(f"initdb not found in {PG_BIN}")
        self.root = Path(tempfile.mkdtemp(prefix="catdb_pg_", dir="/tmp"))
        os.chmod(self.root, 0o755)
        self.data = self.root / "data"
        self.data.mkdir()
        self.user = None
        self.dbuser = pwd.getpwuid(os.getuid()).pw_name
        if os.getuid() == 0:  # postgres refuses to run as root
            self.user = "postgres"
            pw = pwd.getpwnam("postgres")
            os.chown(self.data, pw.pw_uid, pw.pw_gid)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
            self.dbuser = "postgres"
        _run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
              "-U", self.dbuser, "-E", "UTF8", "--no-sync"], self.user)
        opts = (f"-c listen_addresses='' -c unix_socket_directories={self.root} "
                "-c jit=off -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_buffers=64MB")
        _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts,
              "-l", str(self.root / "log"), "-w", "start"], self.user)
        self.conninfo = f"host={self.root} port=5432 dbname=postgres user={self.dbuser}"

    def stop(self):
        try:
            _run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                  "-w", "stop"], self.user)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_conninfo():
    """libpq conninfo of a private PostgreSQL 15 server (stopped after the session)."""
    try:
        server = TempPostgres()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:  # pragma: no cover
        pytest.skip(f"cannot start a PostgreSQL server: {exc}")
    try:
        yield server.conninfo
    finally:
        server.stop()
