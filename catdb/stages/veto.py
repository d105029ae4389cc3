"""Stage ``veto``: a VASCO60-style veto chain that keeps a survivor set per step and a ledger.

Input: the detections of the selected exposures (``input=detections``), or a
survivor set written earlier (``input=SET`` for its last step, ``input=SET:STEP``),
restricted to the selected exposures.  Each step of ``steps`` (see
:data:`catdb.algorithms.veto.VETOES`) removes detections from the current set
in one set-based statement; the catalogue vetoes are spatial anti-joins
composed by :mod:`catdb.spatial.sql`.  After each step the survivors are
written to ``survivor (set_name, step, detection_id, stage_run_id)`` (step 0 =
the input) and one ``ledger`` row (``filter``, ``n_in``, ``n_rejected``,
``n_kept``, ``params``).  Every step's ``params`` has ``veto``, ``arg``,
``n_untested`` (detections the step could not test: NULL column, no exposure
size, no cached SkyBoT cone; kept) and ``note`` (the same in words, or NULL),
then the step's thresholds.  The detections a step rejected are those of step
k - 1 not in step k (saved query ``veto-rejected``); ``catdb export ledger``
adds ``rejected_pct`` and writes CSV or JSON with the same columns.

The VASCO chain (Solano, Villarroel & Rodrigo 2022, MNRAS 515, 1380) is
``flags,snr,fwhm_px,elongation,spread_model,clip`` (the defaults are their
thresholds), then ``spikes:CAT``, ``sso`` (after stage ``skybot`` or ``catdb
skybot import`` filled the cache), one ``refcat:CAT@R`` per modern catalogue
and ``dec:MIN..MAX``.

Re-running with the same ``set`` replaces the whole set (all steps) and the
ledger rows of the earlier runs that wrote it.
"""
from __future__ import annotations

import json

from psycopg import sql

from ..algorithms import veto as V
from ..errors import CatdbError
from .base import Param, Stage, StageContext, register


