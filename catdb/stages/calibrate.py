"""Stage ``calibrate``: one photometric zeropoint per exposure, written to ``zeropoint``.

Methods (param ``method``)
--------------------------
``pp`` (default)
    Photometry Pipeline zeropoint (Mommert 2017, Astronomy and Computing 18, 47,
    Sect. 3.5): :func:`catdb.algorithms.photometry.zeropoint_pp` on the detections
    matched to a reference catalogue.  With ``color_term=a-b`` the zeropoint and a
    colour term are fitted together (:func:`~catdb.algorithms.photometry.zeropoint_colour`).
``regression``
    Automatic-SSOs free-slope regression ``ref = a + b inst`` with R^2 quality test
    (:func:`~catdb.algorithms.photometry.zeropoint_regression`); reference window
    ``mag_min``..``mag_max`` (default 12..16 as Automatic-SSOs); ``zp`` is the relation
    evaluated at the median instrumental magnitude, ``slope`` is ``b``.
``relative``
    Ensemble calibration for nights without a reference catalogue: every selected
    exposure's good detections are matched (radius 1.5") to those of a reference
    exposure (param ``reference``: an exposure id, or ``auto`` = the exposure of the
    band with most good detections, then smallest FWHM); the zeropoint is
    ``zp_ref + median(m_ref - m)`` after 3-sigma clipping (median centre, MAD scale;
    :func:`astropy.stats.sigma_clip`), its error ``1.4826 MAD / sqrt(n_used)``.  The
    reference exposure gets ``zp_ref`` (param, default 0) with error 0.
``ensemble``
    Ensemble (ubercal-style) calibration over all selected exposures at once
    (:func:`catdb.algorithms.ensemble.ensemble_solve`; Honeycutt 1992, PASP 104, 435): the static objects of the
    current association (``object`` + ``detection_object`` written by ``associate``; param
    ``associate_run`` restricts to one run's objects) measured on at least ``min_exposures``
    selected exposures define, by sparse weighted least squares
    (:func:`scipy.sparse.linalg.lsqr`), one zeropoint per exposure and one mean magnitude per
    object, with the gauge ``zp[reference] = zp_ref`` (``reference``: an exposure id, or
    ``auto`` = the exposure with most measurements, then smallest FWHM; one per band).
    Variable objects are rejected iteratively (normalised residual rms above
    ``median + clip_sigma * 1.4826 MAD`` of all objects).  ``residuals`` holds per exposure the
    object ids used (``ref_id``), their instrumental and mean magnitudes and residuals; the
    reference exposure's row lists ``rejected_objects``.  Exposures sharing no object with the
    reference, or with fewer than ``min_stars`` kept objects, get no zeropoint (ok false).

Matching and selection
----------------------
Detections with ``FLAGS = 0``, a finite instrumental magnitude and error
``<= magerr_max`` are matched to their nearest reference star (``refcat_source``,
catalogue ``refcat``, only stars with the needed magnitudes) within ``radius``
arcsec through :func:`catdb.spatial.nearest_join` (positions at the catalogue
epoch: no proper motion is applied; keep ``radius`` above the motion since the
reference epoch).  The instrumental magnitude is ``mag_column``: ``mag_auto``
(default), ``mag_iso``, ``mag_psf`` or ``mag_aper[N]`` (N-th aperture, 1-based);
when the catalogue has no magnitude column (e.g. an LDAC file with only
``FLUX_AUTO``) it is computed as ``-2.5 log10(flux)`` with error
``1.0857 fluxerr / flux``.  The reference magnitude is ``mags[band]`` (``band``
defaults to the exposure's band) or, with ``transform=CAT->BAND`` (``gaia->r``,
``ps1->R``, ``sdss->V``...), the published transformation of
:func:`catdb.algorithms.transforms.transform`, recorded in ``zeropoint.refcat``.
``solar=true`` keeps only stars with Sun-like ``g-r`` / ``r-i`` (PP's ``--solar``,
:func:`~catdb.algorithms.photometry.solar_selection`).

Output
------
One ``zeropoint`` row per exposure (earlier ``calibrate`` rows of the selected
exposures are replaced): zp, zp_err, n_matched, n_used, chi2_red or r2, slope,
scatter, ok; ``residuals`` (jsonb) holds ``reason`` and, for every star used,
``ref_id`` (refcat_source.id, or the reference exposure's detection id for
``relative``), ``inst_mag``, ``ref_mag`` and ``residual``; methods ``pp`` and ``regression``
also keep the matched stars they rejected under ``rejected`` (same keys; ``catdb report``
draws them).  Exposures with fewer
than ``min_stars`` usable stars get ``zp`` NULL and ``ok = false``; every exposure
whose calibration is not ok (also regression R^2 < ``r2_min``) gets the
``bad_zeropoint`` bit of ``exposure.quality_flags`` (cleared first for the
selected exposures).

Calibrated magnitudes are one query away (``calibrated = instrumental + zp``)::

    SELECT d.*, d.mag_auto + z.zp AS mag_cal
    FROM detection d JOIN zeropoint z USING (exposure_id)
    WHERE z.ok

(for catalogues without MAG_AUTO use ``-2.5 * log(d.flux_auto) + z.zp``; for the
regression method ``z.zp`` holds at the pivot magnitude, the full relation is in
``slope``).
"""
from __future__ import annotations

