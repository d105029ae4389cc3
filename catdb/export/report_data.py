"""The night report's content as plain data: what ``catdb report`` shows, without the drawing.

:func:`report_data` reads the database (in a savepoint of the caller's transaction, or a
transaction of its own; it never commits or rolls back the caller's work) and returns a dict of
lists, strings and numbers that :func:`json.dumps` writes as it is (``catdb report --format
json``).  :mod:`catdb.export.figures` draws its figures and ``templates/report.html.j2`` renders
the page (:func:`catdb.export.report.write_report`).

Shape::

    {"title": str, "generated_by": "catdb <version>",
     "summary": {"n_exposures", "n_detections", "n_objects", "n_candidates", "mjd_first", "mjd_last"},
     "sections": [{"key": str, "title": str, "blocks": [block, ...]}, ...]}

A block is one of (in page order)::

    {"type": "note", "text": str[, "panels": int]}     small grey paragraph
    {"type": "text", "text": str}                       paragraph
    {"type": "heading", "text": str}                    sub-heading
    {"type": "table", "columns": [str], "rows": [[value]], "class": str}
    {"type": "figure", "kind": str, "name": str, "alt": str, "data": {...}}
    {"type": "links", "base": str, "fits": [str], "strip": str or null}
    {"type": "error", "text": str}                      the section failed (the others stand)

A figure block's ``data`` holds what :func:`catdb.export.figures.draw` needs for its ``kind``
(arrays as lists; a value that is not known is ``null``); ``name`` is its PNG file name
without ``.png`` (``catdb report --png-dir``).  Values the database does not have are ``null``,
never a number that looks real.
"""
from __future__ import annotations

import datetime as _dt
import decimal
import math
from pathlib import Path

import numpy as np
from psycopg import sql

from .._version import __version__
from ..review import LATEST_SQL, review_counts
from ..schema.tables import QUALITY_FLAGS
from .diagnostics import latest_coadd

#: Most residual panels drawn (one per calibrated exposure); more exposures are sampled evenly in time
MAX_RESIDUAL_PANELS = 48

#: QA stages with box plots: stage -> [(metric, axis label)]
QA_METRICS = {
    "qa-astrometry": [("astrom_sep_median", "median separation [arcsec]"),
                      ("astrom_sep_scatter", "separation scatter [arcsec]"),
                      ("astrom_offset_ra", "offset RA cos(dec) [arcsec]"),
                      ("astrom_offset_dec", "offset Dec [arcsec]"),
                      ("astrom_n_matched", "stars matched")],
    "qa-background": [("bkg_mean", "background mean [adu]"), ("bkg_median", "background median [adu]"),
                      ("bkg_std", "background std [adu]"), ("bkg_mad", "background MAD [adu]")],
}


# ---------------------------------------------------------------------- blocks
def note(text, **extra):
    return {"type": "note", "text": str(text), **extra}


def text(t):
    return {"type": "text", "text": str(t)}


def table(columns, rows, cls=""):
    return {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows], "class": cls}


def figure(kind, name, alt, data):
    return {"type": "figure", "kind": kind, "name": name, "alt": alt, "data": data}


def not_run(stage, what):
    return note(f"Stage {stage} has not run on this database: no {what} (catdb stage {stage}).")


