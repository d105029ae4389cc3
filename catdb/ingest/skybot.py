"""Known Solar System objects in a field from IMCCE's SkyBoT cone search.

SkyBoT (Berthier et al. 2006, ASP Conf. Ser. 351, 367;
https://ssp.imcce.fr/webservices/skybot/) returns the known small bodies in a
field of view at an epoch.  :func:`read_skybot_votable` reads a saved
response, :func:`query_skybot` asks the service through astroquery's
``Skybot.cone_search`` (network), and :func:`match_skybot` identifies mover
tracks with the known objects.

The cache: :func:`store_skybot` writes one cone search and its objects into
``skybot_query`` / ``skybot_object`` (COPY), :func:`query_skybot_retry` asks the service with
retries and exponential backoff and never raises for a service failure, and
:func:`import_skybot_votable` loads a saved response into the cache for one exposure
(``catdb skybot import FILE --exposure ID``).  The ``skybot`` stage
(:mod:`catdb.stages.skybot`) reads the cache, queries only the exposures that have no usable
cached cone, and matches tracks to the known objects.
"""
from __future__ import annotations

import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io.votable import parse
from astropy.table import Table
from astropy.time import Time

from catdb.errors import CatdbError, InputError

from ..db.copy import copy_table
from ..db.provenance import fail_run, finish_run, start_run

__all__ = [
    "SkybotUnavailable",
    "epoch_to_mjd",
    "import_skybot_votable",
    "match_skybot",
    "query_skybot",
    "query_skybot_retry",
    "read_skybot_votable",
    "store_skybot",
]


class SkybotUnavailable(CatdbError):
    """The SkyBoT service cannot be reached (offline, service down, astroquery missing)."""


#: our column name -> (SkyBoT VOTable name, astroquery cone_search name)
_COLUMNS = {
    "number": ("num", "Number"),
    "name": ("name", "Name"),
    "ra": ("_raj2000", "RA"),
    "dec": ("_decj2000", "DEC"),
    "class": ("class", "Type"),
    "V": ("magV", "V"),
    "pos_err": ("errpos", "posunc"),
    "center_dist": ("angdist", "centerdist"),
    "rate_ra": ("dracosdec", "RA_rate"),
    "rate_dec": ("ddec", "DEC_rate"),
    "dist_geo": ("dgeo", "geodist"),
    "dist_helio": ("dhelio", "heliodist"),
}
_UNITS = {"ra": u.deg, "dec": u.deg, "V": u.mag, "pos_err": u.arcsec, "center_dist": u.arcsec,
          "rate_ra": u.arcsec / u.h, "rate_dec": u.arcsec / u.h, "dist_geo": u.AU,
          "dist_helio": u.AU}


def _normalise(t, which, source):
    out = Table()
    for ours, names in _COLUMNS.items():
        name = names[which]
        if name not in t.colnames:
            raise InputError(f"SkyBoT table has no column {name!r} (have {t.colnames})",
                             path=source, keyword=name)
        col = t[name]
        if ours in ("number", "name", "class"):
            mask = np.ma.getmaskarray(np.ma.asarray(col)) if len(col) else np.zeros(0, bool)
            vals = ["" if m else str(v).strip() for v, m in zip(np.asarray(col).tolist(), mask.tolist())]
            if ours == "number":
                vals = ["" if v in ("-", "--", "") else v for v in vals]
            out[ours] = np.array(vals, dtype=str)
            continue
        unit = _UNITS[ours]
        if getattr(col, "unit", None) is not None:
            vals = u.Quantity(col).to_value(unit)
        else:
            vals = np.asarray(col, dtype=float)
        out[ours] = np.asarray(np.ma.filled(np.ma.asarray(vals, dtype=float), np.nan))
        out[ours].unit = unit
    return out


