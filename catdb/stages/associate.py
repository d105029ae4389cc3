"""Stage ``associate``: group detections of many exposures into objects.

Inputs: the good detections (``flags <= flags_max``, ``snr >= snr_min``; a detection
without an SNR is kept) of the selected science exposures, with their exposure's
``mjd_mid``, read one sky partition at a time (below).  They are grouped by friends-of-friends
(:func:`catdb.algorithms.association.friends_of_friends`, linking radius ``radius``
arcsec) and summarised per object (:func:`~catdb.algorithms.association.object_summary`):
weighted mean position, epochs, mean magnitude and scatter, reduced chi^2 of the
magnitudes (``chi2_var``) and a linear-motion fit.  Objects whose fitted motion is
significant, or whose positional scatter is much larger than that of the other objects,
get ``kind = 'moving'``; the others ``'static'``.  The scatter criterion's factor
``scatter_factor`` defaults to 5 here (2 in the algorithm): on the real Lowell night
(23 frames) a factor 2 flags 290 of the 1300 stars seen on >= 4 frames as moving (blends
and SExtractor errors that are not uniformly underestimated), 5 flags 134, and the two
real asteroids are orphans either way.  Objects seen on fewer than
``min_epochs`` exposures are the "orphans" the ``movers`` stage searches (with the moving
ones).

Sky partitions (memory bounded by ``partition_size``, not by the survey): one query counts
the input detections per q3c cell of level 11 (~0.04 deg); cells are merged into a quad tree
of cells holding at most ``partition_size`` detections each
(:func:`catdb.spatial.cells.adaptive_cells`).  Each partition reads its cell's detections
(``q3c_ang2ipix`` in the cell's range) and those within ``partition_margin`` around it
(``q3c_poly_query`` on :func:`~catdb.spatial.cells.dilated_polygon`).  Groups all of whose
detections lie deeper than the linking radius inside that region are whole groups of the
full sky; each is written by the partition whose cell holds its first detection (in
(exposure, detection id) order).  The cell's other detections (groups reaching beyond the
margin, e.g. friends-of-friends chains longer than it, or groups owned by a neighbour) are
deferred; once every partition is done, those not written meanwhile are grouped together
(:func:`~catdb.algorithms.association.partition_components`).  The result is the
association of all inputs at once, object for object (``tests/test_stage_associate_partitions.py``).
The positional-scatter criterion of ``kind`` needs the median over all objects: objects are
written ``static``/``moving`` by their motion fit, and those above ``scatter_factor`` x the
median of the run's objects (computed by the server over a temporary table) are marked
``moving`` at the end.  Counts: ``partitions``, ``detections_deferred``.  Memory is that of
one partition (plus the deferred detections, a thin set unless friends-of-friends percolates
across the sky, e.g. a linking radius near the typical separation of a crowded field);
a single level-11 cell with more than ``partition_size`` detections is read whole.

Photometry: an object's summary uses calibrated magnitudes (``mag_auto + zp``) when every
one of its detections comes from an exposure with an ``ok`` zeropoint; ``object.band`` is
then the zeropoint's band (e.g. ``r``).  Otherwise instrumental ``mag_auto`` are used and
``object.band`` is ``'<exposure band>:inst'`` (e.g. ``VR:inst``); the run's counts say how
many objects are of each kind.

Writes ``object`` and ``detection_object`` with COPY (object ids are drawn from the
table's identity sequence first, so the links are written without a round trip per row).

Replace: objects written by earlier ``associate`` runs that hold a detection of a
selected exposure are deleted (with their links, and by cascade the ``forced_source`` and
``lightcurve_period`` rows referring to them) before the new association is written.

Incremental mode (``incremental=true``): the inputs are only the selected exposures that
have no ``detection_object`` link yet.  Their detections are matched to the existing
objects within ``radius`` (:func:`~catdb.algorithms.association.associate_to_objects`, at
most one detection per object and exposure), the rest are grouped among themselves by
friends-of-friends into new objects, and the summaries of every touched object are
recomputed from all its linked detections.  Nothing is deleted.
"""
from __future__ import annotations

