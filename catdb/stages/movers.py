"""Stage ``movers``: Solar System object candidates (tracks) among the detections of a night.

Inputs (param ``source``):

* ``orphans`` (default): the detections of the selected exposures that the latest
  ``associate`` run linked to an orphan object (seen on fewer than that run's
  ``min_epochs`` exposures) or to a ``moving`` object.  When none of the selected
  exposures has been associated, all good detections are used instead and the run's
  counts say so (``source_used``).
* ``all``: every good detection (``flags <= flags_max``, ``snr >= snr_min``).  Static
  stars then form many seed pairs and (rejected) static tracks; the search is slower.
* ``scamp``: SCAMP's own cross-epoch associations as the candidate links, as ssos uses them
  (Mahlke et al. 2019, sect. 3.2): the detections of the selected exposures linked to the
  objects of the latest ``catdb ingest scamp --full`` load (``object.scamp_source``), one
  candidate track per SCAMP source; no seed search.  SCAMP links a moving object only when
  its motion between frames is within ``CROSSID_RADIUS`` (ssos runs SCAMP with a large one);
  the filter chain then rejects the static sources (rate S/N, pixel shift).

Per night (``exposure.night``; else the local date at the start of the night from ``mjd_mid`` and
``site_lon``; else, no longitude being assumed, the instrument's observing session, a new one after a
gap of more than 6 h: :mod:`catdb.algorithms.nights`; counted by rule in ``night_from``) and field (the groups of that
night's exposures of one pointing: centres closer than half the footprint ``radius``; ledger
``params.field`` = the group's smallest exposure id) the detections go to
:func:`catdb.algorithms.movers.find_movers` (linking plus the ssos filter chain of Mahlke et
al. 2019, A&C 28, 100289).  ``search = tracklets`` (default): pairs of each exposure with its
next ``tracklet_exposures`` exposures, tracklets of three detections, chains of tracklets and
their extension by prediction over ``2 tracklet_exposures`` exposures or their own span when longer,
pieces of one line apart in time joined by a k-d tree over their (position, velocity) (MOPS-style
tracklets and attribution: Kubica et al. 2007, Icarus 189, 151; Denneau et al. 2013, PASP 125,
357; HelioLinC's linking of tracklets at a common epoch: Holman et al. 2018, AJ 156, 135); the
work grows linearly with exposures x detections (on the 23-frame Lowell night ~170,000 pairs at
0-300"/h).  ``search = seeds``: the earlier
long-baseline seed pairs, checked on ``seed_check_exposures`` intermediate exposures and
matched on every exposure (3.4 million seed pairs on that night, growing as exposures^2 x
detections^2).  Pairs are made in blocks of at most ``max_seeds``, so any rate range runs in
bounded memory.  Positional errors are floored at
``pos_err_floor`` arcsec: SExtractor's ``ERRAWIN`` errors (~0.01-0.05") are far smaller
than the real scatter of positions between exposures (0.3-1" for seeing-limited frames,
WCS residuals included), and without the floor linking tolerances and rate errors are
too tight.  The pixel shift is the smaller of the fitted motion in arcsec divided by the
exposures' median ``pixscale`` and the fitted motion of the detections' own ``x``, ``y`` on
the detector (ssos applies it to ``XWIN_IMAGE``/``YWIN_IMAGE``: a warm pixel fixed on the
chip moves on the sky with the guiding drift or the dithers, not on the detector).  The
bright-star veto uses the reference catalogue named by ``bright_refcat`` (e.g. ``TYCHO2`` as
ingested from the Tycho-2 CSV), stars brighter than ``bright_mag`` in ``bright_band``
(default: the brightest magnitude the star has) within ``bright_radius`` arcsec of the track.

Writes ``track`` (``status = 'candidate'`` for tracks passing every filter,
``'rejected:<filter>'`` for the others when ``store_rejected`` is true, so a rejected
track can be inspected in TOPCAT; the candidates are ``WHERE status = 'candidate'``),
``track_detection`` (``residual`` = on-sky distance from the fitted line, ``outlier`` for
detections dropped by the MAD step) and one ``ledger`` row per filter and night
(``n_in``, ``n_rejected``, ``n_kept``, parameters in ``params``).  ``track.rms`` is the
residual RMS, ``track.r2_ra``/``r2_dec`` both hold the two-dimensional R^2 of the fit.

Replace: tracks of earlier ``movers`` runs with a detection in a selected exposure are
deleted (their ``track_detection`` rows, forced sources and periods by cascade), and so
are the ledger rows of earlier runs whose inputs are all among the selected exposures.
"""
from __future__ import annotations

