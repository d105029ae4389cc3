"""``catdb report``: one self-contained HTML page about a night.

Sections: the exposure table with quality flags; zeropoint, FWHM and
background against time; the calibration diagnostics (zeropoint against time
per band and method, residuals against reference magnitude for every
calibrated exposure); the IQR box plots of the QA stages; the sky plot of
objects and candidate tracks; a cutout strip per candidate; the target's light
curve and periodogram; the filter-chain ledger; the stage runs.  Figures are
matplotlib PNGs embedded as base64, so the page is one file that opens
anywhere; ``write_report(..., png_dir=DIR)`` (``catdb report --png-dir DIR``)
also writes every PNG as a file.  A section whose stage has not run is one
line saying so.
"""
from __future__ import annotations

import base64
import contextvars
import html
import io
import json
import re
from pathlib import Path

import numpy as np

from ..schema.tables import QUALITY_FLAGS

#: PNGs of the report being written: {file name: bytes} (set by :func:`write_report`)
_SINK: contextvars.ContextVar = contextvars.ContextVar("report_pngs", default=None)

#: Most residual panels drawn (one per calibrated exposure); more exposures are sampled evenly in time
MAX_RESIDUAL_PANELS = 48


def _fig(figsize=(7.5, 3.2)):
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, dpi=100, layout="constrained")


def _png(fig, name=None) -> str:
    """The figure as a PNG data URI; recorded as ``name`` (.png) for ``--png-dir`` when given."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    _record(name, data)
    return "data:image/png;base64," + base64.b64encode(data).decode()


def _record(name, data: bytes):
    sink = _SINK.get()
    if sink is not None and name:
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        sink[name if name.endswith(".png") else name + ".png"] = data


def _note(text) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


def _not_run(stage, what) -> str:
    return _note(f"Stage {stage} has not run on this database: no {what} (catdb stage {stage}).")


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


def _reduction(meta) -> str:
    """One-cell summary of a reduced product's meta: which calibrations were applied."""
    if meta is None:
        return "raw (not reduced)"
    steps = ["bias"]
    dark = meta.get("dark")
    if isinstance(dark, dict):
        steps.append(f"dark ({dark.get('mode')})")
    flat = meta.get("flat_fielded", meta.get("flat") == "applied")
    if flat:
        steps.append("flat")
    return " + ".join(steps) + ("" if flat else "; NOT flat-fielded")


def exposure_section(conn) -> str:
    rows = conn.execute(
        """SELECT e.id, regexp_replace(e.path, '^.*/', ''), e.mjd_mid, e.band, e.exptime, e.airmass, e.fwhm,
                  e.bkg_median, (SELECT count(*) FROM detection d WHERE d.exposure_id = e.id),
                  z.zp, z.zp_err, z.n_used, e.quality_flags, r.meta
           FROM exposure e
           LEFT JOIN LATERAL (SELECT zp, zp_err, n_used FROM zeropoint z WHERE z.exposure_id = e.id
                              ORDER BY z.id DESC LIMIT 1) z ON true
           LEFT JOIN LATERAL (SELECT meta FROM image_product p WHERE p.exposure_id = e.id AND p.kind = 'reduced'
                              ORDER BY p.id DESC LIMIT 1) r ON true
           WHERE e.image_type = 'science' ORDER BY e.mjd_mid""").fetchall()
    out = [(*r[:12], _reduction(r[13]), _flags(r[12])) for r in rows]
    reduced = [r[13] for r in rows if r[13] is not None]
    n_noflat = sum(not m.get("flat_fielded", m.get("flat") == "applied") for m in reduced)
    note = ""
    if n_noflat:
        note = _note(f"{n_noflat} of {len(reduced)} reduced exposures are NOT flat-fielded (no flat in their "
                     f"filter): their photometry keeps the vignetting and dust pattern of the optics, so the "
                     f"zeropoints vary across the field (reduce stage meta 'flat').")
    n_left = sum(bool(r[12] & QUALITY_FLAGS["not_reduced"]) for r in rows)
    if n_left:
        note += _note(f"{n_left} science exposures were left out of the reduction (size or binning other than "
                      f"the night's science frames, e.g. focus subframes; quality flag not_reduced).")
    return note + _table(["id", "file", "MJD mid", "band", "exptime [s]", "airmass", "FWHM [\"]",
                          "bkg median [adu]", "detections", "zp [mag]", "zp err", "zp stars", "reduction",
                          "quality"], out, "exp")


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
    return _img(_png(fig, "timeseries"), "zeropoint, FWHM and background against time")