import numpy as np
from psycopg import sql

from ..algorithms.association import (associate_to_objects, friends_of_friends, object_summary,
                                      partition_components, scatter_threshold)
from ..db.copy import copy_table, fetch_arrays
from ..errors import CatdbError, InputError
from ..spatial import cells
from ..spatial.sql import Fragment, cone_condition, polygon_condition
from .base import Param, Stage, StageContext, register

#: columns read for every detection (name -> pyarrow type)
_DET_COLUMNS = {"id": "int64", "exposure_id": "int64", "ra": "float64", "dec": "float64",
                "ra_err": "float64", "dec_err": "float64", "mag_auto": "float64",
                "magerr_auto": "float64", "mjd": "float64", "zp": "float64", "zp_band": "string",
                "band": "string"}

#: q3c level of the cells counted to plan the sky partitions (~0.04 deg: 90 deg / 2^11)
FINE_LEVEL = 11

_DET_SELECT = """
    SELECT d.id, d.exposure_id, d.ra, d.dec, d.ra_err, d.dec_err, d.mag_auto, d.magerr_auto,
           e.mjd_mid AS mjd, z.zp, z.band AS zp_band, e.band{extra}
    FROM detection d
    JOIN exposure e ON e.id = d.exposure_id
    LEFT JOIN LATERAL (SELECT zp, band FROM zeropoint
                       WHERE exposure_id = e.id AND ok ORDER BY id DESC LIMIT 1) z ON true
"""


def _check_mjd(d):
    bad = ~np.isfinite(d["mjd"])
    if bad.any():
        e = int(d["exposure_id"][np.flatnonzero(bad)[0]])
        raise InputError(f"exposure {e} has no mjd_mid: association needs the epoch of every "
                         "exposure (re-ingest it with a header giving the time)", keyword="mjd_mid")


def summary_columns(d: dict, labels: np.ndarray, p: dict, scatter: bool = True):
    """Object rows (column -> array, one per label) from detection arrays and labels.

    Calibrated magnitudes for objects whose detections all have a zeropoint, instrumental
    otherwise (see the module docstring).  With ``scatter=False`` the positional-scatter
    criterion of ``kind`` is left out (applied later over all partitions).

    Returns
    -------
    cols : dict of ndarray
        ``object`` columns.
    stats : dict of int
        Counts (calibrated, instrumental, moving, orphans).
    inst : dict of ndarray
        :func:`~catdb.algorithms.association.object_summary` of the instrumental magnitudes.
    """
    n_obj = int(labels.max()) + 1 if labels.size else 0
    has_zp = np.isfinite(d["zp"])
    all_cal = np.bincount(labels, (~has_zp).astype(float), minlength=n_obj) == 0
    kw = dict(min_epochs=p["min_epochs"], motion_snr=p["motion_snr"],
              scatter_factor=p["scatter_factor"] if scatter else None)
    inst = object_summary(labels, d["ra"], d["dec"], d["ra_err"], d["dec_err"], d["mag_auto"],
                          d["magerr_auto"], d["exposure_id"], d["mjd"], **kw)
    cal = None
    if has_zp.any():
        cal = object_summary(labels, d["ra"], d["dec"], d["ra_err"], d["dec_err"],
                             d["mag_auto"] + d["zp"], d["magerr_auto"], d["exposure_id"],
                             d["mjd"], **kw)
    # band of the object's first detection (input order)
    _, first = np.unique(labels, return_index=True)
    zp_band = np.asarray(d["zp_band"], dtype=object)[first]
    e_band = np.asarray(d["band"], dtype=object)[first]
    inst_band = np.array([f"{b}:inst" if b is not None else "inst" for b in e_band], dtype=object)
    band = np.where(all_cal, zp_band, inst_band)

    def pick(key):
        return np.where(all_cal, cal[key], inst[key]) if cal is not None else inst[key]

    def f32(a):
        return np.where(np.isfinite(a), a, np.nan)

    return dict(
        ra=inst["ra"], dec=inst["dec"], ra_err=f32(inst["ra_err"]), dec_err=f32(inst["dec_err"]),
        kind=np.where(inst["moving"], "moving", "static").astype(object),
        n_detections=inst["n_detections"].astype(np.int64),
        n_epochs=inst["n_epochs"].astype(np.int64), band=band,
        mean_mag=f32(pick("mag_mean")), std_mag=f32(pick("mag_std")),
        chi2_var=f32(pick("chi2_red")), mjd_first=inst["mjd_first"], mjd_last=inst["mjd_last"],
    ), dict(calibrated=int(all_cal.sum()), instrumental=int((~all_cal).sum()),
            moving=int(inst["moving"].sum()), orphans=int(inst["orphan"].sum())), inst


