"""Stage ``lightcurve``: light-curve period of a track (asteroid) or an object.

Targets: ``track_id`` (one track), or every candidate track (``status = 'candidate'``)
with a detection in the selected exposures; or ``object_id`` (one object).  The stage's
input ids are these track (or object) ids.

Light curve (:func:`catdb.export.lightcurve.lightcurve`, the view ``lightcurve_point``): the
target's calibrated forced photometry when it has at least 5 points, else its detections
(track members not flagged as outliers, or the object's linked detections) with
``mag_auto + zp`` when every exposure has an ``ok`` zeropoint (calibrated), instrumental
``mag_auto`` otherwise (a zero-point-free period search is still valid on one night with one
filter).  With ``exclude_flagged`` (default) the points of exposures that a QA stage flagged
(``quality_flags != 0``, e.g. the twilight frames ``qa-background`` finds) and flagged forced
measurements (edge, saturated, masked, bad background, and no aperture correction: flag 32,
whose ``mag`` is the aperture magnitude, offset from the corrected ones by the correction) are
left out; the counts say how many.  Times are ``exposure.mjd_mid`` [d].  No light-time correction is applied (a
single-night period is affected by < 1e-4 of its value).

Period: generalised Lomb-Scargle (:func:`catdb.algorithms.lightcurve.period_search`,
VanderPlas 2018, ApJS 236, 16; FAP of Baluev 2008), ``double_peaked`` (default true, for
asteroids: rotation period = 2 x light-curve period, Harris et al. 1989, Icarus 77, 171),
search range ``min_period_h`` .. ``max_period_h`` (default: 2 x the cadence to the time
span).  Targets with fewer than 5 points are skipped (named in the counts); asking for
one such target explicitly is an error.

Writes ``lightcurve_period`` (period, period_err, rotation_period in hours, peak-to-peak
amplitude, FAP, number of points) and, into ``outdir``, one PNG per target with the
phase-folded light curve and the periodogram (``track<ID>.png`` / ``object<ID>.png``);
their paths are in the run's counts.  Re-running replaces earlier periods of the same
targets.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..algorithms.lightcurve import period_search
from ..db.copy import copy_table
from ..errors import InputError
from ..export.lightcurve import lightcurve
from .base import Param, Stage, StageContext, register


def _plot(res, path, title):
    """Phase-folded light curve (two cycles, model in red) above the periodogram, one PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 8), layout="constrained")
    ax, ax2 = fig.subplots(2, 1)
    mag = res.mag if res.mag_offset is None else res.mag - res.mag_offset
    for shift in (0.0, 1.0):
        ax.errorbar(res.phase + shift, mag, yerr=None if np.all(np.isnan(res.magerr)) else res.magerr,
                    fmt="o", ms=3, color="k", ecolor="0.6", lw=0.8)
        ax.plot(res.model_phase + shift, res.model_mag, "r-", lw=1.2)
    ax.invert_yaxis()
    ax.set_xlabel(f"phase (rotation period {res.rotation_period * 24:.4f} h, epoch MJD {res.epoch:.5f})")
    ax.set_ylabel("magnitude")
    ax.set_title(f"{title}: amplitude {res.amplitude:.3f} mag, FAP {res.fap:.2g}")
    ax2.plot(24.0 / res.frequency, res.power, "k-", lw=0.8)
    ax2.axvline(res.period * 24, color="r", lw=0.8, ls="--")
    ax2.set_xscale("log")
    ax2.set_xlabel("light-curve period (h)")
    ax2.set_ylabel("Lomb-Scargle power")
    fig.savefig(path, dpi=90)
    return path


