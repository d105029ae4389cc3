"""Ephemerides of a named target from JPL Horizons: identifier, client, parser and cache.

JPL Horizons (Giorgini et al. 1996, BAAS 28, 1158; https://ssd.jpl.nasa.gov/horizons/, API
manual https://ssd-api.jpl.nasa.gov/doc/horizons.html) predicts where a Solar System body is
seen from an observatory at given times.  Photometry Pipeline's ``pp_distill`` finds the
observer's target this way (Mommert 2017, A&C 18, 47, section 4.6); catdb does the same:

* :func:`horizons_target` turns an ``OBJECT`` header value (``'2713 Luxembourg'``,
  ``'(5945) Roachapproach'``, ``'2019 AB'``, ``'C/2020 F3'``, ``'29P'``) into a Horizons
  identifier (the number first, as pp_distill does);
* :func:`query_horizons` asks Horizons through astroquery's ``jplhorizons`` for the observer
  table (quantities :data:`QUANTITIES`) at a list of epochs (``TLIST``) and parses the text
  answer with :func:`parse_horizons`, the same parser that reads a saved response
  (:func:`read_horizons`) -- one parser for both, so a recorded answer is tested exactly as a
  live one is read;
* :func:`query_horizons_retry` retries a failed call with exponential backoff and returns the
  failure instead of raising it (an offline run goes on);
* :func:`store_ephemeris` writes one row per (target, exposure) into the cache table
  ``ephemeris`` (COPY), :func:`import_horizons` loads a saved response into it
  (``catdb ephemeris import``).

Columns of the observer table used (Horizons manual, "Observer Table Quantities"): 1
astrometric RA & Dec (ICRF), 3 rates (dRA*cosD, d(DEC)/dt, arcsec/h), 9 visual magnitude
(``APmag``; comets ``T-mag``), 19 heliocentric range ``r``, 20 observer range ``delta``
(au), 24 phase angle ``S-T-O`` (deg) and 36 the 3-sigma uncertainties ``RA_3sigma``,
``DEC_3sigma`` (arcsec).
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Table
from psycopg import sql

from catdb.errors import CatdbError, InputError

from ..db.copy import copy_table
from ..db.provenance import fail_run, finish_run, start_run

__all__ = [
    "GEOCENTRE", "PARALLAX_1AU", "QUANTITIES", "SERVICE", "HorizonsAnswerError", "HorizonsTarget",
    "HorizonsUnavailable", "horizons_target", "import_horizons", "parse_horizons", "query_horizons",
    "query_horizons_retry", "read_horizons", "store_ephemeris",
]

#: ``ephemeris.source`` of rows the stage fetched itself
SERVICE = "JPL Horizons"
#: Horizons observer-table quantities asked (see the module docstring)
QUANTITIES = "1,3,9,19,20,24,36"
#: MPC code of the geocentre
GEOCENTRE = "500"
#: equatorial horizontal parallax of a body 1 au away, arcsec (asin(6378.137 km / 1 au)): a
#: geocentric prediction is off by up to PARALLAX_1AU / delta[au] for a topocentric observer
PARALLAX_1AU = 8.794


class HorizonsUnavailable(CatdbError):
    """JPL Horizons cannot be reached (offline, service down or slow, astroquery missing)."""


class HorizonsAnswerError(InputError):
    """Horizons answered, but with no ephemeris (unknown or ambiguous target, bad input, no data)."""


@dataclass(frozen=True)
class HorizonsTarget:
    """A Horizons identifier: ``id`` and ``id_type`` as astroquery takes them.

    Attributes
    ----------
    id : str
        ``'5945'``, ``'2019 AB'``, ``'C/2020 F3'``, ``'29P'``, ``'Ceres'``.
    id_type : str
        astroquery ``id_type``: ``smallbody`` (asteroids, numbered or not), ``designation``
        (comets), or what the user gave.
    closest_apparition : bool
        Ask for the apparition closest to the epochs (periodic comets: Horizons ``CAP``).
    label : str
        Human-readable name (``'5945 Roachapproach'``).
    """

    id: str
    id_type: str
    closest_apparition: bool
    label: str


_COMET = re.compile(r"^([PCDXI])/(\d{4})\s*([A-Z]{1,2})(\d{0,4})(?:-[A-Z])?(?:\s*\(.*\))?$")
_PERIODIC = re.compile(r"^(\d{1,4})([PDI])(?:-[A-Z]{1,2})?(?:\s*/\s*.*)?$")
_PROVISIONAL = re.compile(r"^\(?(\d{4})\s*([A-Z]{2})(\d{0,4})\)?$")
_SURVEY = re.compile(r"^\(?(\d{4})\s*(P-L|T-[123])\)?$")
_NUMBERED = re.compile(r"^(?:\(\s*(\d{1,7})\s*\)|(\d{1,7})(?=$|[\s_\-]))[\s_\-]*(.*)$")
_NAME = re.compile(r"^[A-Z][A-Za-z'\-]*[a-z][A-Za-z'\-]*$")


def horizons_target(text, id_type: str | None = None) -> HorizonsTarget | None:
    """Horizons identifier of a target named in an ``OBJECT`` header (or by ``--target``).

    Parameters
    ----------
    text : str
        ``'2713 Luxembourg'``, ``'(5945) Roachapproach'``, ``'5945'``, ``'2019 AB'``,
        ``'2019AB12'``, ``'2040 P-L'``, ``'C/2020 F3'``, ``'C/2020 F3 (NEOWISE)'``, ``'29P'``,
        ``'1P/Halley'``, ``'Ceres'``.  Horizons' own "Target body name"
        (``'5945 Roachapproach (1984 CA)'``, ``'(1935 UZ)'``) parses too.
    id_type : str, optional
        Force the astroquery ``id_type`` (e.g. ``majorbody`` for ``'499'``, Mars); the
        identifier is then ``text`` as given when it is not one of the forms above.

    Returns
    -------
    HorizonsTarget or None
        None when ``text`` names no small body in a form above (``'M31'``, ``'NGC 2264'``,
        ``'flat'``, empty): the stage does not ask Horizons about it.  A number comes first
        (``'2713 Luxembourg'`` -> ``'2713'``, record number: unambiguous); periodic comets get
        ``closest_apparition``.
    """
    s = " ".join(str(text or "").replace("_", " ").split())
    if not s:
        return None
    m = _COMET.match(s)
    if m:
        ident = f"{m[1]}/{m[2]} {m[3]}{m[4]}"
        return HorizonsTarget(ident, id_type or "designation", m[1] in "PD", s)
    m = _PERIODIC.match(s)
    if m:
        return HorizonsTarget(f"{int(m[1])}{m[2]}", id_type or "designation", True, s)
    m = _PROVISIONAL.match(s) or _SURVEY.match(s)
    if m:
        ident = f"{m[1]} {m[2]}{m[3] if len(m.groups()) > 2 else ''}"
        return HorizonsTarget(ident, id_type or "smallbody", False, ident)
    m = _NUMBERED.match(s)
    if m:
        number = str(int(m[1] or m[2]))
        name = re.sub(r"\s*\([^)]*\)\s*$", "", m[3]).strip()
        return HorizonsTarget(number, id_type or "smallbody", False, f"{number} {name}".strip())
    if _NAME.match(s):
        return HorizonsTarget(s, id_type or "smallbody", False, s)
    if id_type:
        return HorizonsTarget(s, id_type, False, s)
    return None


# -- parsing ------------------------------------------------------------------------------
#: our column -> Horizons CSV labels (first present wins); None-able except jd, ra, dec
_LABELS = {
    "jd": ("Date_________JDUT",),
    "ra": ("R.A._(ICRF)", "R.A.___(ICRF)", "R.A._(ICRF/J2000.0)", "R.A._(J2000.0)"),
    "dec": ("DEC_(ICRF)", "DEC____(ICRF)", "DEC_(ICRF/J2000.0)", "DEC_(J2000.0)"),
    "rate_ra": ("dRA*cosD",),
    "rate_dec": ("d(DEC)/dt",),
    "mag": ("APmag", "T-mag"),
    "r": ("r",),
    "delta": ("delta",),
    "alpha": ("S-T-O",),
    "ra_3sigma": ("RA_3sigma",),
    "dec_3sigma": ("DEC_3sigma",),
}
_REQUIRED = {"jd": "ask with CAL_FORMAT=BOTH (or JD)", "ra": "ask for quantity 1 (astrometric RA & DEC)",
             "dec": "ask for quantity 1 (astrometric RA & DEC)"}
#: lines of a Horizons answer that explain why there is no ephemeris
_ERROR_CLUES = ("No matches found", "Matching small-bodies", "Multiple major-bodies", "No ephemeris",
                "Cannot ", "INPUT ERROR", "ERROR", "Unknown", "error", "No site matches", "too many")


def _header_value(lines, key):
    for line in lines:
        if line.startswith(key):
            v = line[len(key):].lstrip(" :")
            return re.split(r"\s+\{|\s{3,}", v.strip())[0].strip()
    return None


def parse_horizons(text: str, source="JPL Horizons") -> Table:
    """Parse a Horizons observer-table answer (``format=text``, ``CSV_FORMAT=YES``).

    Parameters
    ----------
    text : str
        The whole answer, as the API returns it (astroquery ``ephemerides_async(...).text``)
        or as saved to a file.
    source : str or path
        Named in errors.

    Returns
    -------
    astropy.table.Table
        One row per epoch: ``jd`` (JD UTC), ``mjd`` (MJD UTC), ``ra``, ``dec`` (deg,
        astrometric ICRF), ``rate_ra`` (dRA/dt cos Dec), ``rate_dec`` (arcsec/h), ``mag``
        (APmag or T-mag), ``delta``, ``r`` (au), ``alpha`` (deg), ``ra_3sigma``,
        ``dec_3sigma`` (arcsec); NaN where Horizons printed ``n.a.`` or the quantity was not
        asked.  ``meta``: ``target_name``, ``center_site`` (``'GEOCENTRIC'`` or the site's
        name), ``center_geodetic`` (E-lon deg, lat deg, height km) when printed.

    Raises
    ------
    HorizonsAnswerError
        No ephemeris in the answer (unknown or ambiguous target, input error): the message
        quotes Horizons' explanation.
    InputError
        An ephemeris table whose times are not UT, that lacks the JD, the astrometric
        RA/Dec, or whose angles are not decimal degrees (``ANG_FORMAT=DEG``), or a row with
        another number of fields than the header.
    """
    lines = str(text).splitlines()
    soe = next((i for i, line in enumerate(lines) if line.strip() == "$$SOE"), None)
    eoe = next((i for i, line in enumerate(lines) if line.strip() == "$$EOE"), None)
    if soe is None or eoe is None or eoe < soe:
        clues = [ln.strip() for ln in lines if ln.strip() and any(c in ln for c in _ERROR_CLUES)
                 and not ln.startswith("API ")]
        body = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("API ")]
        said = " | ".join((body if len(body) <= 8 else clues or body)[:8])[:600]
        raise HorizonsAnswerError(f"Horizons returned no ephemeris table ($$SOE...$$EOE): {said or 'empty answer'}",
                                  path=source)
    head = next((i for i in range(soe - 1, -1, -1) if "Date__(" in lines[i]), None)
    if head is None:
        raise InputError("no column header line (Date__(UT)__...) before $$SOE: not an observer table",
                         path=source, keyword="Date__(UT)__HR:MN")
    names = [h.strip() for h in lines[head].split(",")]
    if "(UT)" not in names[0]:
        raise InputError(f"times are {names[0]!r}, not UT: ask with the default TIME_TYPE (UT)", path=source,
                         keyword=names[0])
    rows = [ln.split(",") for ln in lines[soe + 1:eoe] if ln.strip() and "Cut-off" not in ln]
    bad = [k for k, r in enumerate(rows) if len(r) != len(names)]
    if bad:
        raise InputError(f"ephemeris row {bad[0] + 1} has {len(rows[bad[0]])} fields, the header {len(names)}",
                         path=source, row=bad[0] + 1)
    cells = np.array(rows, dtype=object).reshape(len(rows), len(names))
    out = Table()
    for ours, labels in _LABELS.items():
        j = next((names.index(lab) for lab in labels if lab in names), None)
        if j is None:
            if ours in _REQUIRED:
                raise InputError(f"no column {labels[0]!r}: {_REQUIRED[ours]}", path=source, keyword=labels[0])
            out[ours] = np.full(len(rows), np.nan)
            continue
        raw = np.char.strip(cells[:, j].astype(str)) if len(rows) else np.array([], dtype=str)
        na = np.isin(raw, ("n.a.", ".n.a.", ""))
        try:
            vals = np.where(na, "nan", raw).astype(float)
        except ValueError:
            hint = " (ask with ANG_FORMAT=DEG)" if ours in ("ra", "dec") else ""
            raise InputError(f"column {names[j]!r} is not numeric{hint}: {raw[:2].tolist()}", path=source,
                             keyword=names[j]) from None
        out[ours] = vals
    out.add_column(out["jd"] - 2400000.5, name="mjd", index=1)
    for c, unit in (("jd", "d"), ("mjd", "d"), ("ra", "deg"), ("dec", "deg"), ("rate_ra", "arcsec/h"),
                    ("rate_dec", "arcsec/h"), ("mag", "mag"), ("delta", "AU"), ("r", "AU"), ("alpha", "deg"),
                    ("ra_3sigma", "arcsec"), ("dec_3sigma", "arcsec")):
        out[c].unit = unit
    out.meta["target_name"] = _header_value(lines, "Target body name")
    out.meta["center_site"] = _header_value(lines, "Center-site name")
    geo = _header_value(lines, "Center geodetic")
    if geo:
        try:
            out.meta["center_geodetic"] = tuple(float(v) for v in geo.split(",")[:3])
        except ValueError:
            pass
    return out


def read_horizons(path) -> Table:
    """Read a saved Horizons observer-table answer (text).

    Parameters
    ----------
    path : str or os.PathLike
        The API's ``format=text`` answer (e.g. ``curl 'https://ssd.jpl.nasa.gov/api/horizons.api?
        format=text&EPHEM_TYPE=OBSERVER&QUANTITIES=...&CSV_FORMAT=YES&CAL_FORMAT=BOTH&ANG_FORMAT=DEG...'``,
        or astroquery ``Horizons(...).ephemerides_async().text``).

    Returns
    -------
    astropy.table.Table
        As :func:`parse_horizons`.

    Raises
    ------
    InputError
        Unreadable file, or as :func:`parse_horizons`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the Horizons answer: {exc}", path=path) from exc
    return parse_horizons(text, path)


