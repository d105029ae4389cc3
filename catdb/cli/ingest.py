"""catdb ingest catalog|image|refcat: load SExtractor catalogues, images and reference catalogues."""
from __future__ import annotations

import click


@click.group("ingest", epilog="""\b
Examples:
  catdb ingest catalog night1/*.ldac
  catdb ingest catalog --instrument lowell42 frame.cat --image frame.fits
  catdb ingest image raw/*.fits.fz            # science, bias and flat frames (IMAGETYP)
  catdb ingest refcat GAIA-DR2.cat --catalog gaia-dr2 --band G
  catdb ingest scamp night/*.ldac --xml scamp.xml --full full_1.cat
  catdb config defaults ./keymaps             # write the keyword maps out for editing""")
def command():
    """Load SExtractor catalogues, FITS images and reference catalogues (COPY, one transaction per file)."""


def _conn(obj):
    from ..db.engine import connect

    return connect(obj["url"])


@command.command("catalog")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--instrument", help="Keyword map name (lowell42, lco1m, kpno_mosaic, swope, generic) or a TOML "
              "file; default: detected from the header.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False),
              help="Image the catalogue was extracted from (for catalogues without a header).")
@click.option("--replace", is_flag=True, help="Replace catalogues already ingested whose content changed.")
@click.pass_obj
def catalog(obj, paths, instrument, image, replace):
    """SExtractor catalogues (FITS_LDAC, FITS_1.0, ASCII_HEAD) -> exposure + detection rows."""
    from ..ingest.load import ingest_catalogs

    with _conn(obj) as conn:
        res = ingest_catalogs(conn, paths, instrument=instrument, image=image, replace=replace,
                              progress=not obj["quiet"])
    for r in res:
        click.echo(f"{r.path}: {r.status}, exposure {','.join(map(str, r.exposure_ids))}, {r.n_rows} detections"
                   + (f" ({'; '.join(sorted(set(r.notes)))})" if r.notes else ""))


@command.command("image")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--instrument", help="Keyword map name or TOML file (default: detected from the header).")
@click.option("--hdu", type=int, help="Only this HDU (0-based); default every image HDU.")
@click.option("--image-type", type=click.Choice(["science", "bias", "flat", "dark"]),
              help="Override IMAGETYP.")
@click.option("--replace", is_flag=True, help="Replace images already ingested whose content changed.")
@click.pass_obj
def image(obj, paths, instrument, hdu, image_type, replace):
    """FITS images (also .fits.fz, multi-extension) -> exposure rows."""
    from ..ingest.load import ingest_images

    with _conn(obj) as conn:
        res = ingest_images(conn, paths, instrument=instrument, hdu=hdu, image_type=image_type, replace=replace,
                            progress=not obj["quiet"])
    for r in res:
        click.echo(f"{r.path}: {r.status}, exposure {','.join(map(str, r.exposure_ids))}")


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
    from .ingest_scamp import scamp_command

    command.add_command(scamp_command, "scamp")


_register_scamp()
