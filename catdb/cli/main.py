"""The ``catdb`` command line (click).  Commands are thin wrappers over the library."""
from __future__ import annotations

import logging
import os
import sys
import warnings

import click
import psycopg

from .._version import __version__
from ..db.engine import redact, resolve_url
from ..db.server import check_database_name
from ..errors import CatdbError
from . import db, query, server, stage

EPILOG = """\b
Examples:
  catdb run pipelines/lowell42-demo.toml   # the whole chain on the bundled night (make demo)
  catdb server start                 # start the embedded PostgreSQL (first use: initdb)
  catdb db init                      # create tables, q3c index, roles
  catdb ingest catalog *.ldac        # SExtractor catalogues -> exposure + detection
  catdb stage list                   # what stages there are
  catdb stage associate --where "e.night = '2019-03-25'" --radius 1.0
  catdb query "SELECT band, count(*) FROM exposure GROUP BY band"
  catdb export catalog -o catalog.vot
  catdb report -o night.html
  CATDB_URL=postgresql://me@host/db catdb db current   # an external server
"""


class CatdbGroup(click.Group):
    """Turns catdb's own errors into a one-line message and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except CatdbError as e:
            click.echo(f"Error: {e}", err=True)
            sys.exit(1)
        except Exception as e:  # connection failures surfacing through SQLAlchemy / psycopg
            msg = _connection_error(e, (ctx.obj or {}).get("url"))
            if msg is None:
                raise
            click.echo(f"Error: {msg}", err=True)
            sys.exit(1)


def _connection_error(e, url=None):
    try:
        from sqlalchemy.exc import OperationalError as SAOperationalError
    except ImportError:  # pragma: no cover
        SAOperationalError = ()
    orig = getattr(e, "orig", e)
    if isinstance(orig, psycopg.errors.UndefinedTable):
        # a command that needs catdb's tables, on a database never initialised (or the wrong one)
        try:
            where = redact(resolve_url(url, start=False))
        except Exception:  # noqa: BLE001
            where = "the database"
        return (f"{str(orig).strip().splitlines()[0]} in {where}: this database has no catdb schema "
                f"(or not this catdb's); run `catdb db init` first, or check --database / CATDB_URL")
    if isinstance(e, SAOperationalError) or isinstance(orig, psycopg.OperationalError):
        try:
            url = redact(resolve_url(url, start=False))
        except Exception:  # noqa: BLE001
            url = "the database"
        return f"cannot connect to {url}: {str(orig).strip().splitlines()[0]}"
    return None


@click.group(cls=CatdbGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="catdb")
@click.option("--db", "db_url", envvar="CATDB_URL", metavar="URL",
              help="PostgreSQL URL (env CATDB_URL). Default: the embedded server in --data-dir.")
@click.option("--data-dir", envvar="CATDB_DATA_DIR", type=click.Path(file_okay=False),
              help="Embedded server data directory (env CATDB_DATA_DIR; default ~/.local/share/catdb/pg, "
                   "/var/lib/catdb/pg as root).")
@click.option("--database", envvar="CATDB_DATABASE", metavar="NAME",
              help="Database in the embedded server (env CATDB_DATABASE; default catdb; created on first use). "
                   "`make demo` uses catdb_demo, so the demo never mixes with your data.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="warning", show_default=True)
@click.option("-q", "--quiet", is_flag=True, help="Print only results and errors (no progress bars).")
@click.pass_context
def cli(ctx, db_url, data_dir, database, log_level, quiet):
    """catdb: a catalogue database for multi-epoch imaging.

    SExtractor catalogues, SCAMP solutions and FITS images go into one
    PostgreSQL database with a q3c spatial index; processing stages (QA,
    calibration, association, movers, forced photometry) read from it and
    write back with provenance; results export to CSV, VOTable and MPC.
    """
    logging.basicConfig(level=getattr(logging, log_level.upper()), format="%(levelname)s %(name)s: %(message)s")
    if log_level.lower() != "debug":
        # real headers trip astropy's WCS fixers on every frame (RADECSYS, SIP+PV, DATE-OBS without
        # time): catdb handles those cards itself, the repeated warnings only hide the progress
        from astropy.wcs import FITSFixedWarning

        warnings.filterwarnings("ignore", category=FITSFixedWarning)
    if data_dir:
        os.environ["CATDB_DATA_DIR"] = os.path.abspath(data_dir)
    if database:
        os.environ["CATDB_DATABASE"] = check_database_name(database)
    ctx.obj = {"url": db_url, "quiet": quiet, "database": database}


def _register():
    for mod in (server, db, stage, query):
        cli.add_command(mod.command)
    try:
        from . import ingest
        cli.add_command(ingest.command)
    except ImportError:
        pass
    for name in ("export", "run", "report", "extract", "config", "exposures", "refcat", "skybot", "ephemeris", "serve"):
        try:
            mod = __import__(f"catdb.cli.{name}", fromlist=["command"])
        except ImportError:
            continue
        cli.add_command(mod.command)
    try:
        from . import lightcurve
    except ImportError:  # pragma: no cover
        return
    for c in (lightcurve.command, lightcurve.period_command, lightcurve.cutouts_command):
        cli.add_command(c)


_register()

if __name__ == "__main__":  # pragma: no cover
    cli()
