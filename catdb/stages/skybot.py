"""Stage ``skybot``: identify candidate tracks with known Solar System objects (IMCCE SkyBoT), cached.

1. **Cones.**  For every selected exposure holding a detection of a candidate track
   (``track.status = 'candidate'``), one SkyBoT cone search (Berthier et al. 2006, ASP Conf.
   Ser. 351, 367) at the exposure's mid-time ``mjd_mid``, centred on ``ra_center``,
   ``dec_center`` with radius ``exposure.radius`` + ``margin``, from the exposure's
   ``observatory_code`` (or ``observatory``; ``500``, the geocentre, if neither).
2. **Cache.**  Every cone and its outcome is kept in ``skybot_query`` (status ``ok``,
   ``empty`` or ``failed`` with the message) and every object returned in
   ``skybot_object`` (predicted position, rates, V, distances).  An exposure whose cached
   cone is usable (ok or empty, epoch within ``max_epoch_diff`` hours of ``mjd_mid``; for a
   cone the stage asked itself also the same centre, observatory and at least the radius) is
   not asked again; ``refresh=true`` asks again; ``cache_only=true`` never calls the service.
   A saved response is loaded for an exposure with ``catdb skybot import FILE --exposure ID``.
3. **Service failures.**  A failed or slow (``timeout``) call is retried ``retries`` times
   with exponential backoff (``backoff``, ``2 backoff``, ...); an exposure still failing is
   recorded ``failed`` with the message and the others are matched as usual.  After
   ``max_failures`` consecutive failed exposures the service is taken to be down: the
   remaining exposures are recorded failed ("not attempted") without further calls.  A
   later run retries the failed exposures.
4. **Matching.**  The predicted positions are moved to the exposure's mid-time with their
   predicted rates (linear; the gap is at most ``max_epoch_diff``) and paired with the
   track's detections on the same exposure by great-circle distance within ``radius``
   (q3c pair join, :func:`catdb.spatial.sql.pair_join`).  A known object must pair with at
   least ``min_fraction`` of the track's detections on exposures with a usable cone (one
   chance coincidence on a long track is no identification).  For each (track, known object):
   the median separation over the paired detections, and the length of the difference
   between the track's measured rate vector (``rate_ra``, ``rate_dec``: dRA cos Dec, dDec)
   and the object's mean predicted one.  The object with the smallest score
   ``sep + rate_weight * rate_diff`` (arcsec; ``rate_weight`` in hours: 1"/h of rate
   disagreement weighs as 1" of offset) is chosen -- the rate vector decides between
   several known objects near one track, as ssos does not; ``max_rate_diff`` rejects
   objects whose rates disagree by more.

Writes on the track: ``skybot_name`` (number and name, ``'5945 Roachapproach'``, or the
name), ``skybot_sep`` (median separation, arcsec), ``skybot_rate_diff`` ("/h),
``skybot_delta`` (distance from the observer, au) and ``designation`` (the number, else
the name).  Tracks with at least one detection on an exposure with a usable cone and no
match get NULLs (a designation set by a user is kept); tracks whose cones all failed are
left unchanged and counted (``tracks_unchecked``).
"""
from __future__ import annotations

from psycopg import sql

from ..ingest import skybot as sb
from ..spatial.sql import ipix_index, pair_join
from .base import Param, Stage, StageContext, register

_SERVICE = "SkyBoT service"