# ---------------------------------------------------------------------- calibration diagnostics
def _time_axis(mjd):
    """x values and label: hours since the first epoch within ~2 days, else MJD."""
    mjd = np.asarray(mjd, dtype=float)
    if not np.isfinite(mjd).any():
        return np.arange(mjd.size, dtype=float), "exposure (no time)"
    t0 = np.nanmin(mjd)
    if np.nanmax(mjd) - t0 < 2:
        return (mjd - t0) * 24, f"hours since MJD {t0:.4f}"
    return mjd, "MJD"


def _zeropoint_rows(conn):
    """Newest zeropoint per (exposure, band) of successful calibrate runs, in time order."""
    return conn.execute(
        """SELECT * FROM (SELECT DISTINCT ON (z.exposure_id, z.band) z.id, z.exposure_id, e.mjd_mid, z.band,
                  z.method, z.zp, z.zp_err, z.ok, e.quality_flags, regexp_replace(e.path, '^.*/', ''),
                  z.n_matched, z.n_used, z.color_term, z.color_index
           FROM zeropoint z JOIN exposure e ON e.id = z.exposure_id JOIN stage_run r ON r.id = z.stage_run_id
           WHERE r.status = 'ok' ORDER BY z.exposure_id, z.band, z.id DESC) s
           ORDER BY mjd_mid NULLS LAST, exposure_id, band""").fetchall()


def zeropoint_time_section(conn) -> str:
    """Zeropoint against time with error bars, one colour per band and method; flagged exposures marked."""
    if _latest_run(conn, "calibrate") is None:
        return _not_run("calibrate", "zeropoints")
    rows = _zeropoint_rows(conn)
    have = [r for r in rows if r[5] is not None]
    if not have:
        return _note(f"calibrate ran but gave no zeropoint ({len(rows)} exposures tried, all with too few stars).")
    mjd = np.array([np.nan if r[2] is None else r[2] for r in have], dtype=float)
    x, xlabel = _time_axis(mjd)
    zp = np.array([r[5] for r in have], dtype=float)
    err = np.array([np.nan if r[6] is None else r[6] for r in have], dtype=float)
    key = np.array([f"{r[3]} / {r[4]}" for r in have], dtype=object)
    flagged = np.array([bool(r[8]) for r in have])
    not_ok = ~np.array([bool(r[7]) for r in have])
    fig = _fig((7.5, 3.6))
    ax = fig.subplots()
    for k in sorted(set(key)):  # loop over band/method combinations
        m = key == k
        ax.errorbar(x[m], zp[m], yerr=np.nan_to_num(err[m]), fmt="o", ms=4, capsize=2, label=k)
    if not_ok.any():
        ax.plot(x[not_ok], zp[not_ok], "s", mfc="none", mec="k", ms=10, label="calibration not ok")
    if flagged.any():
        ax.plot(x[flagged], zp[flagged], "rx", ms=9, mew=1.5, label="flagged exposure")
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("zeropoint [mag]")
    ax.legend(fontsize=7, title="band / method", title_fontsize=7)
    missing = len(rows) - len(have)
    note = _note(f"{len(have)} zeropoints; {int(flagged.sum())} of their exposures flagged (any quality bit)"
                 + (f"; {missing} exposure{'s' if missing > 1 else ''} calibrated without a zeropoint (too few stars)"
                    if missing else "")
                 + ".")
    return _img(_png(fig, "zeropoint_time"), "zeropoint against time") + note