def _unit(ra, dec):
    """(N, 3) unit vectors of RA, Dec in degrees."""
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _new_ids(conn, n: int) -> np.ndarray:
    """``n`` fresh ids from object's identity sequence."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    rows = conn.execute("SELECT nextval(pg_get_serial_sequence('object', 'id')) FROM generate_series(1, %s)",
                        (n,)).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


@register
class Associate(Stage):
    name = "associate"
    description = ("Friends-of-friends association of the selected exposures' detections into objects "
                   "(static / moving), with per-object photometry")
    params = [
        Param("radius", float, 1.5, "Linking radius [arcsec]"),
        Param("flags_max", int, 3, "Highest SExtractor FLAGS of a detection used (3 keeps blended/neighbour)"),
        Param("snr_min", float, 5.0, "Lowest SNR (FLUX_AUTO/FLUXERR_AUTO) of a detection used"),
        Param("min_epochs", int, 4, "Objects on fewer exposures are orphans (mover-search input)"),
        Param("motion_snr", float, 3.0, "Rate S/N above which an object is moving (with a >= 2 arcsec shift)"),
        Param("scatter_factor", float, 5.0, "An object is also moving when its positional reduced chi^2 exceeds "
                                            "this x the median of all objects"),
        Param("incremental", bool, False, "Only exposures without links: match to existing objects, "
                                          "group the rest, update touched objects"),
        Param("partition_size", int, 200_000, "Most detections per sky partition (q3c cell) read at once; "
                                              "0 reads all inputs at once"),
        Param("partition_margin", float, 10.0, "Margin read around each sky partition [arcsec], > 2 x radius"),
    ]
    outputs = ["object", "detection_object"]

    def _check(self, p):
        if not p["radius"] > 0:
            raise InputError(f"parameter radius: expected > 0 arcsec, got {p['radius']!r}", keyword="radius")
        if p["min_epochs"] < 1:
            raise InputError(f"parameter min_epochs: expected >= 1, got {p['min_epochs']!r}",
                             keyword="min_epochs")
        if p["partition_size"] < 0:
            raise InputError(f"parameter partition_size: expected >= 0 detections, got {p['partition_size']!r}",
                             keyword="partition_size")
        if not p["partition_margin"] > 2 * p["radius"]:
            raise InputError(f"parameter partition_margin: expected > 2 x radius = {2 * p['radius']} arcsec, "
                             f"got {p['partition_margin']!r}", keyword="partition_margin")

    def select(self, ctx: StageContext) -> list[int]:
        ids = super().select(ctx)
        if not ctx.params["incremental"]:
            return ids
        rows = ctx.execute(
            "SELECT e FROM unnest(%s::bigint[]) e WHERE NOT EXISTS (SELECT 1 FROM detection d "
            "JOIN detection_object o ON o.detection_id = d.id WHERE d.exposure_id = e) ORDER BY e",
            (ids,)).fetchall()
        return [r[0] for r in rows]

    def replace(self, ctx: StageContext) -> int:
        """Delete objects of earlier associations (this stage's or SCAMP's) holding input detections.

        A detection belongs to one object; associations loaded from SCAMP's full catalogue
        (``catdb ingest scamp --full``) are replaced too.
        """
        if ctx.params["incremental"]:
            return 0
        cur = ctx.execute(
            """DELETE FROM object WHERE id IN (
                   SELECT o.object_id FROM detection_object o JOIN detection d ON d.id = o.detection_id
                   WHERE d.exposure_id = ANY(%s))
               AND stage_run_id IN (SELECT id FROM stage_run WHERE stage IN (%s, 'ingest-scamp') AND id <> %s)""",
            (ctx.inputs, self.name, ctx.run_id))
        # objects left without any detection (their detections were re-extracted) are stale
        stale = ctx.execute(
            """DELETE FROM object o WHERE o.kind <> 'coadd'
               AND o.stage_run_id IN (SELECT id FROM stage_run WHERE stage IN (%s, 'ingest-scamp') AND id <> %s)
               AND NOT EXISTS (SELECT 1 FROM detection_object l WHERE l.object_id = o.id)""",
            (self.name, ctx.run_id))
        return cur.rowcount + stale.rowcount

    def _detections(self, ctx, exposure_ids, where=None, columns=None):
        """Input detections of ``exposure_ids`` as arrays, in (exposure, id) order.

        ``where``: an extra condition (:class:`~catdb.spatial.sql.Fragment`); ``columns``:
        extra output columns, name -> (SQL expression, fetch type).
        """
        columns = columns or {}
        params = {"ids": list(exposure_ids), "fmax": ctx.params["flags_max"], "snr": ctx.params["snr_min"]}
        cond = sql.SQL("")
        if where is not None:
            cond = sql.SQL(" AND {}").format(where.sql)
            params.update(where.params)
        q = sql.SQL(_DET_SELECT).format(extra=sql.SQL("").join(
            sql.SQL(", {} AS {}").format(expr, sql.Identifier(name)) for name, (expr, _) in columns.items()))
        q += sql.SQL(" WHERE d.exposure_id = ANY(%(ids)s) AND d.flags <= %(fmax)s "
                     "AND (d.snr IS NULL OR d.snr >= %(snr)s){} ORDER BY d.exposure_id, d.id").format(cond)
        d = fetch_arrays(ctx.conn, q, params, {**_DET_COLUMNS, **{n: t for n, (_, t) in columns.items()}})
        _check_mjd(d)
        return d

    def _partitions(self, ctx):
        """Sky partitions of the input: q3c cells of at most ``partition_size`` detections.

        One query counts the input detections per cell of level :data:`FINE_LEVEL`
        (``q3c_ang2ipix(ra, dec) >> 2 (30 - level)``, read from the rows, not held);
        :func:`catdb.spatial.cells.adaptive_cells` merges them into a quad tree.

        Returns
        -------
        (cells, levels, counts) or None
            None when everything fits in one partition (or ``partition_size`` is 0).
        """
        p = ctx.params
        if p["partition_size"] == 0:
            return None
        q = sql.SQL("SELECT q3c_ang2ipix(d.ra, d.dec) >> %(shift)s AS cell, count(*) AS n FROM detection d "
                    "WHERE d.exposure_id = ANY(%(ids)s) AND d.flags <= %(fmax)s "
                    "AND (d.snr IS NULL OR d.snr >= %(snr)s) GROUP BY 1 ORDER BY 1")
        h = fetch_arrays(ctx.conn, q, {"shift": 2 * (cells.MAX_LEVEL - FINE_LEVEL), "ids": list(ctx.inputs),
                                       "fmax": p["flags_max"], "snr": p["snr_min"]},
                         {"cell": "int64", "n": "int64"})
        bad = ~np.isfinite(h["cell"])
        if bad.any():
            raise InputError(f"{int(h['n'][bad].sum())} input detections have no q3c pixel (non-finite ra/dec): "
                             "association needs finite positions", keyword="ra/dec")
        if h["n"].sum() <= p["partition_size"]:
            return None
        return cells.adaptive_cells(h["cell"], h["n"], FINE_LEVEL, p["partition_size"])

    def _write_groups(self, ctx, d, labels, acc):
        """COPY the objects of ``labels`` (0..n-1 over ``d``) and their links; scatter rows kept for later."""
        ids = _new_ids(ctx.conn, int(labels.max()) + 1 if labels.size else 0)
        cols, stats, inst = summary_columns(d, labels, ctx.params, scatter=False)
        acc["object"] += copy_table(ctx.conn, "object", {"id": ids, **cols}, constants={"stage_run_id": ctx.run_id})
        acc["detection_object"] += copy_table(ctx.conn, "detection_object",
                                              {"detection_id": d["id"], "object_id": ids[labels]},
                                              constants={"stage_run_id": ctx.run_id})
        for k in ("moving", "orphans", "calibrated", "instrumental"):
            acc[k] += stats[k]
        two = inst["n_detections"] >= 2  # the scatter criterion needs >= 2 detections
        pos = inst["pos_chi2_red"][two]
        copy_table(ctx.conn, "_assoc_scatter", {
            "id": ids[two], "n_epochs": inst["n_epochs"][two].astype(np.int64),
            "n_detections": inst["n_detections"][two].astype(np.int64),
            "pos_chi2": np.where(np.isfinite(pos), pos, np.nan), "pos_inf": np.isposinf(pos)})

    def _apply_scatter(self, ctx) -> int:
        """Mark ``moving`` the objects of this run whose positional scatter is large against all of them.

        The criterion of :func:`~catdb.algorithms.association.scatter_moving` with the median
        over every object of the run on >= 3 epochs (read from the server: its middle one or
        two values, averaged as :func:`numpy.median` does).  Returns the number of objects marked.
        """
        valid = "n_epochs >= 3 AND (pos_inf OR pos_chi2 IS NOT NULL)"
        n = ctx.execute(f"SELECT count(*) FROM _assoc_scatter WHERE {valid}").fetchone()[0]
        ref = np.nan
        if n:
            mid = ctx.execute(f"SELECT CASE WHEN pos_inf THEN 'Infinity'::float8 ELSE pos_chi2 END AS v "
                              f"FROM _assoc_scatter WHERE {valid} ORDER BY v OFFSET %s LIMIT %s",
                              ((n - 1) // 2, 2 - n % 2)).fetchall()
            ref = float(np.median(np.array([r[0] for r in mid], dtype=float)))
        thr = scatter_threshold(ref, ctx.params["scatter_factor"])
        # scatter_moving's test, NaN as 0 and +inf as the largest float (numpy.nan_to_num)
        cur = ctx.execute(
            "UPDATE object o SET kind = 'moving' FROM _assoc_scatter s WHERE o.id = s.id AND o.kind = 'static' "
            "AND (CASE WHEN s.pos_inf THEN %s ELSE COALESCE(s.pos_chi2, 0) END) > %s",
            (float(np.finfo(float).max), thr))
        return cur.rowcount

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        self._check(p)
        if p["incremental"]:
            return self._run_incremental(ctx)
        # (dropped at the end too: several runs may share one transaction)
        ctx.execute("DROP TABLE IF EXISTS pg_temp._assoc_scatter")
        ctx.execute("CREATE TEMP TABLE _assoc_scatter (id bigint, n_epochs bigint, n_detections bigint, "
                    "pos_chi2 float8, pos_inf boolean) ON COMMIT DROP")
        acc = dict.fromkeys(("detections_used", "object", "detection_object", "moving", "orphans",
                             "calibrated", "instrumental"), 0)
        parts = self._partitions(ctx)
        if parts is None:  # everything at once
            d = self._detections(ctx, ctx.inputs)
            acc["detections_used"] = int(d["id"].size)
            self._write_groups(ctx, d, friends_of_friends(d["ra"], d["dec"], p["radius"]), acc)
            n_parts, n_deferred = 1, 0
        else:
            n_parts, n_deferred = self._run_partitions(ctx, parts, acc)
        acc["moving"] += self._apply_scatter(ctx)
        ctx.execute("DROP TABLE _assoc_scatter")
        return {"detections_used": acc["detections_used"], "object": acc["object"],
                "detection_object": acc["detection_object"], "objects_moving": acc["moving"],
                "objects_orphan": acc["orphans"], "objects_calibrated": acc["calibrated"],
                "objects_instrumental": acc["instrumental"], "partitions": n_parts,
                "detections_deferred": n_deferred}

    def _run_partitions(self, ctx, parts, acc):
        """Associate one q3c cell (with a margin) at a time; the deferred groups at the end.

        See :func:`~catdb.algorithms.association.partition_components`: in each partition the
        complete groups first seen in the cell are written; the cell's other detections are
        deferred and grouped together once every partition is done, without the detections
        written meanwhile.  Returns (number of partitions, detections deferred).
        """
        p = ctx.params
        margin = p["partition_margin"] / 3600.0
        depth = -(margin - p["radius"] / 3600.0) + 1e-9  # interior: the linking radius stays inside
        deferred = []
        for cell, level, n in zip(*parts):  # loop over sky partitions
            nrm = cells.edge_normals(cells.cell_corners([cell], level))[0]
            lo, hi = cells.cell_range(cell, level)
            poly = polygon_condition("d.ra", "d.dec", cells.dilated_polygon(nrm, 1.5 * margin))
            core = sql.SQL("(q3c_ang2ipix(d.ra, d.dec) BETWEEN {} AND {})::int").format(
                sql.Literal(int(lo)), sql.Literal(int(hi)))
            d = self._detections(ctx, ctx.inputs, where=poly, columns={"core": (core, "int64")})
            is_core = d["core"] == 1
            if int(is_core.sum()) != int(n):
                raise CatdbError(f"associate: q3c cell {cell} (level {level}) holds {n} input detections but its "
                                 f"polygon query returned {int(is_core.sum())} of them (a bug in the partitioning)")
            xyz = _unit(d["ra"], d["dec"])
            interior = cells.plane_distance(nrm, xyz) >= depth
            labels = friends_of_friends(d["ra"], d["dec"], p["radius"])
            write, defer = partition_components(labels, is_core, interior)
            acc["detections_used"] += int(n)
            if write.any():
                sub = {k: v[write] for k, v in d.items()}
                _, lab = np.unique(labels[write], return_inverse=True)
                self._write_groups(ctx, sub, lab.ravel(), acc)
            deferred.append(d["id"][defer])
            del d, xyz, labels
        ids = np.concatenate(deferred) if deferred else np.zeros(0, np.int64)
        if ids.size:
            # groups written meanwhile are whole: what is left of the deferred detections are whole groups
            left = sql.SQL("d.id = ANY(%(deferred)s) AND NOT EXISTS (SELECT 1 FROM detection_object l "
                           "WHERE l.detection_id = d.id AND l.stage_run_id = %(run)s)")
            d = self._detections(ctx, ctx.inputs, where=Fragment(left, {"deferred": ids.tolist(), "run": ctx.run_id}))
            if d["id"].size:
                self._write_groups(ctx, d, friends_of_friends(d["ra"], d["dec"], p["radius"]), acc)
        return len(parts[0]), int(ids.size)

    def _run_incremental(self, ctx: StageContext) -> dict:
        p = ctx.params
        if not ctx.inputs:
            return {"detections_used": 0, "object": 0, "detection_object": 0, "note": "no new exposures"}
        d = self._detections(ctx, ctx.inputs)
        # existing objects around the new exposures (one cone per exposure, ids collected in SQL)
        ctx.execute("CREATE TEMP TABLE _assoc_near (id bigint PRIMARY KEY) ON COMMIT DROP")
        for eid, ra_c, dec_c, rad in ctx.execute(
                "SELECT id, ra_center, dec_center, radius FROM exposure WHERE id = ANY(%s)", (ctx.inputs,)).fetchall():
            if ra_c is None or rad is None:
                sel = d["exposure_id"] == eid
                if not sel.any():
                    continue
                # RA offsets from the first detection, so that a field across RA 0/360 stays whole
                ra0 = d["ra"][sel][0]
                dra = (d["ra"][sel] - ra0 + 180.0) % 360.0 - 180.0
                ra_c, dec_c = float((ra0 + np.median(dra)) % 360.0), float(np.median(d["dec"][sel]))
                rad = float(np.max(np.hypot(((d["ra"][sel] - ra_c + 180.0) % 360.0 - 180.0) *
                                            np.cos(np.radians(dec_c)), d["dec"][sel] - dec_c)))
            cond = cone_condition("o.ra", "o.dec", ra_c, dec_c, rad + 2 * p["radius"] / 3600.0)
            ctx.execute(sql.SQL("INSERT INTO _assoc_near SELECT o.id FROM object o WHERE {} "
                                "ON CONFLICT DO NOTHING").format(cond.sql), cond.params)
        objs = fetch_arrays(ctx.conn, "SELECT o.id, o.ra, o.dec FROM object o JOIN _assoc_near n ON n.id = o.id "
                                      "WHERE o.kind <> 'coadd' ORDER BY o.id", {},
                            {"id": "int64", "ra": "float64", "dec": "float64"})
        idx, _ = associate_to_objects(objs["ra"], objs["dec"], d["ra"], d["dec"], p["radius"], d["exposure_id"])
        matched = idx >= 0
        rest = np.flatnonzero(~matched)
        lab_new = friends_of_friends(d["ra"][rest], d["dec"][rest], p["radius"]) if rest.size else \
            np.zeros(0, np.int64)
        new_ids = _new_ids(ctx.conn, int(lab_new.max()) + 1 if lab_new.size else 0)
        obj_of = np.empty(d["id"].size, dtype=np.int64)
        obj_of[matched] = objs["id"][idx[matched]]
        obj_of[rest] = new_ids[lab_new]
        # placeholder rows for the new objects (first detection's position), summaries below
        _, first = np.unique(lab_new, return_index=True)
        n_new = copy_table(ctx.conn, "object", {"id": new_ids, "ra": d["ra"][rest][first],
                                                "dec": d["dec"][rest][first]},
                           constants={"stage_run_id": ctx.run_id})
        n_link = copy_table(ctx.conn, "detection_object", {"detection_id": d["id"], "object_id": obj_of},
                            constants={"stage_run_id": ctx.run_id})
        touched = np.unique(obj_of)
        # every detection of every touched object, old links included
        q = ("SELECT l.object_id, d.id, d.exposure_id, d.ra, d.dec, d.ra_err, d.dec_err, d.mag_auto, "
             "d.magerr_auto, e.mjd_mid AS mjd, z.zp, z.band AS zp_band, e.band "
             "FROM detection_object l JOIN detection d ON d.id = l.detection_id "
             "JOIN exposure e ON e.id = d.exposure_id "
             "LEFT JOIN LATERAL (SELECT zp, band FROM zeropoint WHERE exposure_id = e.id AND ok "
             "ORDER BY id DESC LIMIT 1) z ON true WHERE l.object_id = ANY(%(ids)s) ORDER BY l.object_id, d.id")
        all_d = fetch_arrays(ctx.conn, q, {"ids": touched.tolist()}, {"object_id": "int64", **_DET_COLUMNS})
        _check_mjd(all_d)
        uniq, labels = np.unique(all_d["object_id"], return_inverse=True)
        cols, stats, _ = summary_columns(all_d, labels.ravel(), p)
        ctx.execute("CREATE TEMP TABLE _assoc_upd (LIKE object INCLUDING DEFAULTS) ON COMMIT DROP")
        copy_table(ctx.conn, "_assoc_upd", {"id": uniq, **cols}, constants={"stage_run_id": ctx.run_id})
        names = [c for c in cols] + ["stage_run_id"]
        ctx.execute(sql.SQL("UPDATE object o SET {} FROM _assoc_upd u WHERE o.id = u.id").format(
            sql.SQL(", ").join(sql.SQL("{} = u.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in names)))
        return {"detections_used": int(d["id"].size), "detections_matched": int(matched.sum()),
                "object": n_new, "objects_updated": int(uniq.size - n_new), "detection_object": n_link,
                "objects_moving": stats["moving"], "objects_orphan": stats["orphans"],
                "objects_calibrated": stats["calibrated"], "objects_instrumental": stats["instrumental"]}
