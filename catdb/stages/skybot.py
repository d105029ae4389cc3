"""Stage ``skybot``: identify candidate tracks with known Solar System objects (IMCCE SkyBoT).

For the candidate tracks (``track.status = 'candidate'``) with a detection in the selected
exposures, grouped by night, one SkyBoT cone search (Berthier et al. 2006, ASP Conf. Ser.
351, 367) is made at the tracks' mid-epoch (median of ``(mjd_first + mjd_last) / 2``),
centred on the tracks' exposures (``ra_center``, ``dec_center``; radius the largest
``exposure.radius`` plus one arcminute) from the exposures' ``observatory_code`` (``500``
if unknown), through :func:`catdb.ingest.skybot.query_skybot` (astroquery).  With
``votable=PATH`` a saved SkyBoT response is read instead
(:func:`~catdb.ingest.skybot.read_skybot_votable`), and its epoch (``meta['epoch']``) is
used.  Each track's position is propagated linearly with its fitted rates from
``mjd_ref`` to the SkyBoT epoch and matched to the nearest SkyBoT object within
``radius`` arcsec (:func:`~catdb.ingest.skybot.match_skybot`; ``max_rate_diff`` also
requires the rates to agree).  Tracks observed more than ``max_epoch_diff`` days from the
SkyBoT epoch (a VOTable of another night) are not matched; the counts say how many
(``epoch_mismatch``).

Writes ``track.skybot_name`` (name, or number and name: ``'5945 Roachapproach'``),
``skybot_sep`` (arcsec) and ``designation`` (the number when numbered, else the name).
Tracks without a match get NULLs (a designation that a user set is kept).

Offline (SkyBoT unreachable, or astroquery missing), the stage still succeeds: nothing
is changed and the counts say ``skipped: offline`` with the reason.
"""
from __future__ import annotations

import numpy as np
from ..db.copy import copy_table
from ..errors import InputError
from ..ingest import skybot as sb
from .base import Param, Stage, StageContext, register


