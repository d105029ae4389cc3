"""Stage ``xmatch``: cross-match detections with a reference catalogue or another detection set.

For the detections of the selected exposures (optionally only ``flags <= flags_max`` and
``snr >= snr_min``) it finds the counterparts within ``radius`` arcsec in

* a reference catalogue of ``refcat_source`` (``refcat=gaia-dr2``), optionally with the
  stars moved by their proper motion to each exposure's epoch (``use_pm=true``), or
* another detection set (``refcat="detections:<SQL condition on exposure e>"``): the
  detections of the exposures matching that condition, except the selected exposures
  themselves (no detection is matched to its own exposure),

and writes one ``xmatch`` row per pair: the nearest counterpart only (``mode=nearest``,
``rank`` 1) or every counterpart within the radius (``mode=all``, ``rank`` 1 = nearest).

How (measured in ``bench/bench_xmatch.py``): the selected detections are split into
declination bands of at most ``band_rows`` rows (edges at dec quantiles); for each band
the detections and the counterparts inside the band widened by the radius (and the largest
proper-motion displacement) are fetched as one row of binary column aggregates
(:func:`fetch_columns`; 4x faster than COPY TO + CSV at 10^6 rows) and matched with a k-d tree on unit vectors (:class:`scipy.spatial.cKDTree`; chord
distance 2 sin(theta/2) is monotonic in the angle, so the nearest neighbour is the
angular nearest neighbour and the radius test is exact); the pairs go back with ``COPY``
(:func:`catdb.db.copy.copy_table`).
Measured at 10^6 detections x 10^6 stars (1", 2 shared cores): fetch ~1.5 s + k-d tree
~3 s against ~15-19 s for the q3c ``LATERAL`` nearest join itself; writing the 8x10^5 rows
into ``xmatch`` (foreign key, indexes) dominates both, so end to end the stage took 22 s and
``INSERT ... SELECT`` from the LATERAL join 25 s on the q3c extension, and the LATERAL join
is 15-25x slower than the stage on catdb's SQL port of q3c.  The pairs are the same as the
q3c nearest join's (tested); memory is bounded by the band size.  The reference side is narrowed
with q3c cones around the selected exposures (:func:`catdb.spatial.cone_condition`).

Separations use the haversine-free vector formula atan2(|a x b|, a . b) (accurate at all
angles); ``dra_arcsec = (RA_det - RA_ref) cos(Dec_det)`` (RA difference wrapped to
+-180 deg), ``ddec_arcsec = Dec_det - Dec_ref``.  Proper motion follows q3c's linear
propagation (``q3c_dist_pm``): RA += pmra / cos(Dec) dt, Dec += pmdec dt with pmra =
mu_alpha cos(Dec) in mas/yr and dt = epoch(exposure) - epoch(star) in Julian years;
stars without proper motion or epoch stay at their catalogue position.

Re-running replaces the rows of earlier ``xmatch`` runs for the selected exposures and the
same catalogue name (``'detection'`` for every detection set).

Example::

    catdb stage xmatch --param refcat=gaia-dr2 --param radius=1 --param use_pm=true
    catdb query "SELECT d.mag_auto, r.mags->>'G' AS g, x.sep_arcsec FROM xmatch x
                 JOIN detection d ON d.id = x.detection_id JOIN refcat_source r ON r.id = x.ref_id
                 WHERE x.catalog = 'gaia-dr2'"
"""
from __future__ import annotations

import numpy as np
import psycopg
from psycopg import sql

from ..db.copy import copy_table
from ..errors import CatdbError
from ..spatial import cone_condition
from .base import Param, Stage, StageContext, register

#: reference cones are used to narrow the reference side up to this many exposures
_MAX_CONES = 200
_DET_PREFIX = "detections:"


def unit_vectors(ra_deg, dec_deg):
    """Unit vectors of ICRS positions.

    Parameters
    ----------
    ra_deg, dec_deg : array_like, shape (N,)
        Right ascension and declination (deg).

    Returns
    -------
    numpy.ndarray, shape (N, 3)
    """
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return np.column_stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)])


def angular_sep_arcsec(a, b):
    """Angle between unit vectors, atan2(|a x b|, a . b), accurate from 0 to 180 deg.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (N, 3)

    Returns
    -------
    numpy.ndarray, shape (N,)
        Separation (arcsec).
    """
    cr = np.linalg.norm(np.cross(a, b), axis=1)
    return np.degrees(np.arctan2(cr, np.einsum("ij,ij->i", a, b))) * 3600.0


