"""``catdb report``: one self-contained HTML page about a night.

Sections: the exposure table with quality flags; zeropoint, FWHM and
background against time; the sky plot of objects and candidate tracks; a
cutout strip per candidate; the target's light curve and periodogram; the
filter-chain ledger; the stage runs.  Figures are matplotlib PNGs embedded as
base64, so the page is one file that opens anywhere.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from ..schema.tables import QUALITY_FLAGS


def _fig():
    from matplotlib.figure import Figure

    return Figure(figsize=(7.5, 3.2), dpi=100, layout="constrained")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _img(src, alt):
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def _table(header, rows, cls="") -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        if not np.isfinite(v):
            return ""
        return f"{v:.6g}" if abs(v) < 1e4 else f"{v:.10g}"  # MJD keeps 5 decimals
    return html.escape(str(v))


def _flags(q: int) -> str:
    return ", ".join(k for k, b in QUALITY_FLAGS.items() if q & b) or "ok"


def _latest_run(conn, stage):
    r = conn.execute("SELECT id FROM stage_run WHERE stage = %s AND status = 'ok' ORDER BY id DESC LIMIT 1",
                     (stage,)).fetchone()
    return r[0] if r else None


def exposure_section(conn) -> str:
    rows = conn.execute(
        """SELECT e.id, regexp_replace(e.path, '^.*/', ''), e.mjd_mid, e.band, e.exptime, e.airmass, e.fwhm,
                  e.bkg_median, (SELECT count(*) FROM detection d WHERE d.exposure_id = e.id),
                  z.zp, z.zp_err, z.n_used, e.quality_flags
           FROM exposure e
           LEFT JOIN LATERAL (SELECT zp, zp_err, n_used FROM zeropoint z WHERE z.exposure_id = e.id
                              ORDER BY z.id DESC LIMIT 1) z ON true
           WHERE e.image_type = 'science' ORDER BY e.mjd_mid""").fetchall()
    out = [(*r[:12], _flags(r[12])) for r in rows]
    return _table(["id", "file", "MJD mid", "band", "exptime [s]", "airmass", "FWHM [\"]", "bkg median [adu]",
                   "detections", "zp [mag]", "zp err", "zp stars", "quality"], out, "exp")


def timeseries_section(conn) -> str:
    rows = conn.execute(
        """SELECT e.mjd_mid, z.zp, z.zp_err, COALESCE(s.fwhm_median, e.fwhm), e.bkg_median, e.quality_flags
           FROM exposure e
           LEFT JOIN LATERAL (SELECT zp, zp_err FROM zeropoint z WHERE z.exposure_id = e.id AND z.ok
                              ORDER BY z.id DESC LIMIT 1) z ON true
           LEFT JOIN exposure_summary s ON s.exposure_id = e.id
           WHERE e.image_type = 'science' AND e.mjd_mid IS NOT NULL ORDER BY e.mjd_mid""").fetchall()
    if not rows:
        return "<p>No science exposures.</p>"
    a = np.array([[np.nan if v is None else float(v) for v in r] for r in rows])
    t_h = (a[:, 0] - np.nanmin(a[:, 0])) * 24
    bad = a[:, 5] > 0
    fig = _fig()
    axes = fig.subplots(1, 3)
    for ax, col, lab in zip(axes, (1, 3, 4), ("zeropoint [mag]", "FWHM [arcsec]", "background median [adu]")):
        y = a[:, col]
        if col == 1:
            ax.errorbar(t_h, y, yerr=a[:, 2], fmt="o", ms=3)
            ax.invert_yaxis()
        else:
            ax.plot(t_h, y, "o", ms=3)
        ax.plot(t_h[bad], y[bad], "rx", ms=8, label="flagged")
        ax.set_xlabel(f"hours since MJD {np.nanmin(a[:, 0]):.4f}")
        ax.set_ylabel(lab)
    if bad.any():
        axes[0].legend(fontsize=7)
    return _img(_png(fig), "zeropoint, FWHM and background against time")


def sky_section(conn) -> str:
    obj = np.array(conn.execute("SELECT ra, dec FROM object WHERE kind <> 'moving'").fetchall(), dtype=float)
    tr = conn.execute(
        """SELECT t.id, d.ra, d.dec FROM track t JOIN track_detection td ON td.track_id = t.id
           JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
           WHERE t.status = 'candidate' ORDER BY t.id, e.mjd_mid""").fetchall()
    if len(obj) == 0 and not tr:
        return "<p>No objects or tracks yet (run associate and movers).</p>"
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6), dpi=100, layout="constrained")
    ax = fig.subplots()
    if len(obj):
        ax.plot(obj[:, 0], obj[:, 1], ".", ms=1.5, color="0.6", label=f"{len(obj)} objects")
    ids = sorted({r[0] for r in tr})
    for tid in ids:
        p = np.array([(r[1], r[2]) for r in tr if r[0] == tid])
        ax.plot(p[:, 0], p[:, 1], "-o", ms=3, label=f"track {tid}")
        ax.annotate(str(tid), p[0], fontsize=8)
    ax.invert_xaxis()
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_aspect(1 / np.cos(np.deg2rad(np.nanmedian(obj[:, 1]) if len(obj) else 0)))
    ax.legend(fontsize=7, markerscale=3)
    return _img(_png(fig), "sky plot of objects and candidate tracks")


def cutout_links(track_id, report_dir) -> str:
    """Links to the FITS cutouts and PNG strip that ``catdb cutouts -o <report dir>/cutouts`` wrote
    for a track (``cutouts/track<ID>/``, relative to the report), or '' when there are none."""
    if report_dir is None:
        return ""
    d = Path(report_dir) / "cutouts" / f"track{int(track_id)}"
    files = sorted(d.glob(f"track{int(track_id)}_*.fits")) if d.is_dir() else []
    strip = d / f"track{int(track_id)}_strip.png"
    if not files and not strip.is_file():
        return ""
    rel = f"cutouts/track{int(track_id)}"
    links = [f'<a href="{html.escape(rel)}/{html.escape(f.name)}">{i}</a>' for i, f in enumerate(files, 1)]
    out = f'<p class="cutouts">Cutouts (FITS with WCS, by epoch): {" ".join(links)}'
    if strip.is_file():
        out += f' &middot; <a href="{html.escape(rel)}/{html.escape(strip.name)}">PNG strip</a>'
    return out + "</p>"


def candidates_section(conn, max_epochs: int = 8, size_arcsec: float = 30.0, report_dir=None) -> str:
    tracks = conn.execute(
        """SELECT id, n_detections, rate, rate_ra, rate_dec, pa, rms, mean_mag, designation, skybot_name
           FROM track WHERE status = 'candidate' ORDER BY mean_mag NULLS LAST, id""").fetchall()
    if not tracks:
        return "<p>No moving-object candidates.</p>"
    parts = [_table(["track", "n", "rate [\"/h]", "rate RA cos(dec) [\"/h]", "rate Dec [\"/h]", "PA [deg]",
                     "rms [\"]", "mean mag", "designation", "SkyBoT"], tracks)]
    try:
        from ..algorithms.cutout import cutout_strip_png, cutouts
    except ImportError:  # pragma: no cover
        return parts[0]
    import tempfile

    for t in tracks:
        rows = conn.execute(
            """SELECT d.ra, d.dec, e.mjd_mid, COALESCE(p.path, e.path), COALESCE(p.hdu, e.hdu)
               FROM track_detection td JOIN detection d ON d.id = td.detection_id
               JOIN exposure e ON e.id = d.exposure_id
               LEFT JOIN LATERAL (SELECT path, hdu FROM image_product ip WHERE ip.exposure_id = e.id
                                  AND ip.kind = 'reduced' ORDER BY ip.id DESC LIMIT 1) p ON true
               WHERE td.track_id = %s ORDER BY e.mjd_mid""", (t[0],)).fetchall()
        if len(rows) > max_epochs:
            rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_epochs).astype(int)]
        stamps, labels = [], []
        for ra, dec, mjd, path, hdu in rows:
            if not path or not Path(path).exists():
                continue
            try:
                stamps.append(cutouts(path, [ra], [dec], size_arcsec)[0])
            except Exception:  # noqa: BLE001 - a missing/unreadable image only loses its stamp
                continue
            labels.append(f"{mjd:.4f}")
        links = cutout_links(t[0], report_dir)
        if not stamps:
            if links:
                parts.append(f"<h3>Track {t[0]}</h3>" + links)
            continue
        with tempfile.NamedTemporaryFile(suffix=".png") as f:
            cutout_strip_png(stamps, f.name, labels=labels, title=f"track {t[0]}")
            src = "data:image/png;base64," + base64.b64encode(Path(f.name).read_bytes()).decode()
        parts.append(f"<h3>Track {t[0]}</h3>" + _img(src, f"cutouts of track {t[0]}") + links)
    return "\n".join(parts)


def lightcurve_section(conn) -> str:
    rows = conn.execute(
        """SELECT id, track_id, object_id, n_points, period, period_err, rotation_period, amplitude, fap
           FROM lightcurve_period ORDER BY id DESC LIMIT 5""").fetchall()
    if not rows:
        return "<p>No light-curve periods yet (run the lightcurve stage).</p>"
    parts = [_table(["id", "track", "object", "points", "period [h]", "period err [h]", "rotation period [h]",
                     "amplitude [mag]", "FAP"], rows)]
    lc = rows[0]
    key, val = ("track_id", lc[1]) if lc[1] is not None else ("object_id", lc[2])
    pts = np.array(conn.execute(
        f"""SELECT e.mjd_mid, f.mag, f.mag_err FROM forced_source f JOIN exposure e ON e.id = f.exposure_id
            WHERE f.{key} = %s AND f.mag IS NOT NULL ORDER BY e.mjd_mid""", (val,)).fetchall(), dtype=float)
    if len(pts) >= 3 and lc[4]:
        fig = _fig()
        ax1, ax2 = fig.subplots(1, 2)
        t0 = pts[:, 0].min()
        ax1.errorbar((pts[:, 0] - t0) * 24, pts[:, 1], yerr=pts[:, 2], fmt="o", ms=3)
        ax1.invert_yaxis()
        ax1.set_xlabel(f"hours since MJD {t0:.4f}")
        ax1.set_ylabel("calibrated mag")
        from astropy.timeseries import LombScargle

        freq = np.linspace(0.5 / (np.ptp(pts[:, 0]) or 1), 200, 4000)  # cycles/day
        power = LombScargle(pts[:, 0], pts[:, 1], pts[:, 2]).power(freq)
        ax2.plot(24 / freq, power)
        ax2.axvline(lc[4], color="r", ls="--", label=f"P = {lc[4]:.2f} h")
        ax2.set_xscale("log")
        ax2.set_xlabel("period [h]")
        ax2.set_ylabel("Lomb-Scargle power")
        ax2.legend(fontsize=7)
        parts.append(_img(_png(fig), "light curve and periodogram"))
    return "\n".join(parts)


def ledger_section(conn) -> str:
    rows = conn.execute(
        """SELECT r.stage, l.stage_run_id, l.step, l.filter, l.n_in, l.n_rejected, l.n_kept
           FROM ledger l JOIN stage_run r ON r.id = l.stage_run_id
           WHERE r.status = 'ok' ORDER BY l.stage_run_id DESC, l.step""").fetchall()
    if not rows:
        return "<p>No ledger rows.</p>"
    return _table(["stage", "run", "step", "filter", "in", "rejected", "kept"], rows)


def runs_section(conn) -> str:
    rows = conn.execute(
        """SELECT id, stage, status, input_count, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),
                  round(extract(epoch FROM finished_at - started_at)::numeric, 2), left(counts::text, 300),
                  left(error, 300)
           FROM stage_run ORDER BY id""").fetchall()
    return _table(["run", "stage", "status", "inputs", "started", "took [s]", "counts", "error"], rows, "runs")


CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; }
th { background: #f0f0f0; } td:nth-child(2) { text-align: left; }
table.runs td:nth-child(7) { text-align: left; max-width: 40em; overflow-wrap: anywhere; }
img { max-width: 100%; }
"""