def read_skybot_votable(path):
    """Read a SkyBoT cone-search VOTable response.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    astropy.table.Table
        ``number`` (str, '' when unnumbered), ``name``, ``ra``, ``dec`` (deg,
        astrometric J2000), ``class`` (e.g. ``MB>Middle``), ``V`` (mag),
        ``pos_err`` (arcsec), ``center_dist`` (arcsec), ``rate_ra``
        (d(RA)/dt cos dec, "/h), ``rate_dec`` ("/h), ``dist_geo``,
        ``dist_helio`` (au); ``meta['epoch']`` is the requested epoch.

    Raises
    ------
    InputError
        If the file is not a readable VOTable, the query status is an
        error, or a column is missing.
    """
    path = Path(path)
    try:
        vot = parse(str(path))
    except Exception as exc:  # astropy raises several kinds here
        raise InputError(f"not a readable VOTable: {exc}", path=path) from exc
    for info in vot.iter_info():
        if info.name == "QUERY_STATUS" and str(info.value).upper() not in ("OK", ""):
            raise InputError(f"SkyBoT query status {info.value}: {info.content}", path=path,
                             keyword="QUERY_STATUS")
    tables = list(vot.iter_tables())
    if not tables:
        t = Table(names=[n[0] for n in _COLUMNS.values()])
    else:
        t = tables[0].to_table()
    out = _normalise(t, 0, path)
    keys = {"epoch": "epoch", "fovRA": "ra", "fovDEC": "dec", "fovSR": "radius", "observer": "observer"}
    for res in vot.resources:
        for p in res.params:
            if p.ID in keys:
                v = p.value.decode() if isinstance(p.value, bytes) else p.value
                out.meta[keys[p.ID]] = str(v) if p.ID in ("epoch", "observer") else float(v)
            elif p.name == "Epoch":
                out.meta["epoch"] = str(p.value)
    return out


def epoch_to_mjd(epoch, source=None) -> float:
    """MJD (UTC) of a SkyBoT epoch string: a Julian Date (``2458568.7``) or an ISO date.

    Parameters
    ----------
    epoch : str or float
        ``meta['epoch']`` of :func:`read_skybot_votable` (SkyBoT writes the requested epoch
        as given: JD, or ``'2025-01-02 00:00:00.00'``).
    source : str, optional
        File named in the error.

    Returns
    -------
    float
        MJD, days.

    Raises
    ------
    InputError
        Neither a number nor a date.
    """
    ep = str(epoch).strip()
    try:
        return float(Time(float(ep), format="jd", scale="utc").mjd)
    except ValueError:
        pass
    try:
        return float(Time(ep, scale="utc").mjd)
    except ValueError:
        raise InputError(f"SkyBoT epoch {ep!r} is neither a Julian Date nor an ISO date", path=source,
                         keyword="epoch") from None


def query_skybot(ra, dec, radius_arcsec, epoch, location="500", timeout=None):
    """Known Solar System objects in a cone, from SkyBoT (needs the network).

    Parameters
    ----------
    ra, dec : float
        Field centre, deg (``exposure.ra_center``, ``dec_center``).
    radius_arcsec : float
        Cone radius, arcsec (``exposure.radius`` x 3600).
    epoch : float or astropy.time.Time
        MJD UTC (``exposure.mjd_mid``) or a Time.
    location : str
        MPC observatory code (``exposure.observatory_code``), default ``500``
        (geocentre).
    timeout : float, optional
        Seconds to wait for the service (astroquery ``conf.timeout``, rounded up to whole
        seconds; default astroquery's).

    Returns
    -------
    astropy.table.Table
        Same columns as :func:`read_skybot_votable`; empty when SkyBoT finds
        nothing in the field.

    Raises
    ------
    SkybotUnavailable
        When astroquery is not installed or the service cannot be reached
        (the message says so and suggests saving a VOTable for
        :func:`read_skybot_votable`).
    """
    try:
        from astroquery.imcce import Skybot
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SkybotUnavailable("astroquery is not installed (pip install 'catdb[net]')") from exc
    t = epoch if isinstance(epoch, Time) else Time(float(epoch), format="mjd", scale="utc")
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    from astroquery.imcce import conf

    try:
        # astroquery's conf.timeout is an integer number of seconds, read at each request
        with conf.set_temp("timeout", max(1, int(np.ceil(timeout)))) if timeout else nullcontext():
            res = Skybot.cone_search(centre, radius_arcsec * u.arcsec, t, location=location, cache=False)
    except RuntimeError as exc:
        if "No solar system object was found" in str(exc):
            return _normalise(Table(names=[n[1] for n in _COLUMNS.values()]), 1, "SkyBoT")
        raise SkybotUnavailable(f"SkyBoT query failed: {exc}") from exc
    except Exception as exc:  # network errors come in many classes
        raise SkybotUnavailable(
            f"cannot reach the SkyBoT service ({type(exc).__name__}: {exc}); are you offline? "
            "Query https://ssp.imcce.fr/webservices/skybot/ elsewhere and read the saved VOTable "
            "with catdb.ingest.skybot.read_skybot_votable") from exc
    if len(res) == 0:  # astroquery >= 0.4.8: an empty table and a NoResultsWarning
        return _normalise(Table(names=[n[1] for n in _COLUMNS.values()]), 1, "SkyBoT")
    return _normalise(res, 1, "SkyBoT")


