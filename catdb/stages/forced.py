"""Stage ``forced``: forced aperture photometry of objects, moving-object tracks and user positions.

Targets (any combination):

* ``objects``: an SQL condition on ``object`` (alias ``o``), e.g. ``n_epochs >= 10`` or
  ``kind = 'coadd'``;
* ``tracks``: an SQL condition on ``track`` (alias ``t``), e.g. ``status = 'candidate'``; each
  track is measured at its predicted position at the exposure's mid-time,
  ``ra + rate_ra dt / cos(dec)``, ``dec + rate_dec dt`` (``rate_ra`` in "/h includes cos dec,
  ``dt = mjd_mid - mjd_ref``);
* ``positions``: a CSV file with columns ``ra,dec`` (deg, ICRS) and optionally ``label``
  (:func:`catdb.ingest.positions.read_positions`).

For every selected exposure, the targets inside its footprint are found with the spatial
layer (:func:`catdb.spatial.cone_condition` around ``ra_center``/``dec_center`` with the
exposure's ``radius``), then kept when their pixel position (the exposure's stored WCS, merged into the
image header) lies on the image; exposures without a usable WCS (``wcs_status``) are skipped and counted.
All of an exposure's targets are measured at once with
:func:`catdb.algorithms.forced.forced_photometry` on its latest ``reduced`` product (or the raw
image with ``use_raw=true``), gain and read noise from ``exposure`` (the background noise by the CCD
equation; an exposure without a read noise gets the annulus' measured variance instead, listed in
``counts.noise_measured_no_readnoise``); exposures are processed in
``workers`` threads and the rows are written with one COPY into ``forced_source``.

Aperture radius: a number (pixels) or ``auto``: per exposure, the Photometry Pipeline's
curve-of-growth rule (Mommert 2017, A&C 18, 47, sec. 3.5): the smallest candidate radius at
which both the targets' median growth curve and the bright stars' median growth curve
exceed 70 % of their maximum and differ by less than 5 %
(:func:`catdb.algorithms.forced.curve_of_growth_radius` with all the exposure's targets, so that
they share one radius).  Bright stars are the
exposure's 50 highest-S/N detections with ``FLAGS = 0`` (so not saturated), ``CLASS_STAR >= 0.8``
and S/N >= 50.

Calibration: with an ``ok`` zeropoint of the exposure (the exposure's band preferred, else
the latest), ``mag = -2.5 log10(flux) + aper_corr + zp`` and ``mag_err`` adds ``zp_err`` in
quadrature; without one, ``mag`` is NULL and flag 8 is set.  The zeropoints are fitted on total
magnitudes (MAG_AUTO, or reference catalogues), so an aperture flux is first corrected to total
(``aperture_correction``, default on; :func:`catdb.algorithms.forced.aperture_correction`):
``aper_corr = 2.5 log10(f)``, f the median over the
exposure's bright stars (below) of the fraction of their flux inside the aperture relative to
the largest ``auto_radii`` radius, from their growth curves (the classical aperture correction,
Stetson 1990, PASP 102, 932; Howell 1989, PASP 101, 616).  Without it a light curve measured
with a small aperture changes with the seeing from frame to frame, and ``radius=auto`` picks a
different radius on every exposure.  Where no correction is measured (option off, no usable
bright star, or the aperture as large as the total radius) ``aper_corr`` is NULL, ``mag`` is the
aperture magnitude and flag 32 is set.  Flags: 1 edge, 2 saturated, 4 masked pixels,
8 no zeropoint, 16 bad background annulus, 32 no aperture correction.

Re-running replaces the rows earlier ``forced`` runs wrote for the same exposures *and the
same targets* (same object ids, track ids, or user positions with the same label and position).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits
from psycopg import sql

from ..algorithms.astrometry import merge_wcs
from ..db.copy import copy_table
from ..errors import InputError
from ..ingest.headers import header_from_cards
from ..schema import WCS_USABLE
from ..spatial import cone_condition
from ..wcsutil import clean_wcs_header, wcs_from_header
from ..algorithms.forced import aperture_correction, curve_of_growth_radius
from ..ingest.positions import read_positions
from .base import Param, Stage, StageContext, register

#: forced_source.flags bits (column comment: 1 edge, 2 saturated, 4 masked pixels, 8 no zeropoint,
#: 16 bad background annulus, 32 no aperture correction)
FLAG_NO_ZEROPOINT = 8
#: background annulus mostly unusable (catdb.algorithms.forced.FLAG_BAD_BACKGROUND moved to 16)
FLAG_BAD_BACKGROUND = 16
#: no aperture correction measured (option off, or no usable bright star): aper_corr is NULL and
#: mag the aperture magnitude
FLAG_NO_APER_CORR = 32

_TARGETS = "forced_target"


def _parse_radius(text):
    s = str(text).strip().lower()
    if s == "auto":
        return "auto"
    try:
        r = float(s)
    except ValueError:
        raise InputError(f"parameter radius: expected a radius in pixels or 'auto', got {text!r}") from None
    if not r > 0:
        raise InputError(f"parameter radius: must be > 0 pixels, got {text!r}")
    return r


def _parse_radii(text):
    try:
        r = np.array([float(s) for s in str(text).split(",") if s.strip()])
    except ValueError:
        raise InputError(f"parameter auto_radii: expected increasing radii in pixels, got {text!r}") from None
    if r.size < 2 or np.any(np.diff(r) <= 0) or np.any(r <= 0):
        raise InputError(f"parameter auto_radii: expected >= 2 increasing radii > 0 pixels, got {text!r}")
    return r


@register
class Forced(Stage):
    name = "forced"
    description = "Forced aperture photometry of objects, track predictions and user positions"
    scope_params = ("objects", "tracks", "positions")
    params = [
        Param("objects", str, None, "SQL condition on object (alias o) selecting objects, e.g. \"n_epochs >= 10\""),
        Param("tracks", str, None, "SQL condition on track (alias t), e.g. \"status = 'candidate'\""),
        Param("positions", str, None, "CSV file with columns ra,dec[,label] (deg, ICRS)"),
        Param("radius", str, "auto", "Aperture radius in pixels, or 'auto' (PP curve-of-growth rule per exposure)"),
        Param("auto_radii", str, "1.5,2,2.5,3,3.5,4,5,6,7,8,10", "Candidate radii of radius=auto (pix)"),
        Param("annulus_in", float, 15.0, "Inner radius of the background annulus (pix)"),
        Param("annulus_out", float, 25.0, "Outer radius of the background annulus (pix)"),
        Param("aperture_correction", bool, True, "Correct aperture fluxes to total with the bright stars' growth "
                                                 "curve before the zeropoint (aper_corr column)"),
        Param("use_raw", bool, False, "Measure the raw image instead of the latest reduced product"),
        Param("workers", int, 2, "Exposures read and measured at once (threads)"),
    ]
    outputs = ["forced_source"]

    # ------------------------------------------------------------------ targets + replace
    def _build_targets(self, ctx: StageContext) -> dict:
        p = ctx.params
        if not (p["objects"] or p["tracks"] or p["positions"]):
            raise InputError("stage forced needs targets: give objects=SQL, tracks=SQL and/or positions=FILE.csv")
        ctx.execute(sql.SQL("DROP TABLE IF EXISTS pg_temp.{t}").format(t=sql.Identifier(_TARGETS)))
        ctx.execute(sql.SQL(
            "CREATE TEMP TABLE {t} (object_id bigint, track_id bigint, label text, ra double precision, "
            "dec double precision, mjd_ref double precision, rate_ra double precision, "
            "rate_dec double precision) ON COMMIT DROP").format(t=sql.Identifier(_TARGETS)))
        n = {}
        if p["objects"]:
            n["objects"] = ctx.execute(sql.SQL(
                "INSERT INTO {t} (object_id, ra, dec) SELECT o.id, o.ra, o.dec FROM object o WHERE ({c})").format(
                t=sql.Identifier(_TARGETS), c=sql.SQL(p["objects"]))).rowcount
        if p["tracks"]:
            cur = ctx.execute(sql.SQL(
                "INSERT INTO {t} (track_id, label, ra, dec, mjd_ref, rate_ra, rate_dec) "
                "SELECT t.id, COALESCE(t.designation, t.skybot_name), t.ra, t.dec, t.mjd_ref, t.rate_ra, t.rate_dec "
                "FROM track t WHERE ({c}) AND t.ra IS NOT NULL AND t.dec IS NOT NULL AND t.mjd_ref IS NOT NULL "
                "AND t.rate_ra IS NOT NULL AND t.rate_dec IS NOT NULL").format(
                t=sql.Identifier(_TARGETS), c=sql.SQL(p["tracks"])))
            n["tracks"] = cur.rowcount
            n["tracks_without_motion"] = ctx.execute(sql.SQL(
                "SELECT count(*) FROM track t WHERE ({c}) AND NOT (t.ra IS NOT NULL AND t.dec IS NOT NULL AND "
                "t.mjd_ref IS NOT NULL AND t.rate_ra IS NOT NULL AND t.rate_dec IS NOT NULL)").format(
                c=sql.SQL(p["tracks"]))).fetchone()[0]
        if p["positions"]:
            pos = read_positions(p["positions"])
            n["positions"] = copy_table(ctx.conn, _TARGETS, {"ra": pos["ra"], "dec": pos["dec"],
                                                              "label": pos["label"]})
        return n

    def replace(self, ctx: StageContext) -> int:
        """Build the target list, then delete earlier ``forced`` rows for these exposures and targets."""
        ctx.counts["targets"] = self._build_targets(ctx)
        return ctx.execute(sql.SQL(
            "DELETE FROM forced_source f WHERE f.exposure_id = ANY(%(ids)s) AND f.stage_run_id IN "
            "(SELECT id FROM stage_run WHERE stage = %(stage)s AND id <> %(run)s) AND ("
            " f.object_id IN (SELECT object_id FROM {t} WHERE object_id IS NOT NULL)"
            " OR f.track_id IN (SELECT track_id FROM {t} WHERE track_id IS NOT NULL)"
            " OR (f.object_id IS NULL AND f.track_id IS NULL AND EXISTS (SELECT 1 FROM {t} u"
            "     WHERE u.object_id IS NULL AND u.track_id IS NULL AND u.label IS NOT DISTINCT FROM f.label"
            "     AND abs(u.ra - f.ra) < 1e-9 AND abs(u.dec - f.dec) < 1e-9)))").format(
            t=sql.Identifier(_TARGETS)),
            {"ids": ctx.inputs, "stage": self.name, "run": ctx.run_id}).rowcount

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        radius = _parse_radius(p["radius"])
        radii = _parse_radii(p["auto_radii"]) if radius == "auto" else None
        annulus = (p["annulus_in"], p["annulus_out"])
        rmax = radii[-1] if radius == "auto" else radius
        if not (rmax < annulus[0] < annulus[1]):
            raise InputError(f"parameters annulus_in/annulus_out: need {rmax:g} (largest aperture radius) < "
                             f"annulus_in < annulus_out, got {annulus[0]:g}, {annulus[1]:g}")
        if p["workers"] < 1:
            raise InputError(f"parameter workers: expected >= 1, got {p['workers']}")

        exps = ctx.execute(
            "SELECT e.id, e.path, e.hdu, e.mjd_mid, e.ra_center, e.dec_center, e.radius, e.gain, e.readnoise, "
            "e.saturation, e.band, r.path, r.hdu, z.zp, z.zp_err, z.band, e.wcs_status, e.wcs_header FROM exposure e "
            "LEFT JOIN LATERAL (SELECT path, hdu FROM image_product p WHERE p.exposure_id = e.id "
            "  AND p.kind = 'reduced' ORDER BY p.id DESC LIMIT 1) r ON true "
            "LEFT JOIN LATERAL (SELECT zp, zp_err, band FROM zeropoint z WHERE z.exposure_id = e.id AND z.ok "
            "  ORDER BY (z.band = e.band) DESC NULLS LAST, z.id DESC LIMIT 1) z ON true "
            "WHERE e.id = ANY(%s) ORDER BY e.id", (ctx.inputs,)).fetchall()
        t = sql.Identifier(_TARGETS)
        dt = sql.SQL("(%(mjd)s::double precision - mjd_ref) * 24.0 / 3600.0")
        pred = sql.SQL(
            "SELECT object_id, track_id, label, "
            " CASE WHEN track_id IS NULL THEN ra ELSE ra + rate_ra * {dt} / cos(radians(dec)) END AS ra_t, "
            " CASE WHEN track_id IS NULL THEN dec ELSE dec + rate_dec * {dt} END AS dec_t FROM {t}").format(
            dt=dt, t=t)
        jobs, no_wcs = [], []
        for (eid, raw, raw_hdu, mjd, ra0, dec0, rad, gain, rn, sat, band, red, red_hdu,
             zp, zp_err, zp_band, wcs_status, wcs_text) in exps:  # loop over exposures
            if ra0 is None or dec0 is None or rad is None or wcs_status not in WCS_USABLE or not wcs_text:
                no_wcs.append(eid)  # no usable stored WCS (catdb stage solve): skipped, counted
                continue
            cone = cone_condition("s.ra_t", "s.dec_t", ra0, dec0, rad)
            q = sql.SQL("SELECT s.object_id, s.track_id, s.label, s.ra_t, s.dec_t FROM ({pred}) s "
                        "WHERE {cone} AND NOT (s.track_id IS NOT NULL AND %(mjd)s::double precision IS NULL)").format(
                pred=pred, cone=cone.sql)
            rows = ctx.execute(q, {**cone.params, "mjd": mjd}).fetchall()
            if not rows:
                continue
            if p["use_raw"]:
                image, hdu = raw, raw_hdu
            elif red is None:
                raise InputError(f"exposure {eid} ({raw}) has no reduced product: run 'catdb stage reduce' first, "
                                 f"or measure the raw image with use_raw=true")
            else:
                image, hdu = red, red_hdu
            if not gain or gain <= 0:
                raise InputError(f"exposure {eid} ({raw}): no gain (exposure.gain, e-/ADU) for the noise model")
            stars = None
            if radius == "auto" or p["aperture_correction"]:
                stars = np.array(ctx.execute(
                    "SELECT ra, dec FROM detection WHERE exposure_id = %s AND flags = 0 AND class_star >= 0.8 "
                    "AND snr >= 50 ORDER BY snr DESC LIMIT 50", (eid,)).fetchall(), dtype=float).reshape(-1, 2)
                if len(stars) == 0 and radius == "auto":
                    raise InputError(f"exposure {eid} ({raw}): radius=auto needs unflagged point-like detections "
                                     f"with S/N >= 50 (run 'catdb stage extract' first) or give radius=<pixels>")
            cols = list(zip(*rows))
            jobs.append(dict(id=eid, image=image, hdu=hdu, wcs=header_from_cards(wcs_text), gain=gain,
                             readnoise=rn, saturation=sat,
                             band=zp_band if zp is not None else band, zp=zp, zp_err=zp_err, stars=stars,
                             object_id=np.array(cols[0], dtype=object), track_id=np.array(cols[1], dtype=object),
                             label=np.array(cols[2], dtype=object), ra=np.array(cols[3], dtype=float),
                             dec=np.array(cols[4], dtype=float)))

        r_total = (radii[-1] if radius == "auto" else _parse_radii(p["auto_radii"])[-1]) \
            if p["aperture_correction"] else None
        if r_total is not None and not r_total < annulus[0]:
            raise InputError(f"parameter auto_radii: the aperture correction takes the largest radius "
                             f"({r_total:g} pix) as total flux; it must be inside annulus_in ({annulus[0]:g})")

        def _measure(j):
            return _measure_exposure(j, radius, radii, annulus, r_total)

        with ThreadPoolExecutor(max_workers=p["workers"]) as pool:
            results = list(pool.map(_measure, jobs))
        results = [r for r in results if r is not None and len(r["ra"])]
        counts = {"exposures_measured": len(results), "exposures_without_wcs": len(no_wcs),
                  "exposures_without_wcs_ids": no_wcs,
                  "noise_measured_no_readnoise": sorted(int(r["exposure_id"]) for r in results
                                                        if r["noise"] == "measured")}
        if radius == "auto":
            counts["radius_auto"] = {str(r["exposure_id"]): r["auto"] for r in results}
        if r_total is not None:
            counts["aper_corr"] = {str(r["exposure_id"]): {"mag": (None if r["n_corr"][0] == 0
                                                                   else round(float(r["aper_corr"][0]), 4)),
                                                          "n_stars": int(r["n_corr"][0])} for r in results}
            counts["no_aperture_correction"] = sorted(int(r["exposure_id"]) for r in results if r["n_corr"][0] == 0)
        if not results:
            return {**counts, "forced_source": 0}
        skip = ("auto", "exposure_id", "off_image", "n_corr", "noise")
        cat = {k: np.concatenate([r[k] for r in results]) for k in results[0] if k not in skip}
        cat["exposure_id"] = np.concatenate([np.full(len(r["ra"]), r["exposure_id"], dtype=np.int64)
                                             for r in results])
        n = copy_table(ctx.conn, "forced_source", cat, constants={"stage_run_id": ctx.run_id})
        counts.update(forced_source=n, no_zeropoint=int(np.sum((cat["flags"] & FLAG_NO_ZEROPOINT) > 0)),
                      off_image=int(sum(r["off_image"][0] for r in results)))
        return counts


def _measure_exposure(j: dict, radius, radii, annulus, r_total=None) -> dict | None:
    """Read one exposure's image and measure all its targets (runs in a worker thread)."""
    from ..algorithms.forced import FLAG_BAD_BACKGROUND as ALG_BAD_BKG
    from ..algorithms.forced import forced_photometry
    path = j["image"]
    if not Path(path).is_file():
        raise InputError(f"exposure {j['id']}: image not found", path=path)
    with fits.open(path) as hl:
        h = hl[j["hdu"]]
        image = np.asarray(h.data, dtype=np.float32)
        header = h.header.copy()
    if j.get("wcs") is not None:  # the exposure's stored WCS (solve may have replaced it), in this image's frame
        header = merge_wcs(clean_wcs_header(header, path=path), j["wcs"])
    wcs = wcs_from_header(header, path=path)
    ny, nx = image.shape
    x0, y0 = wcs.all_world2pix(j["ra"], j["dec"], 0)
    on = np.isfinite(x0) & np.isfinite(y0) & (x0 >= -0.5) & (x0 <= nx - 0.5) & (y0 >= -0.5) & (y0 <= ny - 0.5)
    off_image = int((~on).sum())
    if not on.any():
        return None
    sel = {k: j[k][on] for k in ("object_id", "track_id", "label", "ra", "dec")}
    sat = header.get("SATURATE", j["saturation"])
    auto = None
    r = radius
    star_xy = np.zeros((0, 2))
    if j["stars"] is not None and len(j["stars"]):
        sx, sy = wcs.all_world2pix(j["stars"][:, 0], j["stars"][:, 1], 0)
        star_xy = np.column_stack([sx + 1, sy + 1])
    if radius == "auto":
        cog = curve_of_growth_radius(image, np.column_stack([x0[on] + 1, y0[on] + 1]), star_xy, radii,
                                     annulus=annulus)
        auto = dict(radius=cog.radius, found=cog.found, n_targets=cog.n_targets, n_stars=cog.n_stars,
                    target_fraction=[round(float(v), 4) for v in cog.target_fraction],
                    star_fraction=[round(float(v), 4) for v in cog.star_fraction])
        r = auto["radius"]
    ac, n_corr = aperture_correction(image, star_xy, r, r_total, annulus) if r_total is not None else (0.0, 0)
    # not measured (option off, no usable star, r >= r_total): NULL and flag 32, never a 0 that looks measured
    ac_stored = ac if n_corr > 0 else np.nan
    zp = j["zp"]
    # the CCD equation needs the read noise: unknown (exposure.readnoise NULL), the annulus' measured
    # variance is the background noise instead of a read noise of 0 that would shrink the errors
    rn = j["readnoise"]
    noise = "ccd" if rn is not None and np.isfinite(rn) and rn >= 0 else "measured"
    t = forced_photometry(image, wcs, sel["ra"], sel["dec"], [r], annulus, j["gain"], rn if noise == "ccd" else 0.0,
                          saturation=None if sat is None else float(sat), zeropoint=0.0 if zp is None else zp,
                          noise=noise)
    flags = np.asarray(t["flags"], dtype=np.int64)
    bad_bkg = (flags & ALG_BAD_BKG) > 0
    flags = (flags & ~ALG_BAD_BKG) | np.where(bad_bkg, FLAG_BAD_BACKGROUND, 0)
    if zp is None:
        mag = np.full(len(flags), np.nan)
        magerr = np.full(len(flags), np.nan)
        flags = flags | FLAG_NO_ZEROPOINT
    else:
        mag = np.asarray(t["mag_aper"][:, 0], dtype=float) + ac
        magerr = np.hypot(np.asarray(t["magerr_aper"][:, 0], dtype=float), j["zp_err"] or 0.0)
    if n_corr == 0:
        flags = flags | FLAG_NO_APER_CORR
    n = len(flags)
    return dict(exposure_id=j["id"], noise=noise, object_id=sel["object_id"], track_id=sel["track_id"],
                label=sel["label"],
                ra=sel["ra"], dec=sel["dec"], x=np.asarray(t["x"], float), y=np.asarray(t["y"], float),
                aperture_radius=np.full(n, r, dtype=float), aper_corr=np.full(n, ac_stored, dtype=float),
                n_corr=np.array([n_corr]),
                flux=np.asarray(t["flux_aper"][:, 0], float), flux_err=np.asarray(t["fluxerr_aper"][:, 0], float),
                background=np.asarray(t["background"], float), mag=mag, mag_err=magerr,
                band=np.full(n, j["band"], dtype=object), flags=flags, auto=auto,
                off_image=np.array([off_image]))