# -- the service ------------------------------------------------------------------------
def horizons_location(location):
    """astroquery ``location`` of an observer: an MPC code -> ``'688@399'``; a site -> a dict.

    Parameters
    ----------
    location : str or tuple
        MPC code (``'688'``, ``'500'`` geocentre) or (E-longitude deg, latitude deg, height km).
    """
    if isinstance(location, str):
        return f"{location}@399"
    lon, lat, height_km = location
    return {"lon": float(lon), "lat": float(lat), "elevation": float(height_km)}


def query_horizons(target: HorizonsTarget, location, mjd, *, timeout: float = 30.0) -> Table:
    """Ephemeris of ``target`` seen from ``location`` at the epochs ``mjd`` (needs the network).

    Parameters
    ----------
    target : HorizonsTarget
    location : str or tuple
        As :func:`horizons_location`.
    mjd : array_like, shape (N,)
        Epochs, MJD UTC.  Sent as a list of JDs (``TLIST``); keep N <= ~50 per call: the request
        is a GET whose URL grows by ~20 characters per epoch and astroquery warns beyond 2000.
    timeout : float
        Seconds to wait for the answer (a slower answer counts as a failure).

    Returns
    -------
    astropy.table.Table
        As :func:`parse_horizons`.

    Raises
    ------
    HorizonsUnavailable
        astroquery missing, no network, HTTP error or timeout.
    HorizonsAnswerError
        Horizons answered without an ephemeris (unknown target...).
    """
    try:
        from astroquery.jplhorizons import Horizons
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise HorizonsUnavailable("astroquery is not installed (pip install 'catdb[net]')") from exc
    jds = [f"{m + 2400000.5:.9f}" for m in np.atleast_1d(np.asarray(mjd, dtype=float))]
    obj = Horizons(id=target.id, id_type=target.id_type, location=horizons_location(location), epochs=jds)
    obj.TIMEOUT = float(timeout)
    try:
        resp = obj.ephemerides_async(quantities=QUANTITIES, closest_apparition=target.closest_apparition,
                                     no_fragments=target.closest_apparition, extra_precision=True, cache=False)
        text = resp.text
        if resp.status_code >= 400:
            raise HorizonsUnavailable(f"JPL Horizons answered HTTP {resp.status_code}: {text.strip()[:300]}")
    except HorizonsUnavailable:
        raise
    except Exception as exc:  # network errors come in many classes
        raise HorizonsUnavailable(
            f"cannot reach JPL Horizons ({type(exc).__name__}: {str(exc)[:300]}); are you offline? Save the "
            "answer elsewhere (format=text, CSV_FORMAT=YES, CAL_FORMAT=BOTH, ANG_FORMAT=DEG) and load it with "
            "'catdb ephemeris import FILE'") from exc
    return parse_horizons(text, SERVICE)