def query_skybot_retry(ra, dec, radius_arcsec, epoch, location="500", *, retries=2, backoff=2.0, timeout=60.0,
                       sleep=None):
    """:func:`query_skybot` with retries and exponential backoff; a failure is returned, not raised.

    Parameters
    ----------
    ra, dec, radius_arcsec, epoch, location
        As :func:`query_skybot` (deg, arcsec, MJD UTC, MPC code).
    retries : int
        Further attempts after a failed one (0: one attempt only).
    backoff : float
        Seconds to wait before the first retry; doubled before each further retry
        (``backoff * 2**k``), the usual exponential backoff for a busy web service.
    timeout : float
        Seconds to wait for each answer (a slow service counts as a failed attempt).
    sleep : callable, optional
        Default ``time.sleep`` (tests pass a recorder).

    Returns
    -------
    table : astropy.table.Table or None
        As :func:`query_skybot`; None when every attempt failed.
    attempts : int
        Service calls made.
    message : str or None
        The last error (``'<ExceptionClass>: <text>'``), None on success.
    """
    message = None
    attempts = 0
    for k in range(int(retries) + 1):  # loop over attempts
        if k:
            (sleep or time.sleep)(float(backoff) * 2 ** (k - 1))
        attempts += 1
        try:
            return query_skybot(ra, dec, radius_arcsec, epoch, location=location, timeout=timeout), attempts, None
        except Exception as exc:  # noqa: BLE001 - any failure of the service is recorded, the run goes on
            message = f"{type(exc).__name__}: {exc}"
    return None, attempts, message


def store_skybot(conn, *, exposure_id, epoch, ra, dec, radius_arcsec, observatory, table, run_id, source,
                 attempts=1, message=None):
    """Write one SkyBoT cone search into the cache (``skybot_query`` + ``skybot_object``).

    Parameters
    ----------
    conn : psycopg.Connection
        In the caller's transaction.
    exposure_id : int
    epoch : float
        Epoch of the predictions, MJD UTC.
    ra, dec : float
        Cone centre, deg.
    radius_arcsec : float
        Cone radius, arcsec.
    observatory : str
        MPC code of the query.
    table : astropy.table.Table or None
        From :func:`read_skybot_votable` / :func:`query_skybot`; None for a failed query
        (status ``failed`` with ``message``); an empty table gives status ``empty``.
    run_id : int
        ``stage_run`` that fetched (or imported) the response.
    source : str
        ``'SkyBoT service'`` or the imported file.
    attempts : int
        Service calls made (0 for an imported file).
    message : str, optional
        Error of the last attempt (failed queries).

    Returns
    -------
    int
        ``skybot_query.id``.
    """
    n = 0 if table is None else len(table)
    status = "failed" if table is None else ("ok" if n else "empty")
    qid = conn.execute(
        "INSERT INTO skybot_query (exposure_id, mjd_epoch, ra, dec, radius, observatory_code, status, n_rows, "
        "attempts, message, source, stage_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING id", (int(exposure_id), float(epoch), float(ra), float(dec), float(radius_arcsec),
                         str(observatory), status, n, int(attempts), message, str(source), int(run_id))
    ).fetchone()[0]
    if n:
        num = np.asarray(table["number"]).astype(str)
        copy_table(conn, "skybot_object", {
            "number": np.where(num == "", None, num).astype(object),
            "name": np.asarray(table["name"]).astype(str), "class": np.asarray(table["class"]).astype(str),
            **{k: np.asarray(table[c], dtype=float) for k, c in (
                ("ra", "ra"), ("dec", "dec"), ("rate_ra", "rate_ra"), ("rate_dec", "rate_dec"), ("mag_v", "V"),
                ("pos_err", "pos_err"), ("center_dist", "center_dist"), ("dist_geo", "dist_geo"),
                ("dist_helio", "dist_helio"))}},
            constants={"query_id": qid, "exposure_id": int(exposure_id), "mjd_epoch": float(epoch),
                       "stage_run_id": int(run_id)})
    return qid


