"""Schema migrations (alembic, shipped inside the package).

``catdb db init`` = :func:`init` (spatial backend, then all tables up to head),
``catdb db upgrade`` / ``downgrade`` / ``current`` / ``check``.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from ..errors import CatdbError

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def _config(connection, spatial_backend: str = "auto"):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    cfg.attributes["spatial_backend"] = spatial_backend
    return cfg


@contextmanager
def _alembic(url=None, spatial_backend="auto"):
    from .engine import engine

    eng = engine(url)
    with eng.begin() as conn:
        yield _config(conn, spatial_backend)


def upgrade(url=None, revision: str = "head", spatial_backend: str = "auto") -> str | None:
    """Upgrade the database schema to ``revision`` (default head); returns the new revision."""
    from alembic import command

    with _alembic(url, spatial_backend) as cfg:
        command.upgrade(cfg, revision)
    return current(url)


init = upgrade


def downgrade(url=None, revision: str = "-1") -> str | None:
    """Downgrade to ``revision`` (``base`` drops every catdb object, data included)."""
    from alembic import command

    with _alembic(url) as cfg:
        command.downgrade(cfg, revision)
    return current(url)


def current(url=None) -> str | None:
    """Revision the database is at (None when catdb was never initialised)."""
    from alembic.runtime.migration import MigrationContext

    from .engine import engine

    with engine(url).connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    """Newest revision shipped with this catdb."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(None)).get_current_head()


def history() -> list[tuple[str, str]]:
    """(revision, message) of every shipped migration, oldest first."""
    from alembic.script import ScriptDirectory

    sd = ScriptDirectory.from_config(_config(None))
    return [(s.revision, s.doc) for s in reversed(list(sd.walk_revisions()))]


def check(url=None) -> list:
    """Differences between the table definitions and the database (empty list = agree).

    Raises
    ------
    catdb.errors.CatdbError
        When the database is not at head.
    """
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ..schema import metadata
    from .engine import engine

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
