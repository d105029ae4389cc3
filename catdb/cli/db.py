"""catdb db init|upgrade|downgrade|current|check|restore-indexes: schema migrations and their state."""
from __future__ import annotations

import click

from ..db import migrate
from ..db.engine import engine
from ..errors import CatdbError


@click.group("db", epilog="""\b
Examples:
  catdb db init                     # spatial backend + tables up to head
  catdb db init --spatial sql       # force catdb's SQL port of q3c
  catdb db current
  catdb db downgrade base --yes     # drop everything catdb created (data too)
  catdb db check                    # tables and indexes (q3c too) vs database; exit 1 if they differ
  catdb db restore-indexes          # re-create the missing indexes it names""")
def command():
    """Create and migrate the database schema (alembic migrations shipped in catdb)."""


@command.command()
@click.option("--spatial", type=click.Choice(["auto", "q3c", "sql"]), default="auto", show_default=True,
              help="Spatial backend: the q3c extension, catdb's SQL port of it, or auto (q3c when available).")
@click.pass_obj
def init(obj, spatial):
    """Create all catdb objects (up to the newest revision)."""
    rev = migrate.upgrade(obj["url"], "head", spatial_backend=spatial)
    with engine(obj["url"]).connect() as conn:
        backend = conn.exec_driver_sql("SELECT value FROM catdb_info WHERE key = 'spatial_backend'").scalar()
    click.echo(f"database at revision {rev} (spatial backend: {backend})")


@command.command()
@click.argument("revision", default="head")
@click.pass_obj
def upgrade(obj, revision):
    """Upgrade to REVISION (default head)."""
    click.echo(f"database at revision {migrate.upgrade(obj['url'], revision)}")


@command.command(epilog="""\b
Examples:
  catdb db downgrade 0011           # refused if it would drop a table or column holding rows
  catdb db downgrade base --yes     # drop every catdb object and all its data

\b
A downgrade that would drop tables or columns holding rows first lists them (table, rows)
and changes nothing; --yes deletes them.  Exit status 1 when refused.""")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Delete the data the downgrade drops (listed without it).")
@click.pass_obj
def downgrade(obj, revision, yes):
    """Downgrade to REVISION ('base' removes every catdb object and its data)."""
    click.echo(f"database at revision {migrate.downgrade(obj['url'], revision, yes=yes) or 'base'}")


@command.command()
@click.pass_obj
def current(obj):
    """Print the database's revision (and whether it is head)."""
    cur, hd = migrate.current(obj["url"]), migrate.head()
    click.echo(f"{cur or 'base (not initialised)'}{' (head)' if cur == hd else f' (head is {hd})'}")


@command.command(epilog="""\b
Each difference is one line; a missing index (a dropped q3c index makes every cone search on
its table read the whole table) is named with its table and the CREATE INDEX that
catdb db restore-indexes runs.  Exit status 1 when anything differs.""")
@click.pass_obj
def check(obj):
    """Compare the database with catdb's tables and indexes (q3c included); name what differs."""
    diffs = migrate.problems(obj["url"])
    if diffs:
        for d in diffs:
            click.echo(f"  {d}", err=True)
        raise CatdbError(f"{len(diffs)} difference(s) between catdb's tables and the database")
    click.echo("database and table definitions agree")


@command.command("restore-indexes", epilog="""\b
Examples:
  catdb db check                    # lists missing indexes (dropped by hand or by a killed bulk load)
  catdb db restore-indexes          # re-create them (a killed bulk load's: the next ingest would too)""")
@click.option("--force", is_flag=True, help="Rebuild even while a catdb ingest is bulk loading (it then goes on "
              "maintaining the indexes row by row).")
@click.pass_obj
def restore_indexes(obj, force):
    """Re-create missing indexes: those a bulk load detached, and any other of catdb's schema."""
    from ..db.bulk import restore_indexes as restore
    from ..db.engine import connect

    with connect(obj["url"]) as conn:
        left = conn.execute("SELECT count(*) FROM detached_index").fetchone()[0]
        conn.commit()
        done = restore(conn, force=force)
    made = migrate.create_missing_indexes(obj["url"])
    if done or made:
        click.echo(f"re-created {', '.join(done + made)}")
    if left and not done:
        raise CatdbError(f"{left} index(es) stay detached: a catdb ingest is bulk loading and re-creates them when "
                         "it ends (--force to rebuild now)")
    if not (left or made):
        click.echo("no index missing")