def plain(v):
    """``v`` as JSON-ready data: numpy arrays/scalars as lists/numbers, non-finite floats and NaN as None,
    Decimal as float, dates as ISO text; dicts, lists and tuples recursively."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, np.ndarray):
        return plain(v.tolist())
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, decimal.Decimal):
        v = float(v)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()
    return v


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _flags(q: int) -> str:
    return ", ".join(k for k, b in QUALITY_FLAGS.items() if q & b) or "ok"


def _latest_run(conn, stage):
    r = conn.execute("SELECT id FROM stage_run WHERE stage = %s AND status = 'ok' ORDER BY id DESC LIMIT 1",
                     (stage,)).fetchone()
    return r[0] if r else None


def _flat_fielded(meta) -> bool:
    return bool(meta.get("flat_fielded", meta.get("flat") == "applied"))


def reduction_summary(meta) -> str:
    """One-cell summary of a reduced product's meta: which calibrations were applied."""
    if meta is None:
        return "raw (not reduced)"
    steps = ["bias"]
    dark = meta.get("dark")
    if isinstance(dark, dict):
        steps.append(f"dark ({dark.get('mode')})")
    flat = _flat_fielded(meta)
    if flat:
        steps.append("flat")
    return " + ".join(steps) + ("" if flat else "; NOT flat-fielded")


# ---------------------------------------------------------------------- sections
def exposures(conn):
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
    out = [(*r[:12], reduction_summary(r[13]), _flags(r[12])) for r in rows]
    reduced = [r[13] for r in rows if r[13] is not None]
    n_noflat = sum(not _flat_fielded(m) for m in reduced)
    blocks = []
    if n_noflat:
        blocks.append(note(f"{n_noflat} of {len(reduced)} reduced exposures are NOT flat-fielded (no flat in their "
                           f"filter): their photometry keeps the vignetting and dust pattern of the optics, so the "
                           f"zeropoints vary across the field (reduce stage meta 'flat')."))
    n_left = sum(bool(r[12] & QUALITY_FLAGS["not_reduced"]) for r in rows)
    if n_left:
        blocks.append(note(f"{n_left} science exposures were left out of the reduction (size or binning other than "
                           f"the night's science frames, e.g. focus subframes; quality flag not_reduced)."))
    blocks.append(table(["id", "file", "MJD mid", "band", "exptime [s]", "airmass", "FWHM [\"]",
                         "bkg median [adu]", "detections", "zp [mag]", "zp err", "zp stars", "reduction",
                         "quality"], out, "exp"))
    return blocks


def timeseries(conn):
    rows = conn.execute(
        """SELECT e.mjd_mid, z.zp, z.zp_err, COALESCE(s.fwhm_median, e.fwhm), e.bkg_median, e.quality_flags
           FROM exposure e
           LEFT JOIN LATERAL (SELECT zp, zp_err FROM zeropoint z WHERE z.exposure_id = e.id AND z.ok
                              ORDER BY z.id DESC LIMIT 1) z ON true
           LEFT JOIN exposure_summary s ON s.exposure_id = e.id
           WHERE e.image_type = 'science' AND e.mjd_mid IS NOT NULL ORDER BY e.mjd_mid""").fetchall()
    if not rows:
        return [text("No science exposures.")]
    cols = list(zip(*rows))
    data = {"mjd": cols[0], "zp": cols[1], "zp_err": cols[2], "fwhm": cols[3], "bkg_median": cols[4],
            "flagged": [bool(q) for q in cols[5]]}
    return [figure("timeseries", "timeseries", "zeropoint, FWHM and background against time", data)]


def zeropoint_rows(conn):
    """Newest zeropoint per (exposure, band) of successful calibrate runs, in time order.

    Columns: zeropoint id, exposure id, mjd_mid, band, method, zp, zp_err, ok, quality_flags,
    file name, n_matched, n_used, color_term, color_index.
    """
    return conn.execute(
        """SELECT * FROM (SELECT DISTINCT ON (z.exposure_id, z.band) z.id, z.exposure_id, e.mjd_mid, z.band,
                  z.method, z.zp, z.zp_err, z.ok, e.quality_flags, regexp_replace(e.path, '^.*/', ''),
                  z.n_matched, z.n_used, z.color_term, z.color_index
           FROM zeropoint z JOIN exposure e ON e.id = z.exposure_id JOIN stage_run r ON r.id = z.stage_run_id
           WHERE r.status = 'ok' ORDER BY z.exposure_id, z.band, z.id DESC) s
           ORDER BY mjd_mid NULLS LAST, exposure_id, band""").fetchall()


