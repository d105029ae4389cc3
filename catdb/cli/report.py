"""catdb report: the HTML night report."""
from __future__ import annotations

import click


@click.command("report", epilog="""\b
Examples:
  catdb report -o night.html
  catdb --db postgresql://me@host/survey report -o /tmp/r.html --title "2019-03-26 Lowell 42in" """)
@click.option("-o", "--output", default="catdb-report.html", show_default=True, type=click.Path(dir_okay=False))
@click.option("--title", help="Page title.")
@click.pass_obj
def command(obj, output, title):
    """Write an HTML page: exposures and quality flags, zeropoint/FWHM/background vs time, sky plot of
    objects and candidate tracks, candidate cutouts, light curve and periodogram, ledger, stage runs."""
    from ..db.engine import connect
    from ..export.report import write_report

    with connect(obj["url"], read_only=True) as conn:
        path = write_report(conn, output, title=title)
    click.echo(str(path))