def _panel_residuals(method, zp, res):
    """(ref_mag, ref - calibrated) of the used stars, and of the rejected ones when stored.

    Constant-zeropoint methods (pp, relative, ensemble): ``ref - inst - zp``; the regression
    and colour-term fits: the stored residual (the fitted relation's).
    """
    out = []
    for part in (res, res.get("rejected") or {}):
        ref = np.array(part.get("ref_mag") or [], dtype=float)
        inst = np.array(part.get("inst_mag") or [], dtype=float)
        stored = np.array(part.get("residual") or [], dtype=float)
        if method in ("pp", "relative", "ensemble") and "color_term" not in res and inst.size == ref.size:
            y = ref - inst - zp
        else:
            y = stored
        n = min(ref.size, y.size)
        out.append((ref[:n], y[:n]))
    return out


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
    rows = [r for r in _zeropoint_rows(conn) if r[5] is not None]
    n_total = len(rows)
    if not rows:
        return None, [], 0, 0
    if n_total > max_panels:
        rows = [rows[i] for i in np.unique(np.linspace(0, n_total - 1, max_panels).round().astype(int))]
    res = dict(conn.execute("SELECT id, residuals FROM zeropoint WHERE id = ANY(%s)",
                            ([r[0] for r in rows],)).fetchall())
    data = []
    for r in rows:  # loop over panels (<= max_panels exposures)
        d = res.get(r[0]) or {}
        if r[12] is not None and np.isfinite(r[12]):
            d = {**d, "color_term": r[12]}
        data.append(_panel_residuals(r[4], r[5], d))
    all_y = np.concatenate([np.concatenate([u[1], r[1]]) for u, r in data])
    all_y = all_y[np.isfinite(all_y)]
    lim = float(np.clip(1.15 * np.percentile(np.abs(all_y), 98), 0.1, 1.0)) if all_y.size else 0.5
    ncols = min(6, len(rows))
    nrows = int(np.ceil(len(rows) / ncols))
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.15 * ncols + 0.6, 1.85 * nrows + 0.7), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True, squeeze=False)).ravel()
    n_rej = 0
    for i, (ax, r, ((xu, yu), (xr, yr))) in enumerate(zip(axes, rows, data)):  # loop over panels
        ax.axhline(0, color="k", lw=0.8)
        for xx, yy, colour, marker in ((xu, yu, "C0", "."), (xr, yr, "C3", "x")):
            if xx.size == 0:
                continue
            inside = np.abs(yy) <= lim
            ax.plot(xx[inside], yy[inside], marker, color=colour, ms=3.5, ls="none")
            for sgn, m in ((1, "^"), (-1, "v")):  # beyond the axis: a triangle at the edge
                out = ~inside & (np.sign(yy) == sgn)
                if out.any():
                    ax.plot(xx[out], np.full(out.sum(), sgn * lim * 0.96), m, color=colour, ms=3.5, ls="none")
        n_rej += xr.size
        rms = float(np.sqrt(np.nanmean(yu ** 2))) if yu.size else np.nan
        bad = (not r[7]) or bool(r[8])
        ax.set_title(f"#{r[1]} {r[3]} {r[4]}\nzp {r[5]:.3f}\u00b1{(r[6] or 0):.3f}"
                     + (f" rms {rms:.3f}" if np.isfinite(rms) else ""), fontsize=7, color="C3" if bad else "k")
        if xu.size == 0 and xr.size == 0:  # e.g. the reference exposure of a relative calibration
            ax.text(0.5, 0.72, str((res.get(r[0]) or {}).get("reason") or "no stars stored"), ha="center",
                    va="center", transform=ax.transAxes, fontsize=7, color="0.3",
                    bbox={"facecolor": "white", "edgecolor": "none"})
        ax.text(0.02, 0.03, f"{r[11]}/{r[10]} used", transform=ax.transAxes, fontsize=6, color="0.3")
        ax.tick_params(labelsize=6)
        if i % ncols == 0:
            ax.set_ylabel("ref \u2212 cal [mag]", fontsize=7)
        if i >= len(rows) - ncols:
            ax.set_xlabel("reference mag", fontsize=7)
    for ax in axes[len(rows):]:
        ax.set_visible(False)
    axes[0].set_ylim(-lim, lim)
    return fig, [int(r[1]) for r in rows], n_total, n_rej


