"""Fetch reference catalogues for the footprints of exposures, with a region cache.

``catdb refcat fetch --catalog gaia-dr3 --where ...``:

1. footprint circles of the selected exposures (``exposure.ra_center``,
   ``dec_center``, ``radius`` + a margin), overlapping circles merged into one
   enclosing circle (:func:`merge_circles`);
2. circles inside a region of the same catalogue already recorded in
   ``refcat_region`` (with a magnitude limit at least as deep) are skipped;
3. every other circle is queried through astroquery's VizieR client
   (:func:`query_vizier`, the ONE function that touches the network; tests
   monkeypatch it), with retries and exponential backoff on connection errors
   and timeouts;
4. per circle, in ONE transaction: the rows not already stored from an earlier
   region are COPYed into ``refcat_source`` and the circle is recorded in
   ``refcat_region``.  Everything points to one ``stage_run`` named
   ``refcat-fetch``.

Catalogue names, VizieR ids and column profiles: :data:`CATALOGS` and
:data:`catdb.ingest.refcat.VIZIER_PROFILES`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table
from psycopg import sql
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ..algorithms.sphere import chord, radec, separation_deg, unit_vectors
from ..db.copy import copy_table, json_text
from ..db.provenance import exposure_set_condition, fail_run, finish_run, start_run
from ..errors import CatdbError, InputError
from .refcat import VIZIER_PROFILES, refcat_from_table

log = logging.getLogger("catdb.refcat")

__all__ = ["CATALOGS", "FetchResult", "OfflineError", "covered", "fetch_refcat", "merge_circles", "query_vizier"]


@dataclass(frozen=True)
class CatalogSpec:
    """A fetchable catalogue: VizieR table id, column profile, magnitude for ``--mag-limit``."""

    vizier_id: str
    profile: str
    mag_column: str
    #: columns asked for (VizieR ``-out``); '*' adds the default columns of the table
    columns: tuple


#: ``--catalog`` names -> VizieR tables (ids from the VizieR catalogue pages; column names from their ReadMe).
CATALOGS = {
    "gaia-dr3": CatalogSpec("I/355/gaiadr3", "GAIA", "Gmag",
                            ("Source", "RA_ICRS", "DE_ICRS", "e_RA_ICRS", "e_DE_ICRS", "Plx", "pmRA", "pmDE",
                             "Gmag", "e_Gmag", "BPmag", "e_BPmag", "RPmag", "e_RPmag")),
    "gaia-dr2": CatalogSpec("I/345/gaia2", "GAIA", "Gmag",
                            ("Source", "RA_ICRS", "DE_ICRS", "e_RA_ICRS", "e_DE_ICRS", "Plx", "pmRA", "pmDE",
                             "Gmag", "e_Gmag", "BPmag", "e_BPmag", "RPmag", "e_RPmag", "Epoch")),
    "ps1": CatalogSpec("II/349/ps1", "PS1", "rmag",
                       ("objID", "RAJ2000", "DEJ2000", "e_RAJ2000", "e_DEJ2000", "Epoch",
                        *[f"{p}{b}mag" for b in "grizy" for p in ("", "e_")])),
    "apass": CatalogSpec("II/336/apass9", "APASS", "Vmag",
                         ("recno", "RAJ2000", "DEJ2000", "e_RAJ2000", "e_DEJ2000", "Bmag", "e_Bmag", "Vmag",
                          "e_Vmag", "g'mag", "e_g'mag", "r'mag", "e_r'mag", "i'mag", "e_i'mag")),
    "sdss": CatalogSpec("V/147/sdss12", "SDSS", "rmag",
                        ("objID", "SDSS12", "RA_ICRS", "DE_ICRS", "e_RA_ICRS", "e_DE_ICRS", "ObsDate",
                         *[f"{p}{b}mag" for b in "ugriz" for p in ("", "e_")])),
    "2mass": CatalogSpec("II/246/out", "2MASS", "Jmag",
                         ("2MASS", "RAJ2000", "DEJ2000", "errMaj", "JD", "Jmag", "e_Jmag", "Hmag", "e_Hmag",
                          "Kmag", "e_Kmag")),
    "usno-b1": CatalogSpec("I/284/out", "USNO-B1", "R2mag",
                           ("USNO-B1.0", "RAJ2000", "DEJ2000", "e_RAJ2000", "e_DEJ2000", "pmRA", "pmDE",
                            "B1mag", "R1mag", "B2mag", "R2mag", "Imag")),
    "ucac4": CatalogSpec("I/322A/out", "UCAC4", "f.mag",
                         ("UCAC4", "RAJ2000", "DEJ2000", "e_RAJ2000", "e_DEJ2000", "pmRA", "pmDE", "f.mag",
                          "Jmag", "e_Jmag", "Hmag", "e_Hmag", "Kmag", "e_Kmag", "Bmag", "e_Bmag", "Vmag",
                          "e_Vmag", "gmag", "e_gmag", "rmag", "e_rmag", "imag", "e_imag")),
    "tycho2": CatalogSpec("I/259/tyc2", "TYCHO2", "VTmag",
                          ("TYC1", "TYC2", "TYC3", "RAmdeg", "DEmdeg", "e_RAmdeg", "e_DEmdeg", "pmRA", "pmDE",
                           "BTmag", "e_BTmag", "VTmag", "e_VTmag")),
}


class OfflineError(CatdbError):
    """The catalogue service could not be reached after all retries."""


# --------------------------------------------------------------------------- the network
def vizier_server() -> str:
    """Host name of the VizieR mirror astroquery uses (``astroquery.vizier.conf.server``)."""
    try:
        from astroquery.vizier import conf

        return str(conf.server)
    except Exception:  # noqa: BLE001 - astroquery missing or misconfigured: say so in the message
        return "vizier.cds.unistra.fr"


def query_vizier(catalog_id: str, center: tuple[float, float], radius: float, columns, row_limit: int = -1,
                 column_filters: dict | None = None, timeout: float = 60.0):
    """One cone query to VizieR through astroquery (the only network call of catdb refcat).

    Parameters
    ----------
    catalog_id : str
        VizieR table, e.g. ``'I/355/gaiadr3'``.
    center : (float, float)
        Cone centre RA, Dec (deg, ICRS).
    radius : float
        Cone radius (deg).
    columns : sequence of str
        Columns to return (VizieR ``-out``).
    row_limit : int
        Maximum rows (-1: no limit).
    column_filters : dict, optional
        VizieR constraints, e.g. ``{'Gmag': '<19'}``.
    timeout : float
        Seconds per HTTP request.

    Returns
    -------
    astropy.table.Table
        The rows (with the units VizieR declares); an empty Table when the cone holds none.

    Raises
    ------
    OSError
        Connection errors and timeouts (``requests`` exceptions are OSError subclasses); retried
        by :func:`fetch_refcat`.
    catdb.errors.CatdbError
        astroquery is not installed (extra ``catdb[net]``).

    Notes
    -----
    astroquery documentation, "VizieR Queries (astroquery.vizier)":
    ``Vizier(columns=..., column_filters=..., row_limit=...).query_region(coord, radius=..., catalog=...)``.
    """
    try:
        from astroquery.vizier import Vizier
    except ImportError:
        raise CatdbError("catdb refcat fetch needs astroquery: pip install 'catdb[net]' (or astroquery)") from None

    v = Vizier(columns=list(columns), column_filters=column_filters or {}, row_limit=row_limit, timeout=timeout)
    res = v.query_region(SkyCoord(center[0] * u.deg, center[1] * u.deg, frame="icrs"), radius=radius * u.deg,
                         catalog=catalog_id)
    return res[0] if len(res) else Table()


#: sleep between retries (tests replace it to record the delays instead of waiting)
_sleep = time.sleep


def _query_with_retries(catalog_id, center, radius, columns, row_limit, filters, *, retries: int, backoff: float,
                        timeout: float):
    """Call :func:`query_vizier` up to ``retries + 1`` times, waiting backoff * 2**k between attempts."""
    last = None
    for attempt in range(retries + 1):
        try:
            return query_vizier(catalog_id, center, radius, columns, row_limit, column_filters=filters,
                                timeout=timeout)
        except (OSError, TimeoutError) as exc:  # ConnectionError, requests' ConnectionError/Timeout, socket errors
            last = exc
            if attempt < retries:
                delay = backoff * 2 ** attempt
                log.warning("VizieR query failed (%s: %s); retry %d/%d in %.1f s", type(exc).__name__, exc,
                            attempt + 1, retries, delay)
                _sleep(delay)
    raise OfflineError(f"cannot reach VizieR at {vizier_server()}: {type(last).__name__}: {last}") from last


# --------------------------------------------------------------------------- geometry
def merge_circles(ra, dec, radius, *, max_radius: float = 3.0):
    """Merge overlapping sky circles into enclosing circles.

    Circles that overlap (centre distance < sum of radii), directly or through a
    chain, form a group; each group is replaced by one circle centred on the
    normalised mean of its centres' unit vectors with the radius that encloses
    every member (max of distance + member radius).  A group whose enclosing
    circle would exceed ``max_radius`` keeps its circles unmerged (no huge cone
    for a long strip of exposures).

    Parameters
    ----------
    ra, dec, radius : array_like, shape (N,)
        Circle centres and radii (deg).
    max_radius : float
        Largest merged radius (deg).

    Returns
    -------
    list of (float, float, float, numpy.ndarray)
        ``(ra, dec, radius, members)`` (deg; members: indices into the input).

    Notes
    -----
    Groups are the connected components of the overlap graph (scipy.sparse.csgraph);
    candidate pairs come from a k-d tree on unit vectors (chord of the largest overlap
    distance), so the cost is O(N log N), not O(N^2).
    """
    ra, dec, radius = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (ra, dec, radius))
    n = len(ra)
    if n == 0:
        return []
    xyz = unit_vectors(ra, dec)
    pairs = cKDTree(xyz).query_pairs(chord(2 * radius.max()), output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        ok = separation_deg(ra[i], dec[i], ra[j], dec[j]) < radius[i] + radius[j]
        i, j = i[ok], j[ok]
    else:
        i = j = np.zeros(0, dtype=int)
    _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    out = []
    for lab in np.unique(labels):
        m = np.flatnonzero(labels == lab)
        c = xyz[m].sum(axis=0)
        norm = np.linalg.norm(c)
        if len(m) > 1 and norm > 1e-9:
            c /= norm
            cra, cdec = (float(v) for v in radec(c))
            r = float(np.max(separation_deg(cra, cdec, ra[m], dec[m]) + radius[m]))
            if r <= max_radius:
                out.append((cra, cdec, r, m))
                continue
        out.extend((float(ra[k]), float(dec[k]), float(radius[k]), np.array([k])) for k in m)
    return out


def covered(ra: float, dec: float, radius: float, regions, *, mag_limit: float | None = None):
    """Index of a recorded region containing the circle, or None.

    Parameters
    ----------
    ra, dec, radius : float
        Circle (deg).
    regions : sequence of (ra, dec, radius_deg, mag_limit)
        Recorded regions of the same catalogue (``mag_limit`` None: no limit).
    mag_limit : float, optional
        Limit of the new query; a region fetched with a brighter limit does not cover it.

    Returns
    -------
    int or None
        The circle is inside region k when separation(centres) + radius <= radius_k (+1 mas of
        rounding slack).
    """
    if not len(regions):
        return None
    reg = np.asarray([[r[0], r[1], r[2]] for r in regions], dtype=float)
    lim = np.asarray([np.inf if r[3] is None else r[3] for r in regions], dtype=float)
    deep = lim >= (np.inf if mag_limit is None else mag_limit)
    inside = separation_deg(ra, dec, reg[:, 0], reg[:, 1]) + radius <= reg[:, 2] + 1e-3 / 3600 / 1000
    k = np.flatnonzero(inside & deep)
    return int(k[0]) if len(k) else None


def _already_stored(ra, dec, mag, regions):
    """Rows (N,) inside an earlier region whose magnitude limit admitted them: already in refcat_source."""
    stored = np.zeros(len(ra), dtype=bool)
    for r_ra, r_dec, r_rad, r_lim in regions:  # loop over regions (few), vectorised over rows
        inside = separation_deg(r_ra, r_dec, ra, dec) < r_rad
        if r_lim is not None:
            inside &= mag <= r_lim
        stored |= inside
    return stored


# --------------------------------------------------------------------------- the command
@dataclass
class FetchResult:
    """What :func:`fetch_refcat` did."""

    run_id: int
    catalog: str
    circles: list = field(default_factory=list)  # (ra, dec, radius, status, n_rows, n_new)
    n_written: int = 0

    @property
    def n_fetched(self) -> int:
        return sum(c[3] == "fetched" for c in self.circles)

    @property
    def n_cached(self) -> int:
        return sum(c[3] == "cached" for c in self.circles)


def _footprints(conn, where, exposures):
    cond = sql.SQL("e.image_type = 'science'")
    if where:
        cond = cond + sql.SQL(" AND ({})").format(sql.SQL(where))
    if exposures:
        cond = cond + sql.SQL(" AND ") + sql.SQL(exposure_set_condition(conn, exposures))
    q = sql.SQL("SELECT e.id, e.ra_center, e.dec_center, e.radius FROM exposure e WHERE {} ORDER BY e.id").format(cond)
    with conn.transaction():
        rows = conn.execute(q, prepare=True).fetchall()
    if not rows:
        raise CatdbError(f"no science exposures match (where: {where or 'none'}, exposures: {exposures or 'all'})")
    a = np.array([[r[0], np.nan if r[1] is None else r[1], np.nan if r[2] is None else r[2],
                   np.nan if r[3] is None else r[3]] for r in rows], dtype=float)
    ok = np.isfinite(a[:, 1:]).all(axis=1)
    if not ok.any():
        raise CatdbError(f"none of the {len(rows)} selected exposures has a footprint (ra_center, dec_center, "
                         "radius are NULL: ingest them with their image or a WCS)")
    if not ok.all():
        log.warning("%d exposures without a footprint skipped: %s", (~ok).sum(), a[~ok, 0].astype(int).tolist())
    return a[ok, 0].astype(int).tolist(), a[ok, 1], a[ok, 2], a[ok, 3], a[~ok, 0].astype(int).tolist()


def fetch_refcat(conn, catalog: str, *, where: str | None = None, exposures: str | None = None,
                 cones=None, margin_arcmin: float = 1.0, mag_limit: float | None = None, retries: int = 3,
                 backoff: float = 1.0, timeout: float = 60.0, row_limit: int = -1,
                 max_radius: float = 3.0) -> FetchResult:
    """Fetch a reference catalogue for the footprints of exposures (or given cones) into ``refcat_source``.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in a transaction (each region commits on its own).
    catalog : str
        A key of :data:`CATALOGS` (stored as ``refcat_source.catalog``).
    where : str, optional
        SQL condition on ``exposure`` (alias ``e``) selecting science exposures.
    exposures : str, optional
        Name of an exposure set (``catdb exposures select --name``).
    cones : sequence of (ra, dec, radius_deg), optional
        Explicit circles instead of exposure footprints.
    margin_arcmin : float
        Added to every footprint radius (arcmin).
    mag_limit : float, optional
        Faint limit on the catalogue's magnitude column (``CatalogSpec.mag_column``).
    retries : int
        Retries per cone on connection errors and timeouts, waiting ``backoff * 2**k`` s.
    backoff : float
        First retry delay (s).
    timeout : float
        Seconds per HTTP request.
    row_limit : int
        Rows per cone (-1: none).  A response of exactly ``row_limit`` rows is
        truncated: it is an error (nothing recorded for that cone).
    max_radius : float
        Largest merged circle (deg), see :func:`merge_circles`.

    Returns
    -------
    FetchResult
        ``circles``: (ra, dec, radius, 'fetched' | 'cached', n_rows, n_new) per circle.

    Raises
    ------
    OfflineError
        The service could not be reached after the retries (nothing written for that cone; cones
        written earlier in the same call are kept, each was one transaction); the stage_run is failed.
    catdb.errors.CatdbError
        Unknown catalogue, no exposures selected, none with a footprint, truncated response.
    """
    if catalog not in CATALOGS:
        raise CatdbError(f"unknown catalogue {catalog!r}; expected one of {', '.join(CATALOGS)}")
    if retries < 0 or backoff < 0 or margin_arcmin < 0:
        raise CatdbError("--retries, --backoff and --margin must be >= 0")
    spec = CATALOGS[catalog]
    exp_ids, skipped = [], []
    if cones is not None:
        cones = np.asarray(cones, dtype=float).reshape(-1, 3)
        if not (np.isfinite(cones).all() and (cones[:, 2] > 0).all() and (np.abs(cones[:, 1]) <= 90).all()):
            raise InputError(f"bad cone {cones.tolist()}: expected RA,DEC,RADIUS in degrees, radius > 0")
        ra, dec, rad = cones[:, 0] % 360.0, cones[:, 1], cones[:, 2]
    else:
        exp_ids, ra, dec, rad, skipped = _footprints(conn, where, exposures)
    circles = merge_circles(ra, dec, rad + margin_arcmin / 60.0, max_radius=max_radius)
    params = {"catalog": catalog, "vizier_id": spec.vizier_id, "margin_arcmin": margin_arcmin,
              "mag_limit": mag_limit, "retries": retries, "row_limit": row_limit, "exposures": exposures,
              "cones": None if cones is None else cones.tolist()}
    run_id = start_run(conn, "refcat-fetch", params, where)
    result = FetchResult(run_id, catalog)
    filters = {spec.mag_column: f"<{mag_limit:g}"} if mag_limit is not None else None
    service = f"VizieR at {vizier_server()}"
    mag_band = next((b for b, (mc, _, _) in VIZIER_PROFILES[spec.profile]["mags"].items() if mc == spec.mag_column),
                    None)
    try:
        for cra, cdec, crad, _members in circles:
            with conn.transaction():
                regions = conn.execute("SELECT ra, dec, radius_deg, mag_limit FROM refcat_region WHERE catalog = %s "
                                       "ORDER BY id", (catalog,)).fetchall()
            k = covered(cra, cdec, crad, regions, mag_limit=mag_limit)
            if k is not None:
                result.circles.append((cra, cdec, crad, "cached", 0, 0))
                continue
            t = _query_with_retries(spec.vizier_id, (cra, cdec), crad, ("*",) + spec.columns, row_limit, filters,
                                    retries=retries, backoff=backoff, timeout=timeout)
            if row_limit > 0 and len(t) >= row_limit:
                raise CatdbError(f"{catalog}: the cone at RA {cra:.5f} Dec {cdec:+.5f} r {crad:.4f} deg returned "
                                 f"{len(t)} rows = --row-limit: truncated; raise --row-limit or set --mag-limit "
                                 "(nothing recorded for this cone)")
            n_rows = len(t)
            if n_rows:
                data = refcat_from_table(t, catalog=catalog, profile=spec.profile, path=f"VizieR {spec.vizier_id}",
                                         drop_missing=True)
            else:
                data = {"ra": np.zeros(0), "dec": np.zeros(0), "mags": {}, "mag_errs": {}}
            mag = data["mags"].get(mag_band, np.full(len(data["ra"]), np.nan)) if mag_band else \
                np.full(len(data["ra"]), np.nan)
            keep = ~_already_stored(data["ra"], data["dec"], mag, regions)
            n_new = int(keep.sum())
            query_text = (f"{spec.vizier_id} cone RA {cra:.6f} Dec {cdec:+.6f} radius {crad:.6f} deg; columns "
                          f"{','.join(spec.columns)}" + (f"; filters {json.dumps(filters)}" if filters else "")
                          + (f"; row_limit {row_limit}" if row_limit > 0 else ""))
            with conn.transaction():
                if n_new:
                    cols = {k_: np.asarray(data[k_])[keep] for k_ in ("source_id", "ra", "dec", "epoch", "pmra",
                                                                      "pmdec", "parallax", "ra_err", "dec_err")}
                    cols["mags"] = json_text({b: np.asarray(v)[keep] for b, v in data["mags"].items()}, n_new) \
                        if data["mags"] else np.full(n_new, None, dtype=object)
                    cols["mag_errs"] = json_text({b: np.asarray(v)[keep] for b, v in data["mag_errs"].items()},
                                                 n_new) if data["mag_errs"] else np.full(n_new, None, dtype=object)
                    copy_table(conn, "refcat_source", cols, constants={"catalog": catalog, "stage_run_id": run_id})
                conn.execute(
                    "INSERT INTO refcat_region (catalog, ra, dec, radius_deg, mag_limit, n_rows, n_new, service, "
                    "query, stage_run_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (catalog, cra, cdec, crad, mag_limit, n_rows, n_new, service, query_text, run_id))
            result.circles.append((cra, cdec, crad, "fetched", n_rows, n_new))
            result.n_written += n_new
        if result.n_written:
            with conn.transaction():
                conn.execute("ANALYZE refcat_source")  # fresh statistics: q3c joins plan well only with them
        with conn.transaction():
            finish_run(conn, run_id, inputs=exp_ids or None, counts=_counts(result, skipped))
    except Exception as e:
        fail_run(conn, run_id, e)
        with conn.transaction():
            conn.execute("UPDATE stage_run SET counts = %s WHERE id = %s",
                         (json.dumps(_counts(result, skipped)), run_id))
        if isinstance(e, OfflineError):
            kept = result.n_fetched
            raise OfflineError(f"{e}; nothing written" + (f" for the remaining cones ({kept} cone"
                                                           f"{'s' * (kept != 1)} fetched earlier in this run kept)"
                                                           if kept else "") + f" (stage_run {run_id} failed)") from e
        raise
    return result


def _counts(result: FetchResult, skipped) -> dict:
    return {"refcat_source": result.n_written, "regions_fetched": result.n_fetched,
            "regions_cached": result.n_cached, "rows_returned": sum(c[4] for c in result.circles),
            "exposures_without_footprint": len(skipped)}
