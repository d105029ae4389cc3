"""Stage ``exposure-summary``: per-exposure detection counts, median FWHM and limiting magnitude,
and the exposures with far fewer sources than the rest of their night.

Set-based SQL over the selected exposures' detections; writes ``exposure_summary``.

Source-count rule (``few_sources``): an exposure whose detections have been extracted (it has
detections, a catalogue ``image_product`` or a catalogue file) and whose detection count ``n``
is a low outlier of its group (``night``, or ``all``) by Tukey's fences on ``log10(max(n, 0.5))``
(below Q1 - ``k`` IQR; :func:`catdb.algorithms.robust.iqr_outliers`, the rule Automatic-SSOs
applies to the image background) gets the ``few_sources`` bit of ``exposure.quality_flags``
(cleared first for the selected exposures) and an ``exposure_qa`` row (metric
``n_detections``, ``is_outlier``).  The rule works on the logarithm because extinction scales
the count by a factor: with star counts ``N(<m) ~ 10^(a m)`` (a ~ 0.3-0.6 at faint magnitudes),
clouds of ``dm`` magnitudes divide ``N`` by ``10^(a dm)`` whatever the field's density, so the
fence is a fixed loss of depth in magnitudes.  Exposures never extracted are not judged (no
row, bit cleared): a missing catalogue is not a count of zero.
"""
from __future__ import annotations

import numpy as np

from ..algorithms.robust import iqr_outliers
from ..db.copy import copy_table
from ..errors import CatdbError
from ..schema.tables import QUALITY_FLAGS
from ._common import group_keys
from .base import Param, Stage, StageContext, register

_FEW = QUALITY_FLAGS["few_sources"]


@register
class ExposureSummary(Stage):
    name = "exposure-summary"
    description = ("Per-exposure detection counts, median FWHM of point sources and SNR-5 magnitude; "
                   "few_sources flag for source-count outliers of the night")
    params = [
        Param("class_star_min", float, 0.8, "CLASS_STAR above which a detection counts as point-like"),
        Param("snr_min", float, 20.0, "Minimum SNR of the detections used for the median FWHM"),
        Param("group", str, "night", "Group of the source-count IQR rule", choices=("night", "all")),
        Param("k", float, 1.5, "IQR fence factor of the source-count rule: few_sources below Q1 - k IQR of "
                               "log10(detections) in the group"),
    ]
    outputs = ["exposure_summary", "exposure_qa"]

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        if not p["k"] >= 0:
            raise CatdbError(f"parameter k: expected an IQR factor >= 0, got {p['k']}")
        ids = list(ctx.inputs)
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags & ~%s::int WHERE id = ANY(%s)", (_FEW, ids))
        rows = ctx.execute(
            """
            INSERT INTO exposure_summary (exposure_id, n_detections, n_unflagged, fwhm_median, mag_limit, stage_run_id)
            SELECT e.id,
                   count(d.id),
                   count(d.id) FILTER (WHERE d.flags = 0),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY d.fwhm)
                       FILTER (WHERE d.flags = 0 AND d.snr > %(snr)s
                               AND COALESCE(d.class_star, 1) >= %(cls)s AND d.fwhm > 0),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY d.mag_auto)
                       FILTER (WHERE d.snr BETWEEN 4.5 AND 5.5),
                   %(run)s
            FROM exposure e LEFT JOIN detection d ON d.exposure_id = e.id
            WHERE e.id = ANY(%(ids)s)
            GROUP BY e.id
            RETURNING exposure_id, n_detections,
                      n_detections > 0 OR EXISTS (SELECT 1 FROM image_product ip WHERE ip.exposure_id =
                          exposure_summary.exposure_id AND ip.kind = 'catalog')
                      OR EXISTS (SELECT 1 FROM exposure x WHERE x.id = exposure_summary.exposure_id
                                 AND x.catalog_path IS NOT NULL)
            """,
            {"snr": p["snr_min"], "cls": p["class_star_min"], "run": ctx.run_id, "ids": ids}).fetchall()
        if not rows:
            return {"exposure_summary": 0, "few_sources": 0, "not_extracted": 0}
        eid = np.array([r[0] for r in rows], dtype=np.int64)
        n = np.array([r[1] for r in rows], dtype=float)
        judged = np.array([bool(r[2]) for r in rows])
        value = np.where(judged, np.log10(np.maximum(n, 0.5)), np.nan)
        groups = group_keys(ctx.conn, eid.tolist(), p["group"])
        few = iqr_outliers(value, groups.astype(str), k=p["k"], side="lower") & judged
        copy_table(ctx.conn, "exposure_qa", {
            "exposure_id": eid[judged], "metric": np.full(int(judged.sum()), "n_detections", dtype=object),
            "value": n[judged], "is_outlier": few[judged], "group_key": groups[judged]},
            constants={"stage_run_id": ctx.run_id})
        out = [int(i) for i in eid[few]]
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)", (_FEW, out))
        return {"exposure_summary": len(rows), "few_sources": len(out), "few_sources_exposures": out,
                "not_extracted": int((~judged).sum())}