@register
class Skybot(Stage):
    name = "skybot"
    description = "Identify candidate tracks with known asteroids/comets from an IMCCE SkyBoT cone search"
    params = [
        Param("radius", float, 10.0, "Match radius between track and SkyBoT position [arcsec]"),
        Param("max_rate_diff", float, None, "Also require rates within this difference [arcsec/h]"),
        Param("max_epoch_diff", float, 1.0, "Tracks further than this from the SkyBoT epoch are not matched [d]"),
        Param("votable", str, None, "Read this saved SkyBoT VOTable instead of querying the service"),
    ]
    outputs = []

    def _tracks(self, ctx):
        rows = ctx.execute(
            """SELECT t.id, t.ra, t.dec, t.mjd_ref, t.rate_ra, t.rate_dec, t.mjd_first, t.mjd_last,
                      min(COALESCE(e.night::text, floor(e.mjd_mid)::text)) AS night, t.designation, t.skybot_name
               FROM track t JOIN track_detection td ON td.track_id = t.id
               JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
               WHERE t.status = 'candidate' AND d.exposure_id = ANY(%s)
               GROUP BY t.id ORDER BY t.id""", (ctx.inputs,)).fetchall()
        if not rows:
            return None
        cols = list(zip(*rows))
        out = {k: np.array(v, dtype=float) for k, v in zip(
            ("id", "ra", "dec", "mjd_ref", "rate_ra", "rate_dec", "mjd_first", "mjd_last"), cols[:8])}
        out["id"] = out["id"].astype(np.int64)
        out["night"] = np.array(cols[8], dtype=object)
        return out

    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        t = self._tracks(ctx)
        if t is None:
            return {"tracks": 0, "matched": 0}
        fixed = None
        if p["votable"]:
            fixed = sb.read_skybot_votable(p["votable"])
            if "epoch" not in fixed.meta:
                raise InputError("SkyBoT VOTable has no epoch parameter", path=p["votable"], keyword="epoch")
            from astropy.time import Time

            ep = str(fixed.meta["epoch"]).strip()
            try:
                fixed_epoch = Time(float(ep), format="jd", scale="utc").mjd
            except ValueError:
                fixed_epoch = Time(ep, scale="utc").mjd
        names = np.full(t["id"].size, None, dtype=object)
        desig = np.full(t["id"].size, None, dtype=object)
        sep = np.full(t["id"].size, np.nan)
        queries = []
        n_far = 0
        for night in sorted(set(t["night"].tolist())):  # loop over nights (one query each)
            sel = np.flatnonzero(t["night"] == night)
            if fixed is not None:
                table, epoch = fixed, fixed_epoch
            else:
                epoch = float(np.median(0.5 * (t["mjd_first"][sel] + t["mjd_last"][sel])))
                ra_c, dec_c, rad, code = ctx.execute(
                    """SELECT avg(e.ra_center), avg(e.dec_center), max(e.radius),
                              COALESCE(mode() WITHIN GROUP (ORDER BY e.observatory_code), '500')
                       FROM exposure e WHERE e.id IN (SELECT d.exposure_id FROM track_detection td
                           JOIN detection d ON d.id = td.detection_id WHERE td.track_id = ANY(%s))""",
                    (t["id"][sel].tolist(),)).fetchone()
                if ra_c is None or rad is None:
                    ra_c, dec_c = float(np.mean(t["ra"][sel])), float(np.mean(t["dec"][sel]))
                    rad = 0.5
                try:
                    table = sb.query_skybot(ra_c, dec_c, rad * 3600.0 + 60.0, epoch, location=code)
                except sb.SkybotUnavailable as exc:
                    return {"tracks": int(t["id"].size), "matched": 0, "skipped": "offline", "note": str(exc)}
                queries.append({"night": night, "mjd": epoch, "ra": ra_c, "dec": dec_c, "radius_deg": rad,
                                "obscode": code, "n_objects": len(table)})
            # a linear motion is good for hours, not years: a track more than max_epoch_diff days
            # from the SkyBoT epoch is not matched (e.g. a saved VOTable of another night)
            far = (epoch < t["mjd_first"][sel] - p["max_epoch_diff"]) | (epoch > t["mjd_last"][sel] + p["max_epoch_diff"])
            n_far += int(far.sum())
            sel = sel[~far]
            if sel.size == 0:
                continue
            dt_h = (epoch - t["mjd_ref"][sel]) * 24.0
            cosd = np.cos(np.radians(t["dec"][sel]))
            ra = t["ra"][sel] + t["rate_ra"][sel] * dt_h / 3600.0 / cosd
            dec = t["dec"][sel] + t["rate_dec"][sel] * dt_h / 3600.0
            m = sb.match_skybot(ra, dec, table, radius_arcsec=p["radius"], track_rate_ra=t["rate_ra"][sel],
                                track_rate_dec=t["rate_dec"][sel], max_rate_diff=p["max_rate_diff"])
            ok = np.asarray(m["skybot_index"]) >= 0
            num = np.asarray(m["number"]).astype(str)
            nm = np.asarray(m["name"]).astype(str)
            full = np.where(num != "", np.char.add(np.char.add(num, " "), nm), nm)
            names[sel[ok]] = full[ok]
            desig[sel[ok]] = np.where(num != "", num, nm)[ok]
            sep[sel] = np.asarray(m["sep_arcsec"], float)
        ctx.execute("CREATE TEMP TABLE _skybot_upd (id bigint, skybot_name text, designation text, "
                    "skybot_sep double precision) ON COMMIT DROP")
        copy_table(ctx.conn, "_skybot_upd", {"id": t["id"], "skybot_name": names, "designation": desig,
                                             "skybot_sep": sep})
        # a designation equal to the previous SkyBoT name/number came from this stage: replace it;
        # one set by a user is kept when there is no match
        ctx.execute(
            """UPDATE track t SET skybot_name = u.skybot_name, skybot_sep = u.skybot_sep,
                   designation = CASE WHEN u.designation IS NOT NULL THEN u.designation
                                      WHEN t.skybot_name IS NOT NULL AND (t.designation = t.skybot_name
                                           OR t.skybot_name LIKE t.designation || ' %') THEN NULL
                                      ELSE t.designation END
               FROM _skybot_upd u WHERE t.id = u.id""")
        out = {"tracks": int(t["id"].size), "matched": int(np.sum(names != None)),  # noqa: E711
               "source": p["votable"] or "SkyBoT service", "epoch_mismatch": n_far}
        if queries:
            out["queries"] = queries
        return out