def residuals_section(conn, max_panels: int = MAX_RESIDUAL_PANELS) -> str:
    if _latest_run(conn, "calibrate") is None:
        return _not_run("calibrate", "residuals")
    fig, shown, n_total, n_rej = residuals_figure(conn, max_panels)
    if fig is None:
        return _note("No exposure has a zeropoint: no residuals to plot.")
    text = (f"{len(shown)} panels, one per exposure with a zeropoint"
            + (f" (showing {len(shown)} of {n_total}, evenly spaced in time; the rest are in zeropoint.residuals)"
               if len(shown) < n_total else f" ({n_total} in all)")
            + ". Dots: stars used; x: rejected stars; triangles: beyond the axis. Red title: calibration not ok "
              "or exposure flagged.")
    if n_rej == 0:
        text += (" This calibrate run stored only the stars it used (zeropoint.residuals), so rejected stars are "
                 "counted in each panel (used/matched) but not drawn.")
    return (_img(_png(fig, "residuals"), "calibration residuals against reference magnitude")
            + f'<p class="note" data-panels="{len(shown)}">{html.escape(text)}</p>')


# ---------------------------------------------------------------------- QA box plots
_QA = {
    "qa-astrometry": [("astrom_sep_median", "median separation [arcsec]"),
                                  ("astrom_sep_scatter", "separation scatter [arcsec]"),
                                  ("astrom_offset_ra", "offset RA cos(dec) [arcsec]"),
                                  ("astrom_offset_dec", "offset Dec [arcsec]"),
                                  ("astrom_n_matched", "stars matched")],
    "qa-background": [("bkg_mean", "background mean [adu]"), ("bkg_median", "background median [adu]"),
                               ("bkg_std", "background std [adu]"), ("bkg_mad", "background MAD [adu]")],
}


