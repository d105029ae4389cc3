"""``catdb report``: one self-contained HTML page about a night.

Sections: the exposure table with quality flags; zeropoint, FWHM and background against time;
the calibration diagnostics (zeropoint against time per band and method, residuals against
reference magnitude for every calibrated exposure); the IQR box plots of the QA stages; the sky
plot of objects and candidate tracks; a cutout strip per candidate; the target's light curve and
periodogram; the coadd; the filter-chain ledger; the stage runs.  A section whose stage has not
run is one line saying so.

Three parts: the content as data (:func:`catdb.export.report_data.report_data`, also written by
``catdb report --format json``), the figures drawn from it (:mod:`catdb.export.figures`,
matplotlib PNGs embedded as base64 so the page is one file that opens anywhere;
``write_report(..., png_dir=DIR)`` also writes each as a file), and the Jinja2 template
``templates/report.html.j2`` (autoescaped).  The report reads in a savepoint of the caller's
transaction (or a transaction of its own) and never commits or rolls back the caller's work.
"""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ..errors import CatdbError
from . import figures
from . import report_data as rd
from .report_data import MAX_RESIDUAL_PANELS, report_data

__all__ = ["MAX_RESIDUAL_PANELS", "candidates_section", "qa_boxplot_figure", "render_html", "report_data",
           "report_json", "residuals_figure", "strip_png_bytes", "track_stamps", "write_report"]

strip_png_bytes = figures.strip_png_bytes


