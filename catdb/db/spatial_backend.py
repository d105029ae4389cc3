"""Which spatial backend a database uses, and installing it.

Two backends provide the same SQL functions (``q3c_ang2ipix``, ``q3c_join``,
``q3c_radial_query``, ...):

``q3c``
    the q3c C extension (Koposov & Bartunov 2006, ASP Conf. Ser. 351, 735;
    Debian ``postgresql-15-q3c``);
``sql``
    catdb's SQL/PL/pgSQL port with the same names and semantics
    (``catdb/sql/q3c_compat.sql``) for servers that cannot load C extensions.

The choice is recorded in ``catdb_info(key='spatial_backend')``.  Migration 0001 installs
it (with its own frozen copy of the SQL port, ``catdb/migrations/frozen/q3c_compat_0001.sql``);
:func:`catdb.db.migrate.upgrade` checks the choice first.  All other spatial SQL is composed in
:mod:`catdb.spatial`.
"""
from __future__ import annotations

from .. import spatial

BACKENDS = ("auto", "q3c", "sql")


def _raw(conn):
    """The psycopg connection under a SQLAlchemy connection (same transaction)."""
    return conn.connection.driver_connection


def q3c_available(conn) -> bool:
    """True when the server can ``CREATE EXTENSION q3c``."""
    return bool(conn.exec_driver_sql(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'q3c'").scalar())


def installed_backend(conn) -> str | None:
    """'q3c' if the extension is installed, 'sql' if catdb's SQL port is, else None."""
    try:
        return spatial.backend(_raw(conn))
    except LookupError:
        return None
