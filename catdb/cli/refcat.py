"""catdb refcat import|fetch|list: reference catalogues from files or from VizieR, with a region cache."""
from __future__ import annotations

import click

from ..db.engine import connect
from ..errors import CatdbError


@click.group("refcat", epilog="""\b
Examples:
  catdb refcat import GAIA-DR2.cat --catalog gaia-dr2 --band G
  catdb refcat import stars.parquet --catalog mycat --ra RA --dec DEC --id NAME \\
        --epoch 2016.0 --mag G=phot_g:phot_g_err --mag BP=phot_bp
  catdb refcat fetch --catalog gaia-dr3 --where "e.night = '2019-03-25'" --margin 2
  catdb refcat fetch --catalog ps1 --exposures good_seeing --mag-limit 21
  catdb refcat fetch --catalog ucac4 --cone 299.59,35.20,0.3
  catdb refcat list""")
def command():
    """Reference catalogues: import files, fetch from VizieR for exposure footprints (cached), list."""


def _conn(obj):
    return connect(obj["url"])


def parse_column_map(ra=None, dec=None, id_=None, epoch=None, pmra=None, pmdec=None, mags=()) -> dict | None:
    """Column map of ``catdb refcat import`` options (see :func:`catdb.ingest.refcat.read_refcat`).

    Parameters
    ----------
    ra, dec, id_, pmra, pmdec : str, optional
        Column names.
    epoch : str, optional
        A number (Julian year of every row) or a column name.
    mags : sequence of str
        ``BAND=MAGCOL`` or ``BAND=MAGCOL:ERRCOL``.

    Returns
    -------
    dict or None
        None when no option was given (autodetection).

    Raises
    ------
    click.BadParameter
        A ``--mag`` not of the form BAND=MAGCOL[:ERRCOL].
    """
    cols = {k: v for k, v in (("ra", ra), ("dec", dec), ("source_id", id_), ("pmra", pmra), ("pmdec", pmdec))
            if v}
    if epoch:
        try:
            cols["epoch"] = float(epoch)
        except ValueError:
            cols["epoch"] = epoch
    m, e = {}, {}
    for spec in mags:
        band, sep, rest = spec.partition("=")
        mag, _, err = rest.partition(":")
        if not sep or not band.strip() or not mag.strip():
            raise click.BadParameter(f"{spec!r}: expected BAND=MAGCOL or BAND=MAGCOL:ERRCOL", param_hint="--mag")
        m[band.strip()] = mag.strip()
        if err.strip():
            e[band.strip()] = err.strip()
    if m:
        cols["mags"], cols["mag_errs"] = m, e
    return cols or None