import json

import numpy as np
from psycopg import sql
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..algorithms.movers import MoverConfig, find_movers
from ..algorithms.sphere import angular_sep_arcsec, chord, radec, unit_vectors
from ..db.copy import copy_table, fetch_arrays
from ..errors import InputError
from ..spatial.sql import cone_condition
from ._common import night_groups
from .base import Param, Stage, StageContext, register

_TYPES = {"id": "int64", "exposure_id": "int64", "ra": "float64", "dec": "float64", "x": "float64", "y": "float64",
          "ra_err": "float64",
          "dec_err": "float64", "mag": "float64", "a_image": "float64", "b_image": "float64", "mjd": "float64",
          "zp": "float64"}

_SELECT = """
    SELECT d.id, d.exposure_id, d.ra, d.dec, d.x, d.y, d.ra_err, d.dec_err,
           d.mag_auto AS mag, z.zp, d.a_image, d.b_image, e.mjd_mid AS mjd
    FROM detection d
    JOIN exposure e ON e.id = d.exposure_id
    LEFT JOIN LATERAL (SELECT zp FROM zeropoint WHERE exposure_id = e.id AND ok ORDER BY id DESC LIMIT 1) z ON true
"""


@register
class Movers(Stage):
    name = "movers"
    description = "Moving-object (asteroid) candidate tracks with the ssos filter chain and a ledger"
    params = [
        Param("source", str, "orphans", "orphans (orphan/moving objects of the latest associate run), all, or "
              "scamp (SCAMP's associations from catdb ingest scamp --full as the candidate links)",
              choices=("orphans", "all", "scamp")),
        Param("flags_max", int, 3, "Highest SExtractor FLAGS used with source=all"),
        Param("snr_min", float, 5.0, "Lowest SNR used with source=all"),
        Param("min_detections", int, 4, "Minimum detections on a track"),
        Param("min_rate", float, 0.0, "Minimum rate of motion [arcsec/h]"),
        Param("max_rate", float, 300.0, "Maximum rate of motion [arcsec/h]"),
        Param("min_rate_snr", float, 3.0, "Minimum rate / rate error"),
        Param("min_r2", float, 0.95, "Minimum R^2 of the linear-motion fit"),
        Param("max_rms", float, 2.0, "Maximum residual RMS of the fit [arcsec]"),
        Param("min_pixel_shift", float, 2.0, "Minimum fitted motion over the track [pix]"),
        Param("pos_err_floor", float, 0.3, "Floor of the per-axis position error [arcsec]"),
        Param("match_nsigma", float, 3.0, "Linking tolerance in units of the position error"),
        Param("search", str, "tracklets", "tracklets (pairs of nearby exposures, tracklets, chains; linear in "
              "exposures x detections) or seeds (long-baseline seed pairs, the earlier search)",
              choices=("tracklets", "seeds")),
        Param("tracklet_exposures", int, 3, "tracklets: pair each exposure with its next K exposures; chains "
                                            "bridge up to K - 1 missed exposures"),
        Param("seed_baseline_frac", float, 0.5, "Seed pairs come from exposures at least this fraction of "
                                                "the night's span apart"),
        Param("seed_check_exposures", int, 3, "Seed lines need a detection on one of this many intermediate "
                                              "exposures before the full match (0: match every seed)"),
        Param("max_seeds", int, 1_000_000, "Seed pairs processed per block (memory ~150 bytes each); not a limit"),
        Param("mad_threshold", float, 5.0, "Outlier cut on fit residuals, in units of 1.4826 MAD"),
        Param("trail", bool, False, "Constant-trail filter on A_IMAGE, B_IMAGE (ssos FILTER_TRAIL, off by default "
                                    "as in ssos)"),
        Param("trail_ratio", float, 0.25, "Trail filter: minimum error-of-the-mean / scatter of A and B (ssos RATIO)"),
        Param("bright_refcat", str, None, "Reference catalogue for the bright-star veto (e.g. TYCHO2)"),
        Param("bright_band", str, None, "Band of bright_refcat magnitudes (default: brightest band of the star)"),
        Param("bright_mag", float, 11.0, "Stars brighter than this veto tracks [mag]"),
        Param("bright_radius", float, 60.0, "Veto radius around bright stars [arcsec]"),
        Param("store_rejected", bool, True, "Also store rejected tracks (status rejected:<filter>)"),
    ]
    outputs = ["track"]

    def replace(self, ctx: StageContext) -> int:
        n = ctx.execute(
            """DELETE FROM track WHERE id IN (
                   SELECT td.track_id FROM track_detection td JOIN detection d ON d.id = td.detection_id
                   WHERE d.exposure_id = ANY(%(ids)s))
               AND stage_run_id IN (SELECT id FROM stage_run WHERE stage = %(stage)s AND id <> %(run)s)""",
            {"ids": ctx.inputs, "stage": self.name, "run": ctx.run_id}).rowcount
        # tracks left without detections (their detections were re-extracted) are stale
        n += ctx.execute(
            """DELETE FROM track t WHERE t.stage_run_id IN (SELECT id FROM stage_run WHERE stage = %(stage)s
                   AND id <> %(run)s) AND NOT EXISTS (SELECT 1 FROM track_detection td WHERE td.track_id = t.id)""",
            {"stage": self.name, "run": ctx.run_id}).rowcount
        n += ctx.execute(
            """DELETE FROM ledger WHERE stage_run_id IN (SELECT id FROM stage_run WHERE stage = %(stage)s
                   AND id <> %(run)s AND input_ids <@ %(ids)s::bigint[])""",
            {"ids": ctx.inputs, "stage": self.name, "run": ctx.run_id}).rowcount
        return n

    # ------------------------------------------------------------------ inputs
    def _candidates(self, ctx, ids):
        """Candidate detections of exposures ``ids`` (one night) and the source used."""
        p = ctx.params
        source = p["source"]
        if source == "scamp":
            return self._scamp_links(ctx, ids)
        if source == "orphans":
            assoc = ctx.execute(
                """SELECT o.stage_run_id, max(r.params->>'min_epochs') FROM detection_object o
                   JOIN stage_run r ON r.id = o.stage_run_id
                   JOIN detection d ON d.id = o.detection_id WHERE d.exposure_id = ANY(%s)
                   GROUP BY o.stage_run_id ORDER BY o.stage_run_id DESC""", (ids,)).fetchall()
            if assoc:
                min_epochs = max(int(r[1] or 4) for r in assoc)
                q = _SELECT + """ JOIN detection_object l ON l.detection_id = d.id JOIN object o ON o.id = l.object_id
                    WHERE d.exposure_id = ANY(%(ids)s) AND (o.kind = 'moving' OR o.n_epochs < %(me)s)
                    ORDER BY d.exposure_id, d.id"""
                return fetch_arrays(ctx.conn, q, {"ids": ids, "me": min_epochs}, _TYPES), \
                    f"orphans (n_epochs < {min_epochs}) and moving objects of associate runs " \
                    f"{sorted(r[0] for r in assoc)}"
            source = "all (no association for these exposures)"
        q = _SELECT + """ WHERE d.exposure_id = ANY(%(ids)s) AND d.flags <= %(fmax)s
                         AND (d.snr IS NULL OR d.snr >= %(snr)s) ORDER BY d.exposure_id, d.id"""
        return fetch_arrays(ctx.conn, q, {"ids": ids, "fmax": p["flags_max"], "snr": p["snr_min"]}, _TYPES), source

    def _scamp_links(self, ctx, ids):
        """Detections linked to the SCAMP sources of the latest ``ingest-scamp`` full load, with ``link``."""
        runs = ctx.execute(
            """SELECT DISTINCT o.stage_run_id FROM detection_object l JOIN object o ON o.id = l.object_id
               JOIN detection d ON d.id = l.detection_id
               WHERE d.exposure_id = ANY(%s) AND o.scamp_source IS NOT NULL ORDER BY 1 DESC""",
            (ids,)).fetchall()
        if not runs:
            raise InputError("source=scamp: no SCAMP associations for the selected exposures; load SCAMP's full "
                             "catalogue first (catdb ingest scamp *.ldac --full full_1.cat)", keyword="source")
        run = runs[0][0]
        q = _SELECT + """ JOIN detection_object l ON l.detection_id = d.id JOIN object o ON o.id = l.object_id
            WHERE d.exposure_id = ANY(%(ids)s) AND o.stage_run_id = %(run)s AND o.scamp_source IS NOT NULL
            ORDER BY d.exposure_id, d.id"""
        q = q.replace("SELECT d.id,", "SELECT o.id AS link, d.id,", 1)
        d = fetch_arrays(ctx.conn, q, {"ids": ids, "run": run}, {"link": "int64", **_TYPES})
        return d, f"scamp associations of ingest-scamp run {run}"

    def _bright_stars(self, ctx, d):
        p = ctx.params
        if not p["bright_refcat"] or d["ra"].size == 0:
            return None
        n = ctx.execute("SELECT count(*) FROM refcat_source WHERE catalog = %s", (p["bright_refcat"],)).fetchone()[0]
        if n == 0:
            known = [r[0] for r in ctx.execute("SELECT DISTINCT catalog FROM refcat_source").fetchall()]
            raise InputError(f"parameter bright_refcat: no reference catalogue {p['bright_refcat']!r} in the "
                             f"database (have {known or 'none'}; ingest one with catdb ingest refcat)",
                             keyword="bright_refcat")
        xyz = unit_vectors(d["ra"], d["dec"])
        c = xyz.mean(0)
        c /= np.linalg.norm(c)
        ra_c, dec_c = radec(c)
        rad = float(np.degrees(np.arccos(np.clip(xyz @ c, -1, 1))).max()) + p["bright_radius"] / 3600.0
        cond = cone_condition("s.ra", "s.dec", ra_c, dec_c, rad)
        mag = (sql.SQL("(s.mags->>{})::float8").format(sql.Literal(p["bright_band"])) if p["bright_band"] else
               sql.SQL("(SELECT min(v::float8) FROM jsonb_each_text(s.mags) AS j(k, v))"))
        q = sql.SQL("SELECT s.ra, s.dec, {} AS mag FROM refcat_source s WHERE s.catalog = %(cat)s AND {}").format(
            mag, cond.sql)
        stars = fetch_arrays(ctx.conn, q, {"cat": p["bright_refcat"], **cond.params},
                       {"ra": "float64", "dec": "float64", "mag": "float64"})
        return stars

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        cfg = MoverConfig(min_detections=p["min_detections"], min_rate=p["min_rate"], max_rate=p["max_rate"],
                          min_rate_snr=p["min_rate_snr"], min_r2=p["min_r2"], max_rms_arcsec=p["max_rms"],
                          min_pixel_shift=p["min_pixel_shift"], min_sigma_arcsec=p["pos_err_floor"],
                          match_nsigma=p["match_nsigma"], seed_baseline_frac=p["seed_baseline_frac"],
                          search=p["search"], tracklet_exposures=p["tracklet_exposures"],
                          seed_check_exposures=p["seed_check_exposures"],
                          max_seeds=p["max_seeds"], mad_threshold=p["mad_threshold"],
                          bright_star_radius_arcsec=p["bright_radius"], bright_star_mag=p["bright_mag"],
                          use_trail_filter=p["trail"], trail_ratio=p["trail_ratio"])
        if p["pos_err_floor"] < 0 or p["min_detections"] < 3:
            raise InputError("parameters pos_err_floor >= 0 and min_detections >= 3 expected, got "
                             f"{p['pos_err_floor']!r}, {p['min_detections']!r}", keyword="pos_err_floor")
        if p["tracklet_exposures"] < 1:
            raise InputError(f"parameter tracklet_exposures >= 1 expected, got {p['tracklet_exposures']!r}",
                             keyword="tracklet_exposures")
        if p["max_seeds"] < 1 or p["seed_check_exposures"] < 0:
            raise InputError("parameters max_seeds >= 1 and seed_check_exposures >= 0 expected, got "
                             f"{p['max_seeds']!r}, {p['seed_check_exposures']!r}", keyword="max_seeds")
        pix = ctx.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY pixscale) FROM exposure "
                          "WHERE id = ANY(%s)", (ctx.inputs,)).fetchone()[0]
        # one night at a time (bounded memory: a night's candidates, not the survey's)
        # exposure.night, else the local night from site_lon, else the instrument's observing session (no
        # longitude assumed: a UTC date would split a European or Chilean night at 00:00 UTC)
        ids_all = np.array(sorted(ctx.inputs), dtype=np.int64)
        night_of, night_basis = night_groups(ctx.conn, ids_all)
        missing = np.equal(night_of, None)
        if missing.any():
            raise InputError(f"exposure {int(ids_all[missing][0])} has no mjd_mid: the mover search needs every "
                             "exposure's epoch", keyword="mjd_mid")
        keys, inv_n = np.unique(night_of.astype(str), return_inverse=True)
        nights = [(str(k), ids_all[inv_n.ravel() == j].tolist()) for j, k in enumerate(keys)]
        counts = {"source_used": None, "detections_in": 0, "track": 0, "candidates": 0, "track_detection": 0,
                  "ledger": 0, "nights": 0, "fields": 0,
                  "night_from": {str(k): int(v) for k, v in zip(*np.unique(night_basis.astype(str),
                                                                           return_counts=True))}}
        sources = []
        step0 = 0
        floor = p["pos_err_floor"]
        for night, ids in nights:  # loop over nights (a handful), not rows
            d, source = self._candidates(ctx, list(ids))
            d["night"] = np.full(d["id"].size, night, dtype=object)
            d["mag"] = self._night_mags(d)
            if source not in sources:
                sources.append(source)
            counts["detections_in"] += int(d["id"].size)
            if d["id"].size == 0:
                continue
            bad = ~np.isfinite(d["mjd"])
            if bad.any():
                raise InputError(f"exposure {int(d['exposure_id'][bad][0])} has no mjd_mid: the mover search "
                                 "needs every exposure's epoch", keyword="mjd_mid")
            ra_err = np.where(np.isfinite(d["ra_err"]), np.maximum(d["ra_err"], floor), floor)
            dec_err = np.where(np.isfinite(d["dec_err"]), np.maximum(d["dec_err"], floor), floor)
            stars = self._bright_stars(ctx, d)
            group = self._sky_groups(ctx, d)
            counts["nights"] += 1
            labels, inv = np.unique(group, return_inverse=True)
            order = np.argsort(inv.ravel(), kind="stable")
            bounds = np.searchsorted(inv.ravel()[order], np.arange(labels.size + 1))
            for k, g in enumerate(labels):  # one search per night and field (pointing), not per row
                sel = order[bounds[k]:bounds[k + 1]]
                counts["fields"] += 1
                res = find_movers(d["ra"][sel], d["dec"][sel], d["mjd"][sel], ra_err[sel], dec_err[sel],
                                  d["exposure_id"][sel], mag=d["mag"][sel], pixscale=pix,
                                  x=d["x"][sel], y=d["y"][sel],
                                  star_ra=None if stars is None else stars["ra"],
                                  star_dec=None if stars is None else stars["dec"],
                                  star_mag=None if stars is None else stars["mag"],
                                  a_image=d["a_image"][sel] if p["trail"] else None,
                                  b_image=d["b_image"][sel] if p["trail"] else None,
                                  links=d["link"][sel] if "link" in d else None, config=cfg)
                step0 = self._write(ctx, res, d["id"][sel], night, step0, counts, field=int(g))
        counts["source_used"] = "; ".join(sources) if sources else p["source"]
        counts["ledger"] = step0
        return counts

    @staticmethod
    def _night_mags(d):
        """Magnitudes of one night's detections on one scale (for the tracks' ``mean_mag``, shape (N,)).

        With a zeropoint (latest ``ok`` row of ``calibrate``) on any exposure of the night: ``mag_auto +
        zp``, and NaN (no magnitude) on the exposures without one -- an uncalibrated ``mag_auto`` added
        to calibrated ones would put a track's mean on no scale at all.  With none on the night: the
        catalogue's own ``mag_auto`` (SExtractor's ``MAG_ZEROPOINT``, whatever the catalogue used).
        """
        zp = d.pop("zp")
        if np.isfinite(zp).any():
            return d["mag"] + zp  # NaN where the exposure has no zeropoint
        return d["mag"]

    def _sky_groups(self, ctx, d):
        """Field of every detection: per night, the connected groups of exposures of one pointing
        (centres, ``ra_center``/``dec_center``, closer than half the smaller ``radius``: dithers
        of one field, not the edge overlap of neighbouring tiles of a survey), labelled by their
        smallest exposure id.

        A night of several pointings is searched field by field: the search pairs each exposure
        with the next exposures in time, which must be of the same field.  Exposures without a
        centre or radius form one group of their night (label -1).

        Returns
        -------
        ndarray of int64, shape (N,)
        """
        eids, inv = np.unique(d["exposure_id"], return_inverse=True)
        label = np.full(eids.size, -1, dtype=np.int64)
        if eids.size == 0:
            return label[inv.ravel()]
        rows = ctx.execute("SELECT id, ra_center, dec_center, radius FROM exposure WHERE id = ANY(%s)",
                           (eids.tolist(),)).fetchall()
        geo = {r[0]: r[1:] for r in rows}
        ra, dec, rad = (np.array([np.nan if geo.get(int(e), (None,) * 3)[i] is None else geo[int(e)][i]
                                  for e in eids], dtype=float) for i in range(3))
        night_e = np.empty(eids.size, dtype=object)
        night_e[inv.ravel()] = d["night"]
        ok = np.isfinite(ra) & np.isfinite(dec) & np.isfinite(rad)
        for night in set(night_e.tolist()):
            idx = np.flatnonzero((night_e == night) & ok)
            if idx.size == 0:
                continue
            xyz = unit_vectors(ra[idx], dec[idx])
            rmax = 0.5 * float(rad[idx].max())
            pairs = cKDTree(xyz).query_pairs(chord(rmax), output_type="ndarray")
            if pairs.size:
                sep = angular_sep_arcsec(xyz[pairs[:, 0]], xyz[pairs[:, 1]]) / 3600.0
                pairs = pairs[sep <= 0.5 * np.minimum(rad[idx][pairs[:, 0]], rad[idx][pairs[:, 1]])]
            g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])) if len(pairs) else ([], ([], [])),
                           shape=(idx.size, idx.size))
            _, lab = connected_components(g, directed=False)
            first = np.full(lab.max() + 1, np.iinfo(np.int64).max)
            np.minimum.at(first, lab, eids[idx])
            label[idx] = first[lab]
        return label[inv.ravel()]

    def _write(self, ctx, res, det_ids, night, step0, counts, field=-1):
        p = ctx.params
        t, m, led = res.tracks, res.members, res.ledger
        led_params = np.array([json.dumps({"night": night, "field": int(field), "parameters": str(s)})
                               for s in led["parameters"]], dtype=object)
        copy_table(ctx.conn, "ledger", {"step": np.asarray(led["step"]) + step0,
                                        "filter": np.asarray(led["filter"]).astype(object),
                                        "n_in": np.asarray(led["n_in"]), "n_rejected": np.asarray(led["n_rejected"]),
                                        "n_kept": np.asarray(led["n_kept"]), "params": led_params},
                   constants={"stage_run_id": ctx.run_id})
        status = np.asarray(t["status"]).astype(str)
        keep = np.ones(len(t), bool) if p["store_rejected"] else status == "kept"
        tt = t[keep]
        n = len(tt)
        if n:
            ids = np.array([r[0] for r in ctx.execute(
                "SELECT nextval(pg_get_serial_sequence('track', 'id')) FROM generate_series(1, %s)", (n,)).fetchall()],
                dtype=np.int64)
            st = np.asarray(tt["status"]).astype(str)
            st = np.where(st == "kept", "candidate", np.char.add("rejected:", st)).astype(object)
            r2 = np.asarray(tt["r2"], float)
            copy_table(ctx.conn, "track", {
                "id": ids, "n_detections": np.asarray(tt["n_detections"]),
                "mjd_first": np.asarray(tt["mjd_first"], float), "mjd_last": np.asarray(tt["mjd_last"], float),
                "ra": np.asarray(tt["ra"], float), "dec": np.asarray(tt["dec"], float),
                "mjd_ref": np.asarray(tt["mjd_ref"], float), "rate_ra": np.asarray(tt["rate_ra"], float),
                "rate_dec": np.asarray(tt["rate_dec"], float), "rate": np.asarray(tt["rate"], float),
                "rate_err": np.asarray(tt["rate_err"], float), "pa": np.asarray(tt["pa"], float),
                "r2_ra": r2, "r2_dec": r2, "rms": np.asarray(tt["rms"], float),
                "mean_mag": np.asarray(tt["mean_mag"], float), "status": st},
                constants={"stage_run_id": ctx.run_id})
            # members of the stored tracks: map the algorithm's track index to the new ids
            id_of = np.full(len(t), -1, dtype=np.int64)
            id_of[np.flatnonzero(keep)] = ids
            tid = id_of[np.asarray(m["track_id"])]
            ok = tid >= 0
            resid = np.hypot(np.asarray(m["resid_ra"], float), np.asarray(m["resid_dec"], float))
            counts["track_detection"] += copy_table(ctx.conn, "track_detection", {
                "track_id": tid[ok], "detection_id": det_ids[np.asarray(m["det_index"])[ok]],
                "residual": resid[ok], "outlier": np.asarray(m["outlier"])[ok]})
            counts["track"] += n
            counts["candidates"] += int((st == "candidate").sum())
        counts.setdefault("rejected", {})
        for f in np.unique(status[status != "kept"]):
            counts["rejected"][str(f)] = counts["rejected"].get(str(f), 0) + int((status == f).sum())
        return step0 + len(led)
