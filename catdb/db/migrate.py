"""Schema migrations (alembic, shipped inside the package).

``catdb db init`` = :func:`init` (spatial backend, then all tables up to head),
``catdb db upgrade`` / ``downgrade`` / ``current`` / ``check`` (:func:`problems`), and the
schema half of ``catdb db restore-indexes`` (:func:`create_missing_indexes`).
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import exc as sa_exc
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex

from ..errors import CatdbError
from ..schema import metadata
from .engine import engine
from .revision import MIGRATIONS_DIR, SchemaRevisionError, alembic_config, head, history, known_revisions

# the shipped migrations are read in catdb.db.revision (connect() checks the revision with them);
# these names stay importable from here
__all__ = ["MIGRATIONS_DIR", "alembic_config", "check", "create_missing_indexes", "current", "downgrade",
           "downgrade_losses", "head", "history", "index_ddl", "new_revision", "problems", "upgrade"]


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

    Alembic's autogenerate comparison of :data:`catdb.schema.metadata` with the database:
    columns, types, constraints and indexes, the q3c expression indexes (``q3c_ang2ipix(ra,
    dec)``, on either spatial backend) included.  An index of the schema missing from the
    database is ``('add_index', Index)``; :func:`problems` puts each difference in words.

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
        return compare_metadata(mc, metadata)


def _include(obj, name, type_, reflected, compare_to):
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def index_ddl(index) -> str:
    """The ``CREATE INDEX`` statement (PostgreSQL) of an index of :mod:`catdb.schema`."""
    return str(CreateIndex(index).compile(dialect=postgresql.dialect()))


def _is_spatial(index) -> bool:
    return any(getattr(e, "name", None) == "q3c_ang2ipix" for e in index.expressions)


def _missing(diffs, detached) -> list:
    """Indexes of the schema absent from the database (not those a bulk load detached: it re-creates them,
    nor those whose name a different index holds)."""
    held = {d[1].name for d in diffs if d[0] == "remove_index"}
    return [d[1] for d in diffs if d[0] == "add_index" and d[1].name not in detached and d[1].name not in held]


def _detached(conn) -> dict[str, str]:
    return dict(conn.execute(text("SELECT index_name, table_name FROM detached_index")).all())


def problems(url=None) -> list[str]:
    """``catdb db check``: each difference between :mod:`catdb.schema` and the database, in words.

    A missing index (dropped by hand, or a failed build) is named with its table, what it costs
    (a missing q3c index makes every cone search on its table read the whole table) and its fix:
    ``catdb db restore-indexes``, which runs the ``CREATE INDEX`` given (:func:`index_ddl`).  An
    index a bulk load detached (``detached_index``) is named as such; other differences are
    alembic's comparison tuples (:func:`check`).

    Returns
    -------
    list of str
        Empty when the database and the schema agree.

    Raises
    ------
    catdb.errors.CatdbError
        When the database is not at head.
    """
    diffs = check(url)
    with engine(url).connect() as conn:
        detached = _detached(conn)
    missing = {idx.name for idx in _missing(diffs, detached)}
    added = {d[1].name: d[1] for d in diffs if d[0] == "add_index"}
    out = []
    for d in diffs:
        kind, idx = (d[0], d[1]) if d[0] in ("add_index", "remove_index") else (None, None)
        if idx is not None and idx.name in detached:
            continue  # named below
        if kind == "add_index" and idx.name in missing:
            why = f" (every cone search on {idx.table.name} reads the whole table)" if _is_spatial(idx) else ""
            out.append(f"index {idx.name} on {idx.table.name} is missing{why}: catdb db restore-indexes "
                       f"creates it ({index_ddl(idx)})")
        elif kind == "add_index":
            continue  # its name is held by another index: the remove_index line says it
        elif kind == "remove_index" and idx.name in added:
            out.append(f"index {idx.name} on {idx.table.name} differs from catdb's schema: DROP INDEX {idx.name}, "
                       f"then catdb db restore-indexes creates it ({index_ddl(added[idx.name])})")
        else:
            out.append(str(d))
    out += [f"index {n} on {t} dropped by a bulk load and not yet re-created (catdb db restore-indexes)"
            for n, t in sorted(detached.items())]
    return out


def create_missing_indexes(url=None) -> list[str]:
    """Create the indexes of :mod:`catdb.schema` missing from the database (``catdb db restore-indexes``).

    What :func:`problems` reports as missing, in one transaction, each by its ``CREATE INDEX``
    (:func:`index_ddl`; a plain build: readers go on, writers of that table wait until it
    commits).  Indexes listed in ``detached_index`` are left to
    :func:`catdb.db.bulk.restore_indexes`, and an index whose name a different index holds is
    left as it is (:func:`problems` names it).

    Returns
    -------
    list of str
        Names created, in the order of the schema comparison.

    Raises
    ------
    catdb.errors.CatdbError
        The database is not at head, or an index could not be built (e.g. this role does not own
        the table: the message is PostgreSQL's); none was created then.
    """
    diffs = check(url)
    with engine(url).begin() as conn:
        todo = _missing(diffs, _detached(conn))
        for idx in todo:  # the few missing indexes
            try:
                conn.execute(CreateIndex(idx))
            except sa_exc.DBAPIError as e:
                raise CatdbError(f"could not create index {idx.name} on {idx.table.name} "
                                 f"({str(e.orig).splitlines()[0]}); no missing index was created") from e
    return [idx.name for idx in todo]
