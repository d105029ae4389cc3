"""Stage ``ephemeris``: find the named target through JPL Horizons and link its track, cached.

What Photometry Pipeline's ``pp_distill`` does for the observer's target (Mommert 2017, A&C
18, 47, section 4.6: the target's position from JPL Horizons at every frame's mid-time and
observatory, the source there is the target), on catdb's tracks:

1. **Target.**  ``--target`` (a Horizons identifier), else each exposure's ``OBJECT``
   (``exposure.object``) read by :func:`catdb.ingest.horizons.horizons_target`:
   ``'2713 Luxembourg'`` and ``'(5945) Roachapproach'`` give the number (``id_type``
   smallbody), ``'2019 AB'`` the designation, ``'C/2020 F3'`` / ``'29P'`` a comet (closest
   apparition).  An ``OBJECT`` that names no small body (``'M31'``, ``'NGC 2264'``) is not
   asked about (counted ``no_target``).
2. **Observer.**  The exposure's MPC code (``observatory_code``); else its site (``site_lon``
   east, ``site_lat``, ``site_height``: Horizons takes geodetic coordinates); else the
   geocentre ``500``, counted ``geocentric``: the prediction is then off by up to the
   parallax 8.794"/delta[au], which is added to its uncertainty.
3. **Ephemeris, cached.**  One Horizons observer table per (target, observer) for up to
   ``batch`` exposure mid-times (``TLIST`` of JDs), astrometric RA/Dec (ICRF), rates, V, r,
   delta, phase angle and the 3-sigma uncertainties.  One ``ephemeris`` row per (target,
   exposure): ``ok``, or ``failed`` with the message (offline, service down, unknown target,
   no row for that epoch).  A usable cached row (ok; asked by the stage at the same mid-time
   and observer, or imported with ``catdb ephemeris import`` within ``max_epoch_diff``
   hours) is not asked again; ``refresh=true`` asks again, ``cache_only=true`` never calls
   the service.  A failed call is retried ``retries`` times (exponential backoff); after
   ``max_failures`` consecutive failed calls the remaining batches are recorded failed
   ("not attempted"); a target Horizons does not know is not asked again in the run.  A
   later run retries what failed.  Offline, every row is ``failed`` and the run goes on.
4. **Link.**  Each prediction is moved to mid-exposure with its rates (linear, over the
   gap of an imported row) and compared with the detections of the candidate tracks
   (``track.status = 'candidate'``, outliers left out) on the same exposures: offsets
   ``dx = dRA cos Dec``, ``dy = dDec`` (arcsec).  Per track, on exposures whose WCS is
   absolute (``wcs_status`` header or solved) -- **position** mode, when at least
   ``min_points`` -- the median separation must be within ``max(tolerance, U)``, U the
   median 3-sigma uncertainty of the ephemeris (RA and Dec combined, plus the parallax when
   geocentric).  Tracks with fewer such exposures but at least ``min_points`` on
   registered ones (``wcs_status = 'registered'``: positions consistent across the night,
   absolute frame unknown) are compared in **motion** mode: never the absolute offset, only
   the spread of the offsets around their median (the track follows the ephemeris up to a
   constant shift) within ``max(tolerance, U)``.  In both modes the track's rate vector
   must agree with the mean predicted one within ``max(rate_tolerance, 3 rate_err)``.  The
   best track -- position before motion, then the smallest ``sep`` (or spread) +
   ``rate_weight * rate_diff`` -- is the target: one ``ephemeris_target`` row (target,
   track, mode, figures, how many tracks passed).  Its light curve is the target's (the
   ``lightcurve`` export and the run summary pick it).  A target no track follows gets no
   row; the counts give the nearest track and its figures.

Re-running replaces the earlier link of the same target for the tracks in scope; the cache
is kept across runs.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..ingest import horizons as hz
from ..schema import WCS_ABSOLUTE, WCS_USABLE
from .base import Param, Stage, StageContext, register

_ID_TYPES = ("smallbody", "designation", "name", "asteroid_name", "comet_name", "majorbody")


@register
class Ephemeris(Stage):
    name = "ephemeris"
    description = ("Find the target named by OBJECT (or --target) through JPL Horizons at every exposure's "
                   "mid-time and observatory (cached in table ephemeris) and link the track that follows it "
                   "(table ephemeris_target)")
    params = [
        Param("target", str, None, "Horizons identifier for every exposure, e.g. '5945', '2019 AB', 'C/2020 F3' "
                                   "(default: each exposure's OBJECT)"),
        Param("id_type", str, None, "Horizons id_type (default: smallbody for asteroids, designation for comets)",
              choices=_ID_TYPES),
        Param("tolerance", float, 5.0, "Match limit: median separation (or offset spread in motion mode) within "
                                       "max(tolerance, 3-sigma ephemeris uncertainty) [arcsec]"),
        Param("rate_tolerance", float, 2.0, "Track and predicted rate vectors must agree within "
                                            "max(rate_tolerance, 3 track.rate_err) [arcsec/h]"),
        Param("rate_weight", float, 1.0, "Score = separation + rate_weight * rate difference [h]"),
        Param("min_points", int, 3, "Exposures a track needs with both a detection and an ephemeris"),
        Param("batch", int, 50, "Epochs per Horizons call (a GET: the URL grows ~20 characters per epoch)"),
        Param("max_epoch_diff", float, 0.25, "An imported ephemeris row is used for an exposure this close to "
                                             "its mid-time (moved with the rates) [h]"),
        Param("refresh", bool, False, "Ask Horizons again even when cached rows exist"),
        Param("cache_only", bool, False, "Never call the service; use cached rows only"),
        Param("retries", int, 1, "Retries of a failed call (exponential backoff)"),
        Param("backoff", float, 1.0, "Wait before the first retry, doubled for each further one [s]"),
        Param("timeout", float, 15.0, "Wait at most this long for one Horizons answer (connect and read) [s]"),
        Param("max_failures", int, 2, "After this many consecutive failed calls, stop calling the service"),
    ]
    outputs = []  # the cache is kept across runs; links are replaced per target in run()

    # -- what to ask ---------------------------------------------------------------------
    def _plan(self, ctx):
        """Per exposure: (id, mjd_mid, HorizonsTarget, location, location_kind, location for astroquery)."""
        p = ctx.params
        rows = ctx.execute(
            """SELECT e.id, e.mjd_mid, e.object, NULLIF(btrim(e.observatory_code), ''), e.site_lon, e.site_lat,
                      e.site_height
               FROM exposure e WHERE e.id = ANY(%s) ORDER BY e.mjd_mid, e.id""", (ctx.inputs,)).fetchall()
        forced = None
        if p["target"]:
            forced = hz.horizons_target(p["target"], p["id_type"])
            if forced is None:
                raise InputError(f"--target {p['target']!r} is not a Horizons small-body identifier (number, "
                                 "designation, comet or name); give --id-type to pass it as it is", keyword="target")
        parsed = {}  # OBJECT value -> target (a few distinct values)
        plan, counts = [], {"no_mid_time": 0, "no_target": 0, "geocentric": 0}
        no_target = set()
        for eid, mjd, obj, code, lon, lat, h in rows:  # loop over exposures: builds the query plan only
            if mjd is None:
                counts["no_mid_time"] += 1
                continue
            if forced is not None:
                tgt = forced
            else:
                if obj not in parsed:
                    parsed[obj] = hz.horizons_target(obj, p["id_type"])
                tgt = parsed[obj]
            if tgt is None:
                counts["no_target"] += 1
                no_target.add(str(obj))
                continue
            if code:
                loc, kind, aq = code, "code", code
            elif None not in (lon, lat, h):
                loc, kind, aq = f"{lon:.6f},{lat:.6f},{h / 1000.0:.4f}", "site", (lon, lat, h / 1000.0)
            else:
                loc, kind, aq = hz.GEOCENTRE, "geocentre", hz.GEOCENTRE
                counts["geocentric"] += 1
            plan.append((eid, float(mjd), tgt, loc, kind, aq))
        if no_target:
            counts["objects_not_small_bodies"] = sorted(no_target)[:10]
        return plan, {k: v for k, v in counts.items() if v}

    def _usable(self, ctx, plan):
        """(exposure id, target) -> id of its usable cached row (the newest)."""
        if not plan:
            return {}
        rows = ctx.execute(
            """SELECT DISTINCT ON (q.exposure_id, q.target) q.exposure_id, q.target, q.id
               FROM ephemeris q JOIN exposure e ON e.id = q.exposure_id
               JOIN unnest(%(eid)s::bigint[], %(tgt)s::text[], %(loc)s::text[]) AS w(eid, target, location)
                 ON w.eid = q.exposure_id AND w.target = q.target
               WHERE q.status = 'ok'
                 AND abs(q.mjd_epoch - e.mjd_mid) * 24 <= %(dt)s
                 AND (abs(q.mjd_epoch - e.mjd_mid) * 86400 <= 1 OR (q.rate_ra IS NOT NULL AND q.rate_dec IS NOT NULL))
                 AND (q.source <> %(service)s
                      OR (q.location = w.location AND abs(q.mjd_epoch - e.mjd_mid) * 86400 <= 1))
               ORDER BY q.exposure_id, q.target, q.id DESC""",
            {"eid": [r[0] for r in plan], "tgt": [r[2].id for r in plan], "loc": [r[3] for r in plan],
             "dt": ctx.params["max_epoch_diff"], "service": hz.SERVICE}).fetchall()
        return {(e, t): q for e, t, q in rows}

    def _fetch(self, ctx, todo):
        """Ask Horizons for ``todo`` (plan rows), batched by (target, observer); returns counts."""
        p = ctx.params
        out = {"ok": 0, "failed": 0, "not_attempted": 0, "service_calls": 0}
        groups = {}
        for r in todo:
            groups.setdefault((r[2], r[3], r[4]), []).append(r)
        streak, last_error, unknown = 0, None, {}
        batch = max(1, int(p["batch"]))
        for (tgt, loc, kind), rows in groups.items():  # loop over (target, observer): a few
            for i in range(0, len(rows), batch):  # loop over batches of epochs
                part = rows[i:i + batch]
                eids = [r[0] for r in part]
                mjd = np.array([r[1] for r in part])
                if tgt.id in unknown:
                    table, attempts, msg = None, 0, f"not attempted: {unknown[tgt.id]}"
                    out["not_attempted"] += len(part)
                elif streak >= p["max_failures"]:
                    table, attempts = None, 0
                    msg = (f"not attempted: {streak} consecutive Horizons calls failed, the last: "
                           f"{(last_error or '')[:300]}")
                    out["not_attempted"] += len(part)
                else:
                    table, attempts, msg = hz.query_horizons_retry(
                        tgt, part[0][5], mjd, retries=p["retries"], backoff=p["backoff"], timeout=p["timeout"])
                    out["service_calls"] += attempts
                    if table is None and msg and msg.startswith("HorizonsAnswerError"):
                        unknown[tgt.id] = msg  # the target itself is the problem: no further calls for it
                    elif table is None:
                        streak = streak + 1
                    else:
                        streak = 0
                    last_error = msg or last_error
                res = hz.store_ephemeris(ctx.conn, target=tgt, exposure_ids=eids, mjd_epoch=mjd, location=loc,
                                         location_kind=kind, table=table, run_id=ctx.run_id, attempts=attempts,
                                         message=msg)
                out["ok"] += res["ok"]
                out["failed"] += res["failed"]
        if out["failed"]:
            out["last_error"] = (last_error or "")[:500]
        return {k: v for k, v in out.items() if v or k in ("ok", "failed")}

    # -- link ----------------------------------------------------------------------------
    def _link(self, ctx, tgt, row_ids) -> dict:
        """Compare the candidate tracks with the ephemeris rows ``row_ids`` of ``tgt``; store the best."""
        p = ctx.params
        ctx.execute("DROP TABLE IF EXISTS _eph_pred, _eph_off")
        ctx.execute(
            """CREATE TEMP TABLE _eph_pred ON COMMIT DROP AS
               SELECT q.exposure_id, e.wcs_status = ANY(%(abs)s) AS absolute,
                      q.ra + COALESCE(q.rate_ra, 0) * (e.mjd_mid - q.mjd_epoch) * 24 / 3600
                             / cos(radians(q.dec)) AS ra,
                      q.dec + COALESCE(q.rate_dec, 0) * (e.mjd_mid - q.mjd_epoch) * 24 / 3600 AS dec,
                      q.rate_ra, q.rate_dec,
                      sqrt(q.ra_3sigma ^ 2 + q.dec_3sigma ^ 2)
                        + CASE WHEN q.location_kind = 'geocentre' THEN %(plx)s / q.delta ELSE 0 END AS unc,
                      q.target_name
               FROM ephemeris q JOIN exposure e ON e.id = q.exposure_id
               WHERE q.id = ANY(%(ids)s) AND e.wcs_status = ANY(%(usable)s)""",
            {"ids": list(row_ids), "abs": list(WCS_ABSOLUTE), "usable": list(WCS_USABLE), "plx": hz.PARALLAX_1AU})
        ctx.execute(
            """CREATE TEMP TABLE _eph_off ON COMMIT DROP AS
               SELECT td.track_id, p.exposure_id, p.absolute, p.unc, p.rate_ra, p.rate_dec,
                      (d.ra - p.ra - 360 * round((d.ra - p.ra) / 360)) * cos(radians(p.dec)) * 3600 AS dx,
                      (d.dec - p.dec) * 3600 AS dy
               FROM _eph_pred p JOIN detection d ON d.exposure_id = p.exposure_id
               JOIN track_detection td ON td.detection_id = d.id JOIN track t ON t.id = td.track_id
               WHERE t.status = 'candidate' AND NOT td.outlier""")
        rows = ctx.execute(
            """WITH agg AS (
                 SELECT track_id, count(*) AS n_all, count(*) FILTER (WHERE absolute) AS n_abs,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY sqrt(dx ^ 2 + dy ^ 2))
                          FILTER (WHERE absolute) AS sep_med,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY dx) AS dx_med,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY dy) AS dy_med,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY unc) AS unc_med,
                        avg(rate_ra) AS p_rate_ra, avg(rate_dec) AS p_rate_dec
                 FROM _eph_off GROUP BY track_id),
               spread AS (
                 SELECT o.track_id, percentile_cont(0.5) WITHIN GROUP (
                          ORDER BY sqrt((o.dx - a.dx_med) ^ 2 + (o.dy - a.dy_med) ^ 2)) AS spread
                 FROM _eph_off o JOIN agg a ON a.track_id = o.track_id GROUP BY o.track_id),
               scored AS (
                 SELECT a.track_id, a.n_all, a.n_abs, a.sep_med, a.unc_med, s.spread,
                        sqrt((t.rate_ra - a.p_rate_ra) ^ 2 + (t.rate_dec - a.p_rate_dec) ^ 2) AS rate_diff,
                        greatest(%(rtol)s, 3 * COALESCE(t.rate_err, 0)) AS rate_limit,
                        CASE WHEN a.n_abs >= %(minp)s THEN 'position' WHEN a.n_all >= %(minp)s THEN 'motion' END
                          AS mode,
                        greatest(%(tol)s, COALESCE(a.unc_med, 0)) AS limit_sep
                 FROM agg a JOIN spread s ON s.track_id = a.track_id JOIN track t ON t.id = a.track_id),
               judged AS (
                 SELECT *, CASE WHEN mode = 'position' THEN sep_med ELSE spread END AS sep_used,
                        mode IS NOT NULL AND rate_diff <= rate_limit
                          AND CASE WHEN mode = 'position' THEN sep_med ELSE spread END <= limit_sep AS passed
                 FROM scored)
               SELECT track_id, mode, CASE WHEN mode = 'position' THEN n_abs ELSE n_all END AS n, sep_med, spread,
                      rate_diff, unc_med, limit_sep, passed, count(*) FILTER (WHERE passed) OVER () AS n_passed,
                      sep_used + %(rw)s * COALESCE(rate_diff, 0) AS score, rate_limit
               FROM judged
               ORDER BY passed DESC, mode = 'position' DESC, mode IS NULL,
                        CASE WHEN mode = 'position' THEN sep_med ELSE spread END + %(rw)s * COALESCE(rate_diff, 0),
                        track_id
               LIMIT 1""",
            {"tol": p["tolerance"], "rtol": p["rate_tolerance"], "minp": p["min_points"],
             "rw": p["rate_weight"]}).fetchall()
        name = ctx.execute("SELECT max(target_name) FROM _eph_pred").fetchone()[0]
        n_pred, n_abs = ctx.execute("SELECT count(*), count(*) FILTER (WHERE absolute) FROM _eph_pred").fetchone()
        # the links this run decides: every earlier link of the target to a track compared now
        ctx.execute("DELETE FROM ephemeris_target WHERE target = %s AND track_id IN "
                    "(SELECT DISTINCT track_id FROM _eph_off)", (tgt.id,))
        res = {"target_name": name, "exposures_compared": n_pred, "tracks_compared": ctx.execute(
            "SELECT count(DISTINCT track_id) FROM _eph_off").fetchone()[0]}
        if n_pred and n_abs < n_pred:
            res["registered_exposures"] = n_pred - n_abs
        if not rows:
            res["track"] = None
            return res
        tid, mode, n, sep, spread, rdiff, unc, lim, passed, n_passed, score, rlim = rows[0]
        figs = {"mode": mode, "n_exposures": n, "sep_median": None if sep is None or mode != "position" else
                round(sep, 3), "offset_spread": None if spread is None else round(spread, 3),
                "rate_diff": None if rdiff is None else round(rdiff, 3),
                "uncertainty": None if unc is None else round(unc, 3), "limit_sep": round(lim, 3)}
        if not passed:
            res["track"] = None
            res["nearest"] = {"track": tid, **figs, "rate_limit": round(rlim, 3)}
            return res
        ctx.execute(
            "INSERT INTO ephemeris_target (target, target_name, track_id, mode, n_exposures, sep_median, "
            "offset_spread, rate_diff, uncertainty, limit_sep, n_candidates, stage_run_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (tgt.id, name, tid, mode, n, sep if mode == "position" else None, spread, rdiff, unc, lim, n_passed,
             ctx.run_id))
        res.update({"track": tid, **figs, "n_candidates": n_passed})
        if mode == "motion":
            res["note"] = ("registered WCS (absolute frame unknown): motion and relative positions compared, "
                           "not the absolute offset")
        return res

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        plan, counts = self._plan(ctx)
        counts = {"exposures": len(ctx.inputs), **counts}
        targets = {r[2].id: r[2] for r in plan}
        counts["targets"] = sorted(targets)
        if not plan:
            return {**counts, "linked": 0}
        if p["refresh"] and not p["cache_only"]:
            counts["refreshed"] = ctx.execute(
                "DELETE FROM ephemeris q USING unnest(%s::bigint[], %s::text[]) AS w(eid, target) "
                "WHERE q.exposure_id = w.eid AND q.target = w.target",
                ([r[0] for r in plan], [r[2].id for r in plan])).rowcount
        usable = self._usable(ctx, plan)
        todo = [r for r in plan if (r[0], r[2].id) not in usable]
        counts["cached"] = len(plan) - len(todo)
        if p["cache_only"]:
            counts["not_cached"] = len(todo)
        elif todo:
            # earlier unusable rows of these (exposure, target) pairs (failed, other epoch/observer) give way
            ctx.execute("DELETE FROM ephemeris q USING unnest(%s::bigint[], %s::text[]) AS w(eid, target) "
                        "WHERE q.exposure_id = w.eid AND q.target = w.target",
                        ([r[0] for r in todo], [r[2].id for r in todo]))
            counts.update(self._fetch(ctx, todo))
            if counts.get("failed") or counts.get("not_attempted"):
                counts["incomplete"] = True  # `catdb run` re-runs it instead of calling it up to date
            if counts.get("ok", 0) == 0 and counts.get("failed"):
                counts["offline_or_failed"] = ("no ephemeris obtained from JPL Horizons: every call failed "
                                               "(see last_error); targets not linked from these exposures")
        usable = self._usable(ctx, plan)
        links, linked = {}, 0
        for tid, tgt in targets.items():  # loop over targets (one per night, usually)
            ids = [q for (e, t), q in usable.items() if t == tid]
            if not ids:
                links[tid] = {"track": None, "exposures_compared": 0}
                continue
            links[tid] = self._link(ctx, tgt, ids)
            linked += links[tid]["track"] is not None
        counts["linked"] = linked
        counts["links"] = links
        return counts
