"""Test fixtures: a real PostgreSQL server started with catdb's own server code.

One throwaway cluster per test session (in a fresh directory under /tmp,
traversable by the ``postgres`` user when running as root), a database
initialised to head once per spatial backend and used as a template, and one
fresh database per test module (``db_url``) or per test (``fresh_db_url``).

Spatial backends
----------------
catdb's spatial SQL runs on the q3c C extension or on catdb's SQL port of it
(:mod:`catdb.db.spatial_backend`).  Every database fixture here (``template_db``,
``db_url``, ``fresh_db_url``, ``conn``, and the Lowell night of
:func:`tests.lowell_night.night_db_url`) follows the module-scoped
``spatial_backend`` fixture: ``q3c`` unless the test, its class or its module is
marked ``@pytest.mark.spatial_backends``, which runs it once per backend, with test
ids ``[q3c]`` and ``[sqlport]`` (the one mechanism; as lsst/dax_apdb runs one
``ApdbTest`` class per backend).  ``@pytest.mark.spatial_backends("q3c")`` on a test of
such a module keeps that test on q3c only (a slow test whose spatial SQL the module's
other tests already run on the port).
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid

import psycopg
import pytest

from catdb import spatial
from catdb.db import migrate
from catdb.db.engine import connect, engine
from catdb.db.server import EmbeddedServer
from catdb.ingest.load import ingest_catalogs, ingest_refcat
from tests.helpers import LCO

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
    return psycopg.connect(srv.url("postgres"), autocommit=True)


def create_database(srv, template: str | None = None) -> str:
    """Create a uniquely named database (optionally from a template); returns its URL."""
    name = f"t_{next(_counter)}_{uuid.uuid4().hex[:8]}"
    with _admin(srv) as c:
        c.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return srv.url(name)


#: test id -> catdb's name of the spatial backend (``catdb db init --spatial-backend``)
SPATIAL_BACKENDS = {"q3c": "q3c", "sqlport": "sql"}


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "spatial_backends(*ids): run the test's database fixtures on each listed spatial backend "
                   "(ids 'q3c', 'sqlport'; no argument: both); unmarked tests use q3c")


def pytest_generate_tests(metafunc):
    """Parametrise ``spatial_backend`` (module scope) for tests marked ``spatial_backends``."""
    if "spatial_backend" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("spatial_backends")
    if mark is None:
        return
    ids = list(mark.args or SPATIAL_BACKENDS)
    unknown = [i for i in ids if i not in SPATIAL_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"spatial_backends: unknown id(s) {unknown}; expected {list(SPATIAL_BACKENDS)}")
    metafunc.parametrize("spatial_backend", ids, ids=ids, indirect=True, scope="module")


@pytest.fixture(scope="module")
def spatial_backend(request):
    """Test id of the spatial backend of this module's databases: ``'q3c'`` or ``'sqlport'``."""
    return getattr(request, "param", "q3c")


def db_name(url: str) -> str:
    """The database name in one of the test server's URLs."""
    return url.split("@/", 1)[1].split("?")[0]


_DERIVED: dict = {}


def derived_db_url(pg_server, template: str, key, build):
    """A fresh database copied from one built once per test session: ``template`` plus ``build(url)``.

    The first call for ``(template, key)`` creates a database from ``template``, runs
    ``build(url)`` on it (ingests, stages; it commits what it writes) and keeps it as a template;
    every call returns a new database created from that one (``CREATE DATABASE ... TEMPLATE``, a
    file copy), so test modules that need the same loaded database share one build and still
    start from the same clean state.

    Parameters
    ----------
    pg_server : EmbeddedServer
    template : str
        Name of the database to start from (``template_db``, or a name this function made).
    key : hashable
        What ``build`` makes; one build per ``(template, key)`` in a session.
    build : callable
        ``build(url) -> info``, run once.

    Returns
    -------
    url : str
        A new database.
    info
        What ``build`` returned.
    name : str
        Name of the kept template (to derive further databases from).
    """
    k = (template, key)
    if k not in _DERIVED:
        url = create_database(pg_server, template)
        info = build(url)
        engine(url).dispose()
        _DERIVED[k] = (db_name(url), info)
    name, info = _DERIVED[k]
    return create_database(pg_server, name), info, name


def _load_lco_gaia(url: str) -> int:
    with connect(url) as c:
        eid = ingest_catalogs(c, [LCO / "ldac_test_catalog.fits"])[0].exposure_ids[0]
        ingest_refcat(c, LCO / "GAIA-DR2.cat", catalog="gaia-dr2", band="G")
        c.commit()
    return eid


@pytest.fixture(scope="module")
def lco_gaia(pg_server, template_db):
    """``(url, exposure id)``: a fresh database holding the real LCO LDAC frame (band 'w') and the Gaia DR2
    stars of its field (``tests/data/lco/GAIA-DR2.cat``) loaded as refcat 'gaia-dr2', band G; built once per
    session and spatial backend (:func:`derived_db_url`)."""
    url, eid, _ = derived_db_url(pg_server, template_db, "lco+gaia-dr2", _load_lco_gaia)
    return url, eid


@pytest.fixture(scope="session")
def template_dbs(pg_server):
    """``get(backend_id)``: name of a database at head on that spatial backend, made on first use."""
    made: dict[str, str] = {}

    def get(backend_id: str) -> str:
        if backend_id not in made:
            url = create_database(pg_server)
            migrate.upgrade(url, spatial_backend=SPATIAL_BACKENDS[backend_id])
            with psycopg.connect(url) as c:  # the functions are the backend asked for, not a fallback
                got = spatial.backend(c)
            assert got == SPATIAL_BACKENDS[backend_id], f"template for {backend_id!r} has spatial backend {got!r}"
            engine(url).dispose()  # close pooled connections so the database can serve as a template
            made[backend_id] = db_name(url)
        return made[backend_id]

    return get


@pytest.fixture(scope="module")
def template_db(template_dbs, spatial_backend):
    """Name of a database initialised to head (on the module's spatial backend) used as template."""
    return template_dbs(spatial_backend)


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
    c = connect(db_url)
    yield c
    c.close()
