"""Bulk loading with COPY.

Columns arrive as numpy arrays; they are written as CSV by pyarrow (vectorised,
no Python loop over rows) and streamed with ``COPY ... FROM STDIN``.  NaN in a
float column becomes SQL NULL.  2-D float arrays (e.g. ``flux_aper``, one
column per aperture) become PostgreSQL arrays through a staging table and one
set-based ``INSERT ... SELECT``; dict columns of arrays become ``jsonb``.
"""
from __future__ import annotations

import io

import numpy as np
from psycopg import sql


def _arrow_array(values):
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    a = np.asarray(values)
    if a.dtype.byteorder not in ("=", "|"):  # FITS data are big-endian
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype.kind == "f":
        mask = ~np.isfinite(a)
        return pa.array(a.astype(np.float64), mask=mask if mask.any() else None)
    if a.dtype.kind in "iub":
        return pa.array(a)
    if a.dtype.kind in "US":
        return pa.array(a.astype(str))
    if a.dtype.kind == "O":
        return pa.array([None if v is None else str(v) for v in a.tolist()])
    raise TypeError(f"cannot COPY a column of dtype {a.dtype}")


def csv_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """CSV (no header, NULL as empty field) of equally long 1-D columns."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    tbl = pa.table({k: _arrow_array(v) for k, v in columns.items()})
    buf = io.BytesIO()
    pacsv.write_csv(tbl, buf, write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return buf.getvalue()


def copy_columns(conn, table: str, columns: dict[str, np.ndarray]) -> int:
    """COPY 1-D columns into ``table``; returns the number of rows.

    Parameters
    ----------
    conn : psycopg.Connection
    table : str
        Target table (a plain or temporary table).
    columns : dict of str -> numpy.ndarray
        Same length each; names are the table's column names.

    Raises
    ------
    ValueError
        When the columns differ in length.
    """
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"columns differ in length: { {k: len(v) for k, v in columns.items()} }")
    n = lengths.pop() if lengths else 0
    if n == 0:
        return 0
    data = csv_bytes(columns)
    q = sql.SQL("COPY {t} ({cols}) FROM STDIN WITH (FORMAT csv, NULL '')").format(
        t=sql.Identifier(table), cols=sql.SQL(", ").join(map(sql.Identifier, columns)))
    with conn.cursor().copy(q) as cp:
        step = 1 << 24
        for i in range(0, len(data), step):
            cp.write(data[i:i + step])
    return n


def _fmt_floats(a: np.ndarray, nan: str = "NaN"):
    """Vectorised float -> text (pyarrow's shortest round-trip formatting); non-finite -> ``nan``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    a = np.asarray(a, dtype=np.float64)
    txt = pc.cast(pa.array(a), pa.string())
    return pc.if_else(pa.array(np.isfinite(a)), txt, pa.scalar(nan))


def _join(parts):
    """Element-wise concatenation of pyarrow string arrays / scalars."""
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(*parts, "")


def pg_array_text(a2d: np.ndarray):
    """Rows of a 2-D array as PostgreSQL array literals ``{1.5,2,NaN}`` (vectorised over rows)."""
    a2d = np.asarray(a2d)
    parts = ["{"]
    for j in range(a2d.shape[1]):  # loop over the few array elements, not rows
        if j:
            parts.append(",")
        parts.append(_fmt_floats(a2d[:, j]))
    parts.append("}")
    return _join(parts)


def json_text(values: dict[str, np.ndarray], n: int):
    """Rows of JSON objects built from columns (non-finite floats -> null; strings escaped by json)."""
    import json

    import pyarrow as pa

    parts = ["{"]
    for j, (k, a) in enumerate(values.items()):  # loop over columns, not rows
        a = np.asarray(a)
        if a.dtype.byteorder not in ("=", "|"):
            a = a.astype(a.dtype.newbyteorder("="))
        parts.append(("" if j == 0 else ", ") + json.dumps(str(k)) + ": ")
        if a.dtype.kind == "f":
            parts.append(_fmt_floats(a, nan="null"))
        elif a.dtype.kind in "iu":
            parts.append(pa.array(a).cast(pa.string()))
        elif a.dtype.kind == "b":
            parts.append(pa.array(np.where(a, "true", "false")))
        else:
            uniq, inv = np.unique(a.astype(str), return_inverse=True)  # escape each distinct value once
            parts.append(pa.array(np.array([json.dumps(x) for x in uniq.tolist()], dtype=object)[inv.ravel()]))
    parts.append("}")
    if len(parts) == 2:
        return pa.array(np.full(n, "{}", dtype=object))
    return _join(parts)


def copy_table(conn, table: str, columns: dict, *, constants: dict | None = None,
               json_column: str | None = None, json_values: dict[str, np.ndarray] | None = None) -> int:
    """COPY columns straight into ``table``, with array columns, constants and a jsonb column.

    Parameters
    ----------
    conn : psycopg.Connection
    table : str
        Target table.
    columns : dict of str -> numpy.ndarray
        1-D arrays for scalar columns; 2-D arrays ``(n_rows, k)`` for PostgreSQL array columns.
    constants : dict, optional
        Columns with the same value on every row (e.g. ``exposure_id``, ``stage_run_id``).
    json_column : str, optional
        Name of a jsonb column built from ``json_values`` (non-finite floats become null).
    json_values : dict of str -> numpy.ndarray, optional

    Returns
    -------
    int
        Rows inserted.
    """
    cols: dict[str, np.ndarray] = {}
    n = None
    import pyarrow as pa

    for name, arr in columns.items():
        if isinstance(arr, (pa.Array, pa.ChunkedArray)):
            cols[name] = arr
            n = len(arr)
            continue
        a = np.asarray(arr)
        cols[name] = pg_array_text(a) if a.ndim == 2 else a
        n = len(a)
    if json_column and json_values:
        n = len(next(iter(json_values.values()))) if n is None else n
        cols[json_column] = json_text(json_values, n)
    if n is None:
        return 0
    for k, v in (constants or {}).items():
        if isinstance(v, float):
            cols[k] = np.full(n, v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            cols[k] = np.full(n, v, dtype=np.int64)
        else:
            cols[k] = np.full(n, None if v is None else str(v), dtype=object)
    return copy_columns(conn, table, cols)


def fetch_arrays(conn, query, params, types: dict) -> dict:
    """Run a SELECT through ``COPY ... TO STDOUT`` and return its columns as numpy arrays.

    Parameters
    ----------
    conn : psycopg.Connection
    query : str or psycopg.sql.Composable
        A SELECT (placeholders bound client-side by psycopg).
    params : dict or sequence
    types : dict
        Column name -> pyarrow type name (``int64``, ``float64``, ``string``).

    Returns
    -------
    dict of str -> numpy.ndarray
        NULL floats are NaN, NULL strings None.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    q = query if isinstance(query, sql.Composable) else sql.SQL(query)
    stmt = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv, HEADER true)").format(q)
    buf = io.BytesIO()
    with conn.cursor().copy(stmt, params) as cp:
        for block in cp:
            buf.write(block)
    buf.seek(0)
    tbl = pacsv.read_csv(buf, convert_options=pacsv.ConvertOptions(
        column_types={k: getattr(pa, v)() for k, v in types.items()}, strings_can_be_null=True,
        quoted_strings_can_be_null=False))
    out = {}
    for k in types:
        col = tbl[k]
        if types[k] == "string":
            out[k] = np.array(col.to_pylist(), dtype=object)
        elif types[k] == "int64" and col.null_count == 0:
            out[k] = col.to_numpy().astype(np.int64)
        else:
            out[k] = col.to_numpy(zero_copy_only=False).astype(np.float64)
    return out