@register
class Lightcurve(Stage):
    name = "lightcurve"
    description = "Lomb-Scargle rotation period of candidate tracks (or an object), with a PNG each"
    params = [
        Param("track_id", int, None, "One track (default: every candidate track of the selected exposures)"),
        Param("object_id", int, None, "One object instead of tracks"),
        Param("double_peaked", bool, True, "Rotation period = 2 x light-curve period (asteroids)"),
        Param("min_period_h", float, None, "Shortest period searched [h]"),
        Param("max_period_h", float, None, "Longest period searched [h]"),
        Param("outdir", str, "lightcurves", "Directory for the PNGs"),
        Param("exclude_flagged", bool, True, "Leave out exposures with quality_flags != 0 (QA outliers, e.g. "
                                             "twilight frames) and flagged forced photometry (edge, saturated, "
                                             "masked pixels, bad background)"),
    ]
    outputs = []

    def select(self, ctx: StageContext) -> list[int]:
        p = ctx.params
        if p["object_id"] is not None and p["track_id"] is not None:
            raise InputError("give track_id or object_id, not both", keyword="object_id")
        if p["object_id"] is not None:
            if not ctx.execute("SELECT 1 FROM object WHERE id = %s", (p["object_id"],)).fetchone():
                raise InputError(f"parameter object_id: no object {p['object_id']}", keyword="object_id")
            return [p["object_id"]]
        if p["track_id"] is not None:
            if not ctx.execute("SELECT 1 FROM track WHERE id = %s", (p["track_id"],)).fetchone():
                raise InputError(f"parameter track_id: no track {p['track_id']}", keyword="track_id")
            return [p["track_id"]]
        exposures = super().select(ctx)
        return [r[0] for r in ctx.execute(
            """SELECT DISTINCT td.track_id FROM track_detection td JOIN track t ON t.id = td.track_id
               JOIN detection d ON d.id = td.detection_id
               WHERE t.status = 'candidate' AND d.exposure_id = ANY(%s) ORDER BY 1""", (exposures,)).fetchall()]

    def _key(self, ctx):
        return "object_id" if ctx.params["object_id"] is not None else "track_id"

    def replace(self, ctx: StageContext) -> int:
        key = self._key(ctx)
        return ctx.execute(
            f"DELETE FROM lightcurve_period WHERE {key} = ANY(%s) AND stage_run_id IN "  # key is one of two literals
            "(SELECT id FROM stage_run WHERE stage = %s AND id <> %s)", (ctx.inputs, self.name, ctx.run_id)).rowcount

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        key = self._key(ctx)
        pts = lightcurve(ctx.conn, **{key.split("_")[0]: ctx.inputs})  # every target in one query
        tgt = np.asarray(pts["target_id"])
        forced = np.asarray(pts["source"]) == "forced"
        cal = np.asarray(pts["calibrated"])
        usable = np.ones(tgt.size, dtype=bool)
        if p["exclude_flagged"]:
            # forced flag 8 (no zeropoint) is what 'calibrated' says already
            usable = (np.asarray(pts["quality_flags"]) == 0) & ~(forced & ((np.asarray(pts["flags"]) & ~8) != 0))
        outdir = Path(p["outdir"])
        outdir.mkdir(parents=True, exist_ok=True)
        rows, pngs, skipped, sources = [], {}, {}, {}
        for tid in ctx.inputs:  # loop over targets (few), not rows
            fm = (tgt == tid) & forced & cal & usable
            if fm.sum() >= 5:
                t, mag, err = pts["mjd"][fm], pts["mag"][fm], pts["mag_err"][fm]
                src = "forced_source"
            else:
                dm = (tgt == tid) & ~forced & np.isfinite(pts["mag_inst"]) & usable
                all_cal = bool(dm.any() and cal[dm].all())
                t = pts["mjd"][dm]
                mag, err = (pts["mag"][dm], pts["mag_err"][dm]) if all_cal else \
                    (pts["mag_inst"][dm], pts["magerr_inst"][dm])
                src = "detections (calibrated)" if all_cal else "detections (instrumental)"
            t, mag, err = (np.asarray(a, dtype=float) for a in (t, mag, err))
            ok = np.isfinite(t) & np.isfinite(mag)
            if ok.sum() < 5:
                skipped[str(tid)] = f"{int(ok.sum())} points"
                continue
            min_h = p["min_period_h"]
            if min_h is None:  # periods shorter than twice the cadence are not sampled (Nyquist)
                min_h = 2 * 24 * float(np.median(np.diff(np.sort(t[ok])))) if ok.sum() > 1 else None
            try:
                res = period_search(t[ok], mag[ok], err[ok] if err is not None else None,
                                    double_peaked=p["double_peaked"],
                                    min_period=None if min_h is None else min_h / 24,
                                    max_period=None if p["max_period_h"] is None else p["max_period_h"] / 24)
            except InputError as exc:
                skipped[str(tid)] = str(exc)
                continue
            name = f"{key.split('_')[0]}{tid}"
            pngs[str(tid)] = str(_plot(res, outdir / f"{name}.png", f"{name} ({src})").resolve())
            sources[str(tid)] = src
            rows.append((tid, res.mjd.size, res.period * 24, res.period_err * 24, res.rotation_period * 24,
                         res.amplitude, res.fap))
        if len(ctx.inputs) == 1 and skipped:
            raise InputError(f"{key} {ctx.inputs[0]}: no period search possible ({next(iter(skipped.values()))}; "
                             "need at least 5 magnitudes at different times)", keyword=key)
        n = 0
        if rows:
            a = np.array(rows, dtype=float)
            n = copy_table(ctx.conn, "lightcurve_period", {
                key: a[:, 0].astype(np.int64), "n_points": a[:, 1].astype(np.int64), "period": a[:, 2],
                "period_err": a[:, 3], "rotation_period": a[:, 4], "amplitude": a[:, 5], "fap": a[:, 6]},
                constants={"stage_run_id": ctx.run_id})
        return {"lightcurve_period": n, "png": pngs, "source": sources, "skipped": skipped,
                "points_excluded": int((~usable).sum())}
