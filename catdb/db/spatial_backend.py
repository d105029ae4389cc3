"""Which spatial backend a database uses, and installing it.

Two backends provide the same SQL functions (``q3c_ang2ipix``, ``q3c_join``,
``q3c_radial_query``, ...):

``q3c``
    the q3c C extension (Koposov & Bartunov 2006, ASP Conf. Ser. 351, 735;
    Debian ``postgresql-15-q3c``);
``sql``
    catdb's SQL/PL/pgSQL port with the same names and semantics
    (``catdb/sql/q3c_compat.sql``) for servers that cannot load C extensions.

The choice is recorded in ``catdb_info(key='spatial_backend')``.  All other
spatial SQL is composed in :mod:`catdb.spatial`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import CatdbError

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
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
    from .. import spatial

    try:
        return spatial.backend(_raw(conn))
    except LookupError:
        return None


def install(conn, backend: str = "auto") -> str:
    """Install the spatial backend into the connected database (a SQLAlchemy connection).

    Parameters
    ----------
    conn : sqlalchemy.engine.Connection
    backend : {'auto', 'q3c', 'sql'}
        'auto' uses the extension when the server has it, else the SQL port.

    Returns
    -------
    str
        The backend installed.

    Raises
    ------
    catdb.errors.CatdbError
        'q3c' asked for but not available on the server.
    """
    from .. import spatial

    if backend not in BACKENDS:
        raise CatdbError(f"spatial backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "q3c" and not q3c_available(conn):
        raise CatdbError("the q3c extension is not available on this server (Debian: apt-get install "
                         "postgresql-15-q3c); use --spatial sql for catdb's SQL port of q3c")
    return spatial.install(_raw(conn), backend)


def uninstall(conn) -> None:
    """Remove the spatial backend (used by the downgrade to base)."""
    have = installed_backend(conn)
    if have == "q3c":
        conn.exec_driver_sql("DROP EXTENSION IF EXISTS q3c")
    elif have == "sql":
        conn.exec_driver_sql(r"""
            DO $$
            DECLARE f record;
            BEGIN
              FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                       JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = current_schema() AND p.proname LIKE 'q3c\_%%'
              LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %%s CASCADE', f.sig);
              END LOOP;
            END $$""")
