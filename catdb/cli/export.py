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
    from ..db.safety import reader_connection, reader_session

    # logged in as catdb_reader when possible (see catdb query); rolled back and closed, never committed
    return reader_session(reader_connection(obj["url"], timeout))


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
  catdb export mpc -o candidates.mpc --header-toml obs.toml --discovery
  catdb export ades -o candidates.psv --track-id 503
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
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Write to a file: CSV (TOPCAT-readable), or JSON when the name ends in .json.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default=None,
              help="File format (default: from the suffix of --output, else csv).")
@click.pass_obj
def ledger_cmd(obj, run_id, set_name, output, fmt):
    """Print the filter/veto ledger of a stage run (n_in, n_rejected, n_kept, rejected_pct per step).

    CSV and JSON carry the same columns: stage_run_id, stage, step, filter, n_in, n_rejected,
    n_kept, rejected_pct [%], params (JSON: an object; CSV: its JSON text).
    """
    from ..export.formats import ledger_table, write_ledger

    with _reader(obj, None) as conn:
        t = ledger_table(conn, run_id=run_id, set_name=set_name)
    if output:
        fmt = write_ledger(t, output, fmt)
        if not obj.get("quiet"):
            click.echo(f"wrote {len(t)} ledger rows to {output} ({fmt})", err=True)
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
@click.option("-f", "--format", "fmt", type=click.Choice((*FORMATS, "alcdef")), default=None,
              help="Output format (default: from the file extension; .alcdef -> alcdef).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file.")
@click.option("--track-id", type=int, help="Track (default: the candidate with most forced measurements).")
@click.option("--object-id", type=int, help="ALCDEF: an object's light curve instead of a track's.")
@click.option("--session", "session_ids", type=int, multiple=True,
              help="ALCDEF: imported session(s) (catdb lightcurve sessions), written back as imported.")
@click.option("--object-name", help="ALCDEF: the asteroid, e.g. '5945 Roachapproach' (default: the track's "
                                    "SkyBoT identification or the exposures' OBJECT).")
@click.option("--source", type=click.Choice(["auto", "forced", "detection"]), default="auto", show_default=True,
              help="ALCDEF: points written (forced photometry when it has >= 5 points).")
@click.option("--contact-name", help="ALCDEF CONTACTNAME (omitted when not given).")
@click.option("--contact-info", help="ALCDEF CONTACTINFO (omitted when not given).")
@click.option("--observers", help="ALCDEF OBSERVERS (omitted when not given).")
@click.option("--exclude-flagged", is_flag=True,
              help="ALCDEF: leave out exposures a QA stage flagged and flagged forced photometry (as the "
                   "lightcurve stage does).")
@click.pass_obj
def lightcurve_cmd(obj, fmt, output, track_id, object_id, session_ids, object_name, source, contact_name,
                   contact_info, observers, exclude_flagged):
    """A track's light curve (forced photometry: MJD, calibrated mag, flux) as CSV, VOTable, ... or ALCDEF.

    ALCDEF (--format alcdef): one session a night and filter, with the metadata catdb knows
    (object, MPC code, site, filter, band, dates); the file is read back to validate it.

    \b
    Examples:
      catdb export lightcurve -o target.csv
      catdb export lightcurve --format alcdef -o target.alcdef --track-id 84 --object-name "5945 Roachapproach"
      catdb export lightcurve -f alcdef -o zachia.txt --session 1 --session 2
    """
    if fmt == "alcdef" or (fmt is None and output.lower().endswith(".alcdef")):
        from ..db.engine import connect
        from ..export.alcdef import export_lightcurve_alcdef

        if track_id is None and object_id is None and not session_ids:
            raise CatdbError("ALCDEF export: give --track-id, --object-id or --session")
        contact = {"CONTACTNAME": contact_name, "CONTACTINFO": contact_info, "OBSERVERS": observers}
        with connect(obj["url"], read_only=True) as conn:
            back = export_lightcurve_alcdef(conn, output, track=track_id, object=object_id,
                                            session_ids=list(session_ids) or None, object_name=object_name,
                                            contact=contact, source=source, exclude_flagged=exclude_flagged)
        if not obj.get("quiet"):
            click.echo(f"wrote {len(back)} ALCDEF sessions, {sum(len(s) for s in back)} points to {output} "
                       "(read back and validated)", err=True)
        return
    from ..export.api import lightcurve_query
    from ..export.formats import export_query

    with _reader(obj, None) as conn:
        res = export_query(conn, lightcurve_query(track_id), output, fmt)
    _done(obj, res)


def _header(path, options):
    """Header values: the TOML file's (top level or an [mpc] table) overridden by the options given."""
    h = {}
    if path:
        import tomllib

        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CatdbError(f"{path}: cannot read the MPC header TOML: {e}") from None
        h.update(data.get("mpc", data))
    h.update({k: v for k, v in options.items() if v})
    return h