import json
import re

import numpy as np
from astropy.stats import sigma_clip
from psycopg import sql

from ..algorithms import photometry, transforms
from ..algorithms.ensemble import ensemble_solve
from ..db.copy import copy_table, fetch_arrays
from ..errors import CatdbError
from ..schema.tables import QUALITY_FLAGS
from ..spatial import ipix_index, nearest_join
from ._common import reference_filter
from .base import Param, Stage, StageContext, register

_MAGCOL = re.compile(r"^mag_(auto|iso|psf)$|^mag_aper\[(\d+)\]$")
_ONE_OVER_LN = 2.5 / np.log(10.0)  # 1.0857: mag error of a relative flux error
_NO_SQL = sql.SQL("")
#: methods pp and regression match this many exposures to the reference catalogue per query and
#: write their zeropoints before the next chunk: one chunk's matches and residual lists bound the
#: stage's memory, whatever the number of exposures (the per-exposure fits are independent)
EXPOSURES_PER_QUERY = 100


def inst_mag_sql(mag_column: str):
    """SQL expressions (on ``detection d``) of the instrumental magnitude and its error.

    Parameters
    ----------
    mag_column : str
        ``mag_auto``, ``mag_iso``, ``mag_psf`` or ``mag_aper[N]`` (1-based aperture).

    Returns
    -------
    mag, err : psycopg.sql.Composed
        ``COALESCE(mag, -2.5 log10(flux))`` and ``COALESCE(magerr, 1.0857 fluxerr/flux)`` (mag).
    params : dict
        Values to bind (the aperture index).

    Raises
    ------
    catdb.errors.CatdbError
        For any other column name.
    """
    m = _MAGCOL.match(mag_column or "")
    if not m:
        raise CatdbError(f"parameter mag_column: expected mag_auto, mag_iso, mag_psf or mag_aper[N] "
                         f"(N = aperture, 1-based), got {mag_column!r}")
    if m.group(1):
        kind = m.group(1)
        col = lambda pre: sql.Identifier("d", f"{pre}_{kind}")  # noqa: E731
        params = {}
    else:
        n = int(m.group(2))
        if n < 1:
            raise CatdbError(f"parameter mag_column: apertures are numbered from 1, got {mag_column!r}")
        col = lambda pre: sql.SQL("{}[%(aper)s::int]").format(sql.Identifier("d", f"{pre}_aper"))  # noqa: E731
        params = {"aper": n}
    mag = sql.SQL("COALESCE({m}::double precision, CASE WHEN {f} > 0 THEN -2.5 * log({f}::double precision) END)"
                  ).format(m=col("mag"), f=col("flux"))
    err = sql.SQL("COALESCE({e}::double precision, CASE WHEN {f} > 0 THEN {k} * {fe}::double precision / {f} END)"
                  ).format(e=col("magerr"), f=col("flux"), fe=col("fluxerr"), k=sql.Literal(float(_ONE_OVER_LN)))
    return mag, err, params


def _parse_transform(spec):
    """``'gaia->r'`` -> Transformation, or None."""
    if not spec:
        return None
    if "->" not in spec:
        raise CatdbError(f"parameter transform: expected CATALOG->BAND (e.g. ps1->R, gaia->r, sdss->V), got {spec!r}")
    cat, band = (s.strip() for s in spec.split("->", 1))
    try:
        return transforms.get_transformation(cat, band)
    except (KeyError, ValueError) as e:
        raise CatdbError(f"parameter transform: {e.args[0]}") from None


def _json_list(a, digits=5):
    a = np.asarray(a, dtype=float)
    return [None if not np.isfinite(v) else v for v in np.round(a, digits).tolist()]


