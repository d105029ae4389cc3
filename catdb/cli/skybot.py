"""catdb skybot import|list: the SkyBoT cache (tables skybot_query, skybot_object).

``catdb skybot import FILE --exposure ID`` loads a saved SkyBoT cone-search response (VOTable)
into the cache for one exposure; the ``skybot`` stage then matches against it without calling
the service.  ``catdb skybot list`` shows the cached cones and their status.
"""
from __future__ import annotations

import click

from ..db.engine import connect


@click.group("skybot", epilog="""\b
Examples:
  catdb skybot import skybot_0126.vot --exposure 12   # a saved response for exposure 12
  catdb skybot list                                    # cached cones: status, objects, source
  catdb stage skybot                                   # match tracks (service only for uncached exposures)
  catdb stage skybot --param refresh=true              # ask SkyBoT again
  catdb stage skybot --param cache_only=true           # offline: cached cones only""")
def command():
    """SkyBoT cache: import saved responses, list cached cones."""


@command.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--exposure", "exposure_id", type=int, required=True, help="exposure.id the response belongs to.")
@click.option("--max-epoch-diff", type=float, default=1.0, show_default=True,
              help="Largest allowed gap between the response's epoch and mid-exposure (hours).")
@click.pass_obj
def import_(obj, path, exposure_id, max_epoch_diff):
    """Load a saved SkyBoT VOTable into the cache for one exposure (replaces its cached cones)."""
    from ..ingest.skybot import import_skybot_votable

    with connect(obj["url"]) as conn:
        r = import_skybot_votable(conn, path, exposure_id, max_epoch_diff=max_epoch_diff)
    click.echo(f"exposure {exposure_id}: {r['n_rows']} known objects cached (status {r['status']}, "
               f"epoch {r['epoch_diff_h'] * 60:+.1f} min from mid-exposure, skybot_query {r['query_id']}, "
               f"stage_run {r['run_id']})")
    if r["exposure_observatory"] and r["observatory"] != r["exposure_observatory"]:
        click.echo(f"note: the response is for observatory {r['observatory']}, the exposure for "
                   f"{r['exposure_observatory']}: predicted positions differ by the parallax "
                   "(up to 8.8\"/distance[au])")


@command.command("list")
@click.option("--exposure", "exposure_id", type=int, help="Only this exposure.")
@click.pass_obj
def list_(obj, exposure_id):
    """Cached SkyBoT cones: exposure, epoch, status, objects, attempts, source or error."""
    with connect(obj["url"]) as conn:
        rows = conn.execute(
            "SELECT exposure_id, mjd_epoch, observatory_code, radius, status, n_rows, attempts, "
            "COALESCE(message, source) FROM skybot_query WHERE %(e)s::bigint IS NULL OR exposure_id = %(e)s "
            "ORDER BY exposure_id, id", {"e": exposure_id}).fetchall()
    click.echo(f"{'exposure':>8} {'mjd_epoch':>13} {'obs':>4} {'radius':>7} {'status':7} {'n':>4} {'try':>3}  "
               "source / message")
    for eid, mjd, code, rad, status, n, att, note in rows:
        click.echo(f"{eid:>8} {mjd:13.6f} {code:>4} {rad:7.0f} {status:7} {n:>4} {att:>3}  {note}")
    click.echo(f"{len(rows)} cones")
