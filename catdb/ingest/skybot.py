"""Known Solar System objects in a field from IMCCE's SkyBoT cone search.

SkyBoT (Berthier et al. 2006, ASP Conf. Ser. 351, 367;
https://ssp.imcce.fr/webservices/skybot/) returns the known small bodies in a
field of view at an epoch.  :func:`read_skybot_votable` reads a saved
response, :func:`query_skybot` asks the service through astroquery's
``Skybot.cone_search`` (network), and :func:`match_skybot` identifies mover
tracks with the known objects.

Wiring (database stage ``skybot``): for every field/night with accepted
tracks, call :func:`query_skybot` at the tracks' ``mjd_ref`` with the
exposure's ``observatory_code`` (or store the VOTable and use
:func:`read_skybot_votable`), then :func:`match_skybot` on the tracks'
``ra``, ``dec``, ``rate_ra``, ``rate_dec``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table
from astropy.time import Time

from catdb.errors import CatdbError, InputError

__all__ = ["read_skybot_votable", "query_skybot", "match_skybot", "SkybotUnavailable"]


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
            vals = [str(v).strip() for v in np.asarray(col)]
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
    from astropy.io.votable import parse

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
    for res in vot.resources:
        for p in res.params:
            if p.ID == "epoch" or p.name == "Epoch":
                out.meta["epoch"] = str(p.value)
    return out


def query_skybot(ra, dec, radius_arcsec, epoch, location="500"):
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
    try:
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
    return _normalise(res, 1, "SkyBoT")


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