@register
class Veto(Stage):
    name = "veto"
    description = ("Veto chain (flags, edge, shape, SNR, FWHM, SPREAD_MODEL, sigma clip, duplicates, catalogue "
                   "counterparts, bright-star spikes, known Solar System objects, Dec) keeping survivor sets + ledger")
    scope_params = ("set",)
    params = [
        Param("set", str, None, "Survivor set name (required); re-running replaces the set"),
        Param("steps", str, "flags,refcat", "Comma list of vetoes: flags, edge, elongation, fwhm (relative), "
              "fwhm_px (pixels), snr, spread_model, clip, dec, duplicates, sso, refcat[:NAME[+NAME]][@ARCSEC], "
              "spikes[:NAME[+NAME]][@MAG]; name:value (ranges lo..hi) overrides the matching parameter, e.g. "
              "snr:30,fwhm_px:2..7,elongation:1.3,spread_model:-0.002,clip:2,dec:-30..90"),
        Param("input", str, "detections", "'detections' (of the selected exposures) or a survivor set SET[:STEP]"),
        Param("refcat", str, None, "Catalogue name(s) (refcat_source.catalog, '+' or ',' separated) for a bare "
              "refcat step"),
        Param("radius", float, 5.0, "Counterpart radius of the refcat vetoes [arcsec]"),
        Param("use_pm", bool, False, "Move catalogue stars by their proper motion to the exposure epoch "
              "(q3c_join_pm; needs exposure mjd_mid)"),
        Param("flags_max", int, 0, "flags veto: reject SExtractor FLAGS > this"),
        Param("edge_pix", float, 10.0, "edge veto: reject within this many pixels of the image edge [pix]"),
        Param("elongation_max", float, 1.3, "elongation veto: reject ELONGATION (A/B) > this"),
        Param("fwhm_min", float, 0.5, "fwhm veto: reject FWHM < this x the exposure median"),
        Param("fwhm_max", float, 2.0, "fwhm veto: reject FWHM > this x the exposure median"),
        Param("fwhm_column", str, "fwhm_image", "fwhm veto: detection column", choices=("fwhm_image", "fwhm")),
        Param("dup_radius", float, 2.0, "duplicates veto: detections closer than this on one exposure [arcsec]"),
        Param("snr_min", float, 30.0, "snr veto: reject SNR (FLUX_AUTO/FLUXERR_AUTO) <= this (VASCO: 30)"),
        Param("fwhm_px_min", float, 2.0, "fwhm_px veto: reject FWHM_IMAGE < this (VASCO: 2) [pix]"),
        Param("fwhm_px_max", float, 7.0, "fwhm_px veto: reject FWHM_IMAGE > this (VASCO: 7) [pix]"),
        Param("spread_model_min", float, -0.002, "spread_model veto: reject SPREAD_MODEL <= this (VASCO: -0.002); "
              "NULL kept and counted"),
        Param("clip_sigma", float, 2.0, "clip veto: reject FWHM or ELONGATION beyond median +- this x 1.4826 MAD "
              "of the exposure's current survivors (one iteration; VASCO: 2)"),
        Param("spike_refcat", str, None, "spikes veto: catalogue name(s) of the bright stars (default: refcat)"),
        Param("spike_mag", float, 12.0, "spikes veto: stars with magnitude <= this have spikes [mag]"),
        Param("spike_band", str, None, "spikes veto: band of refcat_source.mags (default: the star's brightest)"),
        Param("spike_length", float, 30.0, "spikes veto: half-length of a spike, star at spike_mag [arcsec]"),
        Param("spike_width", float, 3.0, "spikes veto: reject within this distance of a spike line [arcsec]"),
        Param("spike_scale", bool, False, "spikes veto: length x 10**(0.2 (spike_mag - mag)), spikes ~ flux**0.5"),
        Param("spike_length_max", float, 300.0, "spikes veto: longest spike with spike_scale [arcsec]"),
        Param("spike_axes", str, "radec", "spikes veto: the cross along RA/Dec, or along the exposure's pixel axes "
              "(its WCS; RA/Dec without one)", choices=("radec", "pixel")),
        Param("sso_radius", float, 10.0, "sso veto: reject within this of a SkyBoT prediction (cache) [arcsec]"),
        Param("sso_max_epoch_diff", float, 1.0, "sso veto: a cached cone is used when its epoch is this close to "
              "mid-exposure [h]"),
        Param("dec_min", float, -90.0, "dec veto: reject Dec < this [deg]"),
        Param("dec_max", float, 90.0, "dec veto: reject Dec > this [deg]"),
    ]
    outputs = []

    def _check(self, ctx):
        p = ctx.params
        if not p["set"] or not str(p["set"]).strip():
            raise CatdbError("stage veto: parameter set (the survivor set name) is required, e.g. --param set=vasco")
        if p["radius"] is None or not p["radius"] > 0:
            raise CatdbError(f"parameter radius: expected a positive number of arcsec, got {p['radius']!r}")
        for k in ("edge_pix", "elongation_max", "fwhm_min", "fwhm_max", "dup_radius", "fwhm_px_min", "fwhm_px_max",
                  "spike_length_max", "sso_max_epoch_diff"):
            # (float parameters are finite: Param.parse refuses NaN and inf)
            if p[k] is None or not p[k] >= 0:
                raise CatdbError(f"parameter {k}: expected a non-negative number, got {p[k]!r}")
        for k in ("clip_sigma", "spike_length", "spike_width", "sso_radius"):
            if p[k] is None or not p[k] > 0:
                raise CatdbError(f"parameter {k}: expected a positive number, got {p[k]!r}")
        for k in ("snr_min", "spread_model_min", "spike_mag"):
            if p[k] is None:
                raise CatdbError(f"parameter {k}: expected a finite number, got {p[k]!r}")
        if not -90 <= p["dec_min"] <= p["dec_max"] <= 90:
            raise CatdbError(f"parameters dec_min, dec_max: expected -90 <= dec_min <= dec_max <= 90 deg, got "
                             f"{p['dec_min']!r}, {p['dec_max']!r}")
        if p["fwhm_px_min"] > p["fwhm_px_max"]:
            raise CatdbError(f"parameters fwhm_px_min, fwhm_px_max: empty range {p['fwhm_px_min']!r}.."
                             f"{p['fwhm_px_max']!r}")
        return V.parse_steps(p["steps"], p["refcat"], p["spike_refcat"])

    def replace(self, ctx: StageContext) -> int:
        """Delete the survivor set ``set`` and the ledger rows of earlier runs that wrote it."""
        self._steps = self._check(ctx)
        s = ctx.params["set"]
        n = ctx.execute("DELETE FROM survivor WHERE set_name = %s", (s,)).rowcount
        n += ctx.execute("DELETE FROM ledger WHERE stage_run_id IN (SELECT id FROM stage_run WHERE stage = %s "
                         "AND params->>'set' = %s AND id <> %s)", (self.name, s, ctx.run_id)).rowcount
        return n

    def _load_input(self, ctx) -> str:
        p = ctx.params
        cols = sql.SQL("d.id, d.exposure_id, d.ra, d.dec, 2000.0 + (e.mjd_mid - 51544.5) / 365.25")
        base = sql.SQL("CREATE TEMP TABLE _veto_cur ON COMMIT DROP AS SELECT {} AS epoch ").format(cols)
        src = (p["input"] or "detections").strip()
        if src == "detections":
            ctx.execute(base + sql.SQL("FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                                       "WHERE d.exposure_id = ANY(%s)"), (ctx.inputs,))
            label = "input:detections"
        else:
            name, _, step = src.partition(":")
            if name == p["set"]:
                raise CatdbError(f"parameter input: set {name!r} cannot be the input of itself (it is replaced)")
            row = ctx.execute("SELECT max(step) FROM survivor WHERE set_name = %s", (name,)).fetchone()
            if row[0] is None:
                raise CatdbError(f"parameter input: no survivor set named {name!r} (run stage veto with set={name} "
                                 "first, or input=detections)")
            try:
                step = int(step) if step else int(row[0])
            except ValueError:
                raise CatdbError(f"parameter input: expected SET or SET:STEP (an integer), got {src!r}") from None
            ctx.execute(base + sql.SQL("FROM survivor s JOIN detection d ON d.id = s.detection_id "
                                       "JOIN exposure e ON e.id = d.exposure_id "
                                       "WHERE s.set_name = %s AND s.step = %s AND d.exposure_id = ANY(%s)"),
                        (name, step, ctx.inputs))
            label = f"input:{name}:{step}"
        ctx.execute("ALTER TABLE _veto_cur RENAME COLUMN id TO detection_id")
        ctx.execute("ALTER TABLE _veto_cur ADD PRIMARY KEY (detection_id)")
        from ..spatial import sql as sp

        ctx.execute(*sp.ipix_index("_veto_cur", name="_veto_cur_q3c"))
        ctx.execute("ANALYZE _veto_cur")
        return label

    def _keep(self, ctx, step_no):
        return ctx.execute(
            "INSERT INTO survivor (set_name, step, detection_id, stage_run_id) "
            "SELECT %s, %s, detection_id, %s FROM _veto_cur", (ctx.params["set"], step_no, ctx.run_id)).rowcount

    def _ledger(self, ctx, step_no, label, n_in, n_rej, n_kept, params):
        ctx.execute("INSERT INTO ledger (stage_run_id, step, filter, n_in, n_rejected, n_kept, params) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (ctx.run_id, step_no, label, n_in, n_rej, n_kept, json.dumps(params)))

    def _pixel_angles(self, ctx):
        """Temp table _veto_pa(exposure_id, pa): position angle of +y of each input exposure with a WCS."""
        # a registered WCS has an assumed rotation: no pixel axis angle from it (RA/Dec spikes, counted)
        rows = ctx.execute("SELECT e.id, CASE WHEN e.wcs_status IN ('header', 'solved') THEN e.wcs_header END "
                           "FROM exposure e WHERE e.id IN (SELECT DISTINCT exposure_id FROM _veto_cur)").fetchall()
        pa = V.pixel_axis_angles([r[1] for r in rows])
        ids = [r[0] for r in rows]
        ctx.execute("DROP TABLE IF EXISTS _veto_pa")
        ctx.execute("CREATE TEMP TABLE _veto_pa ON COMMIT DROP AS SELECT * FROM unnest(%s::bigint[], "
                    "%s::double precision[]) AS t(exposure_id, pa) WHERE pa <> 'NaN'",  # no WCS: NaN (equal to itself in SQL)
                    (ids, [float(x) for x in pa]))

    def _notes(self, ctx, step, info, cats) -> dict:
        """What the ledger says beyond the counts: the untested detections of a step, in words."""
        n_unt = info.get("n_untested")
        if step.kind == "spread_model":
            return {"note": f"{n_unt} detection(s) have no SPREAD_MODEL (kept)" if n_unt else None}
        if step.kind == "spikes":
            geo = V.spike_geometry(step, ctx.params)
            n_stars = ctx.execute("SELECT count(*) FROM _veto_stars").fetchone()[0]
            out = {**{k: geo[k] for k in ("spike_length", "spike_length_max", "spike_scale", "spike_band",
                                          "spike_axes")}, "n_stars": n_stars,
                   "geometry": "cross along RA and Dec through each star" if geo["spike_axes"] == "radec" else
                   "cross along the exposure's pixel axes through each star",
                   "note": None if n_stars else f"no star of {'+'.join(cats)} brighter than {geo['spike_mag']}"}
            if geo["spike_axes"] == "pixel":
                n_exp, n_pa = ctx.execute("SELECT (SELECT count(DISTINCT exposure_id) FROM _veto_cur), "
                                          "(SELECT count(*) FROM _veto_pa)").fetchone()
                out["n_exposures_no_wcs"] = n_exp - n_pa
                if n_exp - n_pa:
                    out["note"] = ((out["note"] + "; ") if out["note"] else "") + (
                        f"{n_exp - n_pa} exposure(s) without a WCS: spikes along RA/Dec there")
            return out
        if step.kind == "sso":
            row = ctx.execute("SELECT count(DISTINCT exposure_id), (array_agg(DISTINCT exposure_id ORDER BY "
                              "exposure_id))[1:50] FROM _veto_cur WHERE exposure_id NOT IN "
                              "(SELECT exposure_id FROM _veto_cone)").fetchone()
            n_cones, n_pred = ctx.execute("SELECT (SELECT count(*) FROM _veto_cone), "
                                          "(SELECT count(*) FROM _veto_sso)").fetchone()
            out = {"n_exposures_with_cone": n_cones, "n_predictions": n_pred, "n_exposures_no_cone": row[0],
                   "exposures_no_cone": row[1] or []}
            if row[0]:
                out["note"] = (f"{row[0]} exposure(s) have no usable cached SkyBoT cone (their {n_unt} detection(s) "
                               "were not tested; run stage skybot or catdb skybot import)")
            return out
        if n_unt:
            return {"note": f"{n_unt} detection(s) could not be tested (NULL value or missing exposure data; kept)"}
        return {}

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        steps = getattr(self, "_steps", None) or self._check(ctx)
        label = self._load_input(ctx)
        n = self._keep(ctx, 0)
        self._ledger(ctx, 0, label, n, 0, n, {"veto": "input", "arg": p["input"], "input": p["input"],
                                              "n_untested": None, "note": None})
        if p["use_pm"] and any(s.kind == "refcat" for s in steps):
            miss = ctx.execute("SELECT count(DISTINCT exposure_id), min(exposure_id) FROM _veto_cur "
                               "WHERE epoch IS NULL").fetchone()
            if miss[0]:
                raise CatdbError(f"use_pm: {miss[0]} input exposure(s) have no mjd_mid (e.g. exposure {miss[1]}); "
                                 "proper motions need the epoch")
        total = n
        ledger = [(0, label, n, 0, n)]
        for k, step in enumerate(steps, start=1):
            cats = V.resolve_catalogs(ctx.conn, step.arg) if step.kind in V.CATALOG_VETOES else None
            for stmt, vals in V.setup_sql(step, p, cats):
                ctx.execute(stmt, vals or None)
            if step.kind == "spikes" and p["spike_axes"] == "pixel":
                self._pixel_angles(ctx)
            rej, values, untested = V.rejected_sql(step, p, cats)
            info = {"veto": step.kind, "arg": step.arg, "n_untested": None, "note": None,
                    **{k2: v for k2, v in values.items() if k2 != "radius"}}
            if step.kind in ("refcat", "duplicates", "sso"):
                info["radius_arcsec"] = values["radius"] * 3600.0
            if untested is not None:
                info["n_untested"] = ctx.execute(untested, values).fetchone()[0]
            info.update(self._notes(ctx, step, info, cats))
            n_in = n
            n_rej = ctx.execute(sql.SQL("DELETE FROM _veto_cur WHERE detection_id IN ({})").format(rej),
                                values).rowcount
            n = n_in - n_rej
            kept = self._keep(ctx, k)
            if kept != n:  # pragma: no cover - the set must be what the ledger says
                raise CatdbError(f"veto step {k}: kept {kept} rows but the ledger says {n}")
            self._ledger(ctx, k, step.label, n_in, n_rej, n, info)
            ledger.append((k, step.label, n_in, n_rej, n))
            total += kept
        ctx.execute("DROP TABLE _veto_cur")
        return {"survivor": total, "ledger": len(ledger), "n_input": ledger[0][2], "n_final": n,
                "chain": [f"{lab}: {a} -> {c}" for _, lab, a, _, c in ledger]}