def zeropoints(conn):
    """Zeropoint against time with error bars, one colour per band and method; flagged exposures marked."""
    if _latest_run(conn, "calibrate") is None:
        return [not_run("calibrate", "zeropoints")]
    rows = zeropoint_rows(conn)
    have = [r for r in rows if r[5] is not None]
    if not have:
        return [note(f"calibrate ran but gave no zeropoint ({len(rows)} exposures tried, all with too few "
                     "stars).")]
    data = {"exposure_id": [r[1] for r in have], "mjd": [r[2] for r in have], "zp": [r[5] for r in have],
            "zp_err": [r[6] for r in have], "key": [f"{r[3]} / {r[4]}" for r in have],
            "flagged": [bool(r[8]) for r in have], "ok": [bool(r[7]) for r in have]}
    n_flagged = sum(data["flagged"])
    missing = len(rows) - len(have)
    return [figure("zeropoint_time", "zeropoint_time", "zeropoint against time", data),
            note(f"{len(have)} zeropoints; {n_flagged} of their exposures flagged (any quality bit)"
                 + (f"; {missing} exposure{'s' if missing > 1 else ''} calibrated without a zeropoint (too few "
                    "stars)" if missing else "") + ".")]


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


def residuals_data(conn, max_panels: int = MAX_RESIDUAL_PANELS) -> dict | None:
    """The residual panels: one per exposure (and band) with a zeropoint, at most ``max_panels``.

    Parameters
    ----------
    conn : psycopg.Connection
    max_panels : int
        Most panels; more calibrated exposures are sampled evenly in time.

    Returns
    -------
    dict or None
        None when no exposure has a zeropoint; else ``n_total`` (exposures with a zeropoint),
        ``n_rejected`` (rejected stars drawn: 0 when calibrate stored only the stars used) and
        ``panels``: one dict per panel in time order with ``exposure_id``, ``band``, ``method``,
        ``zp``, ``zp_err`` [mag], ``ok``, ``flagged``, ``n_matched``, ``n_used``, ``reason``
        (why no star is stored, or None), ``used`` and ``rejected`` (``{"ref_mag": [...],
        "residual": [...]}``, reference - calibrated [mag]).
    """
    rows = [r for r in zeropoint_rows(conn) if r[5] is not None]
    n_total = len(rows)
    if not rows:
        return None
    if n_total > max_panels:
        rows = [rows[i] for i in np.unique(np.linspace(0, n_total - 1, max_panels).round().astype(int))]
    res = dict(conn.execute("SELECT id, residuals FROM zeropoint WHERE id = ANY(%s)",
                            ([r[0] for r in rows],)).fetchall())
    panels, n_rej = [], 0
    for r in rows:  # loop over panels (<= max_panels exposures)
        d = res.get(r[0]) or {}
        if r[12] is not None and np.isfinite(r[12]):
            d = {**d, "color_term": r[12]}
        (xu, yu), (xr, yr) = _panel_residuals(r[4], r[5], d)
        n_rej += xr.size
        panels.append({"exposure_id": int(r[1]), "band": r[3], "method": r[4], "zp": r[5], "zp_err": r[6],
                       "ok": bool(r[7]), "flagged": bool(r[8]), "n_matched": r[10], "n_used": r[11],
                       "reason": (res.get(r[0]) or {}).get("reason"),
                       "used": {"ref_mag": xu, "residual": yu}, "rejected": {"ref_mag": xr, "residual": yr}})
    return plain({"n_total": n_total, "n_rejected": n_rej, "panels": panels})


