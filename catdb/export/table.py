"""Query results as astropy Tables that carry units and descriptions.

The unit and description of each result column are read from the comment of
the database column it comes from (``COMMENT ON COLUMN ... 'description [unit]'``),
so a VOTable or FITS export of ``SELECT ra, dec, mag_auto FROM detection``
carries ``deg``, ``deg``, ``mag`` without the user saying so.
"""
from __future__ import annotations

import json
import warnings

import astropy.units as u
import numpy as np
import numpy.ma as ma
from astropy.table import MaskedColumn, Table

from ..schema.tables import column_description, column_unit


def _comments(conn, cur):
    """(unit, description) per result column of ``cur``, from the source columns' comments.

    The origin of each result column (table OID and attribute number, which
    PostgreSQL resolves through subqueries and reports in the row description)
    comes from libpq's ``PQftable``/``PQftablecol``; psycopg 3's
    ``Column`` objects do not carry it.
    """
    res = cur.pgresult
    n = len(cur.description or [])
    origins = [(res.ftable(i), res.ftablecol(i)) if res is not None else (0, 0) for i in range(n)]
    pairs = {p for p in origins if p[0]}
    found = {}
    if pairs:
        oids = [p[0] for p in pairs]
        nums = [p[1] for p in pairs]
        for oid, num, com in conn.execute(
                "SELECT t.oid, t.num, col_description(t.oid, t.num) FROM unnest(%s::oid[], %s::int[]) AS t(oid, num)",
                (oids, nums)).fetchall():
            found[(oid, num)] = com
    out = []
    for p in origins:
        com = found.get(p)
        out.append((column_unit(com), column_description(com)))
    return out


def _column(values):
    """numpy array from a list of Python values (None -> masked / NaN)."""
    nonnull = [v for v in values if v is not None]
    if not nonnull:
        return ma.masked_all(len(values), dtype=float)
    v0 = nonnull[0]
    if isinstance(v0, bool):
        return ma.array([bool(v) if v is not None else False for v in values], mask=[v is None for v in values])
    if isinstance(v0, (int, np.integer)) and all(isinstance(v, (int, np.integer)) for v in nonnull):
        return ma.array([v if v is not None else 0 for v in values], mask=[v is None for v in values], dtype=np.int64)
    if isinstance(v0, (float, int)) or hasattr(v0, "__float__") and not isinstance(v0, str):
        try:
            return np.array([float(v) if v is not None else np.nan for v in values])
        except (TypeError, ValueError):
            pass
    if isinstance(v0, (list, tuple)):
        n = max(len(v) for v in nonnull)
        arr = np.full((len(values), n), np.nan)
        for i, v in enumerate(values):
            if v:
                arr[i, :len(v)] = [np.nan if x is None else x for x in v]
        return arr
    return np.array(["" if v is None else (json.dumps(v) if isinstance(v, (dict, list)) else str(v))
                     for v in values], dtype=str)


def query_table(conn, query, params=None, *, single_statement=False):
    """Run ``query`` and return an astropy Table with units and descriptions.

    Parameters
    ----------
    conn : psycopg.Connection
    query : str or psycopg.sql.Composable
    params : sequence or dict, optional
        Bound values.
    single_statement : bool
        Use the extended protocol (a prepared statement), which refuses
        several ``;``-separated commands: ``catdb query`` sets it so user SQL
        cannot leave its read-only transaction.

    Returns
    -------
    astropy.table.Table
    """
    cur = conn.execute(query, params, prepare=True if single_statement else None)
    if cur.description is None:
        return Table()
    rows = cur.fetchall()
    meta = _comments(conn, cur)
    t = Table()
    names_seen = {}
    for i, c in enumerate(cur.description):
        name = c.name
        if name in names_seen:
            names_seen[name] += 1
            name = f"{name}_{names_seen[name]}"
        else:
            names_seen[name] = 0
        data = _column([r[i] for r in rows])
        unit, desc = meta[i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            try:
                unit = u.Unit(unit, parse_strict="silent") if unit else None
            except ValueError:
                unit = None
        col_cls = MaskedColumn if hasattr(data, "mask") else None
        if col_cls:
            t[name] = MaskedColumn(data, unit=unit, description=desc)
        else:
            t[name] = data
            t[name].unit = unit
            t[name].description = desc
    return t
