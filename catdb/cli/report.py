"""catdb report: the HTML night report, or its content as JSON."""
from __future__ import annotations

from pathlib import Path

import click

from ..db.engine import connect


@click.command("report", epilog="""\b
Examples:
  catdb report -o night.html
  catdb report -o night.html --png-dir night-png     # also every figure as a PNG file
  catdb report --format json -o night.json           # the same content as data (tables, figure data)
  catdb --db postgresql://me@host/survey report -o /tmp/r.html --title "2019-03-26 Lowell 42in" """)
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False),
              help="Output file [default: catdb-report.html, or catdb-report.json with --format json].")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default=None,
              help="html (the page) or json (its content as data: sections of notes, tables and the data of "
                   "each figure). Default: from the suffix of --output, else html.")
@click.option("--title", help="Page title.")
@click.option("--png-dir", type=click.Path(file_okay=False),
              help="Also write every figure as a PNG file in this directory (created; html only).")
@click.option("--max-panels", default=48, show_default=True, type=click.IntRange(min=1),
              help="Most per-exposure residual panels (more exposures are sampled evenly in time).")
@click.pass_obj
def command(obj, output, fmt, title, png_dir, max_panels):
    """Write an HTML page: exposures and quality flags, zeropoint/FWHM/background vs time, zeropoints per
    band and method with errors, calibration residuals per exposure, IQR box plots of the QA stages, sky
    plot of objects and candidate tracks, candidate cutouts, light curve and periodogram, coadd, ledger,
    stage runs.  --format json writes the same content as data."""
    if fmt is None:
        fmt = "json" if output and output.lower().endswith(".json") else "html"
    if fmt == "json" and png_dir:
        raise click.UsageError("--png-dir draws the figures of the HTML page; --format json writes their data")
    output = output or f"catdb-report.{fmt}"
    with connect(obj["url"], read_only=True) as conn:
        if fmt == "json":
            from ..export.report import report_json

            path = Path(output)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(report_json(conn, title=title, max_residual_panels=max_panels) + "\n")
        else:
            from ..export.report import write_report

            path = write_report(conn, output, title=title, png_dir=png_dir, max_residual_panels=max_panels)
    click.echo(str(path))
    if png_dir:
        click.echo(str(png_dir))
