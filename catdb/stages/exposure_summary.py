"""Stage ``exposure-summary``: per-exposure detection counts, median FWHM and limiting magnitude.

Set-based SQL over the selected exposures' detections; writes ``exposure_summary``.
"""
from __future__ import annotations

from .base import Param, Stage, StageContext, register


@register
class ExposureSummary(Stage):
    name = "exposure-summary"
    description = "Per-exposure detection counts, median FWHM of point sources and SNR-5 magnitude"
    params = [
        Param("class_star_min", float, 0.8, "CLASS_STAR above which a detection counts as point-like"),
        Param("snr_min", float, 20.0, "Minimum SNR of the detections used for the median FWHM"),
    ]
    outputs = ["exposure_summary"]

    def run(self, ctx: StageContext) -> dict:
        cur = ctx.execute(
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
            """,
            {"snr": ctx.params["snr_min"], "cls": ctx.params["class_star_min"], "run": ctx.run_id,
             "ids": ctx.inputs})
        return {"exposure_summary": cur.rowcount}
