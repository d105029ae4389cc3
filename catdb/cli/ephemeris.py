"""catdb ephemeris import|list: the JPL Horizons cache (table ephemeris) and the target links.

``catdb ephemeris import FILE`` loads a saved Horizons observer-table answer into the cache for
the exposures it covers; the ``ephemeris`` stage then links the target's track without calling
the service.  ``catdb ephemeris list`` shows the cached rows per target and the links.
"""
from __future__ import annotations

import click

from ..db.engine import connect


@click.group("ephemeris", epilog="""\b
Examples:
  catdb stage ephemeris                                  # OBJECT of each exposure -> Horizons -> target track
  catdb stage ephemeris --target '5945'                  # name the target yourself
  catdb stage ephemeris --param cache_only=true          # offline: cached / imported ephemerides only
  catdb ephemeris import horizons_5945.txt               # a saved Horizons answer (format=text, CSV)
  catdb ephemeris list                                   # cached rows per target, and the linked tracks""")
def command():
    """JPL Horizons ephemerides of named targets: import saved answers, list the cache and the links."""


@command.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--target", help="Target identifier (default: the answer's 'Target body name', number first).")
@click.option("--where", metavar="SQL", help="Only these exposures (SQL condition on exposure, alias e).")
@click.option("--max-epoch-diff", type=float, default=0.25, show_default=True,
              help="Largest gap between an exposure's mid-time and the nearest row of the answer (hours).")
@click.pass_obj
def import_(obj, path, target, where, max_epoch_diff):
    """Load a saved Horizons answer into the cache (replaces the target's cached rows of those exposures).

    Ask Horizons with format=text, EPHEM_TYPE=OBSERVER, CSV_FORMAT=YES, CAL_FORMAT=BOTH, ANG_FORMAT=DEG and
    QUANTITIES='1,3,9,19,20,24,36' at the exposures' mid-times (TLIST) or over the night (START/STOP/STEP).
    """
    from ..ingest.horizons import import_horizons

    with connect(obj["url"]) as conn:
        r = import_horizons(conn, path, target=target, where=where, max_epoch_diff=max_epoch_diff)
    click.echo(f"target {r['target']} ({r['target_name']}): {r['n_exposures']} exposures cached from "
               f"{r['n_rows']} rows ({r['ok']} with a position), observer {r['location']} ({r['location_kind']}), "
               f"stage_run {r['run_id']}")
    if r["location_kind"] == "geocentre" and r["exposure_observatories"]:
        click.echo(f"note: the answer is geocentric, the exposures are from {', '.join(r['exposure_observatories'])}: "
                   "predicted positions differ by the parallax (up to 8.8\"/delta[au]), which the stage adds to the "
                   "ephemeris uncertainty when the answer gives delta")


@command.command("list")
@click.option("--target", help="Only this target.")
@click.pass_obj
def list_(obj, target):
    """Cached ephemeris rows per target (status, observer, source) and the linked tracks."""
    with connect(obj["url"]) as conn:
        rows = conn.execute(
            "SELECT target, max(target_name), status, location, count(*), min(mjd_epoch), max(mjd_epoch), "
            "max(COALESCE(message, source)) FROM ephemeris WHERE %(t)s::text IS NULL OR target = %(t)s "
            "GROUP BY target, status, location ORDER BY target, status", {"t": target}).fetchall()
        links = conn.execute(
            "SELECT target, target_name, track_id, mode, n_exposures, sep_median, offset_spread, rate_diff, "
            "n_candidates, stage_run_id FROM ephemeris_target WHERE %(t)s::text IS NULL OR target = %(t)s "
            "ORDER BY target, id", {"t": target}).fetchall()
    click.echo(f"{'target':12} {'status':7} {'observer':>24} {'rows':>5} {'mjd first':>12} {'mjd last':>12}  "
               "source / message")
    for tgt, _, status, loc, n, m0, m1, note in rows:
        click.echo(f"{tgt:12} {status:7} {loc:>24} {n:>5} {m0:12.5f} {m1:12.5f}  {str(note)[:100]}")
    for tgt, name, tid, mode, n, sep, spread, rdiff, ncand, run in links:
        fig = f"median offset {sep:.2f}\"" if sep is not None else f"offset spread {spread:.2f}\" (motion only)"
        click.echo(f"target {tgt} ({name}) -> track {tid}: {mode}, {n} exposures, {fig}, rate difference "
                   f"{rdiff:.2f}\"/h, {ncand} candidate(s), stage_run {run}")
    if not links:
        click.echo("no target linked to a track (run 'catdb stage ephemeris')")