def residuals(conn, max_panels: int = MAX_RESIDUAL_PANELS):
    if _latest_run(conn, "calibrate") is None:
        return [not_run("calibrate", "residuals")]
    data = residuals_data(conn, max_panels)
    if data is None:
        return [note("No exposure has a zeropoint: no residuals to plot.")]
    shown, n_total = len(data["panels"]), data["n_total"]
    t = (f"{shown} panels, one per exposure with a zeropoint"
         + (f" (showing {shown} of {n_total}, evenly spaced in time; the rest are in zeropoint.residuals)"
            if shown < n_total else f" ({n_total} in all)")
         + ". Dots: stars used; x: rejected stars; triangles: beyond the axis. Red title: calibration not ok "
           "or exposure flagged.")
    if data["n_rejected"] == 0:
        t += (" This calibrate run stored only the stars it used (zeropoint.residuals), so rejected stars are "
              "counted in each panel (used/matched) but not drawn.")
    return [figure("residuals", "residuals", "calibration residuals against reference magnitude", data),
            note(t, panels=shown)]


def qa_data(conn, stage) -> dict | None:
    """One QA stage's metric values for the box plots, or None when it wrote none.

    Returns
    -------
    dict or None
        ``stage``; ``metrics`` ([[metric, label]] of those present); per value (one row per
        exposure and metric of the stage's successful runs): ``exposure_id``, ``metric``,
        ``value``, ``is_outlier``, ``group`` (night, 'all' without one), ``k`` (the run's fence
        factor, 1.5 by default); ``flagged`` (exposure ids the stage flagged, sorted).
    """
    metrics = QA_METRICS[stage]
    rows = conn.execute(
        """SELECT q.exposure_id, q.metric, q.value, q.is_outlier, COALESCE(q.group_key, 'all'),
                  COALESCE((r.params->>'k')::float8, 1.5), q.stage_run_id
           FROM exposure_qa q JOIN stage_run r ON r.id = q.stage_run_id
           WHERE r.status = 'ok' AND r.stage = %s AND q.metric = ANY(%s)
           ORDER BY q.stage_run_id, q.exposure_id""", (stage, [m for m, _ in metrics])).fetchall()
    if not rows:
        return None
    cols = list(zip(*rows))
    present = {m for m in cols[1]}
    return plain({"stage": stage, "metrics": [[m, lab] for m, lab in metrics if m in present],
                  "exposure_id": cols[0], "metric": cols[1], "value": cols[2],
                  "is_outlier": [bool(v) for v in cols[3]], "group": [str(g) for g in cols[4]], "k": cols[5],
                  "flagged": sorted({int(e) for e, o in zip(cols[0], cols[3]) if o})})


def qa(conn):
    blocks = []
    for stage in QA_METRICS:
        if _latest_run(conn, stage) is None:
            blocks.append(not_run(stage, "box plots of its metrics"))
            continue
        data = qa_data(conn, stage)
        if data is None:
            blocks.append(note(f"{stage} ran but wrote no metrics."))
            continue
        flagged = data["flagged"]
        blocks += [{"type": "heading", "text": stage},
                   figure("qa_boxplots", stage.replace("-", "_") + "_boxplots", f"{stage} box plots", data),
                   note(f"Flagged as outliers by {stage}: "
                        + (", ".join(f"exposure {e}" for e in flagged) if flagged else "none") + ".")]
    return blocks


def sky(conn):
    obj = conn.execute("SELECT ra, dec FROM object WHERE kind <> 'moving'").fetchall()
    tr = conn.execute(
        """SELECT t.id, d.ra, d.dec FROM track t JOIN track_detection td ON td.track_id = t.id
           JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
           WHERE t.status = 'candidate' ORDER BY t.id, e.mjd_mid""").fetchall()
    if not obj and not tr:
        return [text("No objects or tracks yet (run associate and movers).")]
    tracks = {}
    for tid, ra, dec in tr:  # loop over track detections, grouping rows already ordered by track
        tracks.setdefault(int(tid), []).append([ra, dec])
    data = {"objects": [list(r) for r in obj], "tracks": [{"id": k, "radec": v} for k, v in tracks.items()]}
    return [figure("sky", "sky", "sky plot of objects and candidate tracks", plain(data))]


