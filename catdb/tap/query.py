"""Run one ADQL query read-only and return its VOTable (shared by /sync and /async).

The query is translated (:mod:`catdb.tap.adql`), then runs as ``catdb query`` runs
user SQL (:mod:`catdb.db.safety`): a connection as role ``catdb_reader`` in a
read-only transaction with a statement timeout, the text checked by the server to
be ONE statement that returns rows, and the transaction rolled back at the end.
At most MAXREC + 1 rows are read (the extra row tells an overflow).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

from ..db.safety import check_query, reader_connection, reader_session
from ..errors import CatdbError
from ..export.formats import assemble, describe, iter_batches
from ..schema.ucd import result_ucds
from .adql import AdqlError, translate
from .votable import ResultField, votable_type, write_result


class QueryError(CatdbError):
    """The query failed (bad ADQL, a database error, a timeout); the message is for the user."""


@dataclass
class QueryResult:
    body: bytes
    n_rows: int
    overflow: bool


_TIME_FMT = {
    "timestamptz": "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')",
    "timestamp": "to_char({}, 'YYYY-MM-DD\"T\"HH24:MI:SS.MS')",
    "date": "to_char({}, 'YYYY-MM-DD')",
}


def run_adql(url, adql: str, *, maxrec: int, timeout_s: float, serialization: str = "tabledata",
             cancel: Cancel | None = None) -> QueryResult:
    """Translate and run ``adql``; the result as VOTable bytes.

    Parameters
    ----------
    url : str or None
        Database URL (the reader login is derived as ``catdb query`` does).
    adql : str
    maxrec : int
        Rows returned at most (>= 0); more rows set the OVERFLOW flag.
    timeout_s : float
        Statement timeout [s].
    serialization : str
        ``tabledata`` or ``binary2``.
    cancel : Cancel, optional
        Receives the connection while the query runs, so an ABORT can cancel it.

    Returns
    -------
    QueryResult

    Raises
    ------
    QueryError
        Untranslatable ADQL, a refused statement, a database error or the timeout.
    """
    try:
        tr = translate(adql)
    except AdqlError as e:
        raise QueryError(f"ADQL error: {e}") from None
    try:
        conn = reader_connection(url, timeout_s)
    except CatdbError as e:
        raise QueryError(f"database unavailable: {e}") from None
    if cancel is not None:
        cancel.set(conn)
    try:
        with reader_session(conn):
            try:
                check_query(conn, tr.sql)
                inner = sql.SQL(tr.sql)
                cur = conn.execute(sql.SQL("SELECT * FROM ({}) AS _tap LIMIT 0").format(inner))
                origins = _origins(conn, cur)
                limited = sql.SQL("SELECT * FROM ({}) AS _tap LIMIT {}").format(inner, sql.Literal(maxrec + 1))
                d = describe(conn, limited)
                for c in d.columns:
                    if c.pgtype in _TIME_FMT:
                        c.exprs = [sql.SQL(_TIME_FMT[c.pgtype]).format(c._ref)]
                batches = [assemble(b, d.columns) for b in iter_batches(conn, d)]
            except (psycopg.Error, CatdbError) as e:
                raise QueryError(_message(e, timeout_s, cancel)) from None
            finally:  # before reader_session closes the connection: an ABORT never cancels a closed one
                if cancel is not None:
                    cancel.set(None)
    finally:
        if cancel is not None:
            cancel.set(None)
    n_all = sum(b.num_rows for b in batches)
    overflow = n_all > maxrec
    fields, columns = [], []
    for i, c in enumerate(d.columns):
        dt, asz, xt = votable_type(c.pgtype)
        ucd = origins[i] if i < len(origins) else None
        unit = c.unit
        if i in tr.xtypes and c.kind == "vector":
            xt = tr.xtypes[i]
        if i in tr.units and not unit:
            unit, ucd = tr.units[i]
        fields.append(ResultField(c.name, dt, asz, xt, unit, ucd, c.description))
        columns.append(_column(batches, c, maxrec))
    body = write_result(fields, columns, overflow, serialization, infos={"QUERY": adql.strip()})
    return QueryResult(body, min(n_all, maxrec), overflow)


def _column(batches, c, maxrec):
    """One output column as numpy (masked where NULL; 2-D for arrays), cut at ``maxrec`` rows."""
    import pyarrow as pa

    if batches:
        arr = pa.concat_arrays([b.column(c.name) for b in batches]).slice(0, maxrec)
    else:
        arr = None
    if c.kind == "vector":
        if arr is None:
            return np.zeros((0, c.length), dtype=c.dtype)
        return arr.flatten().to_numpy(zero_copy_only=False).astype(c.dtype, copy=False).reshape(len(arr), c.length)
    if arr is None:
        dtype = {"text": str, "bool": bool, "int": c.dtype, "float": c.dtype}[c.kind]
        return np.ma.array(np.zeros(0, dtype=dtype), mask=np.zeros(0, bool))
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    if c.kind == "text":
        vals = arr.fill_null("").to_numpy(zero_copy_only=False).astype(str)
    elif c.kind == "bool":
        vals = arr.fill_null(False).to_numpy(zero_copy_only=False)
    elif c.kind == "int":
        vals = arr.fill_null(0).to_numpy(zero_copy_only=False)
    else:
        vals = arr.to_numpy(zero_copy_only=False)
    return np.ma.array(vals, mask=mask)


def _origins(conn, cur) -> list:
    """UCD of each result column, from the table column it comes from (None for computed ones)."""
    return result_ucds(conn, cur)


def _message(e, timeout_s, cancel) -> str:
    if cancel is not None and cancel.aborted:
        return "query aborted"
    if isinstance(e, psycopg.errors.QueryCanceled) or "statement timeout" in str(e):
        return f"query cancelled after the {timeout_s:g} s execution limit"
    if isinstance(e, (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
        return f"the TAP service is read-only: {e.diag.message_primary}"
    msg = str(e).strip()
    for prefix in ("export query failed: ", "query failed: "):
        msg = msg.removeprefix(prefix)
    msg = msg.replace("catdb query runs ONE statement", "the TAP service runs ONE query")
    msg = msg.replace("catdb query is read-only", "the TAP service is read-only")
    return f"query failed: {msg}"


class Cancel:
    """Holds the connection of a running query so another thread can cancel it (UWS ABORT)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._conn = None
        self.aborted = False

    def set(self, conn):
        with self._lock:
            self._conn = conn

    def cancel(self):
        with self._lock:
            self.aborted = True
            if self._conn is not None:
                try:
                    self._conn.cancel_safe()
                except Exception:  # noqa: BLE001 - the query may have just finished
                    pass
