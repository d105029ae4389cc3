"""``pg_conninfo`` for the spatial tests: the session's catdb test server, maintenance database.

The spatial golden tests create their own databases and schemas (one per backend) on the
server that ``tests/conftest.py`` starts with catdb's embedded-server code.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pg_conninfo(pg_server):
    """libpq conninfo (``dbname=postgres``) of the session's test server."""
    return f"host={pg_server.socket_dir} port={pg_server.port} user=catdb dbname=postgres"
