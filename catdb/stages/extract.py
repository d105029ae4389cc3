"""Stage ``extract``: SExtractor on the selected exposures, detections loaded back.

Each selected science exposure's latest ``reduced`` product (stage ``reduce``), or its raw
image with ``use_raw=true``, goes through :func:`catdb.ingest.extract.extract` with the
exposure's **stored** WCS (``exposure.wcs_header``, which stage ``solve`` may have replaced)
merged into the image header, so ``ALPHA``/``DELTA`` come from the stored solution.  An
exposure whose ``wcs_status`` is not in :data:`catdb.schema.WCS_USABLE` (``header``,
``solved``, ``registered``) is refused with the command that gives it a WCS
(``catdb stage solve``): no detection is stored with an invented position (Bertin &
Arnouts 1996, A&AS 117, 393; configuration precedence: ``catdb.sex`` < image header <
parameters).  SExtractor runs in ``workers`` threads (one process each, which also parse the
catalogue); the database writes happen in the stage's transaction, in the main thread, while the
workers extract the next exposures (catalogues loaded in exposure order):

* the FITS_LDAC catalogue ``<outdir>/catalogs/e<id>_<name>.cat`` becomes an
  ``image_product`` row (kind ``catalog``, HDU 2 = ``LDAC_OBJECTS``);
* its sources replace the exposure's detections
  (:func:`catdb.ingest.load.attach_catalog`; each detection's ``stage_run_id`` is this
  run; rows linked to the old detections - ``detection_object``, ``track_detection``,
  ``survivor`` - go with them by cascade);
* with ``update_fwhm`` (default), ``exposure.fwhm`` becomes the median ``FWHM_WORLD``
  (arcsec) of unflagged point sources (``CLASS_STAR >= 0.8``, S/N >= 20);
* CLASS_STAR depends on the seeing SExtractor is given (``SEEING_FWHM``: ``config``, the header's
  ``SEEING``, or a first pass on the image); when none is known (fewer than 5 clean stars, no pixel
  scale) ``detection.class_star`` is NULL for that exposure (the catalogue keeps SExtractor's value
  for catdb.sex's placeholder seeing), the reason in the catalogue product's ``meta.seeing_source``
  and the exposures in ``counts.class_star_null_no_seeing``.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..algorithms.astrometry import header_ltv
from ..db.copy import copy_table
from ..errors import InputError
from ..ingest.extract import extract
from ..ingest.headers import header_from_cards
from ..ingest.load import attach_catalog, sha256_file
from ..ingest.wcs_state import refuse_unusable, solve_hint
from ..ingest.sextractor import read_catalog
from ._common import file_stem
from .base import Param, Stage, StageContext, register

_KEY = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: keys the stage controls itself
_RESERVED = {"CATALOG_NAME", "CATALOG_TYPE", "PARAMETERS_NAME"}


def parse_config(text: str | None) -> dict:
    """Parse ``KEY=VALUE,KEY=VALUE`` (``sex_KEY`` accepted) into SExtractor overrides.

    A comma-separated item without ``=`` continues the previous value, so
    ``PHOT_APERTURES=4,8,12,BACK_SIZE=128`` gives ``{"PHOT_APERTURES": "4,8,12",
    "BACK_SIZE": "128"}``.

    Raises
    ------
    catdb.errors.InputError
        An item before the first ``KEY=``, a key that is not a SExtractor keyword
        (upper-case letters, digits, underscores), or a key the stage sets itself.
    """
    out: dict[str, str] = {}
    last = None
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            k, v = (s.strip() for s in item.split("=", 1))
            k = k.upper()
            if k.startswith("SEX_"):
                k = k[4:]
            if not _KEY.match(k):
                raise InputError(f"parameter config: {k!r} is not a SExtractor keyword "
                                 "(expected KEY=VALUE, e.g. DETECT_MINAREA=3)")
            if k in _RESERVED:
                raise InputError(f"parameter config: {k} is set by the extract stage and cannot be overridden")
            out[k] = v
            last = k
        elif last is None:
            raise InputError(f"parameter config: {item!r} has no KEY= (expected KEY=VALUE,KEY=VALUE)")
        else:
            out[last] += "," + item
    return out


def _apertures(text: str | None) -> list[float] | None:
    if text is None or str(text).strip() == "":
        return None
    try:
        vals = [float(s) for s in str(text).replace(" ", "").split(",") if s]
    except ValueError:
        raise InputError(f"parameter phot_apertures: expected comma-separated diameters in pixels, "
                         f"got {text!r}") from None
    if not vals or any(v <= 0 for v in vals):
        raise InputError(f"parameter phot_apertures: diameters must be > 0 pixels, got {text!r}")
    return vals


@register
class Extract(Stage):
    name = "extract"
    description = "SExtractor on reduced (or raw) exposures; catalogues recorded, detections replaced"
    params = [
        Param("outdir", str, "./catdb-products/", "Directory for catalogs/ (created)"),
        Param("use_raw", bool, False, "Extract the raw image instead of the latest reduced product"),
        Param("detect_thresh", float, 1.5, "SExtractor DETECT_THRESH (sigma above background)"),
        Param("phot_apertures", str, None, "Aperture DIAMETERS in pixels, comma-separated "
                                           "(default catdb.sex: 4,6,8,10,14,20)"),
        Param("config", str, None, "Other SExtractor overrides KEY=VALUE,KEY=VALUE (sex_ prefix optional)"),
        Param("workers", int, 2, "SExtractor processes run at once"),
        Param("update_fwhm", bool, True, "Set exposure.fwhm to the median FWHM_WORLD of good point sources"),
        Param("extra", str, None, "Catalogue columns without a detection column kept in detection.extra "
                                  "(comma-separated SExtractor names, or 'all'; default none)"),
    ]
    outputs = ["image_product"]

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        if p["workers"] < 1:
            raise InputError(f"parameter workers: expected >= 1, got {p['workers']}")
        cfg = parse_config(p["config"])
        cfg.setdefault("DETECT_THRESH", p["detect_thresh"])
        apers = _apertures(p["phot_apertures"])
        if apers is not None:
            cfg["PHOT_APERTURES"] = apers
        outdir = Path(p["outdir"]).expanduser().resolve()
        cdir = outdir / "catalogs"

        refuse_unusable(ctx.conn, ctx.inputs, "extract")
        exps = ctx.execute(
            "SELECT e.id, e.path, e.hdu, e.band, r.path, r.hdu, e.wcs_header FROM exposure e "
            "LEFT JOIN LATERAL (SELECT path, hdu FROM image_product p WHERE p.exposure_id = e.id "
            "AND p.kind = 'reduced' ORDER BY p.id DESC LIMIT 1) r ON true "
            "WHERE e.id = ANY(%s) ORDER BY e.id", (ctx.inputs,)).fetchall()
        jobs = []
        for eid, raw, raw_hdu, band, red, red_hdu, wcs_text in exps:  # loop over exposures
            if p["use_raw"]:
                image, hdu, kind = raw, raw_hdu, "raw"
            elif red is None:
                raise InputError(f"exposure {eid} ({raw}) has no reduced product: run 'catdb stage reduce' "
                                 f"on it first, or extract the raw image with use_raw=true")
            else:
                image, hdu, kind = red, red_hdu, "reduced"
            if not Path(image).is_file():
                raise InputError(f"exposure {eid}: {kind} image not found", path=image)
            if not wcs_text or not wcs_text.strip():
                raise InputError(f"exposure {eid} ({raw}) has no stored WCS (exposure.wcs_header is empty); "
                                 f"run: {solve_hint(eid)}")
            jobs.append(dict(id=eid, band=band, image=image, hdu=hdu, kind=kind, wcs=header_from_cards(wcs_text),
                             cat=cdir / f"e{eid}_{file_stem(image)}.cat"))
        if not jobs:
            return {"catalog": 0, "detection": 0}
        cdir.mkdir(parents=True, exist_ok=True)

        def _one(j):  # worker thread: SExtractor subprocess(es), then the catalogue parsed and hashed
            info = {}
            extract(j["image"], j["cat"], hdu=j["hdu"], config=cfg, wcs_header=j["wcs"], info=info)
            # the pixel frame of the catalogue: IRAF LTV of the extracted image (merge_wcs keeps it)
            j["ltv"] = header_ltv(info["header"])
            j["seeing"], j["seeing_source"] = info.get("seeing_fwhm"), info.get("seeing_source")
            j["catalog"] = read_catalog(j["cat"])
            j["sha256"] = sha256_file(j["cat"])
            return j

        ids = [j["id"] for j in jobs]
        old = ctx.execute("SELECT count(*) FROM detection WHERE exposure_id = ANY(%s)", (ids,)).fetchone()[0]
        n_det = []
        # SExtractor runs in the pool while this thread COPYs the catalogues already done, in job
        # order (detection ids do not depend on which worker finishes first)
        pool = ThreadPoolExecutor(max_workers=p["workers"])
        try:
            for j in pool.map(_one, jobs):  # re-raises the first failure
                n_det.append(attach_catalog(ctx.conn, j["id"], j["cat"], ctx.run_id, extra=p["extra"],
                                            catalog=j.pop("catalog"), sha256=j["sha256"]))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        # CLASS_STAR is computed for SEEING_FWHM: without a seeing of the image's own (config, header, first
        # pass) SExtractor used catdb.sex's placeholder, so the classification is not stored
        no_seeing = [j["id"] for j in jobs if j["seeing"] is None]
        if no_seeing:
            ctx.execute("UPDATE detection SET class_star = NULL WHERE exposure_id = ANY(%s) AND stage_run_id = %s",
                        (no_seeing, ctx.run_id))
        fwhm = {}
        if p["update_fwhm"]:
            fwhm = dict(ctx.execute(
                "UPDATE exposure e SET fwhm = s.med FROM ("
                " SELECT exposure_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY fwhm) AS med FROM detection"
                " WHERE exposure_id = ANY(%s) AND flags = 0 AND class_star >= 0.8 AND snr >= 20 AND fwhm > 0"
                " GROUP BY exposure_id) s WHERE e.id = s.exposure_id RETURNING e.id, e.fwhm", (ids,)).fetchall())
        cfg_json = {k: (",".join(map(str, v)) if isinstance(v, list) else v) for k, v in cfg.items()}
        copy_table(ctx.conn, "image_product", {
            "exposure_id": np.array(ids, dtype=np.int64),
            "path": np.array([str(j["cat"]) for j in jobs], dtype=object),
            "sha256": np.array([j["sha256"] for j in jobs], dtype=object),
            "band": np.array([j["band"] for j in jobs], dtype=object),
            "meta": np.array([json.dumps({"image": j["image"], "image_hdu": j["hdu"], "image_kind": j["kind"],
                                          "ltv1": j["ltv"][0], "ltv2": j["ltv"][1],
                                          "catalog_type": "FITS_LDAC", "config": cfg_json, "n_detections": n,
                                          "fwhm_median": fwhm.get(j["id"]), "seeing_fwhm": j["seeing"],
                                          "seeing_source": j["seeing_source"],
                                          "class_star": "stored" if j["seeing"] is not None else
                                          "NULL: seeing unknown, CLASS_STAR would be for catdb.sex's "
                                          "placeholder SEEING_FWHM"}, default=str)
                              for j, n in zip(jobs, n_det)], dtype=object),
        }, constants={"kind": "catalog", "hdu": 2, "stage_run_id": ctx.run_id})
        ctx.execute("ANALYZE detection")  # the stages after this plan their joins on fresh statistics
        return {"catalog": len(jobs), "detection": int(sum(n_det)), "detections_replaced": int(old),
                "fwhm_updated": len(fwhm), "class_star_null_no_seeing": no_seeing,
                "image_kind": sorted({j["kind"] for j in jobs})}