def query_horizons_retry(target, location, mjd, *, retries=1, backoff=1.0, timeout=30.0, sleep=None):
    """:func:`query_horizons` with retries and exponential backoff; a failure is returned, not raised.

    An unreachable service is retried (``backoff``, ``2 backoff``, ... seconds apart); an
    answer without an ephemeris (:class:`HorizonsAnswerError`, e.g. an unknown target) is
    not: asking again gives the same answer.

    Returns
    -------
    table : astropy.table.Table or None
        None when every attempt failed.
    attempts : int
    message : str or None
        ``'<ExceptionClass>: <text>'`` of the last failure.
    """
    message, attempts = None, 0
    for k in range(int(retries) + 1):  # loop over attempts
        if k:
            (sleep or time.sleep)(float(backoff) * 2 ** (k - 1))
        attempts += 1
        try:
            return query_horizons(target, location, mjd, timeout=timeout), attempts, None
        except HorizonsAnswerError as exc:
            return None, attempts, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - any failure of the service is recorded, the run goes on
            message = f"{type(exc).__name__}: {exc}"
    return None, attempts, message


# -- the cache ---------------------------------------------------------------------------
_VALUES = ("ra", "dec", "rate_ra", "rate_dec", "mag", "delta", "r", "alpha", "ra_3sigma", "dec_3sigma")