def match_unit_vectors(det, ref, radius_arcsec, mode="nearest"):
    """Pairs (detection, reference) within a radius, by a k-d tree on unit vectors.

    Parameters
    ----------
    det : numpy.ndarray, shape (N, 3)
        Unit vectors of the detections.
    ref : numpy.ndarray, shape (M, 3)
        Unit vectors of the counterparts.
    radius_arcsec : float
        Match radius (arcsec); pairs strictly closer are kept (as ``q3c_join``).
    mode : {'nearest', 'all'}
        Nearest counterpart of each detection, or every counterpart within the radius.

    Returns
    -------
    i, j : numpy.ndarray of int64, shape (K,)
        Indices into ``det`` and ``ref``, sorted by ``i`` then separation.
    rank : numpy.ndarray of int64, shape (K,)
        1 for the nearest counterpart of a detection, 2 for the next, ...

    Notes
    -----
    Chord length 2 sin(theta/2) is monotonic in the angle theta, so the Euclidean nearest
    neighbour on the unit sphere is the angular one (Bentley 1975, CACM 18, 509 for the
    k-d tree; scipy.spatial.cKDTree).
    """
    from scipy.spatial import cKDTree

    if len(det) == 0 or len(ref) == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    chord = 2.0 * np.sin(np.radians(radius_arcsec / 3600.0) / 2.0)
    tree = cKDTree(ref)
    if mode == "nearest":
        d, j = tree.query(det, k=1, distance_upper_bound=chord)
        ok = d < chord
        i = np.flatnonzero(ok).astype(np.int64)
        return i, j[ok].astype(np.int64), np.ones(len(i), np.int64)
    pairs = cKDTree(det).sparse_distance_matrix(tree, chord, output_type="ndarray")
    pairs = pairs[pairs["v"] < chord]
    order = np.lexsort((pairs["v"], pairs["i"]))
    i, j = pairs["i"][order].astype(np.int64), pairs["j"][order].astype(np.int64)
    first = np.r_[True, i[1:] != i[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(i)), 0))
    return i, j, np.arange(len(i)) - start + 1


def fetch_columns(conn, from_where, params, columns):
    """Columns of a selection as numpy arrays, in one row of binary aggregates.

    ``string_agg(float8send(x), '')`` packs a column into one ``bytea`` of big-endian values on
    the server; all aggregates of one query see the rows in the same order, so the arrays are
    aligned.  About 4x faster than ``COPY ... TO STDOUT`` + CSV parsing for 10^6 rows (psycopg
    reads COPY output one row at a time).

    Parameters
    ----------
    conn : psycopg.Connection
    from_where : psycopg.sql.Composable
        ``FROM ... WHERE ...`` of the selection.
    params : dict
        Values bound to its placeholders.
    columns : dict of str -> (str, str)
        Output name -> (SQL expression, ``'int64'`` or ``'float64'``).  NULL floats become
        NaN; NULL integers are not allowed (they would misalign the arrays).

    Returns
    -------
    dict of str -> numpy.ndarray, shape (N,)
    """
    aggs = []
    for expr, kind in columns.values():
        if kind == "int64":
            aggs.append(sql.SQL("string_agg(int8send(({})::bigint), ''::bytea)").format(sql.SQL(expr)))
        else:
            aggs.append(sql.SQL("string_agg(coalesce(float8send(({})::float8), float8send('NaN'::float8)), "
                                "''::bytea)").format(sql.SQL(expr)))
    q = sql.SQL("SELECT count(*), {} {}").format(sql.SQL(", ").join(aggs), from_where)
    row = conn.execute(q, params, binary=True).fetchone()
    n = row[0]
    out = {}
    for (name, (_, kind)), buf in zip(columns.items(), row[1:]):
        a = np.frombuffer(buf, ">i8" if kind == "int64" else ">f8") if buf is not None else np.zeros(0)
        if len(a) != n:
            raise CatdbError(f"column {name}: NULL values in an integer column of the selection")
        out[name] = a.astype(np.int64 if kind == "int64" else np.float64)
    return out