def import_skybot_votable(conn, path, exposure_id, *, max_epoch_diff=1.0):
    """Load a saved SkyBoT response into the cache for one exposure (``catdb skybot import``).

    The response replaces earlier cached cones of that exposure; the ``skybot`` stage then
    uses it instead of calling the service (until ``refresh=true``).  Recorded as a
    ``stage_run`` named ``skybot-import`` (one transaction; nothing written on error).

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or os.PathLike
        SkyBoT cone-search VOTable (``-mime=votable``), e.g. saved from
        https://ssp.imcce.fr/webservices/skybot/ or astroquery ``get_raw_response=True``.
    exposure_id : int
        Exposure the cone belongs to.
    max_epoch_diff : float
        Largest allowed difference between the response's epoch and the exposure's
        ``mjd_mid``, hours (the stage propagates the predictions linearly over that gap).

    Returns
    -------
    dict
        ``run_id``, ``query_id``, ``status``, ``n_rows``, ``epoch_diff_h`` and ``observatory``,
        ``exposure_observatory`` (they may differ: a geocentric ``500`` response for a
        topocentric exposure is off by the parallax, up to 8.8"/distance[AU]).

    Raises
    ------
    InputError
        Unreadable file, no epoch or cone in it, no such exposure, epoch too far from the
        exposure's mid-time, or the exposure centre outside the response's cone.
    """
    path = Path(path)
    table = read_skybot_votable(path)
    for k in ("epoch", "ra", "dec", "radius"):
        if k not in table.meta:
            raise InputError(f"SkyBoT VOTable has no {k} parameter (expected a SkyBoT cone-search response)",
                             path=path, keyword=k)
    epoch = epoch_to_mjd(table.meta["epoch"], path)
    row = conn.execute("SELECT mjd_mid, ra_center, dec_center, observatory_code FROM exposure WHERE id = %s",
                       (int(exposure_id),)).fetchone()
    if row is None:
        raise InputError(f"no exposure {exposure_id} in the database", keyword="exposure")
    mjd, ra_c, dec_c, code = row
    if mjd is None:
        raise InputError(f"exposure {exposure_id} has no mjd_mid: cannot check the epoch", keyword="mjd_mid")
    dt_h = (epoch - mjd) * 24.0
    if abs(dt_h) > max_epoch_diff:
        raise InputError(f"SkyBoT epoch {table.meta['epoch']} (MJD {epoch:.5f}) is {dt_h:+.2f} h from the mid-time "
                         f"of exposure {exposure_id} (MJD {mjd:.5f}); at most {max_epoch_diff} h allowed: save a "
                         "response for the exposure's epoch", path=path, keyword="epoch")
    if ra_c is not None and dec_c is not None:
        sep = SkyCoord(ra_c * u.deg, dec_c * u.deg).separation(
            SkyCoord(table.meta["ra"] * u.deg, table.meta["dec"] * u.deg)).to_value(u.arcsec)
        if sep > table.meta["radius"]:
            raise InputError(f"the cone of the response (RA {table.meta['ra']:.4f} Dec {table.meta['dec']:+.4f}, "
                             f"{table.meta['radius']:.0f}\") does not contain the centre of exposure {exposure_id} "
                             f"(RA {ra_c:.4f} Dec {dec_c:+.4f}, {sep:.0f}\" away)", path=path, keyword="RA")
    observer = str(table.meta.get("observer") or "500")
    run_id = start_run(conn, "skybot-import", {"path": str(path), "exposure_id": int(exposure_id),
                                               "max_epoch_diff": max_epoch_diff})
    try:
        with conn.transaction():
            deleted = conn.execute("DELETE FROM skybot_query WHERE exposure_id = %s", (int(exposure_id),)).rowcount
            qid = store_skybot(conn, exposure_id=exposure_id, epoch=epoch, ra=table.meta["ra"], dec=table.meta["dec"],
                               radius_arcsec=table.meta["radius"], observatory=observer, table=table, run_id=run_id,
                               source=str(path), attempts=0)
            counts = {"skybot_query": 1, "skybot_object": len(table), "replaced_queries": deleted}
            finish_run(conn, run_id, inputs=[int(exposure_id)], counts=counts)
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return {"run_id": run_id, "query_id": qid, "status": "ok" if len(table) else "empty", "n_rows": len(table),
            "epoch_diff_h": dt_h, "observatory": observer, "exposure_observatory": code}