def match_epochs(table: Table, mjd, max_diff_s: float = 1.0) -> np.ndarray:
    """Row of ``table`` nearest each epoch of ``mjd`` (within ``max_diff_s`` seconds), else -1.

    Parameters
    ----------
    table : astropy.table.Table
        From :func:`parse_horizons` (column ``mjd``).
    mjd : array_like, shape (N,)
    max_diff_s : float

    Returns
    -------
    numpy.ndarray of int, shape (N,)
    """
    want = np.atleast_1d(np.asarray(mjd, dtype=float))
    have = np.asarray(table["mjd"], dtype=float)
    if have.size == 0:
        return np.full(want.size, -1)
    order = np.argsort(have)
    pos = np.clip(np.searchsorted(have[order], want), 1, max(have.size - 1, 1))
    cand = np.stack([order[pos - 1], order[np.minimum(pos, have.size - 1)]])
    best = cand[np.argmin(np.abs(have[cand] - want), axis=0), np.arange(want.size)]
    return np.where(np.abs(have[best] - want) * 86400 <= max_diff_s, best, -1)


def store_ephemeris(conn, *, target: HorizonsTarget, exposure_ids, mjd_epoch, location: str, location_kind: str,
                    table: Table | None, rows=None, run_id: int, source: str = SERVICE, attempts: int = 1,
                    message: str | None = None) -> dict:
    """Write ephemeris rows (one per exposure) into the cache table ``ephemeris`` (COPY).

    Parameters
    ----------
    conn : psycopg.Connection
        In the caller's transaction.
    target : HorizonsTarget
    exposure_ids : array_like of int, shape (N,)
    mjd_epoch : array_like of float, shape (N,)
        Epoch of each row, MJD UTC (the exposure's mid-time when the stage asked).
    location, location_kind : str
        ``ephemeris.location`` / ``location_kind`` (``code``, ``site``, ``geocentre``).
    table : astropy.table.Table or None
        From :func:`parse_horizons`; None when the query failed (every row ``failed`` with
        ``message``).
    rows : array_like of int, shape (N,), optional
        Row of ``table`` for each exposure (-1: Horizons returned no row for that epoch,
        stored ``failed``); default :func:`match_epochs` on ``mjd_epoch``.
    run_id : int
    source : str
        ``'JPL Horizons'`` or the imported file.
    attempts : int
    message : str, optional

    Returns
    -------
    dict
        ``ok`` and ``failed`` row counts.
    """
    eids = np.atleast_1d(np.asarray(exposure_ids, dtype=np.int64))
    mjd = np.atleast_1d(np.asarray(mjd_epoch, dtype=float))
    n = eids.size
    if n == 0:
        return {"ok": 0, "failed": 0}
    if table is None:
        idx = np.full(n, -1)
    else:
        idx = match_epochs(table, mjd) if rows is None else np.asarray(rows, dtype=np.int64)
    ok = idx >= 0
    cols = {}
    for c in _VALUES:
        v = np.full(n, np.nan)
        if table is not None and ok.any():
            v[ok] = np.asarray(table[c], dtype=float)[idx[ok]]
        cols[c] = v
    ok &= np.isfinite(cols["ra"]) & np.isfinite(cols["dec"])
    msg = np.where(ok, None, message or "Horizons returned no row (or no position) for this epoch").astype(object)
    name = None if table is None else table.meta.get("target_name")
    copy_table(conn, "ephemeris", {
        "exposure_id": eids, "mjd_epoch": mjd, "status": np.where(ok, "ok", "failed"), "message": msg,
        "target_name": np.where(ok, name, None).astype(object), **cols},
        constants={"target": target.id, "id_type": target.id_type, "location": str(location),
                   "location_kind": location_kind, "attempts": int(attempts), "source": str(source),
                   "stage_run_id": int(run_id)})
    return {"ok": int(ok.sum()), "failed": int((~ok).sum())}


