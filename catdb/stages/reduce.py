"""Stage ``reduce``: CCD reduction with calibration frames selected from the database.

For each selected science exposure the stage looks up, in ``exposure``, the bias
frames (``image_type = 'bias'``) of the same instrument, binning, raw size and HDU,
and the flat fields (``image_type = 'flat'``) of the same instrument, binning, size,
HDU **and filter**.  Flats in another filter are not used; the run lists them with
the reason (``stage_run.counts -> 'skipped'`` and the master flat's ``meta``).

Masters are combined once per calibration group with
:func:`catdb.algorithms.reduce.master_bias` / :func:`~catdb.algorithms.reduce.master_flat`
(ccdproc; sigma-clipped average) and written to ``<outdir>/masters/``; every science
frame is reduced with :func:`~catdb.algorithms.reduce.reduce_science` (overscan, trim,
bias, flat; Massey 1997, "A User's Guide to CCD Reductions with IRAF") into
``<outdir>/reduced/e<id>_<name>.fits.fz`` (Rice tile-compressed, HDU 1).  Every file is
an ``image_product`` row (kinds ``master_bias``, ``master_flat``, ``reduced``) with the
exposures it was made from in ``input_ids``.

Re-running replaces the earlier runs' product rows (reduced frames of the selected
exposures, masters with the same file name) and overwrites the files.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..db.copy import copy_table
from ..errors import InputError
from .base import Param, Stage, StageContext, register

#: keys of a calibration group (columns of ``exposure``)
_BIAS_KEY = ("instrument", "binning", "naxis1", "naxis2", "hdu")
_FLAT_KEY = _BIAS_KEY + ("filter",)


def _stem(path: str) -> str:
    name = Path(path).name
    for suf in (".fits.fz", ".fits.gz", ".fits", ".fit", ".fts", ".fz"):
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def _safe(v) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-") or "none"


def _describe(key: dict) -> str:
    return ", ".join(f"{k}={key[k]!r}" for k in key)


def _sha256(path) -> str:
    from ..ingest.load import sha256_file

    return sha256_file(path)


@register
class Reduce(Stage):
    name = "reduce"
    description = "CCD reduction (overscan, trim, master bias, master flat) with calibrations from the database"
    params = [
        Param("outdir", str, "./catdb-products/", "Directory for masters/ and reduced/ (created)"),
        Param("require_flat", bool, True,
              "Fail when no flat of the science filter is in the database; false = reduce without a flat "
              "(bias only) and say so"),
        Param("sigma", float, 3.0, "Clipping threshold of the master combinations"),
        Param("min_flat", float, 0.1, "Pixels where the master flat is below this become NaN"),
        Param("flat_min_level", float, 1000.0, "Lowest acceptable median level of a raw flat (ADU)"),
    ]
    outputs = ["image_product"]

    # ---------------------------------------------------------------- calibration lookup
    def _calibrations(self, conn, image_type: str, key: dict) -> list[tuple]:
        """(id, path, hdu, filter) of calibration exposures matching ``key`` (filter ignored here)."""
        rows = conn.execute(
            "SELECT id, path, hdu, filter FROM exposure WHERE image_type = %s "
            "AND instrument IS NOT DISTINCT FROM %s AND binning IS NOT DISTINCT FROM %s "
            "AND naxis1 IS NOT DISTINCT FROM %s AND naxis2 IS NOT DISTINCT FROM %s AND hdu = %s "
            "ORDER BY mjd_mid NULLS LAST, id",
            (image_type, key["instrument"], key["binning"], key["naxis1"], key["naxis2"], key["hdu"])
        ).fetchall()
        return rows

    def run(self, ctx: StageContext) -> dict:
        from ..algorithms.reduce import master_bias, master_flat, reduce_science

        p = ctx.params
        outdir = Path(p["outdir"]).expanduser().resolve()
        sci = ctx.execute(
            "SELECT id, path, hdu, instrument, binning, naxis1, naxis2, filter, band FROM exposure "
            "WHERE id = ANY(%s) ORDER BY id", (ctx.inputs,)).fetchall()
        if not sci:
            return {"reduced": 0, "master_bias": 0, "master_flat": 0}
        cols = ("id", "path", "hdu", "instrument", "binning", "naxis1", "naxis2", "filter", "band")
        sci = [dict(zip(cols, r)) for r in sci]

        # 1. resolve every calibration group before computing anything (errors come first)
        bias_groups: dict[tuple, dict] = {}
        flat_groups: dict[tuple, dict] = {}
        skipped: list[dict] = []
        notes: list[str] = []
        for e in sci:  # loop over exposures
            bkey = tuple(e[k] for k in _BIAS_KEY)
            if bkey not in bias_groups:
                key = dict(zip(_BIAS_KEY, bkey))
                rows = self._calibrations(ctx.conn, "bias", key)
                if not rows:
                    raise InputError(
                        f"exposure {e['id']} ({e['path']}): no bias frame in the database with "
                        f"{_describe(key)}; ingest bias (zero) frames of that instrument and binning with "
                        f"'catdb ingest image'")
                bias_groups[bkey] = {"key": key, "frames": rows}
            fkey = tuple(e[k] for k in _FLAT_KEY)
            if fkey not in flat_groups:
                key = dict(zip(_FLAT_KEY, fkey))
                rows = self._calibrations(ctx.conn, "flat", key)
                match = [r for r in rows if (r[3] or "").strip() == (e["filter"] or "").strip()]
                other = [r for r in rows if r not in match]
                for r in other:
                    skipped.append({"exposure_id": r[0], "path": r[1], "kind": "flat",
                                    "reason": f"FILTER {r[3]!r}, expected {e['filter']!r}"})
                if not match:
                    what = (f"no flat in the database with {_describe(key)}"
                            + (f" (flats found only in filter(s) {sorted({str(r[3]) for r in other})})"
                               if other else ""))
                    if p["require_flat"]:
                        raise InputError(
                            f"exposure {e['id']} ({e['path']}): {what}; ingest flats in filter "
                            f"{e['filter']!r} or run with require_flat=false")
                    notes.append(f"filter {e['filter']!r}: {what}; reduced without a flat (require_flat=false)")
                flat_groups[fkey] = {"key": key, "frames": match, "bias": bkey}

        # 2. masters, once per group
        mdir = outdir / "masters"
        mdir.mkdir(parents=True, exist_ok=True)
        products: list[dict] = []
        for bkey, g in bias_groups.items():  # loop over calibration groups
            k = g["key"]
            fname = mdir / (f"master_bias_{_safe(k['instrument'])}_{_safe(k['binning'])}_"
                            f"{k['naxis1']}x{k['naxis2']}_hdu{k['hdu']}.fits")
            m = master_bias([r[1] for r in g["frames"]], hdu=k["hdu"], sigma=p["sigma"])
            _write_master(m.ccd, fname)
            g.update(master=m, path=fname)
            used = set(m.used)
            skipped += [{"exposure_id": None, "path": s, "kind": "bias", "reason": why} for s, why in m.skipped]
            products.append(dict(exposure_id=None, kind="master_bias", path=str(fname), hdu=0, band=None,
                                 input_ids=[r[0] for r in g["frames"] if r[1] in used],
                                 meta={**k, "method": "sigma-clipped average (ccdproc.combine)",
                                       "sigma": p["sigma"], "used": m.used,
                                       "skipped": [{"path": s, "reason": why} for s, why in m.skipped]}))
        for fkey, g in flat_groups.items():
            k = g["key"]
            bias = bias_groups[g["bias"]]
            if not g["frames"]:
                g.update(master=None, path=None)
                continue
            fname = mdir / (f"master_flat_{_safe(k['instrument'])}_{_safe(k['binning'])}_"
                            f"{k['naxis1']}x{k['naxis2']}_hdu{k['hdu']}_{_safe(k['filter'])}.fits")
            m = master_flat([r[1] for r in g["frames"]], bias["master"], filter=k["filter"], hdu=k["hdu"],
                            sigma=p["sigma"], min_level=p["flat_min_level"])
            _write_master(m.ccd, fname)
            g.update(master=m, path=fname)
            used = set(m.used)
            skipped += [{"exposure_id": None, "path": s, "kind": "flat", "reason": why} for s, why in m.skipped]
            other = [s for s in skipped if s["kind"] == "flat" and s["exposure_id"] is not None
                     and s["reason"].endswith(f"expected {k['filter']!r}")]
            products.append(dict(exposure_id=None, kind="master_flat", path=str(fname), hdu=0,
                                 band=next((e["band"] for e in sci if e["filter"] == k["filter"]), None),
                                 input_ids=[r[0] for r in g["frames"] if r[1] in used],
                                 meta={**k, "method": "bias-subtracted, median-scaled, sigma-clipped average",
                                       "master_bias": str(bias["path"]), "used": m.used,
                                       "skipped": [{"path": s, "reason": why} for s, why in m.skipped]
                                       + [{"path": s["path"], "reason": s["reason"]} for s in other]}))

        # 3. science frames
        rdir = outdir / "reduced"
        rdir.mkdir(parents=True, exist_ok=True)
        for e in sci:  # loop over exposures
            bg = bias_groups[tuple(e[k] for k in _BIAS_KEY)]
            fg = flat_groups[tuple(e[k] for k in _FLAT_KEY)]
            out = rdir / f"e{e['id']}_{_stem(e['path'])}.fits.fz"
            bias = bg["master"]
            flat = fg["master"]
            if flat is None:
                from astropy import units as u
                from astropy.nddata import CCDData

                flat = CCDData(np.ones(bias.ccd.shape, dtype=np.float32), unit=u.dimensionless_unscaled)
            reduce_science(e["path"], bias, flat, out, hdu=e["hdu"], min_flat=p["min_flat"],
                           check_filter=fg["master"] is not None)
            if fg["master"] is None:
                with fits.open(out, mode="update") as hl:
                    hl[1].header["FLATCOR"] = "none: no flat in this filter (require_flat=false)"
            with fits.open(out) as hl:
                h = hl[1].header
                info = {"saturate": h.get("SATURATE"), "naxis1": h.get("ZNAXIS1", h.get("NAXIS1")),
                        "naxis2": h.get("ZNAXIS2", h.get("NAXIS2")), "ltv1": h.get("LTV1"), "ltv2": h.get("LTV2")}
            used_bias = {r[1]: r[0] for r in bg["frames"]}
            used_flat = {r[1]: r[0] for r in fg["frames"]}
            inputs = [used_bias[s] for s in bg["master"].used] + \
                     ([used_flat[s] for s in fg["master"].used] if fg["master"] is not None else [])
            products.append(dict(exposure_id=e["id"], kind="reduced", path=str(out), hdu=1, band=e["band"],
                                 input_ids=inputs,
                                 meta={"raw": e["path"], "raw_hdu": e["hdu"], "master_bias": str(bg["path"]),
                                       "master_flat": None if fg["path"] is None else str(fg["path"]),
                                       "flat": "applied" if fg["master"] is not None else "none (require_flat=false)",
                                       "min_flat": p["min_flat"], **info}))

        # 4. replace masters of earlier runs written to the same files, then record all products
        master_paths = [x["path"] for x in products if x["exposure_id"] is None]
        rep = ctx.execute(
            "DELETE FROM image_product WHERE kind IN ('master_bias', 'master_flat') AND path = ANY(%s) "
            "AND stage_run_id IN (SELECT id FROM stage_run WHERE stage = %s AND id <> %s)",
            (master_paths, self.name, ctx.run_id)).rowcount
        n = _record_products(ctx.conn, products, ctx.run_id)
        skipped_unique = list({(s["path"], s["reason"]): s for s in skipped}.values())
        return {"reduced": sum(x["kind"] == "reduced" for x in products),
                "master_bias": sum(x["kind"] == "master_bias" for x in products),
                "master_flat": sum(x["kind"] == "master_flat" for x in products),
                "image_product": n, "replaced_masters": rep,
                "skipped": [{"path": s["path"], "kind": s["kind"], "reason": s["reason"]} for s in skipped_unique],
                "notes": notes}


def _write_master(ccd, path: Path) -> None:
    """Write a master frame as a plain float32 FITS primary HDU (overwrites)."""
    h = ccd.meta.copy() if isinstance(ccd.meta, fits.Header) else fits.Header(ccd.meta)
    for k in ("SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT", "GCOUNT",
              "BZERO", "BSCALE", "BLANK"):
        h.remove(k, ignore_missing=True, remove_all=True)
    if ccd.unit is not None:
        h["BUNIT"] = str(ccd.unit) or "1"
    fits.PrimaryHDU(np.asarray(ccd.data, dtype=np.float32), header=h).writeto(
        path, overwrite=True, output_verify="silentfix")


def _record_products(conn, products: list[dict], run_id: int) -> int:
    """COPY the product rows (one per file) into ``image_product``."""
    if not products:
        return 0
    ids = np.array([x["exposure_id"] for x in products], dtype=object)
    return copy_table(conn, "image_product", {
        "exposure_id": ids,
        "kind": np.array([x["kind"] for x in products], dtype=object),
        "path": np.array([x["path"] for x in products], dtype=object),
        "sha256": np.array([_sha256(x["path"]) for x in products], dtype=object),
        "hdu": np.array([x["hdu"] for x in products], dtype=np.int64),
        "band": np.array([x["band"] for x in products], dtype=object),
        "input_ids": np.array(["{" + ",".join(str(int(i)) for i in x["input_ids"]) + "}" for x in products],
                              dtype=object),
        "meta": np.array([json.dumps(x["meta"], default=str) for x in products], dtype=object),
    }, constants={"stage_run_id": run_id})