def _cell(v) -> str:
    """A table cell's text: unknown (None) empty, floats to 6 significant digits (MJD keeps 5 decimals)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e4 else f"{v:.10g}"
    return str(v)


def _environment():
    env = Environment(loader=PackageLoader("catdb.export", "templates"),
                      autoescape=select_autoescape(["html", "j2"], default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=False)
    env.filters["cell"] = _cell
    return env


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) + ".png"


def draw_figures(sections) -> tuple[dict, dict]:
    """Draw every figure block of the report's sections.

    Returns
    -------
    figs : dict
        Block name -> ``{"src": data URI}``, ``{"error": text}`` (drawing failed, e.g. an image
        file not readable here), or ``{}`` (nothing to draw).
    pngs : dict
        PNG file name -> bytes of the figures drawn.
    """
    figs, pngs = {}, {}
    for s in sections:  # loop over sections and their figure blocks (a dozen or so)
        for b in s["blocks"]:
            if b["type"] != "figure":
                continue
            try:
                data = figures.render(b["kind"], b["data"])
            except Exception as e:  # noqa: BLE001 - a figure that cannot be drawn leaves a note
                figs[b["name"]] = {"error": f"{type(e).__name__}: {e}"}
                continue
            if data is None:
                figs[b["name"]] = {}
                continue
            pngs[_file_name(b["name"])] = data
            figs[b["name"]] = {"src": "data:image/png;base64," + base64.b64encode(data).decode()}
    return figs, pngs


def render_html(data: dict) -> tuple[str, dict]:
    """The HTML page of :func:`report_data`'s content.

    Returns
    -------
    html : str
    pngs : dict
        PNG file name -> bytes of every figure on the page.
    """
    figs, pngs = draw_figures(data["sections"])
    page = _environment().get_template("report.html.j2").render(**data, figs=figs)
    return page, pngs


def write_report(conn, path, title: str | None = None, png_dir=None,
                 max_residual_panels: int = MAX_RESIDUAL_PANELS) -> Path:
    """Write the HTML report of the database's contents.

    Parameters
    ----------
    conn : psycopg.Connection
        Read in a savepoint of its open transaction (or a transaction of its own); the caller's
        transaction is neither committed nor rolled back.
    path : str or Path
        Output ``.html`` file (parent directories are created).
    title : str, optional
    png_dir : str or Path, optional
        Also write every figure as a PNG file in this directory (created): ``timeseries.png``,
        ``zeropoint_time.png``, ``residuals.png``, ``qa_astrometry_boxplots.png``,
        ``qa_background_boxplots.png``, ``sky.png``, ``cutouts_track<ID>.png``, ``lightcurve.png``,
        ``coadd.png``, ``rms_vs_mag.png`` (those whose section has data).
    max_residual_panels : int
        Most per-exposure residual panels (more exposures are sampled evenly in time).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    catdb.errors.CatdbError
        If ``png_dir`` exists and is not a directory.
    """
    path = Path(path)
    if png_dir is not None:
        png_dir = Path(png_dir)
        if png_dir.exists() and not png_dir.is_dir():
            raise CatdbError(f"--png-dir {png_dir}: exists and is not a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = report_data(conn, title=title, max_residual_panels=max_residual_panels, report_dir=path.parent)
    page, pngs = render_html(data)
    path.write_text(page)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for name, png in pngs.items():
            (png_dir / name).write_bytes(png)
    return path


def report_json(conn, *, title: str | None = None, max_residual_panels: int = MAX_RESIDUAL_PANELS,
                indent: int | None = 1) -> str:
    """:func:`report_data` as JSON text (``catdb report --format json``)."""
    return json.dumps(report_data(conn, title=title, max_residual_panels=max_residual_panels), indent=indent,
                      allow_nan=False)


# ---------------------------------------------------------------------- pieces used elsewhere
def residuals_figure(conn, max_panels: int = MAX_RESIDUAL_PANELS):
    """Small multiples of (reference - calibrated) against reference magnitude, one per exposure.

    Parameters
    ----------
    conn : psycopg.Connection
    max_panels : int
        Most panels; more calibrated exposures are sampled evenly in time.

    Returns
    -------
    fig : matplotlib.figure.Figure or None
        None when no exposure has a zeropoint.
    shown : list of int
        Exposure ids of the panels, in panel order (time).
    n_total : int
        Exposures (and bands) with a zeropoint.
    n_rejected_drawn : int
        Rejected stars drawn (0 when the calibrate run stored only the stars used).
    """
    d = rd.residuals_data(conn, max_panels)
    if d is None:
        return None, [], 0, 0
    return figures.residuals(d), [p["exposure_id"] for p in d["panels"]], d["n_total"], d["n_rejected"]


def qa_boxplot_figure(conn, stage):
    """IQR box plots of one QA stage's metrics (:func:`catdb.export.figures.qa_boxplots`).

    Parameters
    ----------
    conn : psycopg.Connection
    stage : {'qa-astrometry', 'qa-background'}

    Returns
    -------
    fig : matplotlib.figure.Figure or None
        None when the stage wrote no rows.
    flagged : list of int
        Exposure ids the stage flagged as outliers.
    """
    d = rd.qa_data(conn, stage)
    if d is None:
        return None, []
    return figures.qa_boxplots(d), d["flagged"]


def track_stamps(conn, track_id: int, *, max_epochs: int = 8, size_arcsec: float = 30.0, centre=None):
    """Stamps of a track's images, one per epoch (at most ``max_epochs``, spread evenly in time).

    Each stamp is :func:`catdb.algorithms.cutout.cutouts` of the exposure's latest ``reduced``
    image product (else the exposure's own file), centred on the track's detection on it
    (the candidate stays in the middle, the stars move: the report's strip), or on the fixed
    sky position ``centre`` (the stars stay, the candidate moves: the review page's blink).
    Images missing or unreadable lose their stamp.

    Parameters
    ----------
    conn : psycopg.Connection
    track_id : int
    max_epochs : int
    size_arcsec : float
        Side of the square stamps [arcsec].
    centre : (float, float), optional
        ICRS RA, Dec [deg] of every stamp's centre.

    Returns
    -------
    stamps : list of ndarray, each shape (s, s)
    labels : list of str
        The epochs' MJD (4 decimals).
    """
    return figures.stamps(rd.track_epochs(conn, track_id, max_epochs), size_arcsec, centre)


def candidates_section(conn, max_epochs: int = 8, size_arcsec: float = 30.0, report_dir=None) -> str:
    """The "Moving-object candidates" section as HTML (its table, review counts and cutout strips)."""
    blocks = rd.candidates(conn, max_epochs=max_epochs, size_arcsec=size_arcsec, report_dir=report_dir)
    section = [{"key": "candidates", "title": "Moving-object candidates", "blocks": rd.plain(blocks)}]
    figs, _ = draw_figures(section)
    macro = _environment().get_template("blocks.html.j2").module.render_blocks
    return str(macro(section[0]["blocks"], figs))
