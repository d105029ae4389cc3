"""Schema migrations (alembic, shipped inside the package).

``catdb db init`` = :func:`init` (spatial backend, then all tables up to head),
``catdb db upgrade`` / ``downgrade`` / ``current`` / ``check``.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text

from ..errors import CatdbError
from ..schema import metadata
from .engine import engine
from .revision import MIGRATIONS_DIR, SchemaRevisionError, alembic_config, head, history, known_revisions

# the shipped migrations are read in catdb.db.revision (connect() checks the revision with them);
# these names stay importable from here
__all__ = ["MIGRATIONS_DIR", "alembic_config", "check", "current", "downgrade", "downgrade_losses", "head", "history",
           "new_revision", "upgrade"]


@contextmanager
def _alembic(url=None, spatial_backend="auto"):
    eng = engine(url)
    with eng.begin() as conn:
        yield alembic_config(conn, spatial_backend)


def upgrade(url=None, revision: str = "head", spatial_backend: str = "auto") -> str | None:
    """Upgrade the database schema to ``revision`` (default head); returns the new revision.

    Parameters
    ----------
    spatial_backend : {'auto', 'q3c', 'sql'}
        Used by the first migration only (a database being initialised).

    Raises
    ------
    catdb.db.revision.SchemaRevisionError
        The database is at a revision this catdb does not know (a newer catdb migrated it).
    catdb.errors.CatdbError
        Unknown ``spatial_backend``, or ``'q3c'`` on a server without the extension.
    """
    from alembic import command

    from . import spatial_backend as sb
    if spatial_backend not in sb.BACKENDS:
        raise CatdbError(f"spatial backend must be one of {sb.BACKENDS}, got {spatial_backend!r}")
    cur = current(url)
    revs, hd = known_revisions()
    if cur is not None and cur not in revs:
        raise SchemaRevisionError(
            f"database is at schema revision {cur}, which this catdb (newest revision {hd}) does not know: "
            f"a newer catdb migrated it; use that catdb", cur, hd)
    with _alembic(url, spatial_backend) as cfg:
        if cur is None and spatial_backend == "q3c" and not sb.q3c_available(cfg.attributes["connection"]):
            raise CatdbError("the q3c extension is not available on this server (Debian: apt-get install "
                             "postgresql-15-q3c); use --spatial sql for catdb's SQL port of q3c")
        command.upgrade(cfg, revision)
    return current(url)


init = upgrade


def downgrade(url=None, revision: str = "-1", *, yes: bool = False) -> str | None:
    """Downgrade to ``revision`` (``base`` drops every catdb object, data included).

    A downgrade that would drop tables or columns holding rows is refused unless ``yes``:
    :func:`downgrade_losses` finds them first by running the downgrade in a transaction that is
    rolled back.

    Raises
    ------
    catdb.errors.CatdbError
        Data would be lost and ``yes`` is false; the message lists each table (or column) and
        its rows, and nothing was changed.
    """
    from alembic import command

    if not yes:
        lost = downgrade_losses(url, revision)
        if lost:
            what = "; ".join(f"{t}{'.' + c if c else ''}: {n} row{'s' * (n != 1)}" for t, c, n in lost)
            raise CatdbError(f"downgrade to {revision} would delete data ({what}); nothing was changed. "
                             f"Export what you need first, then re-run with --yes (yes=True) to delete it")
    with _alembic(url) as cfg:
        command.downgrade(cfg, revision)
    return current(url)


_COLUMNS = ("SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema() "
            "AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped "
            "AND c.relname NOT IN ('alembic_version', 'catdb_info', 'ingest_lock')")  # bookkeeping, not data


def downgrade_losses(url=None, revision: str = "-1") -> list[tuple[str, str | None, int]]:
    """What downgrading to ``revision`` would delete: tables and columns that hold rows.

    The downgrade runs in a transaction (PostgreSQL DDL is transactional) that is always rolled
    back; the tables and columns it dropped are then counted: a table by its rows, a column by
    its non-NULL values.

    Returns
    -------
    list of (table, column or None, rows)
        Only entries with rows > 0, tables first, by name.
    """
    from alembic import command
    eng = engine(url)
    with eng.connect() as conn:
        trans = conn.begin()
        try:
            before = {tuple(r) for r in conn.execute(text(_COLUMNS))}
            command.downgrade(alembic_config(conn), revision)
            after = {tuple(r) for r in conn.execute(text(_COLUMNS))}
        finally:
            trans.rollback()
    gone_tables = sorted({t for t, _ in before} - {t for t, _ in after})
    gone_cols = sorted((t, c) for t, c in before - after if t not in gone_tables)
    out = []
    with eng.connect() as conn:
        q = lambda s: conn.exec_driver_sql(s).scalar()  # noqa: E731 (identifiers quoted below)
        ident = eng.dialect.identifier_preparer.quote
        for t in gone_tables:
            n = q(f"SELECT count(*) FROM {ident(t)}")
            if n:
                out.append((t, None, int(n)))
        for t, c in gone_cols:
            n = q(f"SELECT count({ident(c)}) FROM {ident(t)}")
            if n:
                out.append((t, c, int(n)))
        conn.rollback()
    return out


def current(url=None) -> str | None:
    """Revision the database is at (None when catdb was never initialised)."""
    from alembic.runtime.migration import MigrationContext

    with engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def new_revision(message: str, url=None) -> Path:
    """Write a new migration after head, its operations autogenerated from the table definitions.

    For developers adding a table or column (``docs/stages.md``): ``url`` is a database at head
    (the current tables); the new file's ``upgrade``/``downgrade`` hold what differs from
    :mod:`catdb.schema`.  Review it: autogenerate misses functional (q3c) indexes, views and
    data changes, and the file must stay self-contained (no import of :mod:`catdb.schema`).

    Returns
    -------
    pathlib.Path
        The new file, ``catdb/migrations/versions/NNNN_<slug>.py`` (NNNN = head + 1).

    Raises
    ------
    catdb.db.revision.SchemaRevisionError
        The database is not at head.
    """
    from alembic import command

    cur, hd = current(url), head()
    if cur != hd:
        raise SchemaRevisionError(f"database is at revision {cur}, expected head {hd}: run `catdb db upgrade` "
                                  f"on it first", cur, hd)
    with _alembic(url) as cfg:
        script = command.revision(cfg, message, autogenerate=True, rev_id=f"{int(hd) + 1:04d}")
    return Path(script.path)


def check(url=None) -> list:
    """Differences between the table definitions and the database (empty list = agree).

    Raises
    ------
    catdb.errors.CatdbError
        When the database is not at head.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    cur, hd = current(url), head()
    if cur != hd:
        raise CatdbError(f"database is at revision {cur}, this catdb expects {hd}: run `catdb db upgrade`")
    with engine(url).connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": _include})
        diffs = compare_metadata(mc, metadata)
    return [d for d in diffs if not _ignorable(d)]


def _include(obj, name, type_, reflected, compare_to):
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def _ignorable(diff) -> bool:
    # alembic cannot reflect functional (expression) indexes faithfully: compare them by name
    # in the test suite instead (tests/test_db.py checks every q3c index exists).
    item = diff[0] if isinstance(diff, tuple) else None
    if item in ("add_index", "remove_index"):
        idx = diff[1]
        return idx.name is not None and idx.name.endswith("_q3c")
    return False
