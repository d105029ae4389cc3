"""Stage ``associate``: group detections of many exposures into objects.

Inputs: the good detections (``flags <= flags_max``, ``snr >= snr_min``; a detection
without an SNR is kept) of the selected science exposures, with their exposure's
``mjd_mid``, read in one query.  They are grouped by friends-of-friends
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

from ..algorithms.association import associate_to_objects, friends_of_friends, object_summary
from ..db.copy import copy_table, fetch_arrays
from ..errors import InputError
from ..spatial.sql import cone_condition
from .base import Param, Stage, StageContext, register

#: columns read for every detection (name -> pyarrow type)
_DET_COLUMNS = {"id": "int64", "exposure_id": "int64", "ra": "float64", "dec": "float64",
                "ra_err": "float64", "dec_err": "float64", "mag_auto": "float64",
                "magerr_auto": "float64", "mjd": "float64", "zp": "float64", "zp_band": "string",
                "band": "string"}

_DET_SELECT = """
    SELECT d.id, d.exposure_id, d.ra, d.dec, d.ra_err, d.dec_err, d.mag_auto, d.magerr_auto,
           e.mjd_mid AS mjd, z.zp, z.band AS zp_band, e.band
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


def summary_columns(d: dict, labels: np.ndarray, p: dict) -> dict:
    """Object rows (column -> array, one per label) from detection arrays and labels.

    Calibrated magnitudes for objects whose detections all have a zeropoint, instrumental
    otherwise (see the module docstring).
    """
    n_obj = int(labels.max()) + 1 if labels.size else 0
    has_zp = np.isfinite(d["zp"])
    all_cal = np.bincount(labels, (~has_zp).astype(float), minlength=n_obj) == 0
    kw = dict(min_epochs=p["min_epochs"], motion_snr=p["motion_snr"], scatter_factor=p["scatter_factor"])
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
            moving=int(inst["moving"].sum()), orphans=int(inst["orphan"].sum()))


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
    ]
    outputs = ["object", "detection_object"]

    def _check(self, p):
        if not p["radius"] > 0:
            raise InputError(f"parameter radius: expected > 0 arcsec, got {p['radius']!r}", keyword="radius")
        if p["min_epochs"] < 1:
            raise InputError(f"parameter min_epochs: expected >= 1, got {p['min_epochs']!r}",
                             keyword="min_epochs")

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

    def _detections(self, ctx, exposure_ids):
        q = _DET_SELECT + """ WHERE d.exposure_id = ANY(%(ids)s) AND d.flags <= %(fmax)s
                              AND (d.snr IS NULL OR d.snr >= %(snr)s) ORDER BY d.exposure_id, d.id"""
        d = fetch_arrays(ctx.conn, q, {"ids": list(exposure_ids), "fmax": ctx.params["flags_max"],
                                       "snr": ctx.params["snr_min"]}, _DET_COLUMNS)
        _check_mjd(d)
        return d

    def _write(self, ctx, d, labels, ids):
        cols, stats = summary_columns(d, labels, ctx.params)
        n_obj = copy_table(ctx.conn, "object", {"id": ids, **cols}, constants={"stage_run_id": ctx.run_id})
        n_link = copy_table(ctx.conn, "detection_object", {"detection_id": d["id"], "object_id": ids[labels]},
                            constants={"stage_run_id": ctx.run_id})
        return n_obj, n_link, stats

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        self._check(p)
        if p["incremental"]:
            return self._run_incremental(ctx)
        d = self._detections(ctx, ctx.inputs)
        labels = friends_of_friends(d["ra"], d["dec"], p["radius"])
        ids = _new_ids(ctx.conn, int(labels.max()) + 1 if labels.size else 0)
        n_obj, n_link, stats = self._write(ctx, d, labels, ids)
        return {"detections_used": int(d["id"].size), "object": n_obj, "detection_object": n_link,
                "objects_moving": stats["moving"], "objects_orphan": stats["orphans"],
                "objects_calibrated": stats["calibrated"], "objects_instrumental": stats["instrumental"]}

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
                ra_c, dec_c = float(np.median(d["ra"][sel])), float(np.median(d["dec"][sel]))
                rad = float(np.max(np.hypot((d["ra"][sel] - ra_c) * np.cos(np.radians(dec_c)),
                                            d["dec"][sel] - dec_c)))
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
        cols, stats = summary_columns(all_d, labels.ravel(), p)
        ctx.execute("CREATE TEMP TABLE _assoc_upd (LIKE object INCLUDING DEFAULTS) ON COMMIT DROP")
        copy_table(ctx.conn, "_assoc_upd", {"id": uniq, **cols}, constants={"stage_run_id": ctx.run_id})
        names = [c for c in cols] + ["stage_run_id"]
        ctx.execute(sql.SQL("UPDATE object o SET {} FROM _assoc_upd u WHERE o.id = u.id").format(
            sql.SQL(", ").join(sql.SQL("{} = u.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in names)))
        return {"detections_used": int(d["id"].size), "detections_matched": int(matched.sum()),
                "object": n_new, "objects_updated": int(uniq.size - n_new), "detection_object": n_link,
                "objects_moving": stats["moving"], "objects_orphan": stats["orphans"],
                "objects_calibrated": stats["calibrated"], "objects_instrumental": stats["instrumental"]}
