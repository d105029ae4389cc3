"""Stage ``qa-astrometry``: separations between detections and a reference catalogue.

For every selected exposure the good detections (``FLAGS = 0`` and
``snr >= snr_min``) are cross-matched with the stars of a reference catalogue
in ``refcat_source`` (nearest star within ``radius`` arcsec, through
:func:`catdb.spatial.nearest_join`; when the reference stars of the field have
proper motions they are moved to the exposure epoch with
:func:`catdb.spatial.pm_join` and the nearest pair per detection is kept).
Per exposure it writes to ``exposure_qa`` (value units in brackets):

==================== ===========================================================
metric               meaning
==================== ===========================================================
astrom_n_matched     detections matched to a reference star [count]
astrom_sep_median    median separation detection - reference [arcsec]
astrom_sep_scatter   1.4826 x median absolute deviation of the separations
                     (robust standard deviation) [arcsec]
astrom_offset_ra     median (RA_det - RA_ref) cos(Dec) [arcsec]
astrom_offset_dec    median (Dec_det - Dec_ref) [arcsec]
==================== ===========================================================

Outliers follow Automatic-SSOs (github.com/johnedmartz/Automatic-SSOs,
``magcalib.py``, box-plot fliers of the astrometric residuals): an exposure
whose ``astrom_sep_median`` exceeds Q3 + k IQR of its group (``group=night``:
``exposure.night``, or ``floor(mjd_mid - 0.5 + site_lon/360)`` as a date when
the night is unknown, or without ``site_lon`` the time-gap observing session
``session starting <UTC date-time>`` of :mod:`catdb.algorithms.nights`;
``group=all``: every selected exposure) gets
``is_outlier`` on its ``astrom_sep_median`` row and the ``astrometric_outlier``
bit in ``exposure.quality_flags``; an exposure without any match gets the
``not_solved`` bit.  Both bits are cleared first for the selected exposures, so
a re-run leaves no stale flags.  Quartiles:
:func:`catdb.algorithms.robust.iqr_outliers`.

Example::

    catdb stage qa-astrometry --param refcat=gaia-dr2 --param radius=2
    catdb query "SELECT * FROM exposure_qa WHERE metric LIKE 'astrom_%' ORDER BY exposure_id"
"""
from __future__ import annotations

import numpy as np
from psycopg import sql

from ..algorithms.robust import iqr_outliers
from ..db.copy import copy_table
from ..errors import CatdbError
from ..schema.tables import QUALITY_FLAGS
from ..spatial import cone_condition, nearest_join, pm_join
from ._common import group_keys, reference_filter
from .base import Param, Stage, StageContext, register

METRICS = ("astrom_n_matched", "astrom_sep_median", "astrom_sep_scatter", "astrom_offset_ra", "astrom_offset_dec")

#: largest proper motion expected (mas/yr) times epoch difference: margin of the reference cone (deg)
_PM_MARGIN_DEG = 0.01


