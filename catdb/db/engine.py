"""Connections: from ``--db`` / ``CATDB_URL``, or the embedded server.

:func:`connect` returns a psycopg 3 connection (used for COPY and stage SQL);
:func:`engine` a SQLAlchemy engine (schema and migrations).  Every catdb
session runs with ``jit = off``: q3c's cost estimates switch JIT on and it
costs 0.2-0.4 s a query.
"""
from __future__ import annotations

import os
import re
from functools import lru_cache

import psycopg
from sqlalchemy import create_engine

from ..errors import DatabaseUnavailable
from .revision import require_head
from .server import DB_NAME, EmbeddedServer, check_database_name

SESSION_OPTIONS = "-c jit=off"


def resolve_url(url: str | None = None, *, start: bool = True, data_dir=None) -> str:
    """The database URL catdb uses.

    Parameters
    ----------
    url : str, optional
        Explicit URL (``--db``).  Falls back to ``CATDB_URL``, then the embedded server.
    start : bool
        Start the embedded server when it is not running.
    data_dir : path, optional
        Embedded server data directory (default ``CATDB_DATA_DIR`` or the user default).

    Returns
    -------
    str
        A libpq URL (``postgresql://...``).
    """
    url = url or os.environ.get("CATDB_URL")
    if url:
        if url.startswith("postgresql+psycopg://"):
            url = "postgresql://" + url[len("postgresql+psycopg://"):]
        return url
    srv = EmbeddedServer(data_dir)
    dbname = embedded_database()
    key = (str(srv.data_dir), dbname)
    if start and key not in _STARTED:
        # under the lock beside the data dir: concurrent commands on a stopped or new cluster all
        # succeed (one runs initdb/pg_ctl, the others wait), and the database exists afterwards
        srv.start(dbname=dbname)
        _STARTED.add(key)
    return srv.url(dbname)


#: environment variable naming the database in the embedded cluster (``--database``)
DATABASE_ENV = "CATDB_DATABASE"
_STARTED: set = set()


def embedded_database() -> str:
    """Name of the database catdb uses in its embedded cluster.

    ``$CATDB_DATABASE`` (``catdb --database NAME``; ``make demo`` uses ``catdb_demo``), default
    ``catdb``.  Each name is a database of its own in the same cluster, created on first use.

    Raises
    ------
    catdb.errors.CatdbError
        A name that is not letters, digits, ``_`` or ``-``.
    """
    return check_database_name(os.environ.get(DATABASE_ENV) or DB_NAME)


def connect(url: str | None = None, *, autocommit: bool = False, read_only: bool = False,
            statement_timeout_ms: int | None = None, check_schema: bool = True, **kw):
    """Open a psycopg connection with catdb's session settings.

    Parameters
    ----------
    check_schema : bool
        Refuse a catdb database that is not at this catdb's schema revision (one query,
        :func:`catdb.db.revision.require_head`); a database with no catdb schema at all passes
        (``catdb query`` works on any database).  Only code that migrates the schema passes False.

    Raises
    ------
    catdb.errors.DatabaseUnavailable
        When the server cannot be reached; the message names the URL.
    catdb.db.revision.SchemaRevisionError
        The database is behind (the message says ``run `catdb db upgrade```) or was migrated by a
        newer catdb; the connection is closed.
    """
    url = resolve_url(url)
    opts = SESSION_OPTIONS
    if statement_timeout_ms:
        opts += f" -c statement_timeout={int(statement_timeout_ms)}"
    if read_only:
        opts += " -c default_transaction_read_only=on"
    try:
        conn = psycopg.connect(url, autocommit=autocommit, options=opts, **kw)
    except psycopg.OperationalError as e:
        raise DatabaseUnavailable(f"cannot connect to {redact(url)}: {str(e).strip()}") from None
    if check_schema:
        try:
            require_head(conn, allow_uninitialised=True)
        except BaseException:
            conn.close()
            raise
    return conn


def sqlalchemy_url(url: str) -> str:
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    return url


def engine(url: str | None = None):
    """SQLAlchemy engine (psycopg 3 driver) for ``url`` (resolved as :func:`resolve_url`)."""
    return _engine(resolve_url(url))


@lru_cache(maxsize=8)
def _engine(url: str):
    return create_engine(sqlalchemy_url(url), connect_args={"options": SESSION_OPTIONS},
                         pool_pre_ping=True, future=True)


def redact(url: str) -> str:
    """URL with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
