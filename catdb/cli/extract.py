"""catdb extract IMAGE...: SExtractor on images, FITS_LDAC catalogues written, then ingested.

Each image goes through :func:`catdb.ingest.extract.extract` (SExtractor, Bertin & Arnouts
1996, A&AS 117, 393; configuration precedence ``catdb.sex`` < image header < ``--config``;
``.fits.fz`` and quoted-string WCS cards are handled), ``-j`` at a time in threads (each one
SExtractor process).  As each catalogue is finished it is ingested in the main thread with the
image's header (:func:`catdb.ingest.load.ingest_catalogs` with ``image=IMAGE``): one exposure
keyed on the image path and HDU, its detections from the catalogue.  A bad image or catalogue
is reported on one line and the others go on; exit status 0 all ok, 1 some failed, 2 all failed.
"""
from __future__ import annotations

import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import click

from ..db.engine import connect
from ..errors import CatdbError, InputError
from .ingest import summarize

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: keys the command sets itself
_RESERVED = {"CATALOG_NAME", "CATALOG_TYPE", "PARAMETERS_NAME"}
_SUFFIXES = (".fits.fz", ".fits.gz", ".fits", ".fit", ".fts", ".fz")


def parse_config_items(items) -> dict:
    """``('DETECT_THRESH=3', 'PHOT_APERTURES=4,8,12')`` -> SExtractor overrides (upper-case keys).

    Raises
    ------
    click.BadParameter
        An item without ``=``, a key that is not a SExtractor keyword (upper-case letters,
        digits, underscores), or one the command sets itself (CATALOG_NAME, CATALOG_TYPE,
        PARAMETERS_NAME).
    """
    out = {}
    for item in items or ():
        if "=" not in item:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. DETECT_THRESH=3", param_hint="--config")
        k, v = (s.strip() for s in item.split("=", 1))
        k = k.upper()
        if not _KEY.match(k):
            raise click.BadParameter(f"{k!r} is not a SExtractor keyword", param_hint="--config")
        if k in _RESERVED:
            raise click.BadParameter(f"{k} is set by catdb extract", param_hint="--config")
        out[k] = v
    return out


def catalog_path(image, out_dir=None, hdu=None) -> Path:
    """Catalogue path for an image: ``<stem>[.hduN].cat`` next to it or in ``out_dir``."""
    p = Path(image)
    name = p.name
    for suf in _SUFFIXES:
        if name.lower().endswith(suf):
            name = name[: -len(suf)]
            break
    if hdu is not None:
        name += f".hdu{hdu}"
    return (Path(out_dir) if out_dir else p.parent) / f"{name}.cat"


def _param_with_imaflags(workdir: Path) -> Path:
    from ..ingest.extract import default_config_dir

    text = (default_config_dir() / "catdb.param").read_text().rstrip("\n")
    out = workdir / "catdb_flags.param"
    out.write_text(text + "\nIMAFLAGS_ISO\nNIMAFLAGS_ISO\n")
    return out


