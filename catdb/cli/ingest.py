"""catdb ingest catalog|image|refcat: load SExtractor catalogues, images and reference catalogues."""
from __future__ import annotations

import time

import click

from ..db.engine import connect
from .ingest_scamp import scamp_command


@click.group("ingest", epilog="""\b
Examples:
  catdb ingest catalog night1/*.ldac
  catdb ingest catalog -j 2 night1/*.ldac     # two files at a time (worker processes)
  catdb ingest catalog --instrument lowell42 frame.cat --image frame.fits
  catdb ingest catalog --extra ISOAREA_IMAGE,KRON_RADIUS night1/*.ldac   # keep two more columns
  catdb ingest image raw/*.fits.fz            # science, bias, dark and flat frames (IMAGETYP)
  catdb ingest image --obscode 810 night/*.fit # site code when the header has none
  catdb ingest image -j 2 raw/*.fits.fz
  catdb ingest refcat GAIA-DR2.cat --catalog gaia-dr2 --band G
  catdb ingest scamp night/*.ldac --xml scamp.xml --full full_1.cat
  catdb config defaults ./keymaps             # write the keyword maps out for editing""")
def command():
    """Load SExtractor catalogues, FITS images and reference catalogues (COPY, one transaction per file)."""


def _conn(obj):
    return connect(obj["url"])


def summarize(results, seconds: float, what: str = "detections") -> tuple[str, int]:
    """Closing summary line of a multi-file ingest and the exit status.

    Returns
    -------
    line : str
        ``files: N ok, N unchanged, N failed; N exposures, N detections in T s (R detections/s)``
        (exposures and rows are the ones this run added).
    status : int
        0 every file ok (loaded or unchanged), 1 some failed, 2 every file failed.
    """
    ok = sum(r.status in ("loaded", "replaced", "extracted") for r in results)
    unchanged = sum(r.status == "unchanged" for r in results)
    failed = sum(r.status == "failed" for r in results)
    added = [r for r in results if r.status in ("loaded", "replaced")]
    n_exp = sum(len(r.exposure_ids) for r in added)
    line = f"files: {ok} ok, {unchanged} unchanged, {failed} failed; {n_exp} exposure{'s' * (n_exp != 1)}"
    if what:
        n = sum(r.n_rows for r in added)
        rate = n / seconds if seconds > 0 else float("nan")
        line += f", {n} {what} in {seconds:.1f} s ({rate:,.0f} {what}/s)"
    else:
        line += f" in {seconds:.1f} s"
    status = 0 if not failed else (2 if failed == len(results) else 1)
    return line, status


def state_notes(conn, results) -> list[str]:
    """Lines telling what the ingested science exposures still lack (one set-based query).

    ``N exposures have no WCS (wcs_status none): run catdb stage solve`` and
    ``N exposures have no observatory code: give --obscode`` (counting the science exposures
    of this run's files, loaded or unchanged).
    """
    ids = [e for r in results if r.status != "failed" for e in r.exposure_ids]
    if not ids:
        return []
    with conn.transaction():
        n_wcs, n_code = conn.execute(
            "SELECT count(*) FILTER (WHERE wcs_status = 'none'), count(*) FILTER (WHERE observatory_code IS NULL) "
            "FROM exposure WHERE id = ANY(%s) AND image_type = 'science'", (ids,)).fetchone()
    out = []
    if n_wcs:
        out.append(f"{n_wcs} exposure{'s' * (n_wcs != 1)} {'have' if n_wcs != 1 else 'has'} no WCS "
                   f"(wcs_status none): run catdb stage solve")
    if n_code:
        out.append(f"{n_code} exposure{'s' * (n_code != 1)} {'have' if n_code != 1 else 'has'} no observatory "
                   f"code: give --obscode (MPC code) when ingesting")
    return out


def _status(r) -> str:
    """``unchanged (same content as exposure 12, /data/a.fits)``: the status with its reason."""
    return f"{r.status} ({r.detail})" if getattr(r, "detail", None) else r.status


def _report(results, seconds, what, detail, notes=()):
    for r in results:
        if r.status == "failed":
            click.echo(f"FAILED {r.error}", err=True)
        else:
            click.echo(detail(r))
    line, status = summarize(results, seconds, what)
    click.echo(line)
    for n in notes:
        click.echo(n)
    if status:
        raise SystemExit(status)


_OBSCODE_HELP = ("MPC observatory code of every exposure (e.g. 810); wins over the header and keymap. "
                 "Without it the code comes from the header/keymap or stays NULL (never guessed).")

_RELOCATE_HELP = ("A file whose content (SHA-256) is already in the database under another path is never loaded "
                  "again (reported 'unchanged (same content as exposure N, PATH)'); --relocate re-points the "
                  "stored exposure to the new path.  Without it the path is re-pointed only when the stored "
                  "file no longer exists (a moved file); a copy is left as it is.")
_JOBS_HELP = ("Files loaded at a time, each by a worker process with its own connection. "
              "Same rows, statuses, summary and exit status as one at a time; still one transaction per file.")


