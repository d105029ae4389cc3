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


def q3c_available(conn) -> bool:
    """True when the server can ``CREATE EXTENSION q3c``."""
    return bool(conn.exec_driver_sql(
        "SELECT count(*) FROM pg_available_extensions WHERE name = 'q3c'").scalar())


def installed_backend(conn) -> str | None:
    """'q3c' if the extension is installed, 'sql' if the SQL port is, else None."""
    if conn.exec_driver_sql("SELECT count(*) FROM pg_extension WHERE extname = 'q3c'").scalar():
        return "q3c"
    if conn.exec_driver_sql(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE p.proname = 'q3c_version' AND n.nspname = current_schema()").scalar():
        return "sql"
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
        'q3c' asked for but not available, or the SQL port is missing.
    """
    if backend not in BACKENDS:
        raise CatdbError(f"spatial backend must be one of {BACKENDS}, got {backend!r}")
    have = installed_backend(conn)
    if have and backend in ("auto", have):
        return have
    if backend == "auto":
        backend = "q3c" if q3c_available(conn) else "sql"
    if backend == "q3c":
        if not q3c_available(conn):
            raise CatdbError("the q3c extension is not available on this server (Debian: apt-get install "
                             "postgresql-15-q3c); use --spatial sql for catdb's SQL port")
        conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS q3c")
    else:
        path = SQL_DIR / "q3c_compat.sql"
        if not path.exists():
            raise CatdbError(f"the SQL spatial backend is not shipped in this build ({path} missing)")
        conn.exec_driver_sql(path.read_text())
    return backend


def uninstall(conn) -> None:
    """Remove the spatial backend (used by the downgrade to base)."""
    have = installed_backend(conn)
    if have == "q3c":
        conn.exec_driver_sql("DROP EXTENSION IF EXISTS q3c")
    elif have == "sql":
        path = SQL_DIR / "q3c_compat_drop.sql"
        if path.exists():
            conn.exec_driver_sql(path.read_text())