def cutout_links(track_id, report_dir) -> dict | None:
    """The FITS cutouts and PNG strip that ``catdb cutouts -o <report dir>/cutouts`` wrote for a track
    (``cutouts/track<ID>/``, relative to the report) as a links block, or None when there are none."""
    if report_dir is None:
        return None
    d = Path(report_dir) / "cutouts" / f"track{int(track_id)}"
    files = sorted(d.glob(f"track{int(track_id)}_*.fits")) if d.is_dir() else []
    strip = d / f"track{int(track_id)}_strip.png"
    if not files and not strip.is_file():
        return None
    return {"type": "links", "base": f"cutouts/track{int(track_id)}", "fits": [f.name for f in files],
            "strip": strip.name if strip.is_file() else None}


def track_epochs(conn, track_id: int, max_epochs: int = 8) -> list[dict]:
    """A track's detections with the image to cut each stamp from, at most ``max_epochs`` spread evenly in time.

    Returns
    -------
    list of dict
        ``ra``, ``dec`` [deg] of the detection, ``mjd``, ``path`` (the exposure's latest ``reduced``
        image product, else its own file), ``hdu`` (of that file) and ``wcs_header`` (the exposure's
        stored WCS cards, which stage ``solve`` may have replaced; None if empty), in time order.
    """
    rows = conn.execute(
        """SELECT d.ra, d.dec, e.mjd_mid, COALESCE(p.path, e.path),
                  CASE WHEN p.path IS NULL THEN e.hdu ELSE p.hdu END, e.wcs_header
           FROM track_detection td JOIN detection d ON d.id = td.detection_id
           JOIN exposure e ON e.id = d.exposure_id
           LEFT JOIN LATERAL (SELECT path, hdu FROM image_product ip WHERE ip.exposure_id = e.id
                              AND ip.kind = 'reduced' ORDER BY ip.id DESC LIMIT 1) p ON true
           WHERE td.track_id = %s ORDER BY e.mjd_mid""", (int(track_id),)).fetchall()
    if len(rows) > max_epochs:
        rows = [rows[i] for i in np.linspace(0, len(rows) - 1, max_epochs).astype(int)]
    return [{"ra": r[0], "dec": r[1], "mjd": r[2], "path": r[3], "hdu": r[4], "wcs_header": r[5] or None}
            for r in rows]


def candidates(conn, max_epochs: int = 8, size_arcsec: float = 30.0, report_dir=None):
    tracks = conn.execute(
        f"""SELECT t.id, t.n_detections, t.rate, t.rate_ra, t.rate_dec, t.pa, t.rms, t.mean_mag, t.designation,
                  t.skybot_name, r.decision, r.reviewer, to_char(r.decided_at AT TIME ZONE 'UTC',
                  'YYYY-MM-DD HH24:MI"Z"'), r.comment
           FROM track t LEFT JOIN ({LATEST_SQL}) r ON r.track_id = t.id
           WHERE t.status = 'candidate' ORDER BY t.mean_mag NULLS LAST, t.id""").fetchall()
    if not tracks:
        return [text("No moving-object candidates.")]
    rc = review_counts(conn)
    blocks = [text(f"Review (catdb serve, /review): {rc['reviewed']} of {rc['tracks']} candidates reviewed: "
                   f"{rc['real']} real, {rc['known']} known, {rc['artefact']} artefact; the MPC/ADES exports take "
                   "the real and known ones."),
              table(["track", "n", "rate [\"/h]", "rate RA cos(dec) [\"/h]", "rate Dec [\"/h]", "PA [deg]",
                     "rms [\"]", "mean mag", "designation", "SkyBoT", "decision", "by", "when (UTC)", "comment"],
                    tracks)]
    for t in tracks:  # loop over candidate tracks: one strip each
        epochs = [e for e in track_epochs(conn, t[0], max_epochs) if e["path"] and Path(e["path"]).exists()]
        links = cutout_links(t[0], report_dir)
        if not epochs and not links:
            continue
        blocks.append({"type": "heading", "text": f"Track {t[0]}"})
        if epochs:
            blocks.append(figure("cutout_strip", f"cutouts_track{t[0]}", f"cutouts of track {t[0]}",
                                 {"track_id": int(t[0]), "size_arcsec": size_arcsec, "epochs": epochs}))
        if links:
            blocks.append(links)
    return blocks