@click.command("extract", epilog="""\b
Examples:
  catdb extract reduced/*.fits.fz -j 2                 # catalogues next to the images, ingested
  catdb extract frame.fits --out cats --no-ingest      # catalogue only (FITS_LDAC, SCAMP-ready)
  catdb extract frame.fits --config DETECT_THRESH=3 --config PHOT_APERTURES=4,8,12
  catdb extract frame.fits --weight frame.wht.fits --flag frame.flg.fits
  catdb config defaults ./cfg      # writes catdb.sex / catdb.param to start your own from
\b
Exit status: 0 every image ok, 1 some failed (the others are done), 2 every image failed.""")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Directory for the catalogues (created); default next to each image.")
@click.option("--no-ingest", is_flag=True, help="Only write the catalogues; do not load them into the database.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="SExtractor processes run at once.")
@click.option("--hdu", type=click.IntRange(min=0), help="Image HDU (0-based); default the first 2-D image "
              "(HDU 1 of a .fits.fz).")
@click.option("--config", "config_items", multiple=True, metavar="KEY=VALUE",
              help="SExtractor configuration override (repeatable), e.g. DETECT_THRESH=3.")
@click.option("--weight", type=click.Path(exists=True, dir_okay=False),
              help="Weight map (plain FITS, same size; one image only): WEIGHT_TYPE MAP_WEIGHT.")
@click.option("--flag", type=click.Path(exists=True, dir_okay=False),
              help="Flag map (plain FITS, integer; one image only): FLAG_IMAGE, IMAFLAGS_ISO -> detection.imaflags.")
@click.option("--instrument", help="Keyword map for the ingest (default: detected from the header).")
@click.option("--replace/--no-replace", default=True, show_default=True,
              help="Replace the exposure of an image ingested before (a re-extraction gives a new catalogue).")
@click.option("--extra", metavar="all|COL,COL", help="Catalogue columns without a detection column kept in "
              "detection.extra (as for catdb ingest catalog; default none).")
@click.pass_obj
def command(obj, images, out_dir, no_ingest, jobs, hdu, config_items, weight, flag, instrument, replace, extra):
    """Run SExtractor on IMAGEs (FITS_LDAC catalogues) and ingest them."""
    from ..ingest.extract import extract
    config = parse_config_items(config_items)
    if (weight or flag) and len(images) > 1:
        raise click.BadParameter("a weight or flag map belongs to one image; give one IMAGE with it",
                                 param_hint="--weight/--flag")
    if weight:
        config.update(WEIGHT_TYPE="MAP_WEIGHT", WEIGHT_IMAGE=str(Path(weight).resolve()))
    if flag:
        config["FLAG_IMAGE"] = str(Path(flag).resolve())
    cats = [catalog_path(im, out_dir, hdu) for im in images]
    seen = {}
    for im, c in zip(images, cats):
        if c.resolve() in seen:
            raise click.BadParameter(f"{im} and {seen[c.resolve()]} would both write {c}", param_hint="IMAGES")
        seen[c.resolve()] = im
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="catdb_extract_") as tmp:
        param_file = _param_with_imaflags(Path(tmp)) if flag else None

        def _one(i):
            return extract(images[i], cats[i], hdu=hdu, config=config, param_file=param_file)

        conns = []  # opened at the first catalogue to ingest (no server needed when nothing is)

        def get_conn():
            if no_ingest:
                return None
            if not conns:
                conns.append(connect(obj["url"]))
            return conns[0]

        try:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futs = {pool.submit(_one, i): i for i in range(len(images))}
                for fut in as_completed(futs):  # loop over images: ingest in the main thread
                    i = futs[fut]
                    results.append(_finish_one(get_conn, images[i], cats[i], fut, instrument, replace, no_ingest,
                                               hdu, extra))
        finally:
            for c in conns:
                c.close()
    results.sort(key=lambda r: images.index(r.image))
    for r in results:
        if r.status == "failed":
            click.echo(f"FAILED {r.error}", err=True)
        else:
            click.echo(f"{r.image}: {r.path}" + (f", {r.status}, exposure {','.join(map(str, r.exposure_ids))}, "
                                                 f"{r.n_rows} detections" if not no_ingest else
                                                 f", {r.n_sources} sources"))
    line, status = summarize(results, time.perf_counter() - t0, None if no_ingest else "detections")
    click.echo(("extracted, not ingested; " if no_ingest else "") + line)
    if status:
        raise SystemExit(status)


def _finish_one(get_conn, image, cat, fut, instrument, replace, no_ingest, hdu=None, extra=None):
    from ..ingest.load import IngestResult, _one_line, ingest_catalogs

    try:
        fut.result()
    except Exception as e:  # noqa: BLE001 - one bad image must not stop the others
        err = _one_line(e, image) if isinstance(e, CatdbError) else \
            InputError(f"cannot extract ({type(e).__name__}: {' '.join(str(e).split())})", path=image)
        r = IngestResult(path=str(cat), status="failed", error=str(err))
        r.image = str(image)
        return r
    if no_ingest:
        from astropy.io import fits

        with fits.open(cat) as hl:
            n = sum(len(h.data) for h in hl if h.name == "LDAC_OBJECTS")
        r = IngestResult(path=str(cat), status="extracted")
        r.image, r.n_sources = str(image), n
        return r
    r = ingest_catalogs(get_conn(), [cat], image=str(image), image_hdu=hdu, instrument=instrument,
                        replace=replace, on_error="collect", extra=extra)[0]
    r.image = str(image)
    return r
