"""catdb export: tables, views, queries, the calibrated catalogue and ledgers to files.

Thin wrappers over :mod:`catdb.export.formats`.  Exports run read-only (a
read-only transaction, as role ``catdb_reader`` when it exists).
"""
from __future__ import annotations

import sys

import click

from ..db.engine import connect
from ..db.safety import reader_connection, reader_session
from ..errors import CatdbError
from ..schema.review_tables import EXPORTED_DECISIONS as EXPORTED

FORMATS = ("csv", "votable", "fits", "parquet", "ecsv")


class ExportGroup(click.Group):
    """``catdb export SOURCE ...`` runs the hidden ``source`` command unless SOURCE names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["source", *args]
        return super().parse_args(ctx, args)


def _reader(obj, timeout):
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
  catdb export lightcurve -o target.csv
  catdb export hats hats/ --table detection""")
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
    from ..export.formats import export_table

    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    with _reader(obj, timeout) as conn:
        res = export_table(conn, source, output, fmt, where=where, columns=cols, header=not no_header)
    _done(obj, res)


@command.command("catalog")
@_options
@click.option("--zp-band", help="Use only zeropoints calibrating to this band.")
@click.pass_obj
def catalog_cmd(obj, fmt, output, where, no_header, timeout, zp_band):
    """The calibrated catalogue: detections with exposure epoch/band, mag_cal = mag_auto + zp, object_id.

    magerr_cal is NULL when mag_cal is (no zeropoint) or when the zeropoint error is not known.
    zp_method is the zeropoint's method: pp or regression give absolute magnitudes; relative or
    ensemble put mag_cal on an arbitrary scale (zp_ref on a reference exposure).

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
@click.option("--all", "all_tracks", is_flag=True,
              help="Every track of the status, reviewed or not (default: only tracks reviewed real or known).")
@click.pass_obj
def tracks_cmd(obj, fmt, output, status, obscode, all_tracks):
    """Moving-object candidates' astrometry as MPC 80-column records or ADES PSV.

    \b
    Examples:
      catdb export tracks -o candidates.mpc
      catdb export tracks -f ades -o candidates.psv --obscode 688
    """
    from ..export.tracks import export_tracks

    with _reader(obj, None) as conn:
        res = export_tracks(conn, output, fmt, status=status, obscode=obscode,
                            decisions=None if all_tracks else EXPORTED)
    if not obj.get("quiet"):
        click.echo(f"wrote {res.get('observations')} observations of {res.get('tracks')} tracks to {output}"
                   + _left_out(res), err=True)


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


@command.command("hats")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@click.option("--table", "table", required=True, type=click.Choice(["object", "detection", "forced_source", "refcat"]),
              help="Table to export (refcat = refcat_source).")
@click.option("--where", metavar="SQL", help="SQL condition on the table's columns narrowing the rows.")
@click.option("--name", help="Catalogue name (default: the --table value); written to DIR/NAME.")
@click.option("--origin", metavar="LABEL",
              help="Add a column 'origin' = LABEL (this server / night / field): ids are per database, so "
                   "catalogues combined from several servers are keyed by (origin, id).")
@click.option("--pixel-threshold", type=int, default=1_000_000, show_default=True,
              help="Largest number of rows in one HEALPix pixel file.")
@click.option("--highest-order", type=int, default=10, show_default=True,
              help="Deepest HEALPix order of a pixel (10: 3.4' pixels).")
@click.option("--margin", "margin_arcsec", type=float, default=5.0, show_default=True,
              help="Margin cache width [arcsec]: at least the largest cross-match radius; 0 for none.")
@click.option("--chunk-rows", type=int, default=1_000_000, show_default=True,
              help="Rows per temporary Parquet chunk streamed from the database.")
@click.option("--workers", type=int, default=2, show_default=True, help="Dask LocalCluster worker processes.")
@click.option("--threads", type=int, default=1, show_default=True, help="Threads per worker.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Use a running Dask scheduler (tcp://host:8786) instead of a LocalCluster; its workers must "
                   "see DIR at the same path.")
@click.option("--overwrite", is_flag=True, help="Replace an existing DIR/NAME.")
@click.option("--progress", is_flag=True, help="Show hats-import's progress bars.")
@click.option("--timeout", type=float, default=None, help="Statement timeout in seconds (default none).")
@click.pass_obj
def hats_cmd(obj, out_dir, table, where, name, origin, pixel_threshold, highest_order, margin_arcsec, chunk_rows,
             workers, threads, scheduler, overwrite, progress, timeout):
    """Write a table as a HATS catalogue (HEALPix-partitioned Parquet + margin cache) for LSDB.

    The rows are streamed from the database (COPY) into Parquet chunks at constant memory, then
    hats-import partitions them on a Dask cluster and builds the margin cache; DIR/NAME is a HATS
    collection that lsdb.open_catalog() opens with its margin.  Units and descriptions are kept as
    Parquet field metadata (unit, description) in every file.  Needs the hats extra
    (pip install catdb[hats]).

    \b
    Examples:
      catdb export hats hats/ --table detection --where "exposure_id IN (SELECT id FROM exposure WHERE night = '2016-04-28')"
      catdb export hats hats/ --table refcat --where "catalog = 'gaia-dr2'" --name gaia-dr2
      python -c "import lsdb; d = lsdb.open_catalog('hats/detection'); g = lsdb.open_catalog('hats/gaia-dr2');
                 print(d.crossmatch(g, radius_arcsec=1).compute())"
    """  # noqa: E501 - the example is a shell command the user copies whole
    try:
        from ..export.hats import export_hats
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise CatdbError(f"catdb export hats needs the hats extra (pip install 'catdb[hats]'): {e}") from None
    client = None
    if scheduler:
        from dask.distributed import Client

        client = Client(scheduler)
    try:
        with _reader(obj, timeout) as conn:
            res = export_hats(conn, out_dir, table, where=where, name=name, origin=origin,
                              pixel_threshold=pixel_threshold,
                              highest_order=highest_order, margin_arcsec=margin_arcsec, chunk_rows=chunk_rows,
                              client=client, n_workers=workers, threads_per_worker=threads, overwrite=overwrite,
                              progress=progress)
    finally:
        if client is not None:
            client.close()
    if not obj.get("quiet"):
        click.echo(f"wrote {res.n_rows} rows to {res.collection_path} (HATS: {res.n_partitions} pixels, orders up to "
                   f"{res.max_order}; margin {res.margin_arcsec:g}\" with {res.n_margin_rows} rows) in "
                   f"{res.seconds['total']:.1f} s", err=True)


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
    click.option("--all", "all_tracks", is_flag=True,
                 help="Every selected track, reviewed or not (default: only tracks reviewed real or known in "
                      "catdb serve's /review page)."),
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


def _left_out(res) -> str:
    left = res.get("left_out") or {}
    nob = res.get("mag_no_mpc_band") or {}
    out = ""
    if left:
        out = ("; left out: " + ", ".join(f"{n} {k}" for k, n in sorted(left.items()))
               + " (only tracks reviewed real or known are exported; --all takes every one)")
    if nob:
        out += ("; magnitudes left blank: " + ", ".join(f"{n} in band {b!r}" for b, n in sorted(nob.items()))
                + " (no MPC band code)")
    return out


def _write_tracks(obj, fmt, output, status, track_ids, obscode, header, all_tracks=False, **kw):
    from ..export.tracks import export_tracks

    with _reader(obj, None) as conn:
        res = export_tracks(conn, output, fmt, status=status, track_ids=list(track_ids) or None,
                            obscode=obscode, header=header, decisions=None if all_tracks else EXPORTED, **kw)
    if not obj.get("quiet"):
        click.echo(f"wrote {res['observations']} observations of {res['tracks']} tracks"
                   + (f" and {res['header_lines']} header lines" if res["header_lines"] else "")
                   + f" to {output} (every line parsed back and checked)" + _left_out(res), err=True)
        how = res.get("ades_validated")
        if how:
            click.echo(f"ADES {'XML' if fmt == 'ades-xml' else 'PSV'}, version 2022, valid against {how}"
                       + ("" if how.startswith("submit") else
                          " (not a submission: give --con, --mea and a [telescope] table with design, aperture "
                          "and detector in --header-toml for submit.xsd)"), err=True)
        if "UNK" in res.get("ast_cat", []):
            click.echo("astCat UNK (unknown) for observations whose exposure's WCS has no known reference "
                       "catalogue: pass --ast-cat (e.g. Gaia2) when you know it", err=True)


@command.command("mpc")
@_mpc_options
@click.option("--header", "with_header", is_flag=True,
              help="Write the COD/CON/OBS/MEA/TEL/NET/ACK header block (implied by any header value).")
@click.option("--discovery", is_flag=True,
              help="Discovery asterisk on the first observation of each track with a temporary designation.")
@click.option("--catalog-code", default=" ", show_default=False,
              help="Astrometric catalogue code, col 72 (e.g. V = Gaia DR2, W = Gaia DR3).")
@click.pass_obj
def mpc_cmd(obj, output, status, track_ids, obscode, all_tracks, header_toml, con, obs, mea, tel, net, ack, ac2,
            with_header, discovery, catalog_code):
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
    _write_tracks(obj, "mpc80", output, status, track_ids, obscode, h if with_header else None, all_tracks,
                  discovery=discovery, catalog_code=catalog_code)


@command.command("ades")
@_mpc_options
@click.option("-f", "--format", "xml_fmt", type=click.Choice(["psv", "xml"]), default=None,
              help="ADES PSV or XML (default: from the extension, .xml -> xml, else psv).")
@click.option("--ast-cat", default="", help="ADES astCat, e.g. Gaia2, Gaia3 (default: from the catalogue each "
                                             "exposure's WCS was solved against, else UNK).")
@click.option("--no-rms-floor", is_flag=True,
              help="Use the detections' own position errors for rmsRA/rmsDec, not at least the track's fit RMS.")
@click.pass_obj
def ades_cmd(obj, output, status, track_ids, obscode, all_tracks, header_toml, con, obs, mea, tel, net, ack, ac2,
             xml_fmt, ast_cat, no_rms_floor):
    """Moving-object tracks as IAU ADES 2022, PSV or XML, rmsRA/rmsDec floored at the track's fit RMS.

    Every row is parsed back with catdb.export.mpc.parse_ades_psv and checked, and the
    document is validated against the ADES master's XML schema (submit.xsd with a full
    context: submitter, measurers, telescope; else general.xsd).

    \b
    Example:
      catdb export ades -o candidates.psv --obscode 688 --ast-cat Gaia2
      catdb export ades -o sub.xml --header-toml obs.toml    # XML; submit.xsd with a full [telescope]
    """
    h = _header(header_toml, {"con": con, "obs": obs, "mea": mea, "tel": tel, "net": net, "ack": ack, "ac2": ac2})
    xml = xml_fmt == "xml" or (xml_fmt is None and output.lower().endswith(".xml"))
    _write_tracks(obj, "ades-xml" if xml else "ades", output, status, track_ids, obscode, h, all_tracks,
                  ast_cat=ast_cat, rms_floor=not no_rms_floor)
