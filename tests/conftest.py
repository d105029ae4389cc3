"""Test fixtures: a real PostgreSQL server started with catdb's own server code.

One throwaway cluster per test session (in a fresh directory under /tmp,
traversable by the ``postgres`` user when running as root), a database
initialised to head once and used as a template, and one fresh database per
test module (``db_url``) or per test (``fresh_db_url``).
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid

import pytest

from catdb.db.server import EmbeddedServer

_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """A running catdb embedded server for the whole test session."""
    base = tempfile.mkdtemp(prefix="catdb-test-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"))
    srv.start()
    yield srv
    srv.stop(mode="immediate")
    shutil.rmtree(base, ignore_errors=True)


def _admin(srv):
    import psycopg

    return psycopg.connect(srv.url("postgres"), autocommit=True)


def create_database(srv, template: str | None = None) -> str:
    """Create a uniquely named database (optionally from a template); returns its URL."""
    name = f"t_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    with _admin(srv) as c:
        c.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return srv.url(name)


@pytest.fixture(scope="session")
def template_db(pg_server):
    """Name of a database initialised to head (spatial backend q3c) used as template."""
    from catdb.db import migrate

    url = create_database(pg_server)
    migrate.upgrade(url)
    from catdb.db.engine import engine

    engine(url).dispose()  # close pooled connections so the database can serve as a template
    return url.split("@/", 1)[1].split("?")[0]


@pytest.fixture(scope="module")
def db_url(pg_server, template_db):
    """URL of a fresh catdb database (at head) for one test module."""
    return create_database(pg_server, template_db)


@pytest.fixture
def fresh_db_url(pg_server, template_db):
    """URL of a fresh catdb database (at head) for one test."""
    return create_database(pg_server, template_db)


@pytest.fixture
def empty_db_url(pg_server):
    """URL of an empty database (catdb not initialised)."""
    return create_database(pg_server)


@pytest.fixture
def conn(db_url):
    """psycopg connection (catdb session settings) to the module's database."""
    from catdb.db.engine import connect

    c = connect(db_url)
    yield c
    c.close()
