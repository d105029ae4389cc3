"""Stage ``reduce``: CCD reduction with calibration frames selected from the database.

For each selected science exposure the stage looks up, in ``exposure`` (by the
``image_type`` ingest stored, :mod:`catdb.imagetypes`):

* the bias frames (``image_type = 'bias'``) of the same instrument, binning, raw size and
  HDU -- required;
* the dark frames (``'dark'``) of the same instrument, binning, size and HDU -- used when
  there are any: per science exposure time, darks of the SAME exposure time are used as they
  are ("matched"), else the darks of the longest exposure time are scaled by the ratio of
  exposure times ("scaled"); the choice is in the product meta and ``counts['dark']``;
* the flat fields (``'flat'``) of the same geometry **and filter** -- optional (a night
  without flats is reduced and says "not flat-fielded" in the product meta, the reduced
  header's ``FLATCOR`` and the HTML report); ``require_flat=true`` makes a missing flat an
  error.  Flats in another filter are not used; the run lists them with the reason.

Frames with an overscan (``BIASSEC``) are overscan-corrected and trimmed; frames without
one are used whole, the bias frames giving the whole zero level (meta ``overscan``).

Frames left out: a science exposure whose size/binning/HDU differs from the night's science
frames (the most common geometry of its instrument and night, e.g. a focus run of 256x256
subframes labelled ``Light Frame``) is not reduced: ``counts['skipped']`` names it with the
reason and the ``not_reduced`` bit (32) of ``exposure.quality_flags`` is set, so the later
stages' default selection (``catdb.stages.base.Stage.default_where``) leaves it out too.
Re-running clears the bit on the exposures it reduces.  ``all_sizes=true`` reduces every
geometry that has its own bias frames instead.

Masters are combined once per calibration group with
:func:`catdb.algorithms.reduce.master_bias` / :func:`~catdb.algorithms.reduce.master_dark`
/ :func:`~catdb.algorithms.reduce.master_flat` (ccdproc; sigma-clipped average) and written
to ``<outdir>/masters/``; every science frame is reduced with
:func:`~catdb.algorithms.reduce.reduce_science` (overscan, trim, bias, dark, flat; Massey
1997, "A User's Guide to CCD Reductions with IRAF") into
``<outdir>/reduced/e<id>_<name>.fits.fz`` (Rice tile-compressed, HDU 1).  Every file is an
``image_product`` row (kinds ``master_bias``, ``master_dark``, ``master_flat``, ``reduced``)
with the exposures it was made from in ``input_ids``.

Re-running replaces the earlier runs' product rows (reduced frames of the selected
exposures, masters with the same file name) and overwrites the files.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..db.copy import copy_table
from ..errors import InputError
from ..ingest.load import sha256_file
from ..schema.tables import QUALITY_FLAGS
from ._common import file_stem
from .base import Param, Stage, StageContext, register

#: keys of a calibration group (columns of ``exposure``)
_BIAS_KEY = ("instrument", "binning", "naxis1", "naxis2", "hdu")
_FLAT_KEY = _BIAS_KEY + ("filter",)
_NOT_REDUCED = QUALITY_FLAGS["not_reduced"]


def _safe(v) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(v)).strip("-") or "none"


def _describe(key: dict) -> str:
    return ", ".join(f"{k}={key[k]!r}" for k in key)


def _geom(e: dict) -> str:
    return f"{e['naxis1']}x{e['naxis2']} pixels, binning {e['binning']}, HDU {e['hdu']}"


def _sha256(path) -> str:
    return sha256_file(path)


def main_geometry(sci: list[dict]) -> dict:
    """The geometry of the night's science frames: (instrument, night) -> (binning, naxis1, naxis2, hdu).

    The most common geometry among the exposures of that instrument and night; a tie goes to
    the larger frame (a focus run is made of small subframes).
    """
    by = {}
    for e in sci:  # loop over exposures (a few hundred): group them
        by.setdefault((e["instrument"], e["night"]), Counter())[(e["binning"], e["naxis1"], e["naxis2"], e["hdu"])] += 1
    return {k: max(c.items(), key=lambda kv: (kv[1], (kv[0][1] or 0) * (kv[0][2] or 0)))[0] for k, c in by.items()}


@register
class Reduce(Stage):
    name = "reduce"
    description = ("CCD reduction (overscan when there is one, master bias, dark, flat) with calibrations "
                   "from the database")
    params = [
        Param("outdir", str, "./catdb-products/", "Directory for masters/ and reduced/ (created)"),
        Param("require_flat", bool, False,
              "Fail when no flat of the science filter is in the database; default false: reduce without a "
              "flat and say so (product meta, FLATCOR, report)"),
        Param("use_darks", bool, True, "Subtract a master dark when dark frames of the same geometry exist"),
        Param("all_sizes", bool, False,
              "Reduce science frames of every size/binning that has its own bias frames; default false: "
              "frames whose geometry differs from the night's science frames (focus subframes) are left out"),
        Param("sigma", float, 3.0, "Clipping threshold of the master combinations"),
        Param("min_flat", float, 0.1, "Pixels where the master flat is below this become NaN"),
        Param("flat_min_level", float, 1000.0, "Lowest acceptable median level of a raw flat (ADU)"),
    ]
    outputs = ["image_product"]
    #: every science exposure, also those an earlier run left out (flag not_reduced): re-running reconsiders them
    default_where = "e.image_type = 'science'"

    # ---------------------------------------------------------------- calibration lookup
    def _calibrations(self, conn, image_type: str, key: dict) -> list[tuple]:
        """(id, path, hdu, filter, exptime) of calibration exposures matching ``key`` (filter ignored here)."""
        return conn.execute(
            "SELECT id, path, hdu, filter, exptime FROM exposure WHERE image_type = %s "
            "AND instrument IS NOT DISTINCT FROM %s AND binning IS NOT DISTINCT FROM %s "
            "AND naxis1 IS NOT DISTINCT FROM %s AND naxis2 IS NOT DISTINCT FROM %s AND hdu = %s "
            "ORDER BY mjd_mid NULLS LAST, id",
            (image_type, key["instrument"], key["binning"], key["naxis1"], key["naxis2"], key["hdu"])
        ).fetchall()

    def _other_geometry(self, conn, image_type: str, key: dict) -> list[tuple]:
        """(id, path, naxis1, naxis2, binning, hdu) of frames of that type and instrument but another geometry."""
        return conn.execute(
            "SELECT id, path, naxis1, naxis2, binning, hdu FROM exposure WHERE image_type = %s "
            "AND instrument IS NOT DISTINCT FROM %s AND NOT (binning IS NOT DISTINCT FROM %s "
            "AND naxis1 IS NOT DISTINCT FROM %s AND naxis2 IS NOT DISTINCT FROM %s AND hdu = %s) ORDER BY id",
            (image_type, key["instrument"], key["binning"], key["naxis1"], key["naxis2"], key["hdu"])).fetchall()

    def run(self, ctx: StageContext) -> dict:
        from ..algorithms.reduce import master_bias, master_dark, master_flat, reduce_science

        p = ctx.params
        outdir = Path(p["outdir"]).expanduser().resolve()
        cols = ("id", "path", "hdu", "instrument", "binning", "naxis1", "naxis2", "filter", "band", "exptime",
                "night")
        rows = ctx.execute(
            f"SELECT {', '.join(cols)} FROM exposure WHERE id = ANY(%s) ORDER BY id", (ctx.inputs,)).fetchall()
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags & ~%s::int WHERE id = ANY(%s)",
                    (_NOT_REDUCED, ctx.inputs))
        if not rows:
            return {"reduced": 0, "master_bias": 0, "master_dark": 0, "master_flat": 0}
        sci_all = [dict(zip(cols, r)) for r in rows]

        # 0. frames of another geometry than the night's science frames are left out (flagged)
        skipped: list[dict] = []
        notes: list[str] = []
        left_out: list[dict] = []
        main = main_geometry(sci_all)
        sci = []
        for e in sci_all:  # loop over exposures
            g = main[(e["instrument"], e["night"])]
            if (e["binning"], e["naxis1"], e["naxis2"], e["hdu"]) == g:
                sci.append(e)
                continue
            if p["all_sizes"] and self._calibrations(ctx.conn, "bias", {k: e[k] for k in _BIAS_KEY}):
                sci.append(e)
                continue
            ref = dict(zip(("binning", "naxis1", "naxis2", "hdu"), g))
            left_out.append(e)
            skipped.append({"exposure_id": e["id"], "path": e["path"], "kind": "science",
                            "reason": f"not reduced: {_geom(e)} differs from the night's science frames "
                                      f"({_geom(ref)}), e.g. a focus-run subframe; flagged not_reduced"})
        if left_out:
            notes.append(f"{len(left_out)} science exposure(s) of another size/binning than the night's science "
                         f"frames left out and flagged not_reduced (quality bit {_NOT_REDUCED}); "
                         f"all_sizes=true reduces them when they have their own bias frames")

        # 1. resolve every calibration group before computing anything (errors come first)
        bias_groups: dict[tuple, dict] = {}
        dark_groups: dict[tuple, dict] = {}
        flat_groups: dict[tuple, dict] = {}
        dark_choice: dict[int, tuple | None] = {}
        for e in sci:  # loop over exposures
            bkey = tuple(e[k] for k in _BIAS_KEY)
            key = dict(zip(_BIAS_KEY, bkey))
            if bkey not in bias_groups:
                rows = self._calibrations(ctx.conn, "bias", key)
                if not rows:
                    other = self._other_geometry(ctx.conn, "bias", key)
                    raise InputError(
                        f"exposure {e['id']} ({e['path']}): no bias frame in the database with "
                        f"{_describe(key)}"
                        + (f" (bias frames found only with other sizes/binnings: "
                           f"{sorted({f'{r[2]}x{r[3]} binning {r[4]}' for r in other})})" if other else "")
                        + "; ingest bias (zero) frames of that instrument, size and binning with 'catdb ingest image'")
                darks = self._calibrations(ctx.conn, "dark", key) if p["use_darks"] else []
                if p["use_darks"]:
                    for r in self._other_geometry(ctx.conn, "dark", key):
                        skipped.append({"exposure_id": r[0], "path": r[1], "kind": "dark",
                                        "reason": f"dark of {r[2]}x{r[3]} pixels, binning {r[4]}, HDU {r[5]}: "
                                                  f"differs from the science frames ({_geom(key)}); not used"})
                    if not darks:
                        notes.append(f"{_describe(key)}: no dark frame of this geometry; not dark-subtracted")
                bias_groups[bkey] = {"key": key, "frames": rows, "darks": darks}
            darks = bias_groups[bkey]["darks"]
            if darks:
                t = float(e["exptime"] or 0.0)
                times = sorted({float(r[4]) for r in darks if r[4] is not None and r[4] > 0})
                if not times:
                    dark_choice[e["id"]] = None
                    notes.append(f"{_describe(key)}: dark frames have no exposure time > 0; not used")
                else:
                    same = [x for x in times if abs(x - t) <= 1e-3 * max(t, 1e-3)]
                    t_dark = same[0] if same else times[-1]
                    dkey = bkey + (t_dark,)
                    dark_choice[e["id"]] = dkey
                    dark_groups.setdefault(dkey, {"key": {**key, "exptime": t_dark}, "bias": bkey,
                                                  "frames": [r for r in darks if r[4] is not None
                                                             and abs(float(r[4]) - t_dark) <= 1e-3 * t_dark]})
            else:
                dark_choice[e["id"]] = None
            fkey = tuple(e[k] for k in _FLAT_KEY)
            if fkey not in flat_groups:
                fk = dict(zip(_FLAT_KEY, fkey))
                rows = self._calibrations(ctx.conn, "flat", fk)
                match = [r for r in rows if (r[3] or "").strip() == (e["filter"] or "").strip()]
                other = [r for r in rows if r not in match]
                for r in other:
                    skipped.append({"exposure_id": r[0], "path": r[1], "kind": "flat",
                                    "reason": f"FILTER {r[3]!r}, expected {e['filter']!r}"})
                why = None
                if not match:
                    why = (f"no flat in the database with {_describe(fk)}"
                           + (f" (flats found only in filter(s) {sorted({str(r[3]) for r in other})})"
                              if other else ""))
                    if p["require_flat"]:
                        raise InputError(
                            f"exposure {e['id']} ({e['path']}): {why}; ingest flats in filter "
                            f"{e['filter']!r} or run with require_flat=false")
                    notes.append(f"filter {e['filter']!r}: {why}; reduced without a flat: NOT flat-fielded")
                flat_groups[fkey] = {"key": fk, "frames": match, "bias": bkey, "why": why}

        # 2. masters, once per group
        mdir = outdir / "masters"
        mdir.mkdir(parents=True, exist_ok=True)
        products: list[dict] = []
        for _bkey, g in bias_groups.items():  # loop over calibration groups
            k = g["key"]
            fname = mdir / (f"master_bias_{_safe(k['instrument'])}_{_safe(k['binning'])}_"
                            f"{k['naxis1']}x{k['naxis2']}_hdu{k['hdu']}.fits")
            m = master_bias([r[1] for r in g["frames"]], hdu=k["hdu"], sigma=p["sigma"])
            _write_master(m.ccd, fname)
            g.update(master=m, path=fname, overscan=str(m.ccd.meta.get("OVERSCAN", "")))
            used = set(m.used)
            skipped += [{"exposure_id": None, "path": s, "kind": "bias", "reason": why} for s, why in m.skipped]
            products.append(dict(exposure_id=None, kind="master_bias", path=str(fname), hdu=0, band=None,
                                 input_ids=[r[0] for r in g["frames"] if r[1] in used],
                                 meta={**k, "method": "sigma-clipped average (ccdproc.combine)",
                                       "overscan": g["overscan"] or None,
                                       "sigma": p["sigma"], "used": m.used,
                                       "skipped": [{"path": s, "reason": why} for s, why in m.skipped]}))
        for _dkey, g in dark_groups.items():
            k = g["key"]
            bias = bias_groups[g["bias"]]
            fname = mdir / (f"master_dark_{_safe(k['instrument'])}_{_safe(k['binning'])}_"
                            f"{k['naxis1']}x{k['naxis2']}_hdu{k['hdu']}_{k['exptime']:g}s.fits")
            m = master_dark([r[1] for r in g["frames"]], bias["master"], hdu=k["hdu"], sigma=p["sigma"],
                            exptime=k["exptime"])
            _write_master(m.ccd, fname)
            g.update(master=m, path=fname)
            used = set(m.used)
            skipped += [{"exposure_id": None, "path": s, "kind": "dark", "reason": why} for s, why in m.skipped]
            products.append(dict(exposure_id=None, kind="master_dark", path=str(fname), hdu=0, band=None,
                                 input_ids=[r[0] for r in g["frames"] if r[1] in used],
                                 meta={**k, "method": "bias-subtracted, sigma-clipped average (ccdproc.combine)",
                                       "master_bias": str(bias["path"]), "used": m.used,
                                       "skipped": [{"path": s, "reason": why} for s, why in m.skipped]}))
        for _fkey, g in flat_groups.items():
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
        dark_modes: Counter = Counter()
        for e in sci:  # loop over exposures
            bg = bias_groups[tuple(e[k] for k in _BIAS_KEY)]
            fg = flat_groups[tuple(e[k] for k in _FLAT_KEY)]
            dg = dark_groups.get(dark_choice[e["id"]]) if dark_choice[e["id"]] is not None else None
            out = rdir / f"e{e['id']}_{file_stem(e['path'])}.fits.fz"
            flat_note = None if fg["master"] is not None else (fg["why"] or "no flat") + " (require_flat=false)"
            reduce_science(e["path"], bg["master"], fg["master"], out, hdu=e["hdu"], min_flat=p["min_flat"],
                           check_filter=fg["master"] is not None, master_dark=dg["master"] if dg else None,
                           exptime=e["exptime"], flat_note=flat_note)
            with fits.open(out) as hl:
                h = hl[1].header
                info = {"saturate": h.get("SATURATE"), "naxis1": h.get("ZNAXIS1", h.get("NAXIS1")),
                        "naxis2": h.get("ZNAXIS2", h.get("NAXIS2")), "ltv1": h.get("LTV1"), "ltv2": h.get("LTV2")}
            if dg is not None:
                t_dark = dg["key"]["exptime"]
                mode = "matched" if abs(t_dark - float(e["exptime"] or 0)) <= 1e-3 * t_dark else "scaled"
                dark_meta = {"mode": mode, "master_dark": str(dg["path"]), "dark_exptime": t_dark,
                             "scale": float(e["exptime"] or 0) / t_dark, "n_frames": len(dg["master"].used)}
                dark_modes[mode] += 1
            else:
                dark_meta = "none (no dark frame of this geometry)" if p["use_darks"] else "none (use_darks=false)"
                dark_modes["none"] += 1
            used_bias = {r[1]: r[0] for r in bg["frames"]}
            used_flat = {r[1]: r[0] for r in fg["frames"]}
            used_dark = {r[1]: r[0] for r in dg["frames"]} if dg else {}
            inputs = ([used_bias[s] for s in bg["master"].used]
                      + ([used_dark[s] for s in dg["master"].used] if dg else [])
                      + ([used_flat[s] for s in fg["master"].used] if fg["master"] is not None else []))
            products.append(dict(exposure_id=e["id"], kind="reduced", path=str(out), hdu=1, band=e["band"],
                                 input_ids=inputs,
                                 meta={"raw": e["path"], "raw_hdu": e["hdu"], "master_bias": str(bg["path"]),
                                       "overscan": bg["overscan"] or "overscan and trim (BIASSEC/TRIMSEC)",
                                       "dark": dark_meta,
                                       "master_flat": None if fg["path"] is None else str(fg["path"]),
                                       "flat": "applied" if fg["master"] is not None
                                       else f"none: not flat-fielded ({flat_note})",
                                       "flat_fielded": fg["master"] is not None,
                                       "min_flat": p["min_flat"], **info}))

        # 4. flag left-out frames; replace masters of earlier runs written to the same files; record all products
        if left_out:
            ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)",
                        (_NOT_REDUCED, [e["id"] for e in left_out]))
        master_paths = [x["path"] for x in products if x["exposure_id"] is None]
        rep = ctx.execute(
            "DELETE FROM image_product WHERE kind IN ('master_bias', 'master_dark', 'master_flat') "
            "AND path = ANY(%s) AND stage_run_id IN (SELECT id FROM stage_run WHERE stage = %s AND id <> %s)",
            (master_paths, self.name, ctx.run_id)).rowcount
        n = _record_products(ctx.conn, products, ctx.run_id)
        skipped_unique = list({(s["path"], s["reason"]): s for s in skipped}.values())
        return {"reduced": sum(x["kind"] == "reduced" for x in products),
                "master_bias": sum(x["kind"] == "master_bias" for x in products),
                "master_dark": sum(x["kind"] == "master_dark" for x in products),
                "master_flat": sum(x["kind"] == "master_flat" for x in products),
                "not_flat_fielded": sum(x["kind"] == "reduced" and not x["meta"]["flat_fielded"] for x in products),
                "dark": dict(dark_modes), "left_out": len(left_out),
                "image_product": n, "replaced_masters": rep,
                "skipped": [{"path": s["path"], "kind": s["kind"], "reason": s["reason"]} for s in skipped_unique],
                "notes": list(dict.fromkeys(notes))}


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
