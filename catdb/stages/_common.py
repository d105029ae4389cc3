"""Helpers shared by the quality and calibration stages (not a stage: modules starting with _ are not
registered, and stages may import this one without importing each other)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from psycopg import sql

from ..algorithms.nights import observing_groups
from ..errors import CatdbError

#: endings of a FITS image file, longest first (``.fits.fz`` before ``.fits``/``.fz``)
IMAGE_SUFFIXES = (".fits.fz", ".fits.gz", ".fits", ".fit", ".fts", ".fz")


def file_stem(path, suffixes=IMAGE_SUFFIXES) -> str:
    """File name of ``path`` without the first of ``suffixes`` it ends with (case-insensitive).

    ``file_stem("/d/r_0001.FITS.fz")`` -> ``"r_0001"``; a name with none of them is returned whole.
    """
    name = Path(path).name
    for suf in suffixes:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return name


def night_groups(conn, ids):
    """Observing night, or time-gap session, of every exposure (:func:`catdb.algorithms.nights.observing_groups`).

    ``exposure.night`` when stored; else the local date at the start of the night from ``mjd_mid`` and
    ``site_lon``; else (no site longitude: none is assumed) the observing session of the instrument
    among ``ids``, a new one after a gap of more than :data:`~catdb.algorithms.nights.SESSION_GAP_DAYS`
    (label ``session starting <UTC date-time>``); None without ``night`` and ``mjd_mid``.

    Parameters
    ----------
    conn : psycopg.Connection
    ids : list of int, shape (N,)
        Exposure ids.

    Returns
    -------
    labels : numpy.ndarray of object, shape (N,)
        In the order of ``ids``.
    basis : numpy.ndarray of object, shape (N,)
        ``'night'``, ``'site_lon'``, ``'time_gap'`` or ``'unknown'`` (which rule gave the label).
    """
    rows = conn.execute("SELECT e.mjd_mid, e.night::text, e.site_lon, e.instrument "
                        "FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(id, k) LEFT JOIN exposure e ON e.id = u.id "
                        "ORDER BY u.k", ([int(i) for i in ids],)).fetchall()
    a = np.array(rows, dtype=object).reshape(-1, 4)
    return observing_groups(a[:, 0], night=a[:, 1], site_lon=a[:, 2], instrument=a[:, 3])


def group_keys(conn, ids, group):
    """Group label of every exposure for the IQR rule.

    Parameters
    ----------
    conn : psycopg.Connection
    ids : list of int, shape (N,)
        Exposure ids.
    group : {'night', 'all'}
        ``night``: the observing night of :func:`night_groups` (``exposure.night``, else the local date
        at the start of the night from ``mjd_mid`` and ``site_lon``, else the time-gap session
        ``session starting <UTC date-time>``); ``'unknown'`` without ``night`` and ``mjd_mid``.
        ``all``: one group.

    Returns
    -------
    numpy.ndarray of str, shape (N,)
        In the order of ``ids``.
    """
    if group == "all":
        return np.full(len(ids), "all", dtype=object)
    labels, _ = night_groups(conn, ids)
    labels[np.equal(labels, None)] = "unknown"
    return labels


def reference_filter(conn, refcat):
    """SQL condition on ``refcat_source r`` selecting the catalogue, after checking it has rows.

    Raises
    ------
    catdb.errors.CatdbError
        No reference stars at all, or none in catalogue ``refcat`` (the message lists the
        catalogues present).
    """
    cats = [r[0] for r in conn.execute(
        "SELECT catalog FROM refcat_source GROUP BY catalog ORDER BY catalog").fetchall()]
    if not cats:
        raise CatdbError("parameter refcat: refcat_source is empty; load a reference catalogue first "
                         "(catdb ingest refcat FILE --catalog NAME)")
    if refcat and refcat not in cats:
        raise CatdbError(f"parameter refcat: no reference catalogue named {refcat!r} in refcat_source "
                         f"(0 rows); catalogues present: {', '.join(cats)}")
    if refcat:
        return sql.SQL("r.catalog = %(refcat)s"), {"refcat": refcat}
    return sql.SQL("true"), {}
