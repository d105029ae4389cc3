"""Light curves: the one place catdb assembles the magnitudes of an object or a track over time.

Every light curve comes from the view ``lightcurve_point`` (migration 0008,
``catdb/migrations/versions/0008_science_views.py``): the target's linked detections (calibrated
with the exposure's latest ``ok`` zeropoint, as ``detection_calibrated``) and its forced photometry.  Its users:

* :func:`lightcurve` (an astropy Table with units): ``catdb lightcurve``, ``catdb period``,
  the ``lightcurve`` stage and :func:`catdb.export.diagnostics.rms_vs_mag`;
* :func:`lightcurve_sql` (SQL text on the view): ``catdb query --saved lightcurve`` and
  ``catdb export lightcurve`` / the pipeline's ``lightcurve`` export
  (:func:`catdb.export.api.lightcurve_query`).

Also here: :func:`parse_target` (``track:12``, ``object:345``), :func:`choose_points` (which
points a period search uses), and the light-time correction (:func:`geocentric_distance`,
:func:`light_time_correct`).  Times are days throughout: ``mjd`` is the mid-exposure MJD (UTC)
as observed, ``mjd_lt`` the light-time corrected MJD of emission when asked for.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.table import Table
from astropy.time import Time
from psycopg import sql

from ..errors import InputError
from ..ingest import skybot as sb

#: light travel time for 1 au, in days (IAU 2012 au / c = 499.004784 s)
AU_LIGHT_DAYS = 499.00478383615643 / 86400.0

SOURCES = ("both", "forced", "detection")

#: columns of :func:`lightcurve`: name -> (SQL on lightcurve_point ``p``, unit, description)
_COLUMNS = {
    "target_id": ("p.target_id", None, "object.id or track.id"),
    "source": ("p.source", None, "detection (linked SExtractor detection) or forced (forced photometry)"),
    "exposure_id": ("p.exposure_id", None, "Exposure"),
    "mjd": ("p.mjd_mid", "d", "Mid-exposure MJD (UTC), as observed"),
    "mag": ("COALESCE(p.mag_cal, {inst})", "mag",
            "Calibrated magnitude (instrumental when calibrated is false)"),
    "mag_err": ("CASE WHEN p.mag_cal IS NOT NULL THEN p.magerr_cal ELSE {inst_err} END", "mag",
                "Error of mag (zeropoint error included when calibrated; NULL when calibrated with a zeropoint "
                "of unknown error)"),
    "calibrated": ("p.calibrated", None, "True when mag is calibrated (the exposure had an ok zeropoint)"),
    "band": ("COALESCE(p.band, '')", None, "Band of mag"),
    "zp_method": ("COALESCE(p.zp_method, '')", None, "Zeropoint method of a calibrated detection: pp/regression "
                                                    "absolute, relative/ensemble on an arbitrary scale (zp_ref); "
                                                    "empty otherwise"),
    "mag_inst": ("{inst}", "mag", "Instrumental magnitude: MAG_AUTO (detection) or -2.5 log10(flux) (forced)"),
    "magerr_inst": ("{inst_err}", "mag", "Error of mag_inst"),
    "flux": ("p.flux", "adu", "FLUX_AUTO (detection) or aperture flux (forced)"),
    "flux_err": ("p.flux_err", "adu", "Error of flux"),
    "flags": ("p.flags", None, "SExtractor FLAGS (detection) or forced flags (8: no zeropoint)"),
    "outlier": ("p.outlier", None, "Outlier epoch of the track's linear fit (movers stage)"),
    "quality_flags": ("p.quality_flags", None, "Exposure quality flags (catdb.schema.QUALITY_FLAGS)"),
    "ra": ("p.ra", "deg", "Right ascension of the measurement (ICRS)"),
    "dec": ("p.dec", "deg", "Declination of the measurement (ICRS)"),
}
_INST = ("COALESCE(p.mag_auto, CASE WHEN p.source = 'forced' AND p.flux > 0 "
         "THEN -2.5 * log(p.flux) END)")
_INST_ERR = ("COALESCE(p.magerr_auto, CASE WHEN p.source = 'forced' AND p.flux > 0 "
             "THEN 1.0857362047581294 * p.flux_err / p.flux END)")


def parse_target(text) -> tuple[str, int]:
    """``'track:12'``, ``'object:345'`` or a bare id (a track) -> ``('track'|'object', id)``.

    Raises
    ------
    InputError
        Anything else (the text is quoted in the message).
    """
    s = str(text).strip()
    kind, _, num = s.rpartition(":")
    kind = kind.strip().lower() or "track"
    if kind not in ("track", "object") or not num.strip().isdigit():
        raise InputError(f"expected 'track:ID', 'object:ID' or a track id, got {text!r}", keyword="target")
    return kind, int(num)


def _kind_ids(track, object):
    if (track is None) == (object is None):
        raise InputError("give a track or an object (one of them)", keyword="target")
    kind, ids = ("track", track) if track is not None else ("object", object)
    ids = [int(i) for i in (ids if isinstance(ids, (Sequence, np.ndarray)) and not isinstance(ids, str) else [ids])]
    return kind, ids


def lightcurve_sql(kind: str, target_ids, *, source: str = "both", outliers: bool = True,
                   select: sql.Composable | None = None, order: str = "time", inline: bool = False):
    """SQL reading light-curve points of targets from the view ``lightcurve_point``.

    Parameters
    ----------
    kind : {'track', 'object', 'position'}
    target_ids : int, sequence of int, or psycopg.sql.Composable
        Target ids (bound as ``%(target_ids)s``), or an SQL expression giving one id (e.g. a
        scalar subquery).
    source : {'both', 'forced', 'detection'}
    outliers : bool
        Keep detections flagged as outlier epochs of a track's fit.
    select : psycopg.sql.Composable, optional
        Select list on the view (alias ``p``); default ``p.*``.
    order : {'time', 'target'}
        ``ORDER BY mjd_mid, source`` or ``ORDER BY target_id, source DESC, mjd_mid``.
    inline : bool
        Put the values in the text as quoted literals (:class:`psycopg.sql.Literal`) instead
        of placeholders, for callers that take a query without parameters; ``params`` is then
        empty.

    Returns
    -------
    query : psycopg.sql.Composed
    params : dict
        Values to bind (``kind``, ``target_ids``, ``source``).

    Raises
    ------
    InputError
        Unknown ``kind`` or ``source``.
    """
    if kind not in ("track", "object", "position"):
        raise InputError(f"kind: expected track, object or position, got {kind!r}", keyword="kind")
    if source not in SOURCES:
        raise InputError(f"source: expected one of {', '.join(SOURCES)}, got {source!r}", keyword="source")
    params = {}

    def value(name, v):
        if inline:
            return sql.Literal(v)
        params[name] = v
        return sql.Placeholder(name)

    conds = [sql.SQL("p.kind = {}").format(value("kind", kind))]
    if isinstance(target_ids, sql.Composable):
        conds.append(sql.SQL("p.target_id = {}").format(target_ids))
    else:
        ids = [int(i) for i in np.atleast_1d(target_ids)]
        conds.append(sql.SQL("p.target_id = ANY({})").format(value("target_ids", ids)))
    if source != "both":
        conds.append(sql.SQL("p.source = {}").format(value("source", source)))
    if not outliers:
        conds.append(sql.SQL("NOT p.outlier"))
    ordering = {"time": "p.mjd_mid, p.source", "target": "p.target_id, p.source DESC, p.mjd_mid"}[order]
    q = sql.SQL("SELECT {sel} FROM lightcurve_point p WHERE {cond} ORDER BY {order}").format(
        sel=select if select is not None else sql.SQL("p.*"), cond=sql.SQL(" AND ").join(conds),
        order=sql.SQL(ordering))
    return q, params


def _check_targets(conn, kind, ids):
    table = sql.Identifier("track" if kind == "track" else "object")
    found = {r[0] for r in conn.execute(sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(table),
                                        (ids,)).fetchall()}
    missing = [i for i in ids if i not in found]
    if missing:
        raise InputError(f"no {kind} {missing[0]} in the database", keyword=f"{kind}_id")


def lightcurve(conn, track=None, object=None, *, source: str = "both", outliers: bool = False,
               light_time: bool = False, delta_au: float | None = None, skybot_votable=None):
    """Light curve(s) of one or several tracks or objects: detections and forced photometry.

    Reads the view ``lightcurve_point``.  Detection rows: the track's member detections (its
    fit's outlier epochs excluded unless ``outliers``) or the object's linked detections,
    calibrated ``mag_auto + zp`` with the exposure's latest ``ok`` zeropoint.  Forced rows:
    ``forced_source.mag`` / ``mag_err``.  Without a zeropoint the row keeps its instrumental
    magnitude (``MAG_AUTO``, or ``-2.5 log10(flux)`` for forced photometry) in ``mag`` and
    ``calibrated`` is false.

    Parameters
    ----------
    conn : psycopg.Connection
    track, object : int or sequence of int
        The target(s): exactly one of the two.
    source : {'both', 'forced', 'detection'}
        Which measurements.
    outliers : bool
        Keep track detections flagged as outlier epochs (flag column ``outlier``).
    light_time : bool
        Add ``mjd_lt`` = ``mjd`` - Delta / c (days), the light-time corrected epoch of
        emission (one track only; Delta from :func:`geocentric_distance`).
    delta_au : float, optional
        Geocentric distance [au] for the light-time correction (implies ``light_time``).
    skybot_votable : path, optional
        Saved SkyBoT response giving the distance (see :func:`geocentric_distance`).

    Returns
    -------
    astropy.table.Table
        One row per measurement, ordered by target, source (forced first) and time; columns
        ``target_id``, ``source``, ``exposure_id``, ``mjd`` [d], ``mag`` [mag], ``mag_err``
        [mag], ``calibrated``, ``band``, ``mag_inst``, ``magerr_inst`` [mag], ``flux``,
        ``flux_err`` [adu], ``flags``, ``outlier``, ``quality_flags``, ``ra``, ``dec`` [deg],
        and ``mjd_lt`` [d] with the light-time correction (``meta``: ``delta_au``,
        ``delta_source``).  ``meta['target']`` is ``'track:ID'`` / ``'object:ID'`` for one target.

    Raises
    ------
    InputError
        Neither or both of ``track``/``object``, an id not in the database, an unknown
        ``source``, a light-time correction of an object or of several tracks, or no distance
        for it (see :func:`geocentric_distance`).
    """
    kind, ids = _kind_ids(track, object)
    _check_targets(conn, kind, ids)
    if (light_time or delta_au is not None) and (kind != "track" or len(ids) != 1):
        raise InputError("the light-time correction needs a track, one at a time (an object has no SkyBoT "
                         "match): use track:ID",
                         keyword="light_time")
    select = sql.SQL(", ").join(sql.SQL(expr.format(inst=_INST, inst_err=_INST_ERR)) + sql.SQL(" AS ")
                                + sql.Identifier(name) for name, (expr, _, _) in _COLUMNS.items())
    q, params = lightcurve_sql(kind, ids, source=source, outliers=outliers, select=select, order="target")
    rows = conn.execute(q, params).fetchall()
    cols = list(zip(*rows)) if rows else [()] * len(_COLUMNS)
    t = Table()
    for (name, (_, unit, desc)), values in zip(_COLUMNS.items(), cols):
        if name in ("target_id", "exposure_id", "flags", "quality_flags"):
            data = np.array(values, dtype=np.int64)
        elif name in ("calibrated", "outlier"):
            data = np.array(values, dtype=bool)
        elif name in ("source", "band", "zp_method"):
            data = np.array(values, dtype=str) if values else np.array([], dtype=str)
        else:
            data = np.array(values, dtype=float)  # None -> nan
        t[name] = data
        t[name].unit = unit
        t[name].description = desc
    if len(ids) == 1:
        t.meta["target"] = f"{kind}:{ids[0]}"
    if light_time or delta_au is not None:
        dist, src = geocentric_distance(conn, ids[0], delta_au=delta_au, skybot_votable=skybot_votable)
        t["mjd_lt"] = light_time_correct(t["mjd"], dist)
        t["mjd_lt"].unit = "d"
        t["mjd_lt"].description = f"Light-time corrected MJD (UTC) of emission: mjd - Delta/c, Delta {dist:.6f} au"
        t.meta.update(delta_au=dist, delta_source=src)
    return t


def choose_points(t, source: str = "auto"):
    """The rows a period search uses: ``forced`` if it has at least 5 finite magnitudes (or
    ``source='forced'``), else ``detection``; returns ``(table, source)``.

    Raises
    ------
    InputError
        Unknown ``source``.
    """
    if source not in ("auto", "forced", "detection"):
        raise InputError(f"source: expected auto, forced or detection, got {source!r}", keyword="source")
    if source == "auto":
        nf = int(np.sum((t["source"] == "forced") & np.isfinite(t["mag"])))
        source = "forced" if nf >= 5 else "detection"
    return t[t["source"] == source], source


def _has_column(conn, table: str, column: str) -> bool:
    return conn.execute("SELECT 1 FROM information_schema.columns WHERE table_schema = ANY(current_schemas(false)) "
                        "AND table_name = %s AND column_name = %s", (table, column)).fetchone() is not None


def geocentric_distance(conn, track_id: int, *, delta_au: float | None = None, skybot_votable=None,
                        max_epoch_diff: float = 1.0):
    """Geocentric distance (au) of a track for the light-time correction, and where it came from.

    Order: an explicit ``delta_au``; else the track's ``skybot_delta`` column when the schema
    has it and it is set (written by the ``skybot`` stage); else the track's SkyBoT
    identification (``track.skybot_name`` / ``designation``) looked up in ``skybot_votable`` (a
    saved SkyBoT response, column ``Dg``/``dist_geo``, whose epoch must lie within
    ``max_epoch_diff`` days of the track's observations); else the SkyBoT service
    (:func:`catdb.ingest.skybot.query_skybot` at the track's mid-epoch and position).

    Returns
    -------
    delta_au : float
        Geocentric distance [au].
    source : str
        ``given``, ``track.skybot_delta`` or ``SkyBoT <name>``.

    Raises
    ------
    InputError
        A distance <= 0, no such track, no SkyBoT identification, a VOTable of another epoch
        or without the name, or SkyBoT unreachable: the message says to run the ``skybot``
        stage or pass ``--delta``.
    """
    if delta_au is not None:
        if not np.isfinite(delta_au) or delta_au <= 0:
            raise InputError(f"geocentric distance must be > 0 au, got {delta_au!r}", keyword="delta")
        return float(delta_au), "given"
    if _has_column(conn, "track", "skybot_delta"):
        row = conn.execute("SELECT skybot_delta FROM track WHERE id = %s", (track_id,)).fetchone()
        if row is not None and row[0] is not None and np.isfinite(row[0]) and row[0] > 0:
            return float(row[0]), "track.skybot_delta"
    row = conn.execute("SELECT skybot_name, designation, ra, dec, mjd_ref, rate_ra, rate_dec, mjd_first, mjd_last "
                       "FROM track WHERE id = %s", (track_id,)).fetchone()
    if row is None:
        raise InputError(f"no track {track_id} in the database", keyword="track_id")
    name = row[0]
    if not name:
        raise InputError(f"light-time correction needs the geocentric distance of track {track_id}, and the track "
                         "has no SkyBoT identification: run 'catdb stage skybot' (online or with votable=FILE) "
                         "or pass --delta AU", keyword="light_time")
    if skybot_votable is not None:
        table = sb.read_skybot_votable(skybot_votable)
        ep = str(table.meta.get("epoch", "")).strip()
        if not ep:
            raise InputError("SkyBoT VOTable has no epoch parameter", path=skybot_votable, keyword="epoch")
        try:
            ep_mjd = Time(float(ep), format="jd", scale="utc").mjd
        except ValueError:
            ep_mjd = Time(ep, scale="utc").mjd
        if not (row[7] - max_epoch_diff <= ep_mjd <= row[8] + max_epoch_diff):
            raise InputError(f"SkyBoT response is for epoch {ep} (MJD {ep_mjd:.3f}), track {track_id} was observed "
                             f"MJD {row[7]:.3f} to {row[8]:.3f}: its distance does not apply (more than "
                             f"{max_epoch_diff} d apart); save a SkyBoT response for the track's night or pass "
                             "--delta AU", path=skybot_votable, keyword="epoch")
    else:
        try:
            mid = 0.5 * (row[7] + row[8])
            table = sb.query_skybot(row[2], row[3], 120.0, mid)
        except sb.SkybotUnavailable as exc:
            raise InputError(f"light-time correction: SkyBoT unreachable for the distance of {name!r} ({exc}); "
                             "pass --skybot-votable FILE or --delta AU", keyword="light_time") from None
    full = np.char.strip(np.char.add(np.char.add(np.asarray(table["number"]).astype(str), " "),
                                     np.asarray(table["name"]).astype(str)))
    hit = (full == name) | (np.asarray(table["name"]).astype(str) == name) \
        | (np.asarray(table["number"]).astype(str) == str(row[1]))
    if not hit.any():
        raise InputError(f"SkyBoT object {name!r} of track {track_id} is not in the SkyBoT response"
                         + (f" {skybot_votable}" if skybot_votable else "") + "; pass --delta AU",
                         keyword="light_time")
    return float(np.asarray(table["dist_geo"], dtype=float)[np.flatnonzero(hit)[0]]), f"SkyBoT {name}"


def light_time_correct(mjd, delta_au):
    """Times of light emission: ``mjd - delta / c``.

    Parameters
    ----------
    mjd : array_like
        Observed times [d].
    delta_au : float or array_like
        Geocentric distance [au], scalar or per point.

    Returns
    -------
    ndarray
        Corrected times [d].

    Notes
    -----
    The standard asteroid light-curve reduction (Harris & Lupishko 1989, Asteroids II, 39):
    times are corrected for the light travel time from the asteroid to the observer,
    1 au / c = 499.004784 s (IAU 2012 Resolution B2 au; c exact).
    """
    return np.asarray(mjd, dtype=float) - np.asarray(delta_au, dtype=float) * AU_LIGHT_DAYS
