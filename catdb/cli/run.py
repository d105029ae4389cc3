"""catdb run PIPELINE.toml: one command for the whole chain."""
from __future__ import annotations

import os
import time
from importlib import resources
from pathlib import Path

import click

from ..db import migrate
from ..db.engine import connect
from ..db.server import check_database_name


@click.command("run", epilog="""\b
Examples:
  catdb run --default > my-night.toml     # write the default pipeline, then edit paths
  catdb run my-night.toml                 # run it; re-running skips what is up to date
  catdb run pipelines/lowell42-demo.toml  # the demo (what `make demo` runs)
  catdb run --force my-night.toml         # re-run every stage""")
@click.argument("pipeline", required=False, type=click.Path(dir_okay=False))
@click.option("--default", "write_default", is_flag=True, help="Print the default pipeline TOML and exit.")
@click.option("--force", is_flag=True, help="Run every stage even when up to date.")
@click.option("--outdir", type=click.Path(file_okay=False), help="Override [pipeline] outdir.")
@click.pass_obj
def command(obj, pipeline, write_default, force, outdir):
    """Run a pipeline: ingest -> reduce -> extract -> QA -> calibrate -> associate -> movers -> ... -> report.

    Each step is a catdb command or stage; progress is printed per step, a
    failing step stops the run and is named, and re-running skips steps that
    are up to date.
    """
    if write_default:
        click.echo(resources.files("catdb").joinpath("data/default_pipeline.toml").read_text(), nl=False)
        return
    if not pipeline:
        raise click.UsageError("give a PIPELINE.toml (or --default to print one)")
    from ..pipeline import Pipeline

    p = Pipeline.load(pipeline)
    if outdir:
        p.outdir = Path(outdir).resolve()
    echo = (lambda s: None) if obj["quiet"] else click.echo
    if p.database and not obj["url"] and not obj.get("database"):
        # the pipeline's own database in the embedded server: its rows never mix with others
        os.environ["CATDB_DATABASE"] = check_database_name(p.database)
        echo(f"database: {p.database} (embedded server; [pipeline] database in {pipeline})")
    t0 = time.time()
    with connect(obj["url"], check_schema=False) as conn:  # initialised or upgraded just below
        if migrate.current(obj["url"]) != migrate.head():
            echo("initialising the database (catdb db init)")
            migrate.upgrade(obj["url"])  # refuses a database a newer catdb migrated
        results = p.run(conn, echo=echo, force=force)
        if "summary" in p.extra:
            from ..summary import print_summary

            print_summary(conn, p, results, elapsed=time.time() - t0, echo=click.echo)
    click.echo(f"pipeline {p.name}: {len(results)} steps in {time.time() - t0:.1f}s "
               f"({sum(r.status == 'skipped' for r in results)} up to date); outputs in {p.outdir}")