@register
class Xmatch(Stage):
    name = "xmatch"
    description = "Cross-match detections with a reference catalogue or another detection set (k-d tree per dec band)"
    params = [
        Param("refcat", str, None, "Reference catalogue name in refcat_source, or 'detections:<SQL on exposure e>' "
              "for the detections of other exposures"),
        Param("radius", float, 1.0, "Match radius (arcsec)"),
        Param("mode", str, "nearest", "nearest: the nearest counterpart; all: every counterpart within radius",
              choices=("nearest", "all")),
        Param("use_pm", bool, False, "Move reference stars by their proper motion to each exposure's epoch"),
        Param("flags_max", int, None, "Largest SExtractor FLAGS of the detections matched (default: all)"),
        Param("snr_min", float, None, "Smallest SNR of the detections matched (default: all)"),
        Param("band_rows", int, 2_000_000, "Largest number of detections matched at once (dec band size; memory)"),
    ]
    outputs = ["xmatch"]
    scope_params = ("refcat",)

    # ------------------------------------------------------------------ parameters
    def _target(self, ctx) -> tuple[str, str | None]:
        """('refcat', name) or ('detection', SQL condition)."""
        p = ctx.params
        ref = p["refcat"]
        if not ref or not str(ref).strip():
            raise CatdbError("parameter refcat: expected a reference catalogue name (refcat_source.catalog) or "
                             "'detections:<SQL condition on exposure e>', got nothing")
        if not p["radius"] > 0 or not np.isfinite(p["radius"]):
            raise CatdbError(f"parameter radius: expected a positive match radius in arcsec, got {p['radius']}")
        if p["band_rows"] < 1:
            raise CatdbError(f"parameter band_rows: expected a positive number of rows, got {p['band_rows']}")
        if ref.startswith(_DET_PREFIX):
            cond = ref[len(_DET_PREFIX):].strip()
            if not cond:
                raise CatdbError("parameter refcat: 'detections:' needs an SQL condition on exposure e, "
                                 "e.g. detections:e.night = '2019-03-25'")
            if p["use_pm"]:
                raise CatdbError("parameter use_pm: proper motions apply to reference catalogues, not to "
                                 f"the detection set {ref!r}")
            return "detection", cond
        if not ctx.execute("SELECT EXISTS (SELECT 1 FROM refcat_source WHERE catalog = %s)", (ref,)).fetchone()[0]:
            cats = [r[0] for r in ctx.execute("SELECT DISTINCT catalog FROM refcat_source ORDER BY 1").fetchall()]
            raise CatdbError(f"parameter refcat: no reference catalogue named {ref!r} in refcat_source; "
                             f"catalogues present: {', '.join(cats) or 'none (catdb ingest refcat FILE --catalog NAME)'}"
                             f"; or use 'detections:<SQL on exposure e>'")
        return "refcat", ref

    def _catalog_name(self, ctx) -> str:
        ref = ctx.params["refcat"] or ""
        return "detection" if ref.startswith(_DET_PREFIX) else ref

    # ------------------------------------------------------------------ replace
    def replace(self, ctx: StageContext) -> int:
        """Delete rows of earlier xmatch runs for the selected exposures and the same catalogue."""
        cur = ctx.execute(
            "DELETE FROM xmatch x USING detection d WHERE d.id = x.detection_id AND d.exposure_id = ANY(%s) "
            "AND x.catalog = %s AND x.stage_run_id IN (SELECT id FROM stage_run WHERE stage = %s AND id <> %s)",
            (ctx.inputs, self._catalog_name(ctx), self.name, ctx.run_id))
        return cur.rowcount

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        kind, target = self._target(ctx)
        catalog = self._catalog_name(ctx)
        ids = list(ctx.inputs)
        if not ids:
            return {"xmatch": 0, "detections": 0, "matched": 0, "bands": 0}
        det_cond, det_bind = self._detection_filter(ids, p)
        n_det = ctx.execute(sql.SQL("SELECT count(*) FROM detection d WHERE {}").format(det_cond),
                            det_bind).fetchone()[0]
        if kind == "detection":
            try:
                with ctx.conn.transaction():
                    ref_ex = [r[0] for r in ctx.execute(
                        sql.SQL("SELECT e.id FROM exposure e WHERE ({}) AND NOT (e.id = ANY(%(sel)s))").format(
                            sql.SQL(target)), {"sel": ids}).fetchall()]
            except psycopg.Error as e:
                raise CatdbError(f"parameter refcat: {target!r} is not a valid SQL condition on exposure e: "
                                 f"{str(e).splitlines()[0]}") from None
            if not ref_ex:
                raise CatdbError(f"parameter refcat: no exposure matches {target!r} apart from the selected "
                                 "ones; the detection set to match against is empty")
        margin_deg = p["radius"] / 3600.0 + (self._pm_margin_deg(ctx, target, ids) if p["use_pm"] else 0.0)
        edges = self._band_edges(ctx, det_cond, det_bind, n_det, p["band_rows"])
        epochs = self._epochs(ctx, ids) if p["use_pm"] else None
        cone = self._cones(ctx, ids, margin_deg)
        total = matched = 0
        for b, (lo, hi) in enumerate(edges):  # loop over dec bands (memory bound), not rows
            last = b == len(edges) - 1
            band = sql.SQL("d.dec >= %(lo)s AND d.dec {} %(hi)s").format(sql.SQL("<=" if last else "<"))
            det = fetch_columns(ctx.conn, sql.SQL("FROM detection d WHERE {} AND {}").format(det_cond, band),
                                {**det_bind, "lo": lo, "hi": hi},
                                {"id": ("d.id", "int64"), "exposure_id": ("d.exposure_id", "int64"),
                                 "ra": ("d.ra", "float64"), "dec": ("d.dec", "float64")})
            if len(det["id"]) == 0:
                continue
            rlo, rhi = lo - margin_deg, hi + margin_deg
            if kind == "refcat":
                ref = self._fetch_refcat(ctx, target, rlo, rhi, cone)
            else:
                ref = self._fetch_detections(ctx, ref_ex, rlo, rhi, cone)
            if len(ref["id"]) == 0:
                continue
            dvec = unit_vectors(det["ra"], det["dec"])
            if p["use_pm"] and kind == "refcat":
                i, j, rank, rra, rdec = self._match_pm(det, dvec, ref, epochs, p["radius"], p["mode"])
            else:
                i, j, rank = match_unit_vectors(dvec, unit_vectors(ref["ra"], ref["dec"]), p["radius"], p["mode"])
                rra, rdec = ref["ra"][j], ref["dec"][j]
            if len(i) == 0:
                continue
            total += self._write(ctx, det, ref, i, j, rank, rra, rdec, dvec, catalog)
            matched += int(np.count_nonzero(rank == 1))
        ctx.execute("ANALYZE xmatch")
        return {"xmatch": total, "detections": int(n_det), "matched": matched, "bands": len(edges),
                "catalog": catalog}

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _detection_filter(ids, params):
        """SQL condition on ``detection d``: selected exposures, FLAGS and SNR cuts."""
        conds = [sql.SQL("d.exposure_id = ANY(%(ids)s)")]
        bind = {"ids": ids}
        if params["flags_max"] is not None:
            conds.append(sql.SQL("d.flags <= %(fmax)s"))
            bind["fmax"] = params["flags_max"]
        if params["snr_min"] is not None:
            conds.append(sql.SQL("d.snr >= %(snr)s"))
            bind["snr"] = params["snr_min"]
        return sql.SQL(" AND ").join(conds), bind

    def _band_edges(self, ctx, det_cond, bind, n_det, band_rows):
        """Declination band edges (deg) holding at most ``band_rows`` detections each."""
        if n_det == 0:
            return []
        nb = max(1, int(np.ceil(n_det / band_rows)))
        if nb == 1:
            return [(-90.0, 90.0)]
        qs = [k / nb for k in range(nb + 1)]
        vals = ctx.execute(sql.SQL("SELECT percentile_disc(%(qs)s::float8[]) WITHIN GROUP (ORDER BY d.dec) "
                                   "FROM detection d WHERE {}").format(det_cond), {**bind, "qs": qs}).fetchone()[0]
        e = np.unique(np.asarray(vals, float))
        if len(e) == 1:
            return [(float(e[0]), float(e[0]))]
        return list(zip(e[:-1].tolist(), e[1:].tolist()))

    def _epochs(self, ctx, ids):
        rows = ctx.execute("SELECT id, 2000.0 + (mjd_mid - 51544.5) / 365.25 FROM exposure WHERE id = ANY(%s)",
                           (ids,)).fetchall()
        missing = [r[0] for r in rows if r[1] is None]
        if missing:
            raise CatdbError(f"parameter use_pm: exposures {missing[:10]} have no mjd_mid (epoch unknown); "
                             "ingest their times or run without use_pm")
        return dict(rows)

    def _pm_margin_deg(self, ctx, refcat, ids):
        """Largest proper-motion displacement (deg) between the catalogue and the exposures."""
        row = ctx.execute(
            "SELECT max(sqrt(coalesce(pmra, 0)^2 + coalesce(pmdec, 0)^2)), min(epoch), max(epoch) "
            "FROM refcat_source WHERE catalog = %s", (refcat,)).fetchone()
        erow = ctx.execute("SELECT min(mjd_mid), max(mjd_mid) FROM exposure WHERE id = ANY(%s)", (ids,)).fetchone()
        if row[0] is None or row[1] is None or erow[0] is None:
            return 0.0
        ep = [2000.0 + (m - 51544.5) / 365.25 for m in erow]
        dt = max(abs(ep[1] - row[1]), abs(ep[0] - row[2]))
        return float(row[0]) * dt / 3.6e6 * 1.01

    def _cones(self, ctx, ids, margin_deg):
        """OR of q3c cones around the selected exposures (None: no narrowing)."""
        rows = ctx.execute("SELECT ra_center, dec_center, radius FROM exposure WHERE id = ANY(%s) ORDER BY id",
                           (ids,)).fetchall()
        if len(rows) > _MAX_CONES or any(None in r for r in rows):
            return None
        frags = [cone_condition("r.ra", "r.dec", ra, dec, rad + margin_deg, prefix=f"c{k}")
                 for k, (ra, dec, rad) in enumerate(rows)]  # loop over exposures
        bind = {}
        for f in frags:
            bind.update(f.params)
        return sql.SQL("({})").format(sql.SQL(" OR ").join(f.sql for f in frags)), bind

    @staticmethod
    def _with_cone(base, bind, cone):
        if cone is None:
            return base, bind
        return sql.SQL("{} AND {}").format(base, cone[0]), {**bind, **cone[1]}

    def _fetch_refcat(self, ctx, refcat, lo, hi, cone):
        q, b = self._with_cone(sql.SQL("r.catalog = %(refcat)s AND r.dec >= %(lo)s AND r.dec <= %(hi)s"),
                               {"refcat": refcat, "lo": lo, "hi": hi}, cone)
        return fetch_columns(ctx.conn, sql.SQL("FROM refcat_source r WHERE {}").format(q), b,
                             {k: (f"r.{k}", "int64" if k == "id" else "float64")
                              for k in ("id", "ra", "dec", "pmra", "pmdec", "epoch")})

    def _fetch_detections(self, ctx, ref_ex, lo, hi, cone):
        q, b = self._with_cone(sql.SQL("r.exposure_id = ANY(%(rex)s) AND r.dec >= %(lo)s AND r.dec <= %(hi)s"),
                               {"rex": ref_ex, "lo": lo, "hi": hi}, cone)
        return fetch_columns(ctx.conn, sql.SQL("FROM detection r WHERE {}").format(q), b,
                             {k: (f"r.{k}", "int64" if k == "id" else "float64") for k in ("id", "ra", "dec")})

    def _match_pm(self, det, dvec, ref, epochs, radius, mode):
        """Match exposure by exposure with the stars moved to that exposure's epoch."""
        ii, jj, rr, ras, decs = [], [], [], [], []
        has_pm = np.isfinite(ref["pmra"]) & np.isfinite(ref["pmdec"]) & np.isfinite(ref["epoch"])
        pmra = np.where(has_pm, ref["pmra"], 0.0)
        pmdec = np.where(has_pm, ref["pmdec"], 0.0)
        ep0 = np.where(has_pm, ref["epoch"], 0.0)
        cosd = np.cos(np.radians(ref["dec"]))
        for eid in np.unique(det["exposure_id"]):  # loop over exposures (one epoch each)
            sel = np.flatnonzero(det["exposure_id"] == eid)
            dt = np.where(has_pm, epochs[int(eid)] - ep0, 0.0)
            ra = ref["ra"] + pmra * dt / cosd / 3.6e6
            dec = ref["dec"] + pmdec * dt / 3.6e6
            i, j, rank = match_unit_vectors(dvec[sel], unit_vectors(ra, dec), radius, mode)
            ii.append(sel[i]), jj.append(j), rr.append(rank), ras.append(ra[j]), decs.append(dec[j])
        i = np.concatenate(ii)
        order = np.argsort(i, kind="stable")
        return (i[order], np.concatenate(jj)[order], np.concatenate(rr)[order], np.concatenate(ras)[order],
                np.concatenate(decs)[order])

    def _write(self, ctx, det, ref, i, j, rank, rra, rdec, dvec, catalog) -> int:
        sep = angular_sep_arcsec(dvec[i], unit_vectors(rra, rdec))
        dra = (det["ra"][i] - rra + 180.0) % 360.0 - 180.0
        dra = dra * np.cos(np.radians(det["dec"][i])) * 3600.0
        ddec = (det["dec"][i] - rdec) * 3600.0
        return copy_table(ctx.conn, "xmatch",
                          {"detection_id": det["id"][i], "ref_id": ref["id"][j], "sep_arcsec": sep,
                           "dra_arcsec": dra, "ddec_arcsec": ddec, "rank": rank},
                          constants={"catalog": catalog, "stage_run_id": ctx.run_id})
