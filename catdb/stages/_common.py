"""Helpers shared by the quality and calibration stages (not a stage: modules starting with _ are not
registered, and stages may import this one without importing each other)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from psycopg import sql

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


def group_keys(conn, ids, group):
    """Group label of every exposure for the IQR rule.

    Parameters
    ----------
    conn : psycopg.Connection
    ids : list of int, shape (N,)
        Exposure ids.
    group : {'night', 'all'}
        ``night``: ``exposure.night`` or, when null, the local date at the start of the night
        ``floor(mjd_mid - 0.5 + site_lon / 360)`` (MJD day counted from local noon; site_lon
        east positive, 0 when unknown); ``'unknown'`` without both.  ``all``: one group.

    Returns
    -------
    numpy.ndarray of str, shape (N,)
        In the order of ``ids``.
    """
    if group == "all":
        return np.full(len(ids), "all", dtype=object)
    rows = dict(conn.execute(
        "SELECT e.id, COALESCE(e.night::text, (date '1858-11-17' + floor(e.mjd_mid - 0.5 "
        "+ COALESCE(e.site_lon, 0) / 360.0)::int)::text, 'unknown') FROM exposure e WHERE e.id = ANY(%s)",
        (list(ids),)).fetchall())
    return np.array([rows[i] for i in ids], dtype=object)


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