def qa_boxplot_figure(conn, stage):
    """IQR box plots of one QA stage's metrics, one box per group (night), outliers marked.

    Boxes span Q1..Q3 with the median; whiskers reach the most extreme values inside the Tukey
    fences Q1 - k IQR and Q3 + k IQR (dashed red, ``k`` of the stage run, 1.5 by default;
    quartiles of :func:`catdb.algorithms.robust.iqr_bounds`, the rule of Automatic-SSOs).  Every
    exposure is a dot; values beyond a fence are orange and labelled with the exposure id; the
    exposures the stage flagged (``exposure_qa.is_outlier``) are red crosses, labelled.

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
    from ..algorithms.robust import iqr_bounds

    metrics = _QA[stage]
    rows = conn.execute(
        """SELECT q.exposure_id, q.metric, q.value, q.is_outlier, COALESCE(q.group_key, 'all'),
                  COALESCE((r.params->>'k')::float8, 1.5), q.stage_run_id
           FROM exposure_qa q JOIN stage_run r ON r.id = q.stage_run_id
           WHERE r.status = 'ok' AND r.stage = %s AND q.metric = ANY(%s)
           ORDER BY q.stage_run_id, q.exposure_id""", (stage, [m for m, _ in metrics])).fetchall()
    if not rows:
        return None, []
    eid = np.array([r[0] for r in rows], dtype=np.int64)
    metric = np.array([r[1] for r in rows], dtype=object)
    val = np.array([np.nan if r[2] is None else r[2] for r in rows], dtype=float)
    out = np.array([bool(r[3]) for r in rows])
    grp = np.array([str(r[4]) for r in rows], dtype=object)
    kk = np.array([r[5] for r in rows], dtype=float)
    present = [(m, lab) for m, lab in metrics if (metric == m).any()]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(max(2.3 * len(present), 6.0) + 0.4, 3.6), dpi=100, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(present), squeeze=False)).ravel()
    groups = sorted(set(grp.tolist()))
    for ax, (m, lab) in zip(axes, present):  # loop over metrics (<= 5)
        sel = (metric == m) & np.isfinite(val)
        stats, pos = [], []
        for j, g in enumerate(groups):  # loop over groups (nights)
            s = sel & (grp == g)
            if not s.any():
                continue
            v, k = val[s], float(kk[s][-1])  # k of the newest run in the group
            b = iqr_bounds(v, k=k)
            lo, hi = float(b.lower[0]), float(b.upper[0])
            inside = v[(v >= lo) & (v <= hi)]
            stats.append({"med": float(b.median[0]), "q1": float(b.q1[0]), "q3": float(b.q3[0]),
                          "whislo": float(inside.min()) if inside.size else float(b.q1[0]),
                          "whishi": float(inside.max()) if inside.size else float(b.q3[0]), "fliers": [],
                          "label": g})
            pos.append(j)
            ax.hlines([lo, hi], j - 0.4, j + 0.4, colors="C3", linestyles="--", lw=0.9)
            jit = j + np.linspace(-0.18, 0.18, v.size) if v.size > 1 else np.full(1, float(j))
            beyond = (v < lo) | (v > hi)
            flag = out[s]
            ax.plot(jit[~beyond & ~flag], v[~beyond & ~flag], "o", ms=3, color="0.35", alpha=0.8)
            ax.plot(jit[beyond & ~flag], v[beyond & ~flag], "o", ms=4.5, color="C1")
            ax.plot(jit[flag], v[flag], "x", ms=8, mew=2, color="C3")
            for xx, yy, e in zip(jit[beyond | flag], v[beyond | flag], eid[s][beyond | flag]):
                ax.annotate(str(e), (xx, yy), xytext=(4, 2), textcoords="offset points", fontsize=7,
                            color="C3")
        if stats:
            ax.bxp(stats, positions=pos, widths=0.6, showfliers=False,
                   medianprops={"color": "C0"}, boxprops={"color": "0.2"})
        ax.set_title(lab, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.tick_params(axis="x", rotation=30)
        ax.set_xlim(-0.7, len(groups) - 0.3)
    where = f"night {groups[0]}" if len(groups) == 1 else f"{len(groups)} nights/groups"
    fig.suptitle(f"{stage}, one box per night or group ({where}); dashed red: fences Q1 \u2212 k IQR and "
                 f"\nQ3 + k IQR (k = {kk[-1]:g}); orange: beyond a fence; red x: flagged by the stage", fontsize=9)
    return fig, sorted({int(e) for e in eid[out]})


def qa_section(conn) -> str:
    parts = []
    for stage in _QA:
        if _latest_run(conn, stage) is None:
            parts.append(_not_run(stage, "box plots of its metrics"))
            continue
        fig, flagged = qa_boxplot_figure(conn, stage)
        if fig is None:
            parts.append(_note(f"{stage} ran but wrote no metrics."))
            continue
        name = stage.replace("-", "_") + "_boxplots"
        parts.append(f"<h3>{html.escape(stage)}</h3>" + _img(_png(fig, name), f"{stage} box plots")
                     + _note(f"Flagged as outliers by {stage}: "
                             + (", ".join(f"exposure {e}" for e in flagged) if flagged else "none") + "."))
    return "\n".join(parts)


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
    return _img(_png(fig, "sky"), "sky plot of objects and candidate tracks")


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
    from ..algorithms.cutout import cutouts

    rows = conn.execute(
        """SELECT d.ra, d.dec, e.mjd_mid, COALESCE(p.path, e.path), COALESCE(p.hdu, e.hdu)
           FROM track_detection td JOIN detection d ON d.id = td.detection_id
           JOIN exposure e ON e.id = d.exposure_id
           LEFT JOIN LATERAL (SELECT path, hdu FROM image_product ip WHERE ip.exposure_id = e.id
                              AND ip.kind = 'reduced' ORDER BY ip.id DESC LIMIT 1) p ON true
           WHERE td.track_id = %s ORDER BY e.mjd_mid""", (int(track_id),)).fetchall()
    if len(rows) > max_epochs:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_epochs).astype(int)]
    stamps, labels = [], []
    for ra, dec, mjd, path, hdu in rows:                       # loop over epochs (image files)
        if not path or not Path(path).exists():
            continue
        if centre is not None:
            ra, dec = centre
        try:
            stamps.append(cutouts(path, [ra], [dec], size_arcsec)[0])
        except Exception:  # noqa: BLE001 - a missing/unreadable image only loses its stamp
            continue
        labels.append(f"{mjd:.4f}")
    return stamps, labels


def strip_png_bytes(stamps, labels, title) -> bytes:
    """:func:`catdb.algorithms.cutout.cutout_strip_png` of the stamps, as PNG bytes."""
    import tempfile

    from ..algorithms.cutout import cutout_strip_png

    with tempfile.NamedTemporaryFile(suffix=".png") as f:
        cutout_strip_png(stamps, f.name, labels=labels, title=title)
        return Path(f.name).read_bytes()


def candidates_section(conn, max_epochs: int = 8, size_arcsec: float = 30.0, report_dir=None) -> str:
    from ..review import LATEST_SQL, review_counts

    tracks = conn.execute(
        f"""SELECT t.id, t.n_detections, t.rate, t.rate_ra, t.rate_dec, t.pa, t.rms, t.mean_mag, t.designation,
                  t.skybot_name, r.decision, r.reviewer, to_char(r.decided_at AT TIME ZONE 'UTC',
                  'YYYY-MM-DD HH24:MI"Z"'), r.comment
           FROM track t LEFT JOIN ({LATEST_SQL}) r ON r.track_id = t.id
           WHERE t.status = 'candidate' ORDER BY t.mean_mag NULLS LAST, t.id""").fetchall()
    if not tracks:
        return "<p>No moving-object candidates.</p>"
    rc = review_counts(conn)
    review = (f"<p>Review (catdb serve, /review): {rc['reviewed']} of {rc['tracks']} candidates reviewed: "
              f"{rc['real']} real, {rc['known']} known, {rc['artefact']} artefact; the MPC/ADES exports take "
              "the real and known ones.</p>")
    parts = [review, _table(["track", "n", "rate [\"/h]", "rate RA cos(dec) [\"/h]", "rate Dec [\"/h]", "PA [deg]",
                             "rms [\"]", "mean mag", "designation", "SkyBoT", "decision", "by", "when (UTC)",
                             "comment"], tracks)]
    try:
        from ..algorithms.cutout import cutouts  # noqa: F401 - matplotlib/astropy present
    except ImportError:  # pragma: no cover
        return "\n".join(parts)
    for t in tracks:
        stamps, labels = track_stamps(conn, t[0], max_epochs=max_epochs, size_arcsec=size_arcsec)
        links = cutout_links(t[0], report_dir)
        if not stamps:
            if links:
                parts.append(f"<h3>Track {t[0]}</h3>" + links)
            continue
        data = strip_png_bytes(stamps, labels, f"track {t[0]}")
        _record(f"cutouts_track{t[0]}", data)
        src = "data:image/png;base64," + base64.b64encode(data).decode()
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
        parts.append(_img(_png(fig, "lightcurve"), "light curve and periodogram"))
    return "\n".join(parts)


def coadd_section(conn) -> str:
    """The latest coadd (a thumbnail, its inputs) and the RMS-vs-magnitude diagram of the forced
    photometry of its objects on the single exposures."""
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval

    from .diagnostics import latest_coadd, rms_vs_mag_figure

    co = latest_coadd(conn)
    if co is None:
        return _note("No coadd in this database (catdb stage coadd --param detect=true stacks the unflagged "
                     "reduced exposures and detects objects on the stack).")
    path, n_in, run = co["path"], co["n_inputs"], co["run_id"]
    parts = [_note(f"{path}: {n_in} exposures stacked (band {co['band']}, stage run {run}); "
                   f"{co['n_objects']} coadd objects detected on it.")]
    try:
        data, header = fits.getdata(path, header=True)
    except OSError as e:
        parts.append(_note(f"coadd image not readable here: {e}"))
    else:
        from astropy.wcs import WCS

        step = max(1, max(data.shape) // 800)
        img = data[::step, ::step].astype(float)
        lo, hi = ZScaleInterval().get_limits(img[np.isfinite(img)])
        fig = _fig((6, 6))
        ax = fig.add_subplot()
        ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi)
        radec = np.array(conn.execute("SELECT ra, dec FROM object WHERE kind = 'coadd' AND stage_run_id = %s",
                                      (run,)).fetchall(), dtype=float).reshape(-1, 2)
        if len(radec):
            x, y = WCS(header).all_world2pix(radec[:, 0], radec[:, 1], 0)
            ax.scatter(x / step, y / step, s=8, facecolors="none", edgecolors="tab:orange", lw=0.5)
        ax.set_title(f"coadd of {n_in} exposures (zscale)")
        ax.set_axis_off()
        parts.append(_img(_png(fig, "coadd"), "coadd image"))
    st = co["stats"]
    if co["note"]:
        parts.append(_note(co["note"]))
    elif st is not None:
        parts.append(_note(
            f"Forced photometry of {co['n_forced']} coadd objects on {st.meta.get('n_exposures')} exposures: "
            f"{len(st)} light curves with >= 5 unflagged calibrated points; median RMS "
            f"{np.median(st['rms']):.3f} mag for a median expected error {np.median(st['median_err']):.3f} mag."))
        parts.append(_img(_png(rms_vs_mag_figure(st), "rms_vs_mag"), "RMS against magnitude"))
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
p.note { font-size: 13px; color: #555; margin: 0.3em 0; }
"""


