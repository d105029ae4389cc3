"""catdb ingest scamp: SCAMP .head solutions, XML statistics, full-catalogue associations, merged proper motions.

The lead registers :func:`scamp_command` in the ``catdb ingest`` group
(``command.add_command(scamp_command)`` in :mod:`catdb.cli.ingest`).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..db.engine import connect
from ..errors import InputError


@click.command("scamp", epilog="""\b
Examples:
  catdb ingest scamp frame1.ldac frame2.ldac frame3.ldac --xml scamp.xml
        # apply frameN.head (written by SCAMP beside each catalogue) to the ingested exposures
  catdb ingest scamp frame1.ldac frame2.ldac frame3.ldac --full full_1.cat --merged merged_1.cat
        # ... and link detections to SCAMP's merged sources (catalogues in SCAMP's command-line order),
        # with SCAMP's mean positions, epochs and proper motions (object.pmra, pmdec [mas/yr])
  catdb ingest scamp --no-heads frame1.ldac frame2.ldac frame3.ldac --merged merged_1.cat
        # proper motions for the objects of an earlier --full load of these catalogues
  catdb query "SELECT scamp_source, ra, dec, epoch, pmra, pmdec, pmra_err FROM object WHERE pmra IS NOT NULL"
  catdb ingest scamp --exposure-id 42 solution.head
  catdb ingest scamp --no-heads --full full_1.cat c1.ldac c2.ldac
\b
SCAMP settings that work offline: -ASTREF_CATALOG FILE -ASTREFCAT_NAME ref.ldac
  -ASTREFCENT_KEYS XWIN_WORLD,YWIN_WORLD -ASTREFERR_KEYS ERRAWIN_WORLD,ERRBWIN_WORLD
  -CHECKPLOT_DEV NULL -FULLOUTCAT_TYPE FITS_LDAC -MERGEDOUTCAT_TYPE FITS_LDAC
  Proper motions: -COMPUTE_PROPERMOTIONS Y, and MJD-OBS in the catalogues' headers (SCAMP
  reads each exposure's epoch from MJD-OBS or DATE-OBS; a date-only DATE-OBS gives all
  exposures one epoch). SCAMP's mas/yr are per Julian year (365.25 d).""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--xml", "xml_path", type=click.Path(exists=True, dir_okay=False),
              help="SCAMP XML report: per-exposure statistics into exposure_qa (metrics scamp_*).")
@click.option("--full", "full_path", type=click.Path(exists=True, dir_okay=False),
              help="SCAMP full output catalogue (FULLOUTCAT): objects + detection_object links. PATHS must then "
                   "be the catalogues in the order given to SCAMP.")
@click.option("--merged", "merged_path", type=click.Path(exists=True, dir_okay=False),
              help="SCAMP merged output catalogue (MERGEDOUTCAT): object positions, epochs and proper motions "
                   "from it (with --full; default there: mean of the full catalogue). Without --full it updates "
                   "the objects of the latest --full load of the catalogues given as PATHS.")
@click.option("--heads/--no-heads", default=True, show_default=True,
              help="Apply the .head beside each catalogue (frame.ldac -> frame.head).")
@click.option("--exposure-id", type=int, help="Exposure the single .head given applies to (default: by file name).")
@click.option("--tolerance", type=float, default=0.01, show_default=True,
              help="Pixels: full-catalogue rows are matched to detections by centroid.")
@click.pass_obj
def scamp_command(obj, paths, xml_path, full_path, merged_path, heads, exposure_id, tolerance):
    """SCAMP outputs -> new WCS, footprints and RA/Dec of exposures; QA; associations as objects.

    PATHS are SCAMP .head files, or the SExtractor catalogues given to SCAMP (then the .head
    beside each is applied). One transaction (and one ingest-scamp stage_run) per .head file.
    """
    from ..ingest.scamp_load import apply_scamp_solution, ingest_scamp_full, ingest_scamp_merged, read_scamp_merged

    paths = [Path(p) for p in paths]
    head_files = [p for p in paths if p.suffix.lower() == ".head"]
    catalogs = [p for p in paths if p.suffix.lower() != ".head"]
    if head_files and catalogs:
        raise InputError("give either .head files or the catalogues given to SCAMP, not both")
    if exposure_id is not None and (len(head_files) != 1 or catalogs):
        raise InputError("--exposure-id needs exactly one .head file")
    if full_path and not catalogs:
        raise InputError("--full needs the SExtractor catalogues as PATHS, in the order they were given to SCAMP")
    if merged_path and not catalogs:
        raise InputError("--merged needs the SExtractor catalogues as PATHS, in the order they were given to SCAMP")
    for p in paths:
        if not p.is_file():
            raise InputError("no such file", path=p)
    if merged_path:
        read_scamp_merged(merged_path)  # a bad merged catalogue is refused before anything is written
    todo = [(h, None) for h in head_files]
    if heads:
        for c in catalogs:
            h = c.with_suffix(".head")
            if not h.is_file():
                raise InputError(f"no SCAMP .head beside the catalogue (expected {h}); use --no-heads to skip",
                                 path=c)
            todo.append((h, c))
    with connect(obj["url"]) as conn:
        for h, c in todo:
            r = apply_scamp_solution(conn, h, exposure_id=exposure_id, catalog_path=c, xml_path=xml_path)
            click.echo(f"{h}: exposure {','.join(map(str, r.exposure_ids))}, {r.n_detections} detections "
                       f"re-positioned (median shift {r.shift_median_arcsec:.3g}\", max {r.shift_max_arcsec:.3g}\")"
                       + (f", {r.n_qa} QA metrics" if xml_path else "") + f" [stage_run {r.run_id}]")
        if full_path:
            r = ingest_scamp_full(conn, full_path, catalogs=catalogs, merged_path=merged_path, tolerance=tolerance)
            click.echo(f"{full_path}: {r.n_objects} objects, {r.n_links} detections linked "
                       f"({r.n_reference_rows} reference rows skipped, matched on {r.centroid}"
                       + (f", {r.replaced_objects} earlier objects replaced" if r.replaced_objects else "")
                       + (f"; {r.n_pm} proper motions from {merged_path} ({r.n_merged} merged sources)"
                          if merged_path else "")
                       + f") [stage_run {r.run_id}]")
        elif merged_path:
            r = ingest_scamp_merged(conn, merged_path, catalogs=catalogs)
            click.echo(f"{merged_path}: {r.n_objects} objects of stage_run {r.full_run_id} updated, {r.n_pm} with a "
                       f"proper motion ({r.n_merged} merged sources) [stage_run {r.run_id}]")