@register
class QaAstrometry(Stage):
    name = "qa-astrometry"
    description = "Astrometric QA: median separation to a reference catalogue, IQR outliers per night"
    params = [
        Param("refcat", str, None, "Reference catalogue name in refcat_source (default: any catalogue)"),
        Param("radius", float, 2.0, "Match radius (arcsec)"),
        Param("snr_min", float, 10.0, "Minimum SNR of the detections matched"),
        Param("flags_max", int, 0, "Largest SExtractor FLAGS of the detections matched (4 = saturated stars, "
              "useful when the reference stars are bright, e.g. Tycho-2)"),
        Param("group", str, "night", "Group of the IQR rule", choices=("night", "all")),
        Param("k", float, 1.5, "IQR fence factor: outlier above Q3 + k IQR"),
    ]
    outputs = ["exposure_qa"]

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        if not p["radius"] > 0:
            raise CatdbError(f"parameter radius: expected a positive match radius in arcsec, got {p['radius']}")
        cond, cparams = reference_filter(ctx.conn, p["refcat"])
        ids = list(ctx.inputs)
        clear = QUALITY_FLAGS["astrometric_outlier"] | QUALITY_FLAGS["not_solved"]
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags & ~%s::int WHERE id = ANY(%s)", (clear, ids))
        if not ids:
            return {"exposure_qa": 0}
        ctx.execute("DROP TABLE IF EXISTS _qa_astrom_match")
        ctx.execute("CREATE TEMP TABLE _qa_astrom_match (exposure_id bigint, detection_id bigint, "
                    "ref_id bigint, sep double precision, dra double precision, ddec double precision) "
                    "ON COMMIT DROP")
        exps = ctx.execute("SELECT id, ra_center, dec_center, radius, mjd_mid FROM exposure WHERE id = ANY(%s) "
                           "ORDER BY id", (ids,)).fetchall()
        n_pm = 0
        for eid, ra_c, dec_c, rad, mjd in exps:  # loop over exposures; each match is one set-based query
            n_pm += self._match(ctx, eid, ra_c, dec_c, rad, mjd, cond, cparams)
        stats = self._stats(ctx)
        n = len(ids)
        vals = np.full((n, len(METRICS)), np.nan)
        vals[:, 0] = 0
        for i, eid in enumerate(ids):
            if eid in stats:
                vals[i] = stats[eid]
        groups = group_keys(ctx.conn, ids, p["group"])
        outlier = iqr_outliers(vals[:, 1], groups.astype(str), k=p["k"], side="upper")
        unsolved = vals[:, 0] == 0
        # rows: one per exposure and metric (vectorised with repeat/tile)
        eids = np.repeat(np.asarray(ids, dtype=np.int64), len(METRICS))
        metric = np.tile(np.array(METRICS, dtype=object), n)
        is_out = np.zeros((n, len(METRICS)), bool)
        is_out[:, 1] = outlier
        nrows = copy_table(ctx.conn, "exposure_qa",
                           {"exposure_id": eids, "metric": metric, "value": vals.ravel(),
                            "is_outlier": is_out.ravel(), "group_key": np.repeat(groups, len(METRICS))},
                           constants={"stage_run_id": ctx.run_id})
        out_ids = [int(i) for i in np.asarray(ids)[outlier]]
        uns_ids = [int(i) for i in np.asarray(ids)[unsolved]]
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["astrometric_outlier"], out_ids))
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["not_solved"], uns_ids))
        n_matched = int(ctx.execute("SELECT count(*) FROM _qa_astrom_match").fetchone()[0])
        ctx.execute("DROP TABLE IF EXISTS _qa_astrom_match")
        return {"exposure_qa": nrows, "matched": n_matched, "astrometric_outlier": len(out_ids),
                "not_solved": len(uns_ids), "exposures_with_pm": n_pm}

    @staticmethod
    def _stats(ctx):
        """Per-exposure metrics from the match table (set-based SQL): {id: (n, med, scatter, dra, ddec)}."""
        rows = ctx.execute(
            """
            WITH s AS (SELECT exposure_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY sep) AS med
                       FROM _qa_astrom_match GROUP BY exposure_id)
            SELECT m.exposure_id, count(*), min(s.med),
                   1.482602218505602 * percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(m.sep - s.med)),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY m.dra),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY m.ddec)
            FROM _qa_astrom_match m JOIN s USING (exposure_id) GROUP BY m.exposure_id
            """).fetchall()
        return {r[0]: tuple(float(v) for v in r[1:]) for r in rows}

    def _match(self, ctx, eid, ra_c, dec_c, rad, mjd, cond, cparams) -> int:
        """Nearest reference star of every good detection of one exposure into ``_qa_astrom_match``.

        Returns 1 when proper motions were applied (pm_join), else 0.
        """
        p = ctx.params
        radius_deg = p["radius"] / 3600.0
        rcond = cond
        bind = dict(cparams)
        if ra_c is not None and dec_c is not None and rad is not None:
            cone = cone_condition("r.ra", "r.dec", ra_c, dec_c, rad + radius_deg + _PM_MARGIN_DEG, prefix="fov")
            rcond = sql.SQL("{} AND {}").format(cond, cone.sql)
            bind.update(cone.params)
        epoch = None if mjd is None else 2000.0 + (mjd - 51544.5) / 365.25
        bind.update({"eid": eid, "snr": p["snr_min"], "epoch": epoch, "fmax": p["flags_max"]})
        has_pm = ctx.execute(
            sql.SQL("SELECT EXISTS (SELECT 1 FROM refcat_source r WHERE {} AND r.pmra IS NOT NULL "
                    "AND r.pmdec IS NOT NULL AND r.epoch IS NOT NULL)").format(rcond), bind).fetchone()[0]
        has_pm = bool(has_pm and epoch is not None)
        det = sql.SQL("(SELECT d.id, d.ra, d.dec, %(epoch)s::double precision AS epoch FROM detection d "
                      "WHERE d.exposure_id = %(eid)s AND d.flags <= %(fmax)s AND d.snr >= %(snr)s)")
        ref = sql.SQL("(SELECT r.id, r.ra, r.dec, r.pmra, r.pmdec, r.epoch FROM refcat_source r "
                      "WHERE {})").format(rcond)
        # reference position at the exposure epoch (linear proper motion; pmra includes cos dec)
        if has_pm:
            frag = pm_join(ref, det, radius_deg, columns1=["id", "ra", "dec", "pmra", "pmdec", "epoch"],
                           columns2=["id", "ra", "dec", "epoch"])
            q = sql.SQL(
                "INSERT INTO _qa_astrom_match SELECT DISTINCT ON (det_id) %(eid)s, det_id, ref_id, dist, "
                "(det_ra - ref_ra_ep - 360 * round((det_ra - ref_ra_ep) / 360)) * cos(radians(det_dec)) * 3600, "
                "(det_dec - ref_dec_ep) * 3600 FROM ("
                "SELECT m.*, ref_ra + CASE WHEN pmra IS NULL OR ref_ep IS NULL THEN 0 ELSE "
                "pmra / 3.6e6 / cos(radians(ref_dec)) * (det_ep - ref_ep) END AS ref_ra_ep, "
                "ref_dec + CASE WHEN pmdec IS NULL OR ref_ep IS NULL THEN 0 ELSE "
                "pmdec / 3.6e6 * (det_ep - ref_ep) END AS ref_dec_ep "
                "FROM ({}) AS m(ref_id, ref_ra, ref_dec, pmra, pmdec, ref_ep, det_id, det_ra, det_dec, det_ep, dist)"
                ") x ORDER BY det_id, dist").format(frag.sql)
        else:
            frag = nearest_join(det, ref, radius_deg, columns1=["id", "ra", "dec"], columns2=["id", "ra", "dec"])
            q = sql.SQL(
                "INSERT INTO _qa_astrom_match SELECT %(eid)s, det_id, ref_id, dist, "
                "(det_ra - ref_ra - 360 * round((det_ra - ref_ra) / 360)) * cos(radians(det_dec)) * 3600, "
                "(det_dec - ref_dec) * 3600 "
                "FROM ({}) AS m(det_id, det_ra, det_dec, ref_id, ref_ra, ref_dec, dist)").format(frag.sql)
        ctx.execute(q, {**bind, **frag.params})
        return int(has_pm)