def import_horizons(conn, path, *, target: str | None = None, id_type: str | None = None, where: str | None = None,
                    max_epoch_diff: float = 0.25) -> dict:
    """Load a saved Horizons answer into the cache for the exposures it covers (``catdb ephemeris import``).

    Each science exposure (``where``: an extra SQL condition on ``exposure e``) whose
    ``mjd_mid`` is within ``max_epoch_diff`` hours of a row of the answer gets that row (the
    nearest); the ``ephemeris`` stage propagates it to mid-exposure with its rates.  Earlier
    cached rows of the same target for those exposures are replaced.  Recorded as a
    ``stage_run`` named ``ephemeris-import`` (one transaction; nothing written on error).

    Parameters
    ----------
    conn : psycopg.Connection
    path : str or os.PathLike
        Horizons observer-table answer (see :func:`read_horizons`).
    target : str, optional
        The target (as ``--target`` of the stage); default the answer's "Target body name"
        (``'5945 Roachapproach (1984 CA)'`` -> ``'5945'``).
    id_type : str, optional
        As :func:`horizons_target`.
    where : str, optional
        SQL condition on the exposures (alias ``e``), e.g. ``"e.night = '2019-03-25'"``.
    max_epoch_diff : float
        Largest gap between an exposure's mid-time and the nearest row, hours.

    Returns
    -------
    dict
        ``run_id``, ``target``, ``target_name``, ``n_rows`` (in the file), ``n_exposures``
        (cached), ``location`` (of the answer), ``exposure_observatories`` (MPC codes of those
        exposures: a geocentric answer for a topocentric exposure is off by the parallax).

    Raises
    ------
    InputError
        Unreadable answer, no target, or no exposure within ``max_epoch_diff`` of its rows.
    """
    path = Path(path)
    table = read_horizons(path)
    tgt = horizons_target(target or table.meta.get("target_name") or "", id_type)
    if tgt is None:
        raise InputError(f"cannot tell the target from the answer's 'Target body name' "
                         f"({table.meta.get('target_name')!r}): give --target", path=path, keyword="Target body name")
    site = (table.meta.get("center_site") or "").upper()
    geo = table.meta.get("center_geodetic")
    if site.startswith("GEOCENTRIC"):
        location, kind = GEOCENTRE, "geocentre"
    elif geo:
        location, kind = f"{geo[0]:.6f},{geo[1]:.6f},{geo[2]:.4f}", "site"
    else:
        raise InputError("the answer names no observer ('Center-site name' / 'Center geodetic')", path=path,
                         keyword="Center-site name")
    q = sql.SQL("SELECT e.id, e.mjd_mid, e.observatory_code FROM exposure e WHERE e.image_type = 'science' "
                "AND e.mjd_mid IS NOT NULL")
    if where:
        q = q + sql.SQL(" AND ({w})").format(w=sql.SQL(where))
    ex = conn.execute(q + sql.SQL(" ORDER BY e.mjd_mid"), prepare=True).fetchall()
    conn.commit()
    eid = np.array([r[0] for r in ex], dtype=np.int64)
    mjd = np.array([r[1] for r in ex], dtype=float)
    idx = match_epochs(table, mjd, max_diff_s=max_epoch_diff * 3600.0)
    use = idx >= 0
    if not use.any():
        span = (f"JD {np.nanmin(table['jd']):.5f}..{np.nanmax(table['jd']):.5f}" if len(table) else "no rows")
        raise InputError(f"no science exposure within {max_epoch_diff} h of the answer's epochs ({span})",
                         path=path, keyword="epoch")
    epochs = np.asarray(table["mjd"], dtype=float)[idx[use]]
    run_id = start_run(conn, "ephemeris-import", {"path": str(path), "target": tgt.id, "id_type": tgt.id_type,
                                                  "where": where, "max_epoch_diff": max_epoch_diff})
    try:
        with conn.transaction():
            deleted = conn.execute("DELETE FROM ephemeris WHERE target = %s AND exposure_id = ANY(%s)",
                                   (tgt.id, eid[use].tolist())).rowcount
            res = store_ephemeris(conn, target=tgt, exposure_ids=eid[use], mjd_epoch=epochs, location=location,
                                  location_kind=kind, table=table, rows=idx[use], run_id=run_id, source=str(path),
                                  attempts=0)
            counts = {"ephemeris": int(use.sum()), **res, "replaced": deleted, "file_rows": len(table)}
            finish_run(conn, run_id, inputs=eid[use].tolist(), counts=counts)
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    codes = sorted({r[2] for r, u in zip(ex, use) if u and r[2]})
    return {"run_id": run_id, "target": tgt.id, "target_name": table.meta.get("target_name"), "n_rows": len(table),
            "n_exposures": int(use.sum()), "ok": res["ok"], "location": location, "location_kind": kind,
            "exposure_observatories": codes}