def write_report(conn, path, title: str | None = None, png_dir=None,
                 max_residual_panels: int = MAX_RESIDUAL_PANELS) -> Path:
    """Write the HTML report of the database's contents.

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or Path
        Output ``.html`` file (parent directories are created).
    title : str, optional
    png_dir : str or Path, optional
        Also write every figure as a PNG file in this directory (created): ``timeseries.png``,
        ``zeropoint_time.png``, ``residuals.png``, ``qa_astrometry_boxplots.png``,
        ``qa_background_boxplots.png``, ``sky.png``, ``cutouts_track<ID>.png``, ``lightcurve.png``,
        ``coadd.png``, ``rms_vs_mag.png``
        (those whose section has data).
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
    from ..errors import CatdbError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if png_dir is not None:
        png_dir = Path(png_dir)
        if png_dir.exists() and not png_dir.is_dir():
            raise CatdbError(f"--png-dir {png_dir}: exists and is not a directory")
    n = conn.execute("SELECT (SELECT count(*) FROM exposure WHERE image_type = 'science'), "
                     "(SELECT count(*) FROM detection), (SELECT count(*) FROM object), "
                     "(SELECT count(*) FROM track WHERE status = 'candidate')").fetchone()
    night = conn.execute("SELECT min(object), min(mjd_mid), max(mjd_mid) FROM exposure "
                         "WHERE image_type = 'science'").fetchone()
    title = title or f"catdb night report: {night[0] or ''}"
    sections = [
        ("Exposures", exposure_section),
        ("Zeropoint, seeing and background against time", timeseries_section),
        ("Photometric zeropoints against time", zeropoint_time_section),
        ("Calibration residuals per exposure", lambda c: residuals_section(c, max_residual_panels)),
        ("Quality control: IQR box plots", qa_section),
        ("Sky: objects and candidate tracks", sky_section),
        ("Moving-object candidates", lambda c: candidates_section(c, report_dir=path.parent)),
        ("Target light curve", lightcurve_section),
        ("Coadd and forced photometry of its objects", coadd_section),
        ("Filter-chain ledger", ledger_section),
        ("Stage runs (provenance)", runs_section),
    ]
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>{n[0]} science exposures, {n[1]} detections, {n[2]} objects, {n[3]} moving-object candidates"
            + (f"; MJD {night[1]:.5f} to {night[2]:.5f}" if night[1] else "") + ".</p>"]
    pngs: dict = {}
    token = _SINK.set(pngs)
    try:
        for head, fn in sections:
            try:
                content = fn(conn)
            except Exception as e:  # noqa: BLE001 - one failing section must not hide the rest
                conn.rollback()
                content = (f"<p class='err'>section failed: {html.escape(type(e).__name__)}: "
                           f"{html.escape(str(e))}</p>")
            body.append(f"<h2>{html.escape(head)}</h2>\n{content}")
    finally:
        _SINK.reset(token)
    doc = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    path.write_text(doc)
    if png_dir is not None:
        png_dir.mkdir(parents=True, exist_ok=True)
        for name, data in pngs.items():
            (png_dir / name).write_bytes(data)
    return path


def report_json(conn) -> str:  # pragma: no cover - convenience for notebooks
    return json.dumps(conn.execute("SELECT count(*) FROM exposure").fetchone())