_mpc_common = [
    click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output file."),
    click.option("--status", default="candidate", show_default=True, help="Tracks with this status."),
    click.option("--track-id", "track_ids", type=int, multiple=True, help="This track (repeatable; any status)."),
    click.option("--obscode", help="MPC observatory code (default: each exposure's observatory_code)."),
    click.option("--header-toml", "header_toml", type=click.Path(exists=True, dir_okay=False),
                 help="TOML with header values (con, obs, mea, tel, net, ack, ac2, com; ADES also submitter, "
                      "observatory_name, [telescope]); top level or an [mpc] table."),
    click.option("--con", help="Contact (CON / ADES submitter)."),
    click.option("--obs", help="Observers, comma separated (OBS / ADES observers)."),
    click.option("--mea", help="Measurers, comma separated (MEA / ADES measurers)."),
    click.option("--tel", help="Telescope (TEL), e.g. '1.1-m f/8 reflector + CCD'."),
    click.option("--net", help="Astrometric catalogue (NET), e.g. Gaia-DR2."),
    click.option("--ack", help="Acknowledgement line (ACK)."),
    click.option("--ac2", help="E-mail for the acknowledgement (AC2)."),
]


def _mpc_options(f):
    for opt in reversed(_mpc_common):
        f = opt(f)
    return f


def _write_tracks(obj, fmt, output, status, track_ids, obscode, header, **kw):
    from ..export.tracks import export_tracks

    with _reader(obj, None) as conn:
        res = export_tracks(conn, output, fmt, status=status, track_ids=list(track_ids) or None,
                            obscode=obscode, header=header, **kw)
    if not obj.get("quiet"):
        click.echo(f"wrote {res['observations']} observations of {res['tracks']} tracks"
                   + (f" and {res['header_lines']} header lines" if res["header_lines"] else "")
                   + f" to {output} (every line parsed back and checked)", err=True)


@command.command("mpc")
@_mpc_options
@click.option("--header", "with_header", is_flag=True,
              help="Write the COD/CON/OBS/MEA/TEL/NET/ACK header block (implied by any header value).")
@click.option("--discovery", is_flag=True,
              help="Discovery asterisk on the first observation of each track with a temporary designation.")
@click.option("--catalog-code", default=" ", show_default=False,
              help="Astrometric catalogue code, col 72 (e.g. V = Gaia DR2, W = Gaia DR3).")
@click.pass_obj
def mpc_cmd(obj, output, status, track_ids, obscode, header_toml, con, obs, mea, tel, net, ack, ac2, with_header,
            discovery, catalog_code):
    """Moving-object tracks as MPC 80-column records, optionally with the submission header.

    Every line is parsed back with catdb.export.mpc.parse_mpc80 and compared with the
    database values; a mismatch is an error and nothing is written.

    \b
    Examples:
      catdb export mpc -o candidates.mpc
      catdb export mpc -o sub.mpc --obscode 688 --con "A. Observer [a@b.org]" --obs "A. Observer" \\
          --mea "A. Observer" --tel "1.1-m reflector + CCD" --net Gaia-DR2 --discovery
    """
    h = _header(header_toml, {"con": con, "obs": obs, "mea": mea, "tel": tel, "net": net, "ack": ack, "ac2": ac2})
    with_header = with_header or bool(h)
    _write_tracks(obj, "mpc80", output, status, track_ids, obscode, h if with_header else None,
                  discovery=discovery, catalog_code=catalog_code)


@command.command("ades")
@_mpc_options
@click.option("--ast-cat", default="", help="ADES astCat, e.g. Gaia2, Gaia3.")
@click.option("--no-rms-floor", is_flag=True,
              help="Use the detections' own position errors for rmsRA/rmsDec, not at least the track's fit RMS.")
@click.pass_obj
def ades_cmd(obj, output, status, track_ids, obscode, header_toml, con, obs, mea, tel, net, ack, ac2, ast_cat,
             no_rms_floor):
    """Moving-object tracks as ADES PSV (IAU ADES 2017), rmsRA/rmsDec floored at the track's fit RMS.

    Every row is parsed back with catdb.export.mpc.parse_ades_psv and checked.

    \b
    Example:
      catdb export ades -o candidates.psv --obscode 688 --ast-cat Gaia2
    """
    h = _header(header_toml, {"con": con, "obs": obs, "mea": mea, "tel": tel, "net": net, "ack": ack, "ac2": ac2})
    _write_tracks(obj, "ades", output, status, track_ids, obscode, h, ast_cat=ast_cat, rms_floor=not no_rms_floor)
