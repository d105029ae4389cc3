"""catdb export: tables, views, queries, the calibrated catalogue and ledgers to files.

Thin wrappers over :mod:`catdb.export.formats`.  Exports run read-only (a
read-only transaction, as role ``catdb_reader`` when it exists).
"""
from __future__ import annotations

import sys

import click

from ..errors import CatdbError

FORMATS = ("csv", "votable", "fits", "parquet", "ecsv")


class ExportGroup(click.Group):
    """``catdb export SOURCE ...`` runs the hidden ``source`` command unless SOURCE names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["source", *args]
        return super().parse_args(ctx, args)


def _reader(obj, timeout):
    from ..db.engine import connect

    conn = connect(obj["url"], read_only=True,
                   **({"statement_timeout_ms": int(timeout * 1000)} if timeout else {}))
    if conn.execute("SELECT pg_has_role('catdb_reader', 'MEMBER') FROM pg_roles "
                    "WHERE rolname = 'catdb_reader'").fetchone():
        conn.execute("SET ROLE catdb_reader")
    return conn


def _done(obj, res):
    if not obj.get("quiet"):
        click.echo(f"wrote {res.n_rows} rows, {len(res.columns)} columns to {res.path} ({res.format})", err=True)


_common = [
    click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default=None,
                 help="Output format (default: from the file extension: .csv .vot/.xml .fits .parquet .ecsv)."),
    click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file."),
    click.option("--where", metavar="SQL", help="SQL condition narrowing the rows."),
    click.option("--no-header", is_flag=True, help="CSV: no line of column names."),
    click.option("--timeout", type=float, default=None, help="Statement timeout in seconds (default none)."),
]


def _options(f):
    for opt in reversed(_common):
        f = opt(f)
    return f


@click.group("export", cls=ExportGroup, epilog="""\b
Examples:
  catdb export detection -o dets.parquet --where "flags = 0" --columns ra,dec,mag_auto
  catdb export "SELECT ra, dec, mag_aper FROM detection WHERE exposure_id = 3" -f votable -o x.vot
  catdb export catalog -o catalog.fits --where "e.band = 'r'"
  catdb export ledger 42                    # a stage run's ledger, printed
  catdb export ledger --set vasco -o ledger.csv
  catdb export tracks -f ades -o candidates.psv
  catdb export lightcurve -o target.csv""")
def command():
    """Write a table, view or query to CSV, VOTable, FITS, Parquet or ECSV.

    Units and descriptions come from the database column comments (VOTable
    unit/DESCRIPTION, FITS TUNITn/TCOMMn, Parquet field metadata, ECSV header).
    Rows are streamed, so exports of any size run in bounded memory.
    """


@command.command("source", hidden=True)
@click.argument("source", metavar="TABLE_OR_SQL")
@_options
@click.option("--columns", metavar="A,B,...", help="Columns to write, in order.")
@click.pass_obj
def source_cmd(obj, source, fmt, output, where, no_header, timeout, columns):
    """Export TABLE_OR_SQL (a table or view name, or a SELECT query)."""
    from ..export.formats import export

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with _reader(obj, timeout) as conn:
        res = export(conn, source, output, fmt, where=where, columns=cols, header=not no_header)
    _done(obj, res)


@command.command("catalog")
@_options
@click.option("--zp-band", help="Use only zeropoints calibrating to this band.")
@click.pass_obj
def catalog_cmd(obj, fmt, output, where, no_header, timeout, zp_band):
    """The calibrated catalogue: detections with exposure epoch/band, mag_cal = mag_auto + zp, object_id.

    --where takes a condition on detection (d), exposure (e) or zeropoint (z).
    """
    from ..export.formats import export_catalog

    with _reader(obj, timeout) as conn:
        res = export_catalog(conn, output, fmt, where=where, zp_band=zp_band, header=not no_header)
    _done(obj, res)


@command.command("ledger")
@click.argument("run_id", required=False, type=int)
@click.option("--set", "set_name", help="Survivor set name: the ledger of the latest veto run that wrote it.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write CSV (TOPCAT-readable) to a file.")
@click.pass_obj
def ledger_cmd(obj, run_id, set_name, output):
    """Print the filter/veto ledger of a stage run (n_in, n_rejected, n_kept per step)."""
    from ..export.formats import ledger_table

    with _reader(obj, None) as conn:
        t = ledger_table(conn, run_id=run_id, set_name=set_name)
    if output:
        t.write(output, format="ascii.csv", overwrite=True)
        if not obj.get("quiet"):
            click.echo(f"wrote {len(t)} ledger rows to {output}", err=True)
        return
    if len(t) == 0:
        raise CatdbError(f"stage run {run_id} wrote no ledger rows")
    click.echo("\n".join(t.pformat(max_lines=-1, max_width=-1)))


if __name__ == "__main__":  # pragma: no cover
    command(sys.argv[1:])


@command.command("tracks")
@click.option("-f", "--format", "fmt", type=click.Choice(["mpc80", "ades"]), default="mpc80", show_default=True,
              help="MPC 80-column records or ADES PSV.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--status", default="candidate", show_default=True, help="Tracks with this status.")
@click.option("--obscode", help="MPC observatory code (default: each exposure's observatory_code).")
@click.pass_obj
def tracks_cmd(obj, fmt, output, status, obscode):
    """Moving-object candidates' astrometry as MPC 80-column records or ADES PSV.

    \b
    Examples:
      catdb export tracks -o candidates.mpc
      catdb export tracks -f ades -o candidates.psv --obscode 688
    """
    from ..export.tracks import export_tracks

    with _reader(obj, None) as conn:
        res = export_tracks(conn, output, fmt, status=status, obscode=obscode)
    if not obj.get("quiet"):
        click.echo(f"wrote {res.get('observations')} observations of {res.get('tracks')} tracks to {output}",
                   err=True)


@command.command("lightcurve")
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: from the file extension).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--track-id", type=int, help="Track (default: the candidate with most forced measurements).")
@click.pass_obj
def lightcurve_cmd(obj, fmt, output, track_id):
    """A track's light curve (forced photometry: MJD, calibrated mag, flux) as CSV, VOTable, ...

    \b
    Example:
      catdb export lightcurve -o target.csv
    """
    from ..export.api import lightcurve_query
    from ..export.formats import export_query

    with _reader(obj, None) as conn:
        res = export_query(conn, lightcurve_query(track_id), output, fmt)
    _done(obj, res)
