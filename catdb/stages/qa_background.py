"""Stage ``qa-background``: sky-background level and noise per exposure, IQR outliers per night.

Per selected exposure, from the pixels when the image can be read, else from
the catalogue:

* **pixels** -- the newest ``image_product`` of kind ``reduced`` for the exposure
  when there is one, else the exposure's own file (``exposure.path``, HDU
  ``exposure.hdu``).  A raw frame of the exposure itself whose header declares an
  overscan (``BIASSEC``) is overscan-subtracted and trimmed to ``TRIMSEC`` first, as the
  ``reduce`` stage does (:func:`catdb.algorithms.reduce.overscan_trim`); a frame without
  ``BIASSEC`` is measured whole.  Statistics:
  :func:`catdb.algorithms.background.background_stats` (sources masked by
  segmentation at 2 sigma, 5 pixels, dilated 11 x 11; sigma-clipped mean, median,
  std at 3 sigma; raw MAD), as Automatic-SSOs ``magcalib.py:imgstats``.
* **catalogue** -- when no 2-D image is reachable (catalogue-only exposures),
  the same statistics of SExtractor's ``BACKGROUND`` at the positions of the
  exposure's detections (:func:`catdb.algorithms.robust.robust_stats`).  Note
  that ``bkg_std`` and ``bkg_mad`` are then the spread of the background *map*
  over the field, not the pixel noise.

Writes ``exposure.bkg_mean``, ``bkg_median``, ``bkg_std``, ``bkg_mad`` (ADU) and
``exposure_qa`` metrics ``bkg_mean``, ``bkg_median``, ``bkg_std``, ``bkg_mad``
(ADU) plus the source of the numbers: ``bkg_n_pixels`` (pixels used, when from
the image) or ``bkg_n_sources`` (detections used, from the catalogue).  An
exposure whose ``bkg_median`` lies outside [Q1 - k IQR, Q3 + k IQR] of its group
(night, or all) is an outlier (bright sky, clouds, twilight;
:func:`catdb.algorithms.robust.iqr_outliers` with ``side='both'``):
``is_outlier`` on its ``bkg_median`` row and the ``background_outlier`` bit in
``exposure.quality_flags`` (cleared first for the selected exposures).

Images are read and measured one exposure at a time, in ``workers`` processes
(:class:`concurrent.futures.ProcessPoolExecutor`) when ``workers > 1``.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from astropy.io import fits
from astropy.nddata import CCDData

from ..algorithms.background import background_stats
from ..algorithms.reduce import has_overscan, overscan_trim
from ..algorithms.robust import iqr_outliers, robust_stats
from ..db.copy import copy_table
from ..errors import CatdbError
from ..schema.tables import QUALITY_FLAGS
from ._common import group_keys
from .base import Param, Stage, StageContext, register

log = logging.getLogger("catdb.stages.qa_background")

STATS = ("bkg_mean", "bkg_median", "bkg_std", "bkg_mad")


def pixel_background(path, hdu, raw, nsigma=2.0, npixels=5, dilate_size=11, sigma=3.0):
    """Background statistics of one image HDU, or why they could not be measured.

    Parameters
    ----------
    path : str
        FITS file.
    hdu : int
        HDU index (0-based) of the image.
    raw : bool
        Apply :func:`catdb.algorithms.reduce.overscan_trim` (``BIASSEC``, then ``TRIMSEC``)
        when the header declares an overscan (``BIASSEC``).
    nsigma, npixels, dilate_size, sigma
        See :func:`catdb.algorithms.background.background_stats`.

    Returns
    -------
    dict or str
        The statistics of :func:`~catdb.algorithms.background.background_stats` (ADU) plus
        ``trimmed`` (bool); or a string saying why no image could be measured (file missing,
        HDU without a 2-D image).

    Raises
    ------
    catdb.errors.InputError
        Malformed or missing ``TRIMSEC`` with a ``BIASSEC``, a section outside the image, or a
        frame already trimmed (``TRIM`` card) that still declares ``BIASSEC``.
    """
    if not path or not os.path.isfile(path):
        return f"file {path} not reachable"
    try:
        with fits.open(path, memmap=False) as hl:
            if hdu >= len(hl):
                return f"{path} has no HDU {hdu}"
            data, header = hl[hdu].data, hl[hdu].header
            if data is None or np.ndim(data) != 2:
                return f"{path}[{hdu}] holds no 2-D image"
            data = np.asarray(data)
    except OSError as e:  # not a FITS image (e.g. a text catalogue)
        return f"{path}: not readable as FITS ({e})"
    trimmed = False
    if raw and has_overscan(header):
        data = overscan_trim(CCDData(data.astype(np.float32), unit="adu", meta=header), path=path).data
        trimmed = True
    out = background_stats(data, sigma=sigma, nsigma=nsigma, npixels=npixels, dilate_size=dilate_size)
    out["trimmed"] = trimmed
    return out


def _call(args):
    return pixel_background(*args)


@register
class QaBackground(Stage):
    name = "qa-background"
    description = "Background mean/median/std/MAD per exposure (pixels, else SExtractor BACKGROUND); IQR outliers"
    params = [
        Param("group", str, "night", "Group of the IQR rule", choices=("night", "all")),
        Param("k", float, 1.5, "IQR fence factor: outlier outside Q1 - k IQR .. Q3 + k IQR"),
        Param("workers", int, 1, "Processes measuring images in parallel"),
        Param("use_pixels", bool, True, "Measure the images when reachable (false: catalogue BACKGROUND only)"),
    ]
    outputs = ["exposure_qa"]

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        if p["workers"] < 1:
            raise CatdbError(f"parameter workers: expected >= 1, got {p['workers']}")
        ids = list(ctx.inputs)
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags & ~%s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["background_outlier"], ids))
        if not ids:
            return {"exposure_qa": 0}
        rows = ctx.execute(
            """SELECT e.id, COALESCE(ip.path, e.path), COALESCE(ip.hdu, e.hdu), ip.path IS NULL
               FROM exposure e LEFT JOIN LATERAL (
                   SELECT path, hdu FROM image_product WHERE exposure_id = e.id AND kind = 'reduced'
                   ORDER BY id DESC LIMIT 1) ip ON true
               WHERE e.id = ANY(%s) ORDER BY e.id""", (ids,)).fetchall()
        n = len(ids)
        vals = np.full((n, len(STATS)), np.nan)
        count = np.zeros(n)
        from_pixels = np.zeros(n, bool)
        index = {eid: i for i, eid in enumerate(ids)}
        if p["use_pixels"]:
            args = [(path, int(hdu), bool(raw)) for _, path, hdu, raw in rows]
            if p["workers"] > 1 and len(args) > 1:
                with ProcessPoolExecutor(max_workers=p["workers"]) as ex:
                    results = list(ex.map(_call, args))
            else:
                results = [_call(a) for a in args]  # loop over exposures
            for (eid, *_), res in zip(rows, results):
                i = index[eid]
                if isinstance(res, dict):
                    vals[i] = [res["mean"], res["median"], res["std"], res["mad"]]
                    count[i] = res["n_pixels"]
                    from_pixels[i] = True
                else:
                    log.info("exposure %s: %s; background from the catalogue", eid, res)
        cat_ids = [eid for eid in ids if not from_pixels[index[eid]]]
        if cat_ids:
            det = np.array(ctx.execute(
                "SELECT exposure_id, background FROM detection WHERE exposure_id = ANY(%s) "
                "AND background IS NOT NULL ORDER BY exposure_id", (cat_ids,)).fetchall(), dtype=float).reshape(-1, 2)
            exp = det[:, 0].astype(np.int64)
            lo, hi = np.searchsorted(exp, cat_ids, "left"), np.searchsorted(exp, cat_ids, "right")
            for eid, a, b in zip(cat_ids, lo, hi):  # loop over exposures
                if b - a == 0:
                    continue
                s = robust_stats(det[a:b, 1])
                vals[index[eid]] = [s["mean"], s["median"], s["std"], s["mad"]]
                count[index[eid]] = b - a
        groups = group_keys(ctx.conn, ids, p["group"])
        outlier = iqr_outliers(vals[:, 1], groups.astype(str), k=p["k"], side="both")
        has = np.isfinite(vals[:, 1])
        # exposure_qa: 4 statistics + the count (pixels or sources) per exposure
        metrics = np.array(list(STATS) + ["bkg_n_pixels"], dtype=object)
        mrows = np.tile(metrics, (n, 1))
        mrows[~from_pixels, -1] = "bkg_n_sources"
        allv = np.column_stack([vals, np.where(has, count, np.nan)])
        is_out = np.zeros(allv.shape, bool)
        is_out[:, 1] = outlier
        keep = np.repeat(has, allv.shape[1])  # exposures with no number at all write no rows
        nrows = copy_table(ctx.conn, "exposure_qa", {
            "exposure_id": np.repeat(np.asarray(ids, np.int64), allv.shape[1])[keep],
            "metric": mrows.ravel()[keep], "value": allv.ravel()[keep], "is_outlier": is_out.ravel()[keep],
            "group_key": np.repeat(groups, allv.shape[1])[keep]}, constants={"stage_run_id": ctx.run_id})
        # exposure.bkg_*: COPY into a temporary table, then one UPDATE
        ctx.execute("DROP TABLE IF EXISTS _qa_bkg")
        ctx.execute("CREATE TEMP TABLE _qa_bkg (id bigint, bkg_mean double precision, bkg_median double precision, "
                    "bkg_std double precision, bkg_mad double precision) ON COMMIT DROP")
        copy_table(ctx.conn, "_qa_bkg",
                   {"id": np.asarray(ids, np.int64), **{k: vals[:, j] for j, k in enumerate(STATS)}})
        ctx.execute("UPDATE exposure e SET bkg_mean = t.bkg_mean, bkg_median = t.bkg_median, bkg_std = t.bkg_std, "
                    "bkg_mad = t.bkg_mad FROM _qa_bkg t WHERE e.id = t.id")
        ctx.execute("DROP TABLE IF EXISTS _qa_bkg")
        out_ids = [int(i) for i in np.asarray(ids)[outlier]]
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["background_outlier"], out_ids))
        return {"exposure_qa": nrows, "from_pixels": int(from_pixels.sum()),
                "from_catalog": int((~from_pixels & has).sum()), "no_background": int((~has).sum()),
                "background_outlier": len(out_ids)}
