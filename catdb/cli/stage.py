"""catdb stage list|history|NAME: run processing stages with provenance."""
from __future__ import annotations

import json

import click
import psycopg

from ..db.engine import connect
from ..db.provenance import reap_dead_runs
from ..stages.base import all_stages, run_stage


def _stage_command(name, cls):
    stage = cls()

    def callback(obj, where, exposures, param, **opts):
        params = dict(_kv(p) for p in param)
        for p in stage.params:
            v = opts.get(p.name)
            if v is not None:
                params[p.name] = v
        res = run_stage(name, url=obj["url"], where=where, params=params, progress=not obj["quiet"],
                        exposures=exposures)
        counts = ", ".join(f"{k}={v}" for k, v in res.counts.items())
        click.echo(f"stage {name}: run {res.run_id} ok, {res.input_count} inputs; {counts}")

    params = [
        click.Option(["--where"], metavar="SQL",
                     help="SQL condition on the inputs (exposure, alias e), e.g. \"e.band = 'r'\"."),
        click.Option(["--exposures"], metavar="SETNAME",
                     help="Only the exposures of this named set (catdb exposures select --name SETNAME)."),
        click.Option(["--param", "-p"], multiple=True, metavar="KEY=VALUE", help="Stage parameter (repeatable)."),
    ]
    for p in stage.params:
        opt = "--" + p.name.replace("_", "-")
        t = click.Choice(p.choices) if p.choices else (str if p.type not in (int, float, bool) else p.type)
        params.append(click.Option([opt, p.name], type=t, default=None,
                                   help=f"{p.help} [default: {p.default}]"))
    return click.Command(name, callback=click.pass_obj(callback), params=params,
                         help=f"{stage.description}.", short_help=stage.description,
                         epilog=f"Example:\n\n  catdb stage {name} --where \"e.night = '2019-03-26'\"")


def _kv(s):
    if "=" not in s:
        raise click.BadParameter(f"expected KEY=VALUE, got {s!r}", param_hint="--param")
    k, v = s.split("=", 1)
    return k.strip(), v


class StageGroup(click.Group):
    def list_commands(self, ctx):
        return ["list", "history"] + list(all_stages())

    def get_command(self, ctx, name):
        if name in ("list", "history"):
            return super().get_command(ctx, name)
        stages = all_stages()
        return _stage_command(name, stages[name]) if name in stages else None


@click.group("stage", cls=StageGroup, epilog="""\b
Examples:
  catdb stage list
  catdb stage exposure-summary
  catdb stage exposure-summary --where "e.mjd_mid > 58568.6" --param snr_min=30
  catdb stage history --limit 5""")
def command():
    """Processing stages: select inputs from the database, compute, write back with provenance."""


@command.command("list")
def list_():
    """Show the stages with one-line descriptions."""
    for name, cls in all_stages().items():
        click.echo(f"{name:20s} {cls.description}")


@command.command()
@click.option("--limit", default=20, show_default=True)
@click.option("--stage", "stage_name", help="Only runs of this stage.")
@click.pass_obj
def history(obj, limit, stage_name):
    """Show past stage runs (newest first).

    A run still marked running whose database session is gone (a killed client, a restarted
    server) is marked failed ("interrupted: ...") first, so a dead run never shows as running.
    """
    with connect(obj["url"]) as conn:
        try:
            reap_dead_runs(conn)
        except psycopg.errors.InsufficientPrivilege:  # a read-only login: show the runs as they are
            pass
        rows = conn.execute(
            "SELECT id, stage, CASE WHEN status = 'running' AND backend_pid IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM pg_stat_activity a WHERE a.pid = backend_pid AND (a.backend_start = "
            "stage_run.backend_start OR a.backend_start IS NULL)) THEN 'failed' ELSE status END, input_count, "
            "counts, started_at, finished_at - started_at, "
            "CASE WHEN status = 'running' THEN 'interrupted (session gone)' ELSE error END "
            "FROM stage_run WHERE %(s)s::text IS NULL OR stage = %(s)s ORDER BY id DESC LIMIT %(n)s",
            {"s": stage_name, "n": limit}).fetchall()
    click.echo(f"{'run':>5} {'stage':20s} {'status':9s} {'inputs':>6} {'started':19s} {'took':>8}  counts")
    for rid, st, status, n, counts, t0, dt, err in rows:
        took = f"{dt.total_seconds():.1f}s" if dt else "-"
        extra = err if status == "failed" else json.dumps(counts)
        click.echo(f"{rid:>5} {st:20s} {status:9s} {n if n is not None else '-':>6} "
                   f"{t0:%Y-%m-%d %H:%M:%S} {took:>8}  {extra}")