@command.command("catalog", epilog="""\b
Examples:
  catdb ingest catalog night1/*.ldac
  catdb ingest catalog -j 2 night1/*.ldac night2/*.ldac   # 2 files at a time
  catdb ingest catalog --instrument lowell42 frame.cat --image frame.fits
  catdb ingest catalog --bulk season/*.ldac              # indexes rebuilt once at the end

\b
Exit status: 0 every file loaded or unchanged, 1 some files failed (the others are loaded),
2 every file failed.  A bad file is rolled back whole and reported on one line.""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--instrument", help="Keyword map name (lowell42, lco1m, kpno_mosaic, swope, generic) or a TOML "
              "file; default: detected from the header.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False),
              help="Image the catalogue was extracted from (for catalogues without a header).")
@click.option("--replace", is_flag=True, help="Replace catalogues already ingested whose content changed.")
@click.option("--relocate", is_flag=True, help=_RELOCATE_HELP)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help=_JOBS_HELP)
@click.option("--obscode", help=_OBSCODE_HELP)
@click.option("--extra", metavar="all|COL,COL", help="Also keep these catalogue columns that have no detection "
              "column (SExtractor names, or 'all') in detection.extra (jsonb); default none: the jsonb costs "
              "more ingest time than every other column together.")
@click.option("--bulk/--no-bulk", default=None, help="Drop the secondary indexes of detection (exposure, q3c) for "
              "the load and rebuild them once at the end; still one transaction per file, and a killed load's "
              "indexes are rebuilt by the next ingest. Default: automatic, for a load large next to the table "
              "with nobody else connected (docs/schema.md).")
@click.pass_obj
def catalog(obj, paths, instrument, image, replace, relocate, jobs, obscode, extra, bulk):
    """SExtractor catalogues (FITS_LDAC, FITS_1.0, ASCII_HEAD) -> exposure + detection rows."""
    from ..ingest.load import ingest_catalogs

    t0 = time.perf_counter()
    with _conn(obj) as conn:
        res = ingest_catalogs(conn, paths, instrument=instrument, image=image, replace=replace,
                              progress=not obj["quiet"], on_error="collect", jobs=jobs, obscode=obscode,
                              relocate=relocate, extra=extra, bulk=bulk)
        notes = state_notes(conn, res)
    _report(res, time.perf_counter() - t0, "detections", lambda r: (
        f"{r.path}: {_status(r)}, exposure {','.join(map(str, r.exposure_ids))}, {r.n_rows} detections"
        + (f" ({'; '.join(sorted(set(r.notes)))})" if r.notes else "")), notes)


@command.command("image", epilog="""\b
Examples:
  catdb ingest image raw/*.fits.fz
  catdb ingest image -j 2 raw/*.fits.fz      # 2 files at a time

\b
Exit status: 0 every file loaded or unchanged, 1 some files failed (the others are loaded),
2 every file failed.""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--instrument", help="Keyword map name or TOML file (default: detected from the header).")
@click.option("--hdu", type=int, help="Only this HDU (0-based); default every image HDU but mask, error and "
              "weight planes (EXTNAME BPM, ERR, WEIGHT, ...).")
@click.option("--image-type", type=click.Choice(["science", "bias", "flat", "dark", "focus"]),
              help="Override IMAGETYP.")
@click.option("--replace", is_flag=True, help="Replace images already ingested whose content changed.")
@click.option("--relocate", is_flag=True, help=_RELOCATE_HELP)
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help=_JOBS_HELP)
@click.option("--obscode", help=_OBSCODE_HELP)
@click.pass_obj
def image(obj, paths, instrument, hdu, image_type, replace, relocate, jobs, obscode):
    """FITS images (also .fits.fz, multi-extension) -> exposure rows."""
    from ..ingest.load import ingest_images

    t0 = time.perf_counter()
    with _conn(obj) as conn:
        res = ingest_images(conn, paths, instrument=instrument, hdu=hdu, image_type=image_type, replace=replace,
                            progress=not obj["quiet"], on_error="collect", jobs=jobs, obscode=obscode,
                            relocate=relocate)
        notes = state_notes(conn, res)
    _report(res, time.perf_counter() - t0, None,
            lambda r: f"{r.path}: {_status(r)}, exposure {','.join(map(str, r.exposure_ids))}", notes)


@command.command("refcat")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--catalog", help="Catalogue name stored in refcat_source.catalog (default from the file).")
@click.option("--band", help="Band of a single MAG column (SCAMP reference catalogues).")
@click.option("--epoch", type=float, help="Julian-year epoch when the file has none.")
@click.pass_obj
def refcat(obj, path, catalog, band, epoch):
    """Reference catalogue (SCAMP LDAC, VizieR UCAC4/PPMXL/Gaia, Tycho-2 CSV, any table) -> refcat_source."""
    from ..ingest.load import ingest_refcat

    with _conn(obj) as conn:
        r = ingest_refcat(conn, path, catalog=catalog, band=band, epoch=epoch)
    click.echo(f"{r.path}: {r.n_rows} stars ({'; '.join(r.notes)})")


def _register_scamp():
    command.add_command(scamp_command, "scamp")


_register_scamp()
