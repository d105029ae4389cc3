"""Is the database at the schema revision this catdb was written for?

:func:`catdb.db.engine.connect` and :func:`catdb.stages.base.run_stage` call :func:`require_head`
on every connection they use, so code written for the newest tables never runs on a database
that lacks them (or on one a newer catdb migrated further), and the user is told the command that
fixes it instead of a ``relation does not exist`` halfway through a stage.

The check is one query (``SELECT version_num FROM alembic_version``) per connection: a
connection that passed is remembered (weakly) and not asked again.  :func:`connect` lets a
database with no catdb schema at all through (``catdb query`` works on any database);
:func:`run_stage` does not.  The revisions this catdb
knows are read once per process from the migrations shipped in the package.

Commands that create or migrate the schema (``catdb db init|upgrade|downgrade``, ``catdb run``
which initialises its database) do not go through the check.
"""
from __future__ import annotations

import logging
import weakref
from functools import lru_cache
from pathlib import Path

import psycopg
from psycopg.pq import TransactionStatus

from ..errors import CatdbError

log = logging.getLogger(__name__)

#: the alembic migrations shipped in the package
MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"

#: connections that passed the check (weak: a closed, collected connection drops out)
_CHECKED: weakref.WeakSet = weakref.WeakSet()


class SchemaRevisionError(CatdbError):
    """The database is not at this catdb's schema revision (not initialised, behind or ahead).

    Attributes
    ----------
    current : str or None
        The database's revision (None: catdb was never initialised there).
    head : str
        The newest revision this catdb ships.
    """

    def __init__(self, message: str, current: str | None, head: str):
        super().__init__(message)
        self.current = current
        self.head = head


def alembic_config(connection, spatial_backend: str = "auto"):
    """alembic configuration of the migrations shipped in the package (``connection``: for commands)."""
    from alembic.config import Config  # lazy: alembic costs 0.2 s, and `catdb --help` imports this module

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    cfg.attributes["spatial_backend"] = spatial_backend
    return cfg


def head() -> str:
    """Newest revision shipped with this catdb."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def history() -> list[tuple[str, str]]:
    """(revision, message) of every shipped migration, oldest first."""
    from alembic.script import ScriptDirectory

    sd = ScriptDirectory.from_config(alembic_config(None))
    return [(s.revision, s.doc) for s in reversed(list(sd.walk_revisions()))]


@lru_cache(maxsize=1)
def known_revisions() -> tuple[tuple[str, ...], str]:
    """The revisions shipped with this catdb, oldest first, and the head.

    Returns
    -------
    revisions : tuple of str
    head : str
    """
    revs = tuple(r for r, _ in history())
    return revs, head()


def _read_revision(conn) -> tuple[bool, str | None]:
    """(checked, revision): one query on ``alembic_version`` of the connection's search path.

    ``checked`` is False when the role may not read the table (a restricted reader role): the
    check is then skipped rather than refusing a read-only session.
    """
    status = conn.info.transaction_status
    query = "SELECT version_num FROM alembic_version"
    try:
        if status == TransactionStatus.IDLE:
            # outside a transaction: run the query in autocommit so that the connection is left
            # idle (a stage decides whether it commits by finding the connection idle)
            was = conn.autocommit
            conn.autocommit = True
            try:
                rows = conn.execute(query).fetchall()
            finally:
                conn.autocommit = was
        elif status == TransactionStatus.INTRANS:
            with conn.transaction():  # a savepoint: an error must not abort the caller's transaction
                rows = conn.execute(query).fetchall()
        else:  # failed or active transaction: the caller will hit its own error first
            return False, None
    except psycopg.errors.UndefinedTable:
        return True, None
    except psycopg.errors.InsufficientPrivilege:
        log.debug("no SELECT on alembic_version for this role: schema revision not checked")
        return False, None
    return True, (rows[0][0] if rows else None)


def require_head(conn, *, allow_uninitialised: bool = False) -> None:
    """Refuse a database that is not at this catdb's head revision.

    Parameters
    ----------
    conn : psycopg.Connection
        Open connection to the catdb database.  Left in the transaction state it was in.
    allow_uninitialised : bool
        Let a database without any catdb schema through (:func:`catdb.db.engine.connect`: ``catdb
        query`` and the server commands work on any database; a command that needs catdb's tables
        then fails naming the table).  A catdb schema at another revision is refused regardless:
        there the code and the tables disagree.

    Raises
    ------
    SchemaRevisionError
        Not initialised (``run catdb db init``), behind (``run catdb db upgrade``), or at a
        revision this catdb does not know, i.e. migrated by a newer catdb (use that catdb).
    """
    if conn in _CHECKED:
        return
    checked, cur = _read_revision(conn)
    if not checked:
        return
    revs, head = known_revisions()
    if cur == head:
        _CHECKED.add(conn)
        return
    db = conn.info.dbname
    if cur is None and allow_uninitialised:
        return
    if cur is None:
        raise SchemaRevisionError(
            f"database {db!r} has no catdb schema (never initialised): run `catdb db init`", cur, head)
    if cur in revs:
        raise SchemaRevisionError(
            f"database {db!r} is at schema revision {cur}, this catdb expects {head}: "
            f"run `catdb db upgrade` (back up first if it holds data you cannot re-create)", cur, head)
    raise SchemaRevisionError(
        f"database {db!r} is at schema revision {cur}, which this catdb (newest revision {head}) does not "
        f"know: a newer catdb migrated it. Use that catdb (or upgrade this one); to go back, run "
        f"`catdb db downgrade {head}` with the newer catdb", cur, head)