def match_skybot(track_ra, track_dec, skybot, radius_arcsec=10.0, track_rate_ra=None,
                 track_rate_dec=None, max_rate_diff=None):
    """Identify tracks with known objects (nearest SkyBoT object on the sky).

    Parameters
    ----------
    track_ra, track_dec : array_like, shape (K,)
        Track positions at the SkyBoT epoch, deg.
    skybot : astropy.table.Table
        From :func:`read_skybot_votable` or :func:`query_skybot`.
    radius_arcsec : float
        Maximum separation (ssos ``CROSSMATCH_RADIUS``, default 10").  Add the
        SkyBoT ``pos_err`` if the ephemerides are poor.
    track_rate_ra, track_rate_dec : array_like, shape (K,), optional
        Track rates ("/h); with ``max_rate_diff`` a match also needs rates
        within that difference.

    Returns
    -------
    astropy.table.Table
        One row per track: ``skybot_index`` (-1 if none), ``number``,
        ``name``, ``class``, ``V``, ``sep_arcsec``, ``rate_diff`` ("/h, NaN
        without rates).

    Raises
    ------
    InputError
        If ``skybot`` lacks ``ra``/``dec``.
    """
    for c in ("ra", "dec", "name", "number"):
        if c not in skybot.colnames:
            raise InputError(f"skybot table needs a {c!r} column", keyword=c)
    tra = np.atleast_1d(np.asarray(track_ra, dtype=float))
    tdec = np.atleast_1d(np.asarray(track_dec, dtype=float))
    k = tra.size
    idx = np.full(k, -1, dtype=np.int64)
    sep = np.full(k, np.nan)
    rdiff = np.full(k, np.nan)
    if len(skybot) and k:
        cat = SkyCoord(np.asarray(skybot["ra"], float) * u.deg, np.asarray(skybot["dec"], float) * u.deg)
        j, s2d, _ = SkyCoord(tra * u.deg, tdec * u.deg).match_to_catalog_sky(cat)
        s = s2d.to_value(u.arcsec)
        ok = s <= radius_arcsec
        if track_rate_ra is not None and track_rate_dec is not None:
            rdiff = np.hypot(np.asarray(track_rate_ra, float) - np.asarray(skybot["rate_ra"])[j],
                             np.asarray(track_rate_dec, float) - np.asarray(skybot["rate_dec"])[j])
            if max_rate_diff is not None:
                ok &= rdiff <= max_rate_diff
        idx[ok] = j[ok]
        sep[ok] = s[ok]
        rdiff = np.where(ok, rdiff, np.nan)
    has = idx >= 0

    def pick(col, fill):
        vals = np.asarray(skybot[col]) if len(skybot) else np.array([fill])
        return np.where(has, vals[np.maximum(idx, 0)] if len(skybot) else fill, fill)

    return Table(dict(skybot_index=idx, number=pick("number", "").astype(str),
                      name=pick("name", "").astype(str), **{"class": pick("class", "").astype(str)},
                      V=pick("V", np.nan).astype(float), sep_arcsec=sep, rate_diff=rdiff))

