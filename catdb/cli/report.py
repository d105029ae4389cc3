"""catdb report: the HTML night report."""
from __future__ import annotations

import click


@click.command("report", epilog="""\b
Examples:
  catdb report -o night.html
  catdb report -o night.html --png-dir night-png     # also every figure as a PNG file
  catdb --db postgresql://me@host/survey report -o /tmp/r.html --title "2019-03-26 Lowell 42in" """)
@click.option("-o", "--output", default="catdb-report.html", show_default=True, type=click.Path(dir_okay=False))
@click.option("--title", help="Page title.")
@click.option("--png-dir", type=click.Path(file_okay=False),
              help="Also write every figure as a PNG file in this directory (created).")
@click.option("--max-panels", default=48, show_default=True, type=click.IntRange(min=1),
              help="Most per-exposure residual panels (more exposures are sampled evenly in time).")
@click.pass_obj
def command(obj, output, title, png_dir, max_panels):
    """Write an HTML page: exposures and quality flags, zeropoint/FWHM/background vs time, zeropoints per
    band and method with errors, calibration residuals per exposure, IQR box plots of the QA stages, sky
    plot of objects and candidate tracks, candidate cutouts, light curve and periodogram, ledger, stage runs."""
    from ..db.engine import connect
    from ..export.report import write_report

    with connect(obj["url"], read_only=True) as conn:
        path = write_report(conn, output, title=title, png_dir=png_dir, max_residual_panels=max_panels)
    click.echo(str(path))
    if png_dir:
        click.echo(str(png_dir))