def lightcurve(conn):
    rows = conn.execute(
        """SELECT id, track_id, object_id, n_points, period, period_err, rotation_period, amplitude, fap
           FROM lightcurve_period ORDER BY id DESC LIMIT 5""").fetchall()
    if not rows:
        return [text("No light-curve periods yet (run the lightcurve stage).")]
    blocks = [table(["id", "track", "object", "points", "period [h]", "period err [h]", "rotation period [h]",
                     "amplitude [mag]", "FAP"], rows)]
    lc = rows[0]
    key = "track_id" if lc[1] is not None else "object_id"
    val = lc[1] if lc[1] is not None else lc[2]
    pts = conn.execute(
        sql.SQL("""SELECT e.mjd_mid, f.mag, f.mag_err FROM forced_source f JOIN exposure e ON e.id = f.exposure_id
                   WHERE f.{} = %s AND f.mag IS NOT NULL ORDER BY e.mjd_mid""").format(sql.Identifier(key)),
        (val,)).fetchall()
    if len(pts) >= 3 and lc[4]:
        cols = list(zip(*pts))
        blocks.append(figure("lightcurve", "lightcurve", "light curve and periodogram",
                             {key: val, "period": lc[4], "mjd": cols[0], "mag": cols[1], "mag_err": cols[2]}))
    return blocks


def coadd(conn):
    """The latest coadd (a thumbnail, its inputs) and the RMS-vs-magnitude diagram of the forced
    photometry of its objects on the single exposures."""
    co = latest_coadd(conn)
    if co is None:
        return [note("No coadd in this database (catdb stage coadd --param detect=true stacks the unflagged "
                     "reduced exposures and detects objects on the stack).")]
    path, n_in, run = co["path"], co["n_inputs"], co["run_id"]
    blocks = [note(f"{path}: {n_in} exposures stacked (band {co['band']}, stage run {run}); "
                   f"{co['n_objects']} coadd objects detected on it.")]
    radec = conn.execute("SELECT ra, dec FROM object WHERE kind = 'coadd' AND stage_run_id = %s", (run,)).fetchall()
    blocks.append(figure("coadd", "coadd", "coadd image", {"path": path, "n_inputs": n_in,
                                                            "objects": [list(r) for r in radec]}))
    st = co["stats"]
    if co["note"]:
        blocks.append(note(co["note"]))
    elif st is not None:
        blocks.append(note(
            f"Forced photometry of {co['n_forced']} coadd objects on {st.meta.get('n_exposures')} exposures: "
            f"{len(st)} light curves with >= 5 unflagged calibrated points; median RMS "
            f"{np.median(st['rms']):.3f} mag for a median expected error {np.median(st['median_err']):.3f} mag."))
        blocks.append(figure("rms_vs_mag", "rms_vs_mag", "RMS against magnitude",
                             {"n_exposures": st.meta.get("n_exposures"),
                              "columns": {c: np.asarray(st[c]) for c in st.colnames}}))
    return blocks


def ledger(conn):
    rows = conn.execute(
        """SELECT r.stage, l.stage_run_id, l.step, l.filter, l.n_in, l.n_rejected, l.n_kept
           FROM ledger l JOIN stage_run r ON r.id = l.stage_run_id
           WHERE r.status = 'ok' ORDER BY l.stage_run_id DESC, l.step""").fetchall()
    if not rows:
        return [text("No ledger rows.")]
    return [table(["stage", "run", "step", "filter", "in", "rejected", "kept"], rows)]


