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
    return table_from_rows(rows, unique_names(c.name for c in cur.description), _comments(conn, cur))


def unique_names(names) -> list[str]:
    """Column names with repeats numbered (``id``, ``id_1``, ``id_2``) as astropy tables need."""
    seen, out = {}, []
    for name in names:
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def table_from_rows(rows, names, meta, *, mask_null_text: bool = False) -> Table:
    """An astropy Table of result rows, with units and descriptions.

    Parameters
    ----------
    rows : sequence of tuple, shape (N,)
        Result rows (Python values as psycopg returns them; None is SQL NULL).
    names : list of str
        Column names, unique (see :func:`unique_names`).
    meta : list of (str or None, str or None)
        ``(unit, description)`` per column (as :func:`_comments` gives); a unit astropy
        cannot parse is dropped (None), not guessed.
    mask_null_text : bool
        Mask NULLs of text columns too (else they are empty strings); numbers, booleans
        and all-NULL columns are masked either way (see :func:`_column`).

    Returns
    -------
    astropy.table.Table
    """
    t = Table()
    for i, name in enumerate(names):
        vals = [r[i] for r in rows]
        data = _column(vals)
        if (mask_null_text and not hasattr(data, "mask") and data.dtype.kind in "US"
                and any(v is None for v in vals)):
            data = np.ma.array(data, mask=[v is None for v in vals])
        unit, desc = meta[i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            try:
                unit = u.Unit(unit, parse_strict="silent") if unit else None
            except ValueError:
                unit = None
        if hasattr(data, "mask"):
            t[name] = MaskedColumn(data, unit=unit, description=desc)
        else:
            t[name] = data
            t[name].unit, t[name].description = unit, desc
    return t