@register
class Skybot(Stage):
    name = "skybot"
    description = ("Identify candidate tracks with known asteroids/comets from IMCCE SkyBoT cone searches "
                   "(one per exposure, cached in skybot_query/skybot_object)")
    params = [
        Param("radius", float, 10.0, "Match radius between a detection and the SkyBoT prediction [arcsec]"),
        Param("rate_weight", float, 1.0, "Weight of the rate-vector difference in the score sep + w*rate_diff [h]"),
        Param("max_rate_diff", float, None, "Reject known objects whose predicted rate differs more [arcsec/h]"),
        Param("min_fraction", float, 0.5, "A known object must be within radius of at least this fraction of the "
                                          "track's detections on exposures with a usable cone"),
        Param("margin", float, 60.0, "Cone radius = exposure radius + this margin [arcsec]"),
        Param("observatory", str, None, "MPC observatory code for every query (default: exposure.observatory_code, "
                                        "else 500)"),
        Param("max_epoch_diff", float, 1.0, "A cached cone is used when its epoch is this close to mid-exposure [h]"),
        Param("refresh", bool, False, "Ask SkyBoT again even when a cached cone exists"),
        Param("cache_only", bool, False, "Never call the service; use cached cones only"),
        Param("retries", int, 2, "Retries of a failed or timed-out call (exponential backoff)"),
        Param("backoff", float, 1.0, "Wait before the first retry, doubled for each further one [s]"),
        Param("timeout", float, 60.0, "Wait at most this long for one SkyBoT answer [s]"),
        Param("max_failures", int, 3, "After this many consecutive failed exposures, stop calling the service"),
    ]
    outputs = []  # the cache is kept across runs; the track columns are overwritten

    # -- cones ---------------------------------------------------------------------------
    def _exposures(self, ctx):
        """Selected exposures with candidate-track detections: id, mjd, ra, dec, radius, code."""
        return ctx.execute(
            """SELECT e.id, e.mjd_mid, e.ra_center, e.dec_center, e.radius,
                      COALESCE(%s, NULLIF(e.observatory_code, ''), '500')
               FROM exposure e WHERE e.id = ANY(%s) AND EXISTS (
                   SELECT 1 FROM detection d JOIN track_detection td ON td.detection_id = d.id
                   JOIN track t ON t.id = td.track_id WHERE d.exposure_id = e.id AND t.status = 'candidate')
               ORDER BY e.mjd_mid, e.id""", (ctx.params["observatory"], ctx.inputs)).fetchall()

    def _usable(self, ctx, exp_ids):
        """exposure id -> id of its usable cached cone (the newest)."""
        p = ctx.params
        rows = ctx.execute(
            """SELECT DISTINCT ON (q.exposure_id) q.exposure_id, q.id
               FROM skybot_query q JOIN exposure e ON e.id = q.exposure_id
               WHERE q.exposure_id = ANY(%(ids)s) AND q.status IN ('ok', 'empty')
                 AND abs(q.mjd_epoch - e.mjd_mid) * 24 <= %(dt)s
                 AND (q.source <> %(service)s
                      OR (q.ra = e.ra_center AND q.dec = e.dec_center
                          AND q.radius >= e.radius * 3600 + %(margin)s - 1e-6
                          AND q.observatory_code = COALESCE(%(code)s, NULLIF(e.observatory_code, ''), '500')))
               ORDER BY q.exposure_id, q.id DESC""",
            {"ids": list(exp_ids), "dt": p["max_epoch_diff"], "service": _SERVICE, "margin": p["margin"],
             "code": p["observatory"]}).fetchall()
        return dict(rows)

    def _fetch(self, ctx, todo):
        """Ask SkyBoT for the exposures in ``todo`` (loop over exposures); returns counts."""
        p = ctx.params
        out = {"ok": 0, "empty": 0, "failed": 0, "not_attempted": 0, "service_calls": 0}
        failed = []
        streak, last, last_error = 0, None, None
        for eid, mjd, ra, dec, rad, code in todo:  # one cone per exposure
            radius = float(rad) * 3600.0 + p["margin"]
            if streak >= p["max_failures"]:
                table, attempts = None, 0
                msg = f"not attempted: {streak} consecutive exposures failed, the last one exposure {last}"
                out["not_attempted"] += 1
            else:
                table, attempts, msg = sb.query_skybot_retry(
                    ra, dec, radius, mjd, location=code, retries=p["retries"], backoff=p["backoff"],
                    timeout=p["timeout"])
                out["service_calls"] += attempts
                streak, last = (streak + 1, eid) if table is None else (0, None)
                last_error = msg or last_error
            sb.store_skybot(ctx.conn, exposure_id=eid, epoch=mjd, ra=ra, dec=dec, radius_arcsec=radius,
                            observatory=code, table=table, run_id=ctx.run_id, source=_SERVICE, attempts=attempts,
                            message=msg)
            status = "failed" if table is None else ("ok" if len(table) else "empty")
            out[status] += 1
            if table is None:
                failed.append(int(eid))
        if failed:
            out["failed_exposures"] = failed[:50]
            out["last_error"] = (last_error or "")[:500]
        return out

    # -- matching ------------------------------------------------------------------------
    def _match(self, ctx, qids, exp_ids):
        """Temp table _skybot_best: best known object per track (set-based)."""
        p = ctx.params
        ctx.execute("DROP TABLE IF EXISTS _skybot_det, _skybot_pred, _skybot_best")
        ctx.execute(
            """CREATE TEMP TABLE _skybot_det ON COMMIT DROP AS
               SELECT td.track_id, d.exposure_id AS det_exposure, d.ra, d.dec
               FROM track_detection td JOIN track t ON t.id = td.track_id
               JOIN detection d ON d.id = td.detection_id
               WHERE t.status = 'candidate' AND NOT td.outlier AND d.exposure_id = ANY(%s)""", (list(exp_ids),))
        # predictions moved linearly from the query epoch to mid-exposure with the predicted rates
        ctx.execute(
            """CREATE TEMP TABLE _skybot_pred ON COMMIT DROP AS
               SELECT o.id AS object_id, o.exposure_id AS obj_exposure,
                      mod((o.ra + COALESCE(o.rate_ra, 0) * (e.mjd_mid - o.mjd_epoch) * 24 / 3600
                           / cos(radians(o.dec)))::numeric + 360, 360)::double precision AS ra,
                      o.dec + COALESCE(o.rate_dec, 0) * (e.mjd_mid - o.mjd_epoch) * 24 / 3600 AS dec
               FROM skybot_object o JOIN exposure e ON e.id = o.exposure_id WHERE o.query_id = ANY(%s)""",
            (list(qids),))
        ctx.execute(*ipix_index("_skybot_pred"))
        ctx.execute("ANALYZE _skybot_pred")
        pairs = pair_join("_skybot_det", "_skybot_pred", p["radius"] / 3600.0,
                          columns1=["track_id", "det_exposure"], columns2=["object_id", "obj_exposure"])
        q = sql.SQL(
            """CREATE TEMP TABLE _skybot_best ON COMMIT DROP AS
               WITH pr AS ({pairs}),
               agg AS (
                 SELECT pr.track_id, o.name, min(o.number) AS number, count(*) AS n_det,
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY pr.dist_arcsec) AS sep,
                        avg(o.rate_ra) AS rate_ra, avg(o.rate_dec) AS rate_dec, avg(o.dist_geo) AS delta
                 FROM pr JOIN skybot_object o ON o.id = pr.object_id
                 WHERE pr.det_exposure = pr.obj_exposure
                 GROUP BY pr.track_id, o.name),
               tot AS (SELECT track_id, count(*) AS n_tot FROM _skybot_det GROUP BY track_id),
               scored AS (
                 SELECT a.*, sqrt((t.rate_ra - a.rate_ra) ^ 2 + (t.rate_dec - a.rate_dec) ^ 2) AS rate_diff
                 FROM agg a JOIN track t ON t.id = a.track_id JOIN tot ON tot.track_id = a.track_id
                 WHERE a.n_det >= %(min_fraction)s * tot.n_tot),
               kept AS (
                 SELECT s.*, count(*) OVER (PARTITION BY s.track_id) AS n_candidates FROM scored s
                 WHERE %(max_rate_diff)s::double precision IS NULL OR s.rate_diff <= %(max_rate_diff)s)
               SELECT DISTINCT ON (track_id) track_id, name, number, n_det, sep, rate_diff, delta, n_candidates
               FROM kept
               ORDER BY track_id, sep + %(rate_weight)s * COALESCE(rate_diff, 0), n_det DESC, name""").format(
            pairs=pairs.sql)
        ctx.execute(q, {**pairs.params, "max_rate_diff": p["max_rate_diff"], "rate_weight": p["rate_weight"],
                        "min_fraction": p["min_fraction"]})

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        exps = self._exposures(ctx)
        n_tracks = ctx.execute(
            """SELECT count(DISTINCT t.id) FROM track t JOIN track_detection td ON td.track_id = t.id
               JOIN detection d ON d.id = td.detection_id
               WHERE t.status = 'candidate' AND d.exposure_id = ANY(%s)""", (ctx.inputs,)).fetchone()[0]
        counts = {"tracks": n_tracks, "exposures": len(exps)}
        if not exps:
            return {**counts, "matched": 0}
        nowcs = [r for r in exps if None in r[1:5]]
        exps = [r for r in exps if None not in r[1:5]]
        ids = [r[0] for r in exps]
        if p["refresh"] and not p["cache_only"]:
            counts["refreshed"] = ctx.execute("DELETE FROM skybot_query WHERE exposure_id = ANY(%s)",
                                              (ids,)).rowcount
        usable = self._usable(ctx, ids)
        todo = [r for r in exps if r[0] not in usable]
        counts["cached"] = len(usable)
        if p["cache_only"]:
            counts["not_cached"] = len(todo)
        elif todo:
            # unusable earlier cones of these exposures (failed, other epoch/centre) give way to the new ones
            ctx.execute("DELETE FROM skybot_query WHERE exposure_id = ANY(%s)", ([r[0] for r in todo],))
            counts.update(self._fetch(ctx, todo))
        if nowcs:
            counts["no_centre_or_time"] = len(nowcs)
        good = ctx.execute("SELECT id, exposure_id FROM skybot_query WHERE exposure_id = ANY(%s) "
                           "AND status IN ('ok', 'empty')", (ids,)).fetchall()
        qids = [r[0] for r in good if usable.get(r[1], r[0]) == r[0]]
        checked_exp = sorted({r[1] for r in good if usable.get(r[1], r[0]) == r[0]})
        self._match(ctx, qids, checked_exp)
        # tracks seen by a usable cone: identification replaced (NULLs when no known object matched)
        cur = ctx.execute(
            """WITH chk AS (
                 SELECT DISTINCT td.track_id FROM track_detection td JOIN detection d ON d.id = td.detection_id
                 JOIN track t ON t.id = td.track_id
                 WHERE t.status = 'candidate' AND d.exposure_id = ANY(%s)),
               u AS (
                 SELECT c.track_id, b.name, b.sep, b.rate_diff, b.delta,
                        CASE WHEN b.number IS NOT NULL THEN b.number || ' ' || b.name ELSE b.name END AS full_name,
                        COALESCE(b.number, b.name) AS des
                 FROM chk c LEFT JOIN _skybot_best b ON b.track_id = c.track_id)
               UPDATE track t SET skybot_name = u.full_name, skybot_sep = u.sep, skybot_rate_diff = u.rate_diff,
                   skybot_delta = u.delta,
                   designation = CASE WHEN u.des IS NOT NULL THEN u.des
                                      WHEN t.skybot_name IS NOT NULL AND (t.designation = t.skybot_name
                                           OR t.skybot_name LIKE t.designation || ' %%') THEN NULL
                                      ELSE t.designation END
               FROM u WHERE t.id = u.track_id""", (checked_exp,))
        n_checked = cur.rowcount
        matched, ambiguous = ctx.execute(
            "SELECT count(*), count(*) FILTER (WHERE n_candidates > 1) FROM _skybot_best").fetchone()
        counts.update({"tracks_checked": n_checked, "tracks_unchecked": n_tracks - n_checked,
                       "matched": matched, "ambiguous": ambiguous,
                       "known_objects": ctx.execute("SELECT count(*) FROM _skybot_pred").fetchone()[0]})
        return counts