def runs(conn):
    rows = conn.execute(
        """SELECT id, stage, status, input_count, to_char(started_at, 'YYYY-MM-DD HH24:MI:SS'),
                  round(extract(epoch FROM finished_at - started_at)::numeric, 2), left(counts::text, 300),
                  left(error, 300)
           FROM stage_run ORDER BY id""").fetchall()
    return [table(["run", "stage", "status", "inputs", "started", "took [s]", "counts", "error"], rows, "runs")]


# ---------------------------------------------------------------------- the whole report
def sections(max_residual_panels: int = MAX_RESIDUAL_PANELS, report_dir=None):
    """The report's sections in page order: [(key, title, function of conn -> blocks)]."""
    return [
        ("exposures", "Exposures", exposures),
        ("timeseries", "Zeropoint, seeing and background against time", timeseries),
        ("zeropoints", "Photometric zeropoints against time", zeropoints),
        ("residuals", "Calibration residuals per exposure", lambda c: residuals(c, max_residual_panels)),
        ("qa", "Quality control: IQR box plots", qa),
        ("sky", "Sky: objects and candidate tracks", sky),
        ("candidates", "Moving-object candidates", lambda c: candidates(c, report_dir=report_dir)),
        ("lightcurve", "Target light curve", lightcurve),
        ("coadd", "Coadd and forced photometry of its objects", coadd),
        ("ledger", "Filter-chain ledger", ledger),
        ("runs", "Stage runs (provenance)", runs),
    ]


def report_data(conn, *, title: str | None = None, max_residual_panels: int = MAX_RESIDUAL_PANELS,
                report_dir=None) -> dict:
    """The report's content as JSON-serialisable data (see the module docstring for the shape).

    Reads in one snapshot: a savepoint inside the caller's open transaction (its uncommitted rows
    are seen, and neither committed nor rolled back), else a transaction of its own.  Each
    section reads in a savepoint of its own, so a failing section becomes an ``error`` block and
    the others stand.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in a failed transaction.
    title : str, optional
        Default ``catdb night report: <OBJECT of the science exposures>``.
    max_residual_panels : int
        Most per-exposure residual panels (more exposures are sampled evenly in time).
    report_dir : str or Path, optional
        Directory of the HTML page: cutouts that ``catdb cutouts`` wrote under it are linked.

    Returns
    -------
    dict
        ``title``, ``generated_by``, ``summary``, ``sections``.

    Raises
    ------
    psycopg.errors.InFailedSqlTransaction
        The caller's transaction has already failed.
    """
    with conn.transaction():
        n = conn.execute("SELECT (SELECT count(*) FROM exposure WHERE image_type = 'science'), "
                         "(SELECT count(*) FROM detection), (SELECT count(*) FROM object), "
                         "(SELECT count(*) FROM track WHERE status = 'candidate')").fetchone()
        night = conn.execute("SELECT min(object), min(mjd_mid), max(mjd_mid) FROM exposure "
                             "WHERE image_type = 'science'").fetchone()
        out = []
        for key, head, fn in sections(max_residual_panels, report_dir):
            try:
                with conn.transaction():
                    blocks = fn(conn)
            except Exception as e:  # noqa: BLE001 - one failing section must not hide the rest
                blocks = [{"type": "error", "text": f"section failed: {type(e).__name__}: {e}"}]
            out.append({"key": key, "title": head, "blocks": blocks})
    return plain({"title": title or f"catdb night report: {night[0] or ''}",
                  "generated_by": f"catdb {__version__}",
                  "summary": {"n_exposures": n[0], "n_detections": n[1], "n_objects": n[2], "n_candidates": n[3],
                              "mjd_first": night[1], "mjd_last": night[2]},
                  "sections": out})
