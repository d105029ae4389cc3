"""Compose catdb's spatial SQL (q3c) in one place.

Every spatial query catdb sends to PostgreSQL is built here, so that the same text runs on
a server with the q3c C extension (Koposov & Bartunov 2006, ASP Conf. Ser. 351, 735;
https://github.com/segasai/q3c) and on one where catdb installed its SQL port
``catdb/sql/q3c_compat.sql`` (same function names, argument order and results).

All builders return a :class:`Fragment` ``(sql, params)``: ``sql`` is a
:class:`psycopg.sql.Composed` with identifiers quoted by :mod:`psycopg.sql` and values as
named placeholders, ``params`` the dict of values to bind, so a fragment runs as
``cur.execute(*fragment)``.  Angles are degrees (ICRS RA/Dec), radii degrees unless the
argument name says otherwise, proper motions mas/yr, epochs Julian years.

The queries use the index pre-filter of q3c only when the probed table has a B-tree index
on ``q3c_ang2ipix(ra, dec)``; :func:`ipix_index` writes that statement.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from typing import Any, NamedTuple

import numpy as np
import psycopg
from psycopg import sql

__all__ = [
    "Fragment", "compat_script", "install", "backend", "ipix_index",
    "cone_condition", "cone", "ellipse_condition", "ellipse",
    "polygon_condition", "polygon", "pair_join", "nearest_join", "pm_join",
]

#: backends: the C extension, or catdb's SQL/PL/pgSQL port
BACKENDS = ("q3c", "sql")


class Fragment(NamedTuple):
    """A composed SQL statement or condition and the values to bind.

    Attributes
    ----------
    sql : psycopg.sql.Composed
        The text with quoted identifiers and ``%(name)s`` placeholders.
    params : dict
        Placeholder name -> value.
    """

    sql: sql.Composed
    params: dict[str, Any]

    def as_string(self, conn) -> str:
        """The SQL text (placeholders not filled in), for logging and EXPLAIN."""
        return self.sql.as_string(conn)


# ---------------------------------------------------------------------------------------
# installation and detection
# ---------------------------------------------------------------------------------------

def compat_script(schema: str) -> str:
    """The text of ``q3c_compat.sql`` with every function qualified by ``schema``.

    Parameters
    ----------
    schema : str
        Target schema (must exist when the script runs).

    Returns
    -------
    str
        SQL script (``CREATE OR REPLACE FUNCTION`` statements only: idempotent).
    """
    text = resources.files("catdb").joinpath("sql/q3c_compat.sql").read_text("utf-8")
    quoted = '"' + schema.replace('"', '""') + '"'
    return text.replace("@extschema@", quoted)


def _has_available_extension(conn) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'").fetchone()
    return row is not None


def install(conn: psycopg.Connection, backend: str = "auto", schema: str | None = None) -> str:
    """Make the q3c functions available in the database of ``conn``.

    Parameters
    ----------
    conn : psycopg.Connection
        Connection with the right to create functions in ``schema`` (and to create the
        extension, for the ``'q3c'`` backend).  Statements run in the connection's
        current transaction; commit afterwards unless in autocommit mode.
    backend : {'auto', 'q3c', 'sql'}
        ``'q3c'``: ``CREATE EXTENSION IF NOT EXISTS q3c``; ``'sql'``: run catdb's SQL port
        ``q3c_compat.sql``; ``'auto'``: the extension when the server offers it (or it is
        already installed), else the SQL port.
    schema : str, optional
        Schema for the functions; default the current schema.  If the extension is
        already installed elsewhere it stays there (``CREATE EXTENSION IF NOT EXISTS`` is
        then a no-op).  q3c 2.0's SQL wrappers call their helpers unqualified, so the
        extension's schema must be on the ``search_path``; the SQL port qualifies every
        call and works from any schema.

    Returns
    -------
    str
        ``'q3c'`` or ``'sql'``: the backend now in use.

    Raises
    ------
    ValueError
        Unknown ``backend``.
    RuntimeError
        ``backend='q3c'`` but the server has no q3c extension.
    """
    if backend not in ("auto",) + BACKENDS:
        raise ValueError(f"backend must be 'auto', 'q3c' or 'sql', not {backend!r}")
    if schema is None:
        schema = conn.execute("SELECT current_schema()").fetchone()[0]
    if backend == "auto":
        installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'q3c'").fetchone()
        backend = "q3c" if installed or _has_available_extension(conn) else "sql"
    if backend == "q3c":
        if not _has_available_extension(conn):
            raise RuntimeError("the PostgreSQL server has no q3c extension "
                               "(install postgresql-NN-q3c, or use backend='sql')")
        conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS q3c SCHEMA {}").format(
            sql.Identifier(schema)))
        return "q3c"
    conn.execute(compat_script(schema))
    return "sql"


def backend(conn: psycopg.Connection) -> str:
    """Which q3c implementation the connection's queries reach.

    Returns
    -------
    str
        ``'q3c'`` if the C extension is installed in the database, ``'sql'`` if catdb's
        port is visible on the search path.

    Raises
    ------
    LookupError
        Neither is installed (call :func:`install`).
    """
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'q3c'").fetchone():
        return "q3c"
    if conn.execute("SELECT to_regprocedure('q3c_compat_cover(double precision, double precision, "
                    "double precision, integer)') IS NOT NULL").fetchone()[0]:
        return "sql"
    raise LookupError("no q3c functions in this database: call catdb.spatial.install(conn)")


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def _ident(name: str | sql.Composable) -> sql.Composable:
    """``'schema.table'`` or ``'col'`` -> quoted identifier (Composables pass through)."""
    if isinstance(name, sql.Composable):
        return name
    return sql.Identifier(*name.split("."))


def _fn(name: str, schema: str | None) -> sql.Composable:
    return sql.Identifier(schema, name) if schema else sql.SQL(name)


def _col(alias: str, column: str | sql.Composable) -> sql.Composable:
    if isinstance(column, sql.Composable):
        return column
    return sql.Identifier(alias, column)


def _float(name: str) -> sql.Composable:
    return sql.SQL("{}::double precision").format(sql.Placeholder(name))


def _select_list(columns: Sequence[str | sql.Composable] | None, alias: str) -> sql.Composable:
    if not columns:
        return sql.SQL("{}.*").format(sql.Identifier(alias))
    return sql.SQL(", ").join(_col(alias, c) for c in columns)


def _check_finite(**values: float) -> None:
    for k, v in values.items():
        if v is None or not math.isfinite(float(v)):
            raise ValueError(f"{k} must be a finite number, got {v!r}")


# ---------------------------------------------------------------------------------------
# single-table regions
# ---------------------------------------------------------------------------------------

def ipix_index(table: str, ra_col: str = "ra", dec_col: str = "dec", *,
               name: str | None = None, schema: str | None = None) -> Fragment:
    """``CREATE INDEX IF NOT EXISTS ... (q3c_ang2ipix(ra, dec))``: the index every query uses.

    Parameters
    ----------
    table : str
        Table name, optionally ``schema.table``.
    ra_col, dec_col : str
        Columns of RA and Dec (deg).
    name : str, optional
        Index name; default ``<table>_q3c_idx``.
    schema : str, optional
        Schema holding the q3c functions (default: found on the search path).
    """
    idx = name or f"{table.split('.')[-1]}_q3c_idx"
    q = sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}({}, {}))").format(
        sql.Identifier(idx), _ident(table), _fn("q3c_ang2ipix", schema),
        _ident(ra_col), _ident(dec_col))
    return Fragment(q, {})


def cone_condition(ra_col: str | sql.Composable, dec_col: str | sql.Composable,
                   ra: float, dec: float, radius_deg: float, *,
                   schema: str | None = None, prefix: str = "cone") -> Fragment:
    """Condition ``q3c_radial_query(ra_col, dec_col, ra, dec, radius)`` (points strictly
    closer than ``radius_deg`` to (``ra``, ``dec``)).

    Parameters
    ----------
    ra_col, dec_col : str or Composable
        Columns (``'ra'``, ``'t.ra'``) or any SQL expression.
    ra, dec, radius_deg : float
        Cone centre (deg) and radius (deg).
    prefix : str
        Placeholder prefix, to combine several fragments in one statement.

    Raises
    ------
    ValueError
        Non-finite centre or radius.
    """
    _check_finite(ra=ra, dec=dec, radius_deg=radius_deg)
    p = {f"{prefix}_ra": float(ra), f"{prefix}_dec": float(dec),
         f"{prefix}_radius": float(radius_deg)}
    q = sql.SQL("{}({}, {}, {}, {}, {})").format(
        _fn("q3c_radial_query", schema), _ident(ra_col), _ident(dec_col),
        _float(f"{prefix}_ra"), _float(f"{prefix}_dec"), _float(f"{prefix}_radius"))
    return Fragment(q, p)


def _select_where(table, columns, cond: Fragment, extra_cols=()) -> Fragment:
    cols = _select_list(columns, "t")
    if extra_cols:
        cols = sql.SQL(", ").join([cols, *extra_cols])
    q = sql.SQL("SELECT {} FROM {} AS t WHERE {}").format(cols, _ident(table), cond.sql)
    return Fragment(q, dict(cond.params))


def cone(table: str, ra_col: str, dec_col: str, ra: float, dec: float, radius_deg: float, *,
         columns: Sequence[str] | None = None, schema: str | None = None) -> Fragment:
    """``SELECT`` the rows of ``table`` within ``radius_deg`` of (``ra``, ``dec``), with
    their distance ``dist_arcsec``.

    Parameters
    ----------
    table : str
        Table name (``schema.table`` allowed), aliased ``t``.
    ra_col, dec_col : str
        RA, Dec columns (deg).
    ra, dec, radius_deg : float
        Centre and radius (deg).
    columns : sequence of str, optional
        Columns to return (default ``t.*``).
    schema : str, optional
        Schema of the q3c functions.

    Returns
    -------
    Fragment
        ``SELECT <columns>, q3c_dist(...) * 3600 AS dist_arcsec FROM table AS t WHERE
        q3c_radial_query(...)``.
    """
    cond = cone_condition(sql.Identifier("t", ra_col), sql.Identifier("t", dec_col),
                          ra, dec, radius_deg, schema=schema)
    dist = sql.SQL("{}({}, {}, {}, {}) * 3600 AS dist_arcsec").format(
        _fn("q3c_dist", schema), sql.Identifier("t", ra_col), sql.Identifier("t", dec_col),
        _float("cone_ra"), _float("cone_dec"))
    return _select_where(table, columns, cond, [dist])


def ellipse_condition(ra_col, dec_col, ra: float, dec: float, semi_major_deg: float,
                      axis_ratio: float, pa_deg: float, *, schema: str | None = None,
                      prefix: str = "ell") -> Fragment:
    """Condition ``q3c_ellipse_query(ra_col, dec_col, ra, dec, a, b/a, PA)``.

    Parameters
    ----------
    semi_major_deg : float
        Semi-major axis (deg).
    axis_ratio : float
        b/a, in (0, 1].
    pa_deg : float
        Position angle of the major axis, deg east of north.

    Raises
    ------
    ValueError
        Non-finite values, or axis ratio outside (0, 1].
    """
    _check_finite(ra=ra, dec=dec, semi_major_deg=semi_major_deg, axis_ratio=axis_ratio,
                  pa_deg=pa_deg)
    if not 0 < axis_ratio <= 1:
        raise ValueError(f"axis_ratio must be in (0, 1], got {axis_ratio}")
    names = ["ra", "dec", "a", "ratio", "pa"]
    vals = [ra, dec, semi_major_deg, axis_ratio, pa_deg]
    p = {f"{prefix}_{n}": float(v) for n, v in zip(names, vals)}
    q = sql.SQL("{}({}, {}, {})").format(
        _fn("q3c_ellipse_query", schema), _ident(ra_col), _ident(dec_col),
        sql.SQL(", ").join(_float(f"{prefix}_{n}") for n in names))
    return Fragment(q, p)


def ellipse(table: str, ra_col: str, dec_col: str, ra: float, dec: float,
            semi_major_deg: float, axis_ratio: float, pa_deg: float, *,
            columns: Sequence[str] | None = None, schema: str | None = None) -> Fragment:
    """``SELECT`` the rows of ``table`` inside an ellipse (see :func:`ellipse_condition`)."""
    cond = ellipse_condition(sql.Identifier("t", ra_col), sql.Identifier("t", dec_col), ra, dec,
                             semi_major_deg, axis_ratio, pa_deg, schema=schema)
    return _select_where(table, columns, cond)


def polygon_condition(ra_col, dec_col, vertices, *, schema: str | None = None,
                      prefix: str = "poly") -> Fragment:
    """Condition ``q3c_poly_query(ra_col, dec_col, ARRAY[ra1, dec1, ra2, dec2, ...])``.

    Parameters
    ----------
    vertices : array_like, shape (n, 2)
        Polygon vertices (RA, Dec) in deg, n >= 3; edges are great circles (straight
        lines on q3c's cube faces).  q3c refuses polygons wider than ~23 deg.

    Raises
    ------
    ValueError
        Fewer than 3 vertices, wrong shape or non-finite values.
    """
    v = np.asarray(vertices, dtype=float)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
        raise ValueError(f"vertices must have shape (n >= 3, 2), got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("polygon vertices must be finite")
    p = {f"{prefix}_vertices": [float(x) for x in v.ravel()]}
    q = sql.SQL("{}({}, {}, {}::double precision[])").format(
        _fn("q3c_poly_query", schema), _ident(ra_col), _ident(dec_col),
        sql.Placeholder(f"{prefix}_vertices"))
    return Fragment(q, p)


def polygon(table: str, ra_col: str, dec_col: str, vertices, *,
            columns: Sequence[str] | None = None, schema: str | None = None) -> Fragment:
    """``SELECT`` the rows of ``table`` inside a polygon (see :func:`polygon_condition`)."""
    cond = polygon_condition(sql.Identifier("t", ra_col), sql.Identifier("t", dec_col),
                             vertices, schema=schema)
    return _select_where(table, columns, cond)


# ---------------------------------------------------------------------------------------
# joins
# ---------------------------------------------------------------------------------------

def pair_join(t1: str, t2: str, radius_deg: float, *, ra1: str = "ra", dec1: str = "dec",
              ra2: str = "ra", dec2: str = "dec", columns1: Sequence[str] | None = None,
              columns2: Sequence[str] | None = None, schema: str | None = None) -> Fragment:
    """All pairs closer than ``radius_deg``: ``q3c_join`` (every match, not only the nearest).

    ``t2`` should have the ``q3c_ang2ipix`` index (:func:`ipix_index`); the plan is a nested
    loop over ``t1`` with index range scans on ``t2``.

    Parameters
    ----------
    t1, t2 : str
        Tables, aliased ``a`` and ``b``.
    radius_deg : float
        Match radius (deg), e.g. ``1/3600``.
    ra1, dec1, ra2, dec2 : str
        Coordinate columns (deg).
    columns1, columns2 : sequence of str, optional
        Columns returned from each table (default all).

    Returns
    -------
    Fragment
        ``SELECT a.<cols>, b.<cols>, dist_arcsec FROM t1 a JOIN t2 b ON q3c_join(...)``.
    """
    _check_finite(radius_deg=radius_deg)
    a_ra, a_dec = sql.Identifier("a", ra1), sql.Identifier("a", dec1)
    b_ra, b_dec = sql.Identifier("b", ra2), sql.Identifier("b", dec2)
    q = sql.SQL(
        "SELECT {c1}, {c2}, {dist}({ara}, {adec}, {bra}, {bdec}) * 3600 AS dist_arcsec "
        "FROM {t1} AS a JOIN {t2} AS b ON {join}({ara}, {adec}, {bra}, {bdec}, {r})").format(
        c1=_select_list(columns1, "a"), c2=_select_list(columns2, "b"),
        dist=_fn("q3c_dist", schema), join=_fn("q3c_join", schema),
        ara=a_ra, adec=a_dec, bra=b_ra, bdec=b_dec, t1=_ident(t1), t2=_ident(t2),
        r=_float("radius"))
    return Fragment(q, {"radius": float(radius_deg)})


def nearest_join(t1: str, t2: str, radius_deg: float, *, ra1: str = "ra", dec1: str = "dec",
                 ra2: str = "ra", dec2: str = "dec", columns1: Sequence[str] | None = None,
                 columns2: Sequence[str] | None = None, keep_unmatched: bool = False,
                 schema: str | None = None) -> Fragment:
    """For each row of ``t1`` its nearest neighbour in ``t2`` within ``radius_deg``.

    ``LATERAL (... WHERE q3c_join(...) ORDER BY q3c_dist(...) LIMIT 1)``, the q3c idiom for
    a best-match cross-match (ties broken by the server's order).

    Parameters
    ----------
    keep_unmatched : bool
        ``LEFT JOIN LATERAL``: rows of ``t1`` without a match come back with NULLs.
    (others as :func:`pair_join`)

    Returns
    -------
    Fragment
        ``SELECT a.<cols>, n.<cols>, n.dist_arcsec FROM t1 a [LEFT] JOIN LATERAL (...) n``.
    """
    _check_finite(radius_deg=radius_deg)
    a_ra, a_dec = sql.Identifier("a", ra1), sql.Identifier("a", dec1)
    b_ra, b_dec = sql.Identifier("b", ra2), sql.Identifier("b", dec2)
    c2 = (sql.SQL("n.*") if not columns2 else
          sql.SQL(", ").join(sql.Identifier("n", c) for c in columns2))
    inner_cols = _select_list(columns2, "b")
    q = sql.SQL(
        "SELECT {c1}, {c2}{dcol} FROM {t1} AS a {kind} JOIN LATERAL ("
        "SELECT {ic}, {dist}({ara}, {adec}, {bra}, {bdec}) * 3600 AS dist_arcsec "
        "FROM {t2} AS b WHERE {join}({ara}, {adec}, {bra}, {bdec}, {r}) "
        "ORDER BY {dist}({ara}, {adec}, {bra}, {bdec}) LIMIT 1) AS n ON true").format(
        c1=_select_list(columns1, "a"), c2=c2,
        dcol=sql.SQL(", n.dist_arcsec") if columns2 else sql.SQL(""),
        kind=sql.SQL("LEFT" if keep_unmatched else "INNER"),
        ic=inner_cols, dist=_fn("q3c_dist", schema), join=_fn("q3c_join", schema),
        ara=a_ra, adec=a_dec, bra=b_ra, bdec=b_dec, t1=_ident(t1), t2=_ident(t2),
        r=_float("radius"))
    return Fragment(q, {"radius": float(radius_deg)})


def _col_or_value(alias: str, v, name: str, params: dict) -> sql.Composable:
    """A column of ``alias`` (str) or a bound float (number)."""
    if isinstance(v, str):
        return sql.Identifier(alias, v)
    if isinstance(v, sql.Composable):
        return v
    params[name] = float(v)
    return _float(name)


def pm_join(t1: str, t2: str, radius_deg: float, *, epoch1="epoch", epoch2="epoch",
            max_epoch_delta: float = 100.0, pmra: str = "pmra", pmdec: str = "pmdec",
            pmra_includes_cosdec: bool = True, ra1: str = "ra", dec1: str = "dec",
            ra2: str = "ra", dec2: str = "dec", columns1: Sequence[str] | None = None,
            columns2: Sequence[str] | None = None, schema: str | None = None) -> Fragment:
    """Pairs matching after moving ``t1``'s stars by their proper motion: ``q3c_join_pm``.

    ``t1`` holds the catalogue with proper motions (e.g. ``refcat_source``: ``pmra`` in
    mas/yr including cos(dec), ``pmdec`` mas/yr, ``epoch`` Julian year); ``t2`` the
    observations (with the ``q3c_ang2ipix`` index) and their epoch.  Rows of ``t1`` with
    NULL motion or epoch are matched at their catalogue position (q3c semantics).

    Parameters
    ----------
    epoch1, epoch2 : str or float
        Column name of the epoch (Julian years) in ``t1`` / ``t2``, or one value for all.
    max_epoch_delta : float
        Upper bound of |epoch2 - epoch1| (yr), sizes the index pre-filter; pairs further
        apart in time may be missed.
    pmra_includes_cosdec : bool
        ``pmra`` is mu_alpha* = mu_alpha cos(dec) (Gaia convention; q3c ``cosdec_flag=1``).
    (others as :func:`pair_join`)

    Returns
    -------
    Fragment
        ``SELECT a.<cols>, b.<cols>, dist_arcsec FROM t1 a JOIN t2 b ON q3c_join_pm(...)``
        where ``dist_arcsec`` is ``q3c_dist_pm`` (at ``t2``'s epoch).
    """
    _check_finite(radius_deg=radius_deg, max_epoch_delta=max_epoch_delta)
    params: dict[str, Any] = {"radius": float(radius_deg), "max_dt": float(max_epoch_delta),
                              "cosdec": 1 if pmra_includes_cosdec else 0}
    e1 = _col_or_value("a", epoch1, "epoch1", params)
    e2 = _col_or_value("b", epoch2, "epoch2", params)
    args_pm = sql.SQL("{ara}, {adec}, {pmra}, {pmdec}, {cosdec}::integer, {e1}, {bra}, {bdec}, {e2}").format(
        ara=sql.Identifier("a", ra1), adec=sql.Identifier("a", dec1),
        pmra=sql.Identifier("a", pmra), pmdec=sql.Identifier("a", pmdec),
        cosdec=sql.Placeholder("cosdec"), e1=e1, bra=sql.Identifier("b", ra2),
        bdec=sql.Identifier("b", dec2), e2=e2)
    q = sql.SQL(
        "SELECT {c1}, {c2}, {dist}({args}) * 3600 AS dist_arcsec FROM {t1} AS a JOIN {t2} AS b "
        "ON {join}({args}, {maxdt}, {r})").format(
        c1=_select_list(columns1, "a"), c2=_select_list(columns2, "b"),
        dist=_fn("q3c_dist_pm", schema), join=_fn("q3c_join_pm", schema), args=args_pm,
        t1=_ident(t1), t2=_ident(t2), maxdt=_float("max_dt"), r=_float("radius"))
    return Fragment(q, params)
