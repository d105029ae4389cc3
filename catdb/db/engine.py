"""Connections: from ``--db`` / ``CATDB_URL``, or the embedded server.

:func:`connect` returns a psycopg 3 connection (used for COPY and stage SQL);
:func:`engine` a SQLAlchemy engine (schema and migrations).  Every catdb
session runs with ``jit = off``: q3c's cost estimates switch JIT on and it
costs 0.2-0.4 s a query.
"""
from __future__ import annotations

import os
from functools import lru_cache

from ..errors import DatabaseUnavailable

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
    from .server import EmbeddedServer

    srv = EmbeddedServer(data_dir)
    if start and not srv.is_running():
        srv.start()
    return srv.url()


def connect(url: str | None = None, *, autocommit: bool = False, read_only: bool = False,
            statement_timeout_ms: int | None = None, **kw):
    """Open a psycopg connection with catdb's session settings.

    Raises
    ------
    catdb.errors.DatabaseUnavailable
        When the server cannot be reached; the message names the URL.
    """
    import psycopg

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
    from sqlalchemy import create_engine

    return create_engine(sqlalchemy_url(url), connect_args={"options": SESSION_OPTIONS},
                         pool_pre_ping=True, future=True)


def redact(url: str) -> str:
    """URL with any password replaced by ``***``."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