def write_report(conn, path, title: str | None = None) -> Path:
    """Write the HTML report of the database's contents.

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or Path
        Output ``.html`` file (parent directories are created).
    title : str, optional

    Returns
    -------
    Path
        The file written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = conn.execute("SELECT (SELECT count(*) FROM exposure WHERE image_type = 'science'), "
                     "(SELECT count(*) FROM detection), (SELECT count(*) FROM object), "
                     "(SELECT count(*) FROM track WHERE status = 'candidate')").fetchone()
    night = conn.execute("SELECT min(object), min(mjd_mid), max(mjd_mid) FROM exposure "
                         "WHERE image_type = 'science'").fetchone()
    title = title or f"catdb night report: {night[0] or ''}"
    sections = [
        ("Exposures", exposure_section),
        ("Zeropoint, seeing and background against time", timeseries_section),
        ("Sky: objects and candidate tracks", sky_section),
        ("Moving-object candidates", lambda c: candidates_section(c, report_dir=path.parent)),
        ("Target light curve", lightcurve_section),
        ("Filter-chain ledger", ledger_section),
        ("Stage runs (provenance)", runs_section),
    ]
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{n[0]} science exposures, {n[1]} detections, {n[2]} objects, {n[3]} moving-object candidates"
            + (f"; MJD {night[1]:.5f} to {night[2]:.5f}" if night[1] else "") + ".</p>"]
    for head, fn in sections:
        try:
            content = fn(conn)
        except Exception as e:  # noqa: BLE001 - one failing section must not hide the rest
            conn.rollback()
            content = f"<p class='err'>section failed: {html.escape(type(e).__name__)}: {html.escape(str(e))}</p>"
        body.append(f"<h2>{html.escape(head)}</h2>\n{content}")
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path.write_text(doc)
    return path


def report_json(conn) -> str:  # pragma: no cover - convenience for notebooks
    return json.dumps(conn.execute("SELECT count(*) FROM exposure").fetchone())