@command.command("import", epilog="""\b
Formats (recognised from the content): FITS and SCAMP FITS_LDAC, VOTable, ECSV, Parquet, CSV/TSV
(VizieR-style with unit and dash lines too), any of them gzipped.  Without column options the
columns are autodetected (VizieR UCAC4/PPMXL/Gaia/PS1/APASS/SDSS/2MASS/USNO-B1/Tycho-2 names,
ra/dec/RAJ2000/RA_ICRS/XWIN_WORLD..., <band>mag and e_<band>mag); each option overrides one column.
Exit status: 0 every file loaded or unchanged, 1 some failed, 2 all failed (a bad file is rolled back whole).""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--catalog", help="Catalogue name stored in refcat_source.catalog (default from the file).")
@click.option("--ra", help="RA column (deg unless the file gives a unit; text columns are sexagesimal hours).")
@click.option("--dec", help="Dec column (deg).")
@click.option("--id", "id_", help="Identifier column.")
@click.option("--epoch", help="Epoch: a Julian year for all rows (2016.0) or a column (Julian year, JD or MJD).")
@click.option("--pmra", help="Proper motion in RA * cos(Dec) column (mas/yr unless the file gives a unit).")
@click.option("--pmdec", help="Proper motion in Dec column (mas/yr).")
@click.option("--mag", "mags", multiple=True, metavar="BAND=MAGCOL[:ERRCOL]",
              help="Magnitude (and error) column of a band; repeatable.")
@click.option("--band", help="Band of a single MAG column (SCAMP reference catalogues).")
@click.pass_obj
def import_(obj, paths, catalog, ra, dec, id_, epoch, pmra, pmdec, mags, band):
    """Reference catalogue files -> refcat_source (COPY, one transaction per file)."""
    from ..ingest.load import ingest_refcat

    columns = parse_column_map(ra, dec, id_, epoch, pmra, pmdec, mags)
    failed = 0
    with _conn(obj) as conn:
        for path in paths:
            try:
                r = ingest_refcat(conn, path, catalog=catalog, band=band, columns=columns)
            except CatdbError as e:
                failed += 1
                click.echo(f"FAILED {e}", err=True)
                continue
            click.echo(f"{r.path}: {r.status}, {r.n_rows} stars ({'; '.join(r.notes)})")
    if failed:
        raise SystemExit(2 if failed == len(paths) else 1)


def _cone(ctx, param, values):
    out = []
    for v in values:
        try:
            ra, dec, r = (float(x) for x in v.split(","))
        except ValueError:
            raise click.BadParameter(f"{v!r}: expected RA,DEC,RADIUS in degrees") from None
        out.append((ra, dec, r))
    return out or None


@command.command("fetch", epilog="""\b
The footprint circles of the selected science exposures (exposure.ra_center, dec_center,
radius, plus --margin) are merged where they overlap and queried from VizieR through
astroquery.  Every fetched cone is recorded in refcat_region: a later fetch of a circle inside
a recorded cone of the same catalogue (with a magnitude limit at least as faint) is not
queried again, and stars already stored from an earlier cone are not written twice.
Connection errors and timeouts are retried --retries times with exponential backoff
(--backoff, 2x --backoff, ...).  Exit status 1 when the service cannot be reached.""")
@click.option("--catalog", required=True, type=click.Choice(
    ["gaia-dr3", "gaia-dr2", "ps1", "apass", "sdss", "2mass", "usno-b1", "ucac4", "tycho2"]),
    help="Catalogue (VizieR I/355/gaiadr3, I/345/gaia2, II/349/ps1, II/336/apass9, V/147/sdss12, II/246/out, "
         "I/284/out, I/322A/out, I/259/tyc2).")
@click.option("--exposures", metavar="SETNAME", help="Exposures of this set (catdb exposures select --name).")
@click.option("--where", help="SQL condition on exposure (alias e), e.g. \"e.band = 'r'\".")
@click.option("--cone", "cones", multiple=True, callback=_cone, metavar="RA,DEC,RADIUS",
              help="Fetch this circle (deg) instead of exposure footprints; repeatable.")
@click.option("--margin", type=float, default=1.0, show_default=True, help="Added to each footprint radius (arcmin).")
@click.option("--mag-limit", type=float, help="Faint limit on the catalogue's main magnitude (Gmag, rmag, Vmag...).")
@click.option("--retries", type=int, default=3, show_default=True, help="Retries on connection errors/timeouts.")
@click.option("--backoff", type=float, default=1.0, show_default=True, help="First retry delay (s), doubling.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds per HTTP request.")
@click.option("--row-limit", type=int, default=-1, show_default=True,
              help="Rows per cone (-1: unlimited); a response this long is an error (truncated).")
@click.pass_obj
def fetch(obj, catalog, exposures, where, cones, margin, mag_limit, retries, backoff, timeout, row_limit):
    """Fetch a reference catalogue for exposure footprints (VizieR, cached by region) -> refcat_source."""
    from ..ingest.refcat_fetch import fetch_refcat

    if cones and (exposures or where):
        raise click.UsageError("--cone cannot be combined with --exposures/--where")
    with _conn(obj) as conn:
        r = fetch_refcat(conn, catalog, where=where, exposures=exposures, cones=cones, margin_arcmin=margin,
                         mag_limit=mag_limit, retries=retries, backoff=backoff, timeout=timeout,
                         row_limit=row_limit)
    for ra, dec, rad, status, n_rows, n_new in r.circles:
        what = (f"fetched {n_rows} rows, {n_new} new" if status == "fetched"
                else "inside a region already fetched: nothing fetched")
        click.echo(f"{catalog} RA {ra:.5f} Dec {dec:+.5f} r {rad * 60:.2f}': {what}")
    click.echo(f"{catalog}: {r.n_fetched} cone{'s' * (r.n_fetched != 1)} fetched, {r.n_cached} cached, "
               f"{r.n_written} stars written (stage_run {r.run_id})"
               + ("; nothing fetched" if not r.n_fetched else ""))


@command.command("list")
@click.option("--regions/--no-regions", default=True, show_default=True, help="Also list the fetched regions.")
@click.pass_obj
def list_(obj, regions):
    """Reference catalogues in the database: star counts, bands, fetched regions."""
    with _conn(obj) as conn:
        cats = conn.execute(
            "SELECT s.catalog, count(*), min(s.epoch), max(s.epoch), "
            "(SELECT string_agg(DISTINCT k, ',') FROM refcat_source s2, jsonb_object_keys(s2.mags) k "
            " WHERE s2.catalog = s.catalog), "
            "(SELECT count(*) FROM refcat_region g WHERE g.catalog = s.catalog) "
            "FROM refcat_source s GROUP BY s.catalog ORDER BY s.catalog").fetchall()
        regs = conn.execute("SELECT catalog, ra, dec, radius_deg, mag_limit, n_rows, n_new, fetched_at, "
                            "stage_run_id FROM refcat_region ORDER BY catalog, id").fetchall() if regions else []
    if not cats:
        click.echo("no reference catalogues (catdb refcat import FILE / catdb refcat fetch --catalog NAME)")
    else:
        click.echo(f"{'catalog':<16} {'stars':>10}  {'epoch':<15} {'regions':>7}  bands")
        for name, n, e0, e1, bands, nreg in cats:
            ep = "" if e0 is None else (f"{e0:.2f}" if e0 == e1 else f"{e0:.2f}-{e1:.2f}")
            click.echo(f"{name:<16} {n:>10}  {ep:<15} {nreg:>7}  {bands or ''}")
    if regs:
        click.echo("\nfetched regions:")
        click.echo(f"{'catalog':<16} {'ra':>10} {'dec':>10} {'radius':>8} {'maglim':>6} {'rows':>8} {'new':>8}  "
                   f"fetched (stage_run)")
        for cat, ra, dec, rad, lim, n, new, at, run in regs:
            click.echo(f"{cat:<16} {ra:>10.5f} {dec:>+10.5f} {rad * 60:>7.2f}' {'' if lim is None else lim:>6} "
                       f"{n:>8} {new:>8}  {at:%Y-%m-%d %H:%M} ({run})")
