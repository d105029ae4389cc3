"""Stage ``coadd``: stack a quality-selected set of reduced exposures; optionally detect on the stack.

The inputs are the science exposures matching ``--where`` (with ``exclude_flags``, the
default, only those with ``quality_flags = 0``); each one's latest ``reduced`` product
(stage ``reduce``) is stacked by :func:`catdb.algorithms.coadd.coadd` (per-frame
background subtraction, reprojection onto the optimal common TAN grid, sigma-clipped
weighted mean; cf. SWarp ``COMBINE_TYPE CLIPPED``, Bertin et al. 2002, ASPC 281, 228).  The
stack is written to ``<outdir>/coadd/coadd_<band>_<n>exp_<hash>.fits`` (the hash names the
input set) and recorded as an ``image_product`` of kind ``coadd`` with the exposure ids in
``input_ids``.

With ``detect=true`` SExtractor (:func:`catdb.ingest.extract.extract`) runs on the stack; its
catalogue is an ``image_product`` of kind ``catalog`` and its sources become ``object`` rows
of kind ``'coadd'`` (``ra``, ``dec``, their errors, ``band``, ``mean_mag`` = instrumental
MAG_AUTO on the stack; only sources whose pixel is covered by at least ``min_coverage`` of the
inputs in the ``NCOMBINE`` map, so edge artefacts of the stack are left out;
``mjd_first``/``mjd_last`` = start of the first / end of the last input from the exposures'
``mjd_mid`` and ``exptime``, NULL when an input lacks one: counted as ``inputs_without_mjd_mid``
/ ``inputs_without_exptime``,
``n_detections = n_epochs = 0``: no single-epoch detection is linked).  Measure them on the
single exposures with ``catdb stage forced --param objects="kind = 'coadd'"`` (the deep-coadd
then forced-photometry flow of the LSST pipelines).

Re-running on the same exposure set replaces the earlier coadd products and coadd objects
(forced measurements of those objects go with them) and overwrites the file.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from psycopg import sql

from ..db.copy import copy_table
from ..errors import InputError
from ..ingest.extract import extract
from ..ingest.headers import header_from_cards
from ..ingest.load import sha256_file
from ..ingest.sextractor import detection_columns, read_catalog
from ..ingest.wcs_state import refuse_unusable
from .base import Param, Stage, StageContext, register

#: SExtractor FLAGS bits that drop a coadd source: truncated (8), memory/extraction overflow (64, 128)
_BAD_SEX_FLAGS = 8 | 64 | 128


def _set_hash(ids) -> str:
    return hashlib.sha1(",".join(str(int(i)) for i in sorted(ids)).encode()).hexdigest()[:10]


@register
class Coadd(Stage):
    name = "coadd"
    description = "Stack quality-selected reduced exposures; optionally detect coadd objects"
    exact_inputs = True
    params = [
        Param("outdir", str, "./catdb-products/", "Directory for coadd/ (created)"),
        Param("exclude_flags", bool, True, "Leave out exposures with quality_flags != 0"),
        Param("weights", str, "background", "background (1/sigma_sky^2) or equal", ("background", "equal")),
        Param("sigma", float, 3.0, "Per-pixel clipping threshold of the stack"),
        Param("detect", bool, False, "Run SExtractor on the coadd and store its sources as objects of kind 'coadd'"),
        Param("detect_thresh", float, 3.0, "SExtractor DETECT_THRESH on the coadd (sigma)"),
        Param("detect_minarea", int, 5, "SExtractor DETECT_MINAREA on the coadd (pixels)"),
        Param("min_coverage", float, 1.0, "Keep coadd sources where at least this fraction of the inputs "
                                          "covers the source pixel (NCOMBINE map; 1 = full depth only)"),
    ]
    outputs = []  # coadd products have no exposure_id: replace() is specific

    def select(self, ctx: StageContext) -> list[int]:
        """Science exposures matching ``--where``; without flagged ones when ``exclude_flags``."""
        base = sql.SQL("SELECT e.id, e.quality_flags FROM exposure e WHERE {d}").format(d=sql.SQL(self.default_where))
        if ctx.where:
            base = base + sql.SQL(" AND ({w})").format(w=sql.SQL(ctx.where))
        rows = ctx.conn.execute(base + sql.SQL(" ORDER BY e.id")).fetchall()
        if ctx.params["exclude_flags"]:
            ctx.counts["excluded_flagged"] = sorted(r[0] for r in rows if r[1] != 0)
            rows = [r for r in rows if r[1] == 0]
        return [r[0] for r in rows]

    def replace(self, ctx: StageContext) -> int:
        """Delete the coadd products and coadd objects of earlier runs on exactly this exposure set."""
        runs = [r[0] for r in ctx.execute(
            "SELECT DISTINCT p.stage_run_id FROM image_product p JOIN stage_run r ON r.id = p.stage_run_id "
            "WHERE r.stage = %(stage)s AND r.id <> %(run)s AND p.kind = 'coadd' "
            "AND p.input_ids @> %(ids)s::bigint[] AND p.input_ids <@ %(ids)s::bigint[]",
            {"stage": self.name, "run": ctx.run_id, "ids": ctx.inputs}).fetchall()]
        if not runs:
            return 0
        n = ctx.execute("DELETE FROM object WHERE kind = 'coadd' AND stage_run_id = ANY(%s)", (runs,)).rowcount
        n += ctx.execute("DELETE FROM image_product WHERE exposure_id IS NULL AND kind IN ('coadd', 'catalog') "
                         "AND stage_run_id = ANY(%s)", (runs,)).rowcount
        return n

    def run(self, ctx: StageContext) -> dict:
        from ..algorithms.coadd import coadd
        p = ctx.params
        refuse_unusable(ctx.conn, ctx.inputs, "coadd")  # reprojection needs each exposure's sky frame
        rows = ctx.execute(
            "SELECT e.id, e.path, e.band, r.path, e.wcs_header, e.mjd_mid, e.exptime FROM exposure e "
            "LEFT JOIN LATERAL (SELECT path FROM image_product p WHERE p.exposure_id = e.id AND p.kind = 'reduced' "
            "ORDER BY p.id DESC LIMIT 1) r ON true WHERE e.id = ANY(%s) ORDER BY e.id", (ctx.inputs,)).fetchall()
        if len(rows) < 2:
            excl = ctx.counts.get("excluded_flagged") or []
            raise InputError(f"coadd needs at least 2 exposures; the selection has {len(rows)}"
                             + (f" after leaving out {len(excl)} with quality_flags != 0 (exposures {excl}; "
                                "exclude_flags=false keeps them)" if excl else ""))
        missing = [(r[0], r[1]) for r in rows if r[3] is None]
        if missing:
            raise InputError(f"exposure {missing[0][0]} ({missing[0][1]}) has no reduced product "
                             f"({len(missing)} of {len(rows)} selected exposures lack one): run 'catdb stage reduce' "
                             "on them first")
        bands = sorted({r[2] for r in rows}, key=str)
        if len(bands) > 1:
            raise InputError(f"coadd needs exposures of one band; the selection has bands {bands}: narrow --where, "
                             f"e.g. \"e.band = '{bands[0]}'\"")
        band = bands[0]
        ids = [r[0] for r in rows]
        outdir = Path(p["outdir"]).expanduser().resolve() / "coadd"
        out = outdir / f"coadd_{band or 'none'}_{len(ids)}exp_{_set_hash(ids)}.fits"
        # the epochs and exposure times ingest derived (keymap time rules, TIMESYS), not a header guess;
        # one unknown leaves the stack's MJD-MID/BEG/END (or EXPTIME/TEXPTIME) out, and the coadd objects'
        # mjd_first/mjd_last NULL
        coadd([r[3] for r in rows], out, weights=p["weights"], sigma=p["sigma"],
              wcs_headers=[header_from_cards(r[4]) if r[4] else None for r in rows],
              mjd_mid=[r[5] for r in rows], exptime=[r[6] for r in rows])
        no_time = [r[0] for r in rows if r[5] is None]
        no_exptime = [r[0] for r in rows if r[6] is None]
        if no_time:
            ctx.counts["inputs_without_mjd_mid"] = no_time
        if no_exptime:
            ctx.counts["inputs_without_exptime"] = no_exptime
        h = fits.getheader(out, 0)
        meta = {"inputs": [r[3] for r in rows], "weights": p["weights"], "sigma": p["sigma"],
                "ncombine": h.get("NCOMBINE"), "mjd_mid": h.get("MJD-MID"), "mjd_beg": h.get("MJD-BEG"),
                "mjd_end": h.get("MJD-END"), "texptime": h.get("TEXPTIME"), "gain": h.get("GAIN"),
                "naxis": [h.get("NAXIS1"), h.get("NAXIS2")]}
        products = [dict(kind="coadd", path=str(out), hdu=0, meta=meta)]
        counts = {"coadd": 1, "inputs": len(ids), "path": str(out)}
        if p["detect"]:
            n_obj, cat, n_all = self._detect(ctx, out, band, h)
            products.append(dict(kind="catalog", path=str(cat), hdu=2,
                                 meta={"image": str(out), "catalog_type": "FITS_LDAC", "n_sources": n_all,
                                       "n_objects": n_obj, "detect_thresh": p["detect_thresh"],
                                       "detect_minarea": p["detect_minarea"]}))
            counts.update(object=n_obj, coadd_sources=n_all)
        copy_table(ctx.conn, "image_product", {
            "kind": np.array([x["kind"] for x in products], dtype=object),
            "path": np.array([x["path"] for x in products], dtype=object),
            "sha256": np.array([sha256_file(x["path"]) for x in products], dtype=object),
            "hdu": np.array([x["hdu"] for x in products], dtype=np.int64),
            "meta": np.array([json.dumps(x["meta"], default=str) for x in products], dtype=object),
        }, constants={"exposure_id": None, "band": band, "input_ids": "{" + ",".join(map(str, ids)) + "}",
                      "stage_run_id": ctx.run_id})
        counts["image_product"] = len(products)
        return counts

    def _detect(self, ctx: StageContext, image: Path, band, header) -> tuple[int, Path, int]:
        """SExtractor on the coadd; its sources as ``object`` rows of kind 'coadd' (one COPY)."""
        p = ctx.params
        cat_path = image.with_suffix(".cat")
        extract(image, cat_path, hdu=0, config={"DETECT_THRESH": p["detect_thresh"],
                                                "DETECT_MINAREA": p["detect_minarea"]})
        dc = detection_columns(read_catalog(cat_path))
        cols = dc.columns
        keep = ((np.asarray(cols["flags"]) & _BAD_SEX_FLAGS) == 0) & np.isfinite(cols["ra"]) & np.isfinite(cols["dec"])
        # coverage: NCOMBINE map at the (1-based) source pixel
        with fits.open(image) as hl:
            nmap = np.asarray(hl["NCOMBINE"].data)
        ix = np.clip(np.rint(np.nan_to_num(np.asarray(cols["x"], dtype=float)) - 1).astype(int), 0, nmap.shape[1] - 1)
        iy = np.clip(np.rint(np.nan_to_num(np.asarray(cols["y"], dtype=float)) - 1).astype(int), 0, nmap.shape[0] - 1)
        need = int(np.ceil(p["min_coverage"] * int(header["NCOMBINE"]) - 1e-9))
        covered = nmap[iy, ix] >= max(need, 1)
        ctx.counts["coadd_sources_low_coverage"] = int(np.sum(keep & ~covered))
        keep &= covered
        n = int(keep.sum())
        copy_table(ctx.conn, "object", {
            "ra": np.asarray(cols["ra"])[keep], "dec": np.asarray(cols["dec"])[keep],
            "ra_err": np.asarray(cols["ra_err"], dtype=float)[keep],
            "dec_err": np.asarray(cols["dec_err"], dtype=float)[keep],
            "mean_mag": np.asarray(cols["mag_auto"], dtype=float)[keep],
        }, constants={"kind": "coadd", "n_detections": 0, "n_epochs": 0, "band": band,
                      "mjd_first": float(header["MJD-BEG"]) if "MJD-BEG" in header else None,
                      "mjd_last": float(header["MJD-END"]) if "MJD-END" in header else None,
                      "stage_run_id": ctx.run_id})
        return n, cat_path, len(keep)