def _exposures_by_band(bands, method: str) -> dict:
    """{band: [exposure ids]} of ``(id, band)`` pairs; an exposure without a band is an error."""
    by_band: dict = {}
    for eid, b in bands:
        if b is None:
            raise CatdbError(f"{method} calibration: exposure {eid} has no band (exposure.band is NULL); "
                             f"set it or leave the exposure out with --where")
        by_band.setdefault(b, []).append(eid)
    return by_band


def _explicit_reference(value):
    """The ``reference`` parameter as an exposure id, or None for 'auto'."""
    if value in (None, "", "auto"):
        return None
    try:
        return int(value)
    except ValueError:
        raise CatdbError(f"parameter reference: expected an exposure id or 'auto', got {value!r}") from None


@register
class Calibrate(Stage):
    name = "calibrate"
    description = "Photometric zeropoint per exposure (pp, regression, or relative to a reference exposure)"
    params = [
        Param("method", str, "pp", "pp (Photometry Pipeline), regression (Automatic-SSOs), relative (to a "
              "reference exposure) or ensemble (least squares over associated static objects)",
              choices=("pp", "regression", "relative", "ensemble")),
        Param("refcat", str, None, "Reference catalogue in refcat_source (default: any catalogue)"),
        Param("band", str, None, "Reference band (default: the exposure's band)"),
        Param("transform", str, None, "Transformation CATALOG->BAND of the reference magnitudes (ps1->R, gaia->r)"),
        Param("mag_column", str, "mag_auto", "Instrumental magnitude: mag_auto, mag_iso, mag_psf, mag_aper[N]"),
        Param("radius", float, None, "Match radius (arcsec; default 2, relative 1.5)"),
        Param("magerr_max", float, 0.1, "Largest instrumental magnitude error used (mag)"),
        Param("mag_min", float, None, "Brightest reference magnitude used (regression default 12)"),
        Param("mag_max", float, None, "Faintest reference magnitude used (regression default 16)"),
        Param("color_term", str, None, "Fit a colour term in this reference colour, e.g. g-r (method pp)"),
        Param("solar", bool, False, "Use only stars with solar colours (needs g, r and/or i in the refcat)"),
        Param("min_stars", int, 3, "Fewer usable stars gives no zeropoint (ok = false)"),
        Param("r2_min", float, 0.98, "Regression: R^2 below this marks the calibration bad"),
        Param("k", float, 2.5, "Regression: clipping factor of mean|r| + k std|r|"),
        Param("reference", str, "auto", "Relative/ensemble: reference exposure id, or auto"),
        Param("zp_ref", float, 0.0, "Relative/ensemble: zeropoint assigned to the reference exposure (mag)"),
        Param("clip_sigma", float, 3.0, "Relative/ensemble: sigma-clipping threshold of the offsets / star residuals"),
        Param("min_exposures", int, 3, "Ensemble: a star must be measured on this many selected exposures"),
        Param("associate_run", int, None, "Ensemble: use the objects of this associate run (default: the "
              "current association, i.e. every object linked to the selected exposures)"),
    ]
    outputs = ["zeropoint"]

    # ------------------------------------------------------------------ driver
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        mag, err, mparams = inst_mag_sql(p["mag_column"])
        if p["radius"] is not None and not p["radius"] > 0:
            raise CatdbError(f"parameter radius: expected a positive radius in arcsec, got {p['radius']}")
        if not p["magerr_max"] > 0:
            raise CatdbError(f"parameter magerr_max: expected a positive error in mag, got {p['magerr_max']}")
        if p["min_stars"] < 3:
            raise CatdbError(f"parameter min_stars: expected >= 3, got {p['min_stars']}")
        ids = list(ctx.inputs)
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags & ~%s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["bad_zeropoint"], ids))
        if not ids:
            return {"zeropoint": 0}
        bands = ctx.execute("SELECT id, band FROM exposure WHERE id = ANY(%s) ORDER BY id", (ids,)).fetchall()
        det = dict(mag=mag, err=err, params={**mparams, "errmax": p["magerr_max"]})
        if p["method"] == "relative":
            chunks = [self._relative(ctx, bands, det)]
        elif p["method"] == "ensemble":
            chunks = [self._ensemble(ctx, bands, det)]
        else:  # pp / regression: matched and written one chunk of exposures at a time
            chunks = self._absolute(ctx, bands, det)
        n, bad = 0, []
        for chunk in chunks:
            n += self._write(ctx, chunk)
            bad += [r["exposure_id"] for r in chunk if not r["ok"]]
            del chunk  # not held while the next chunk is matched
        ctx.execute("UPDATE exposure SET quality_flags = quality_flags | %s::int WHERE id = ANY(%s)",
                    (QUALITY_FLAGS["bad_zeropoint"], bad))
        return {"zeropoint": n, "ok": n - len(bad), "bad_zeropoint": len(bad)}

    @staticmethod
    def _det_subquery(det, extra=_NO_SQL):
        return sql.SQL(
            "(SELECT d.id, d.exposure_id, d.ra, d.dec, {m} AS inst_mag, {e} AS inst_err FROM detection d "
            "WHERE d.exposure_id = ANY(%(eids)s) AND d.flags = 0 AND {m} IS NOT NULL AND {e} <= %(errmax)s{x})"
        ).format(m=det["mag"], e=det["err"], x=extra if extra is not None else sql.SQL(""))

    # ------------------------------------------------------------------ reference catalogue
    def _absolute(self, ctx, bands, det):
        p = ctx.params
        tr = _parse_transform(p["transform"])
        if p["color_term"] and p["method"] != "pp":
            raise CatdbError("parameter color_term: the colour-term fit is available with method=pp only")
        if tr is not None and p["band"] and transforms._TARGET_ALIASES.get(p["band"], p["band"]) != tr.target:
            raise CatdbError(f"parameters band={p['band']!r} and transform={p['transform']!r} disagree: "
                             f"the transformation gives band {tr.target}")
        refcat = p["refcat"]
        ccond, _ = reference_filter(ctx.conn, refcat)
        present = {r[0] for r in ctx.execute(
            sql.SQL("SELECT DISTINCT k FROM (SELECT mags FROM refcat_source r WHERE {} LIMIT 2000) s, "
                    "jsonb_object_keys(s.mags) k").format(ccond), {"refcat": refcat}).fetchall()}
        colour = None
        if p["color_term"]:
            colour = tuple(s.strip() for s in p["color_term"].split("-"))
            if len(colour) != 2 or not all(colour):
                raise CatdbError(f"parameter color_term: expected a colour like g-r, got {p['color_term']!r}")
        solar_cols = []
        if p["solar"]:
            solar_cols = [c for c in photometry.SOLAR_COLOURS if set(c.split("-")) <= present]
            if not solar_cols:
                raise CatdbError(f"parameter solar: the reference catalogue needs g and r (or r and i) "
                                 f"magnitudes for the solar-colour selection; it has {sorted(present)}")
        radius = (p["radius"] or 2.0) / 3600.0
        by_band: dict[str, list[int]] = {}
        for eid, b in bands:
            target = tr.target if tr is not None else (p["band"] or b)
            if target is None:
                raise CatdbError(f"exposure {eid} has no band: give --param band=... (reference band)")
            by_band.setdefault(target, []).append(eid)
        plan = []
        for target, eids in by_band.items():  # loop over bands; set-based matches per chunk of exposures
            base = sorted(tr.needs) if tr is not None else [target]
            need = sorted(set(base) | set(colour or ()) | {b for c in solar_cols for b in c.split("-")})
            missing = [b for b in base + list(colour or ()) if b not in present]
            if missing:
                raise CatdbError(
                    f"reference catalogue {refcat or '(any)'} has no magnitudes in band(s) {missing} needed to "
                    f"calibrate exposures {eids[:5]}{'...' if len(eids) > 5 else ''} in band {target!r}; bands "
                    f"present: {sorted(present)} (use --param band=..., or transform=CATALOG->BAND)")
            step = EXPOSURES_PER_QUERY
            plan += [(target, need, eids[i:i + step]) for i in range(0, len(eids), step)]
        # every parameter and band was checked above; the matches run lazily, one chunk at a time
        return (self._absolute_band(ctx, chunk, target, tr, need, colour, solar_cols, det, ccond, radius)
                for target, need, chunk in plan)

    def _absolute_band(self, ctx, eids, target, tr, need, colour, solar_cols, det, ccond, radius):
        """Zeropoint rows of the exposures ``eids`` (one chunk of one band), matched in one query.

        The matches come back as arrays (:func:`~catdb.db.copy.fetch_arrays`, no Python object
        per row); the caller writes the rows before the next chunk is matched.
        """
        p = ctx.params
        bind = {**det["params"], "eids": list(eids), "refcat": p["refcat"]}
        mag_cols, notnull = [], []
        for j, b in enumerate(need):  # loop over bands, not rows
            bind[f"b{j}"] = b
            # a missing reference error counts as 0 (PP floors it at 0.01 mag; transformations add their scatter)
            mag_cols.append(sql.SQL("(r.mags->>%(b{j})s)::double precision AS m{j}, "
                                    "COALESCE((r.mag_errs->>%(b{j})s)::double precision, 0) AS e{j}"
                                    ).format(j=sql.SQL(str(j))))
            notnull.append(sql.SQL("(r.mags->>%(b{j})s) IS NOT NULL").format(j=sql.SQL(str(j))))
        ref = sql.SQL("(SELECT r.id AS ref_id, r.ra, r.dec, r.catalog, {cols} FROM refcat_source r "
                      "WHERE {c} AND {nn})").format(cols=sql.SQL(", ").join(mag_cols), c=ccond,
                                                    nn=sql.SQL(" AND ").join(notnull))
        mcols = [f"{x}{j}" for j in range(len(need)) for x in ("m", "e")]
        frag = nearest_join(self._det_subquery(det), ref, radius,
                            columns1=["exposure_id", "id", "inst_mag", "inst_err"],
                            columns2=["ref_id", "catalog"] + mcols)
        types = {"exposure_id": "int64", "id": "int64", "inst_mag": "float64", "inst_err": "float64",
                 "ref_id": "int64", "catalog": "string", **{c: "float64" for c in mcols}}
        q = sql.SQL("SELECT {} FROM ({}) AS m ORDER BY m.exposure_id, m.id").format(
            sql.SQL(", ").join(sql.Identifier("m", c) for c in types), frag.sql)
        a = fetch_arrays(ctx.conn, q, {**bind, **frag.params}, types)
        exp, inst, inst_err, ref_id = a["exposure_id"], a["inst_mag"], a["inst_err"], a["ref_id"]
        catalog = a["catalog"]
        mags = {b: a[f"m{j}"] for j, b in enumerate(need)}
        errs = {b: a[f"e{j}"] for j, b in enumerate(need)}
        if tr is not None:
            ref_mag, ref_err, _ = tr.apply(mags, errs)
            label_tr = f" via {tr.catalog}->{tr.target} ({tr.reference})"
        else:
            ref_mag, ref_err = mags[target], errs[target]
            label_tr = ""
        keep = np.isfinite(ref_mag)
        mmin = p["mag_min"] if p["mag_min"] is not None else -np.inf
        mmax = p["mag_max"] if p["mag_max"] is not None else np.inf
        with np.errstate(invalid="ignore"):
            if p["method"] == "pp":  # the regression applies its own (open) window
                keep &= (ref_mag >= mmin) & (ref_mag <= mmax)
            if solar_cols:
                keep &= photometry.solar_selection({c: mags[c.split("-")[0]] - mags[c.split("-")[1]]
                                                    for c in solar_cols})
        rows = []
        splits = np.searchsorted(exp, eids, side="left"), np.searchsorted(exp, eids, side="right")
        for eid, lo, hi in zip(eids, *splits):  # loop over exposures
            s = slice(lo, hi)
            k = keep[s]
            cat_names = sorted(set(catalog[s][k].tolist())) or [p["refcat"] or "any"]
            label = ",".join(cat_names) + label_tr
            col = None
            if colour is not None:
                col = (mags[colour[0]] - mags[colour[1]])[s][k]
            r = self._fit(p, inst[s][k], inst_err[s][k], ref_mag[s][k], ref_err[s][k], col)
            used = r.used if r.used.size else np.zeros(int(k.sum()), bool)
            resid = {
                "reason": r.reason, "n_candidates": int(hi - lo),
                "ref_id": ref_id[s][k][used].tolist(), "inst_mag": _json_list(inst[s][k][used]),
                "ref_mag": _json_list(ref_mag[s][k][used]), "residual": _json_list(r.residuals[used]),
            }
            if r.residuals.size == used.size and (~used).any():  # matched but not used: for the report
                resid["rejected"] = {"ref_id": ref_id[s][k][~used].tolist(), "inst_mag": _json_list(inst[s][k][~used]),
                                     "ref_mag": _json_list(ref_mag[s][k][~used]),
                                     "residual": _json_list(r.residuals[~used])}
            rows.append(dict(exposure_id=int(eid), band=target, result=r, refcat=label, ok=bool(r.ok),
                             color_index=None if colour is None else "-".join(colour), residuals=resid))
        return rows

    @staticmethod
    def _fit(p, inst, inst_err, ref, ref_err, colour):
        """The algorithm of ``p['method']`` on one exposure's matched arrays (shape (N,), mag)."""
        if p["method"] == "regression":
            rng = (p["mag_min"] if p["mag_min"] is not None else 12.0,
                   p["mag_max"] if p["mag_max"] is not None else 16.0)
            return photometry.zeropoint_regression(inst, ref, inst_err, ref_err, mag_range=rng,
                                                   max_err=p["magerr_max"], k=p["k"], r2_min=p["r2_min"],
                                                   min_stars=max(4, p["min_stars"]))
        if colour is not None:
            if inst.size < max(5, p["min_stars"]):
                return photometry.ZeropointResult("colour", False, f"only {inst.size} stars with colours, need "
                                                  f"{max(5, p['min_stars'])}", n_matched=int(inst.size))
            return photometry.zeropoint_colour(inst, inst_err, ref, ref_err, colour, min_stars=max(5, p["min_stars"]))
        return photometry.zeropoint_pp(inst, inst_err, ref, ref_err, min_stars=p["min_stars"])

    # ------------------------------------------------------------------ relative (ensemble)
    def _relative(self, ctx, bands, det):
        p = ctx.params
        radius = (p["radius"] or 1.5) / 3600.0
        by_band = _exposures_by_band(bands, "relative")
        explicit = _explicit_reference(p["reference"])
        if explicit is not None:
            row = ctx.execute("SELECT band FROM exposure WHERE id = %s", (explicit,)).fetchone()
            if row is None:
                raise CatdbError(f"parameter reference: no exposure with id {explicit}")
            other = sorted(str(b) for b in by_band if b != row[0])
            if other:
                raise CatdbError(f"parameter reference: exposure {explicit} is in band {row[0]!r} but the selection "
                                 f"also holds band(s) {other}; select one band (--where \"e.band = '...'\")")
        rows = []
        for band, eids in by_band.items():  # loop over bands
            bind = {**det["params"], "eids": eids}
            if explicit is None:
                ref_id = ctx.execute(
                    sql.SQL("SELECT s.exposure_id FROM {} s JOIN exposure e ON e.id = s.exposure_id "
                            "GROUP BY s.exposure_id, e.fwhm ORDER BY count(*) DESC, e.fwhm ASC NULLS LAST, "
                            "s.exposure_id LIMIT 1").format(self._det_subquery(det)), bind).fetchone()
                if ref_id is None:
                    raise CatdbError(f"relative calibration: no exposure of band {band!r} has good detections "
                                     f"(FLAGS = 0, magnitude error <= {p['magerr_max']})")
                ref_id = ref_id[0]
            else:
                ref_id = explicit
            # the reference exposure's good detections, in a temporary table with its q3c index
            ctx.execute("DROP TABLE IF EXISTS _calib_ref")
            ctx.execute(sql.SQL("CREATE TEMP TABLE _calib_ref ON COMMIT DROP AS SELECT * FROM {} s WITH NO DATA"
                                ).format(self._det_subquery(det)), {**bind, "eids": [ref_id]})
            ctx.execute(sql.SQL("INSERT INTO _calib_ref SELECT * FROM {} s").format(self._det_subquery(det)),
                        {**bind, "eids": [ref_id]})
            ctx.execute(ipix_index("_calib_ref").sql)
            ctx.execute("ANALYZE _calib_ref")
            n_ref = ctx.execute("SELECT count(*) FROM _calib_ref").fetchone()[0]
            others = [e for e in eids if e != ref_id]
            frag = nearest_join(self._det_subquery(det), "_calib_ref", radius,
                                columns1=["exposure_id", "inst_mag"], columns2=["id", "inst_mag"])
            res = ctx.execute(sql.SQL("SELECT * FROM ({}) AS m ORDER BY 1").format(frag.sql),
                              {**bind, "eids": others, **frag.params}).fetchall()
            arr = np.array(res, dtype=float).reshape(len(res), 5)
            exp = arr[:, 0].astype(np.int64)
            lo_hi = np.searchsorted(exp, others, side="left"), np.searchsorted(exp, others, side="right")
            label = f"exposure {ref_id} (relative, zp_ref = {p['zp_ref']:g})"
            if ref_id in eids:
                r = photometry.ZeropointResult("relative", n_ref >= p["min_stars"], "reference exposure" if
                                               n_ref >= p["min_stars"] else f"reference has {n_ref} good detections",
                                               zp=p["zp_ref"], zp_err=0.0, scatter=0.0, n_matched=int(n_ref),
                                               n_used=int(n_ref))
                rows.append(dict(exposure_id=int(ref_id), band=band, result=r, refcat=label, ok=bool(r.ok),
                                 color_index=None, residuals={"reason": r.reason, "reference_exposure": int(ref_id)}))
            for eid, lo, hi in zip(others, *lo_hi):  # loop over exposures
                inst, ref_det, ref_inst = arr[lo:hi, 1], arr[lo:hi, 2].astype(np.int64), arr[lo:hi, 3]
                d = ref_inst - inst
                n = d.size
                if n < p["min_stars"]:
                    r = photometry.ZeropointResult("relative", False, f"only {n} stars matched to reference "
                                                   f"exposure {ref_id}, need {p['min_stars']}", n_matched=n)
                    used = np.zeros(n, bool)
                else:
                    used = ~np.ma.getmaskarray(sigma_clip(d, sigma=p["clip_sigma"], maxiters=10,
                                                          cenfunc="median", stdfunc="mad_std"))
                    du = d[used]
                    med = float(np.median(du))
                    mad = 1.482602218505602 * float(np.median(np.abs(du - med)))
                    ok = used.sum() >= p["min_stars"]
                    r = photometry.ZeropointResult(
                        "relative", bool(ok), "ok" if ok else f"clipping left {used.sum()} stars",
                        zp=p["zp_ref"] + med, zp_err=mad / np.sqrt(used.sum()), scatter=mad,
                        n_matched=n, n_used=int(used.sum()))
                resid = {"reason": r.reason, "reference_exposure": int(ref_id),
                         "ref_id": ref_det[used].tolist(), "inst_mag": _json_list(inst[used]),
                         "ref_mag": _json_list(ref_inst[used] + p["zp_ref"]),
                         "residual": _json_list(d[used] - (r.zp - p["zp_ref"]) if r.ok else d[used])}
                rows.append(dict(exposure_id=int(eid), band=band, result=r, refcat=label, ok=bool(r.ok),
                                 color_index=None, residuals=resid))
            ctx.execute("DROP TABLE IF EXISTS _calib_ref")
        return rows

    # ------------------------------------------------------------------ ensemble
    def _ensemble(self, ctx, bands, det):
        p = ctx.params
        if p["min_exposures"] < 2:
            raise CatdbError(f"parameter min_exposures: expected >= 2, got {p['min_exposures']}")
        if not p["clip_sigma"] > 0:
            raise CatdbError(f"parameter clip_sigma: expected a positive number of sigmas, got {p['clip_sigma']}")
        by_band = _exposures_by_band(bands, "ensemble")
        explicit = _explicit_reference(p["reference"])
        if explicit is not None:
            if not any(explicit in v for v in by_band.values()):
                raise CatdbError(f"parameter reference: exposure {explicit} is not among the selected science "
                                 f"exposures (widen --where / --exposures)")
            if len(by_band) > 1:
                raise CatdbError(f"parameter reference: one reference exposure given but the selection holds bands "
                                 f"{sorted(map(str, by_band))}; select one band (--where \"e.band = '...'\")")
        run_cond = sql.SQL("")
        if p["associate_run"] is not None:
            run_cond = sql.SQL(" AND o.stage_run_id = %(arun)s")
        n_obj = ctx.execute("SELECT count(*) FROM detection_object dl JOIN detection d ON d.id = dl.detection_id "
                            "WHERE d.exposure_id = ANY(%s)", ([e for v in by_band.values() for e in v],)).fetchone()[0]
        if n_obj == 0:
            raise CatdbError("ensemble calibration: no detection of the selected exposures is linked to an object; "
                             "run `catdb stage associate` on them first")
        rows = []
        for band, eids in by_band.items():  # loop over bands
            q = sql.SQL("SELECT s.exposure_id, dl.object_id, s.inst_mag, s.inst_err FROM {} s "
                        "JOIN detection_object dl ON dl.detection_id = s.id "
                        "JOIN object o ON o.id = dl.object_id AND o.kind = 'static'{} ORDER BY 1, 2"
                        ).format(self._det_subquery(det), run_cond)
            a = fetch_arrays(ctx.conn, q, {**det["params"], "eids": eids, "arun": p["associate_run"]},
                             {"exposure_id": "int64", "object_id": "int64", "inst_mag": "float64",
                              "inst_err": "float64"})
            exp_ids = np.asarray(eids, dtype=np.int64)
            ei = np.searchsorted(exp_ids, a["exposure_id"])
            objs, si = np.unique(a["object_id"], return_inverse=True)
            counts = np.bincount(ei, minlength=exp_ids.size)
            if explicit is not None:
                ref = int(np.flatnonzero(exp_ids == explicit)[0])
            else:  # the exposure with most static-object measurements, then the smallest FWHM
                fw = dict(ctx.execute("SELECT id, fwhm FROM exposure WHERE id = ANY(%s)", (eids,)).fetchall())
                fwhm = np.array([fw.get(int(x)) if fw.get(int(x)) is not None else np.inf for x in exp_ids])
                ref = int(np.lexsort((exp_ids, fwhm, -counts))[0])
            sol = ensemble_solve(ei, si, a["inst_mag"], a["inst_err"], exp_ids.size, objs.size, ref_exp=ref,
                                 zp_ref=p["zp_ref"], clip_sigma=p["clip_sigma"], min_exposures=p["min_exposures"],
                                 min_stars=p["min_stars"])
            ref_id = int(exp_ids[ref])
            label = f"ensemble of {exp_ids.size} exposures, reference {ref_id} (zp_ref = {p['zp_ref']:g})"
            rejected = objs[~sol.star_ok & (np.bincount(si, minlength=objs.size) >= p["min_exposures"])]
            bounds = np.searchsorted(ei, np.arange(exp_ids.size + 1))
            for i, eid in enumerate(exp_ids.tolist()):  # loop over exposures
                sl = slice(bounds[i], bounds[i + 1])
                u = sol.used[sl]
                ok = bool(np.isfinite(sol.zp[i]))
                if ok:
                    reason = "reference exposure" if i == ref else "ok"
                elif counts[i] == 0:
                    reason = "no detection linked to a static object"
                else:
                    reason = (f"only {int(sol.n_used[i])} stars kept (need {p['min_stars']}) or no star shared "
                              f"with the reference exposure {ref_id}")
                r = photometry.ZeropointResult(
                    "ensemble", ok, reason, zp=float(sol.zp[i]), zp_err=float(sol.zp_err[i]),
                    scatter=float(sol.scatter[i]), n_matched=int(counts[i]), n_used=int(sol.n_used[i]),
                    chi2_red=float(sol.chi2_red))
                resid = {"reason": reason, "reference_exposure": ref_id, "iterations": int(sol.iterations),
                         "n_objects": int(sol.star_ok.sum()), "ref_id": objs[si[sl][u]].tolist(),
                         "inst_mag": _json_list(a["inst_mag"][sl][u]), "ref_mag": _json_list(sol.mean_mag[si[sl][u]]),
                         "residual": _json_list(sol.residual[sl][u])}
                if i == ref:
                    resid["rejected_objects"] = rejected.tolist()
                rows.append(dict(exposure_id=eid, band=band, result=r, refcat=label, ok=ok, color_index=None,
                                 residuals=resid))
        return rows

    # ------------------------------------------------------------------ writing
    def _write(self, ctx, rows) -> int:
        if not rows:
            return 0
        p = ctx.params

        def col(f, dtype=float):
            return np.array([f(r) for r in rows], dtype=dtype)  # one value per exposure

        res = [r["result"] for r in rows]
        zp = np.array([x.zp if x.ok or x.method == "regression" and np.isfinite(x.r2) else np.nan for x in res])
        columns = {
            "exposure_id": col(lambda r: r["exposure_id"], np.int64),
            "band": col(lambda r: r["band"], object),
            "zp": zp,
            "zp_err": np.where(np.isfinite(zp), [x.zp_err for x in res], np.nan),
            "color_term": np.array([x.colour_term if x.method == "colour" else np.nan for x in res]),
            "color_index": col(lambda r: r["color_index"], object),
            "slope": np.array([x.slope if np.isfinite(x.zp) else np.nan for x in res]),
            "n_matched": np.array([x.n_matched for x in res], dtype=np.int64),
            "n_used": np.array([x.n_used for x in res], dtype=np.int64),
            "chi2_red": np.array([x.chi2_red for x in res]),
            "r2": np.array([x.r2 for x in res]),
            "scatter": np.array([x.scatter for x in res]),
            "refcat": col(lambda r: r["refcat"], object),
            "ok": col(lambda r: r["ok"], bool),
            "residuals": col(lambda r: json.dumps(r["residuals"]), object),
        }
        return copy_table(ctx.conn, "zeropoint", columns,
                          constants={"stage_run_id": ctx.run_id, "method": p["method"],
                                     "mag_column": p["mag_column"]})
