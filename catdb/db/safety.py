"""Guards for user-written SQL: one statement that returns rows, sessions that never commit."""
from __future__ import annotations

import math
import os
from contextlib import contextmanager

import psycopg
from psycopg import pq

from ..db.engine import connect, resolve_url
from ..errors import CatdbError, DatabaseUnavailable

#: the SELECT-only role user SQL runs as (created by the first migration)
READER = "catdb_reader"


def check_query(conn, query, params=None) -> None:
    """Refuse anything but ONE statement that returns rows, before it runs.

    The server parses ``query`` as an unnamed prepared statement (extended query
    protocol: several ``;``-separated commands are a parse error) and describes it:
    a statement without result columns (INSERT/UPDATE/DELETE without RETURNING, DDL,
    SET, COPY, transaction control) is refused.

    Parameters
    ----------
    conn : psycopg.Connection
    query : str or psycopg.sql.Composable
    params : dict, optional
        Values the query will be run with.

    Raises
    ------
    catdb.errors.CatdbError
        Several statements, a syntax or name error, or a statement that returns no rows.
    """
    # the text the server parses; values are quoted by psycopg here only for the check
    # (the query itself runs with the values bound)
    text = psycopg.ClientCursor(conn).mogrify(query, params)
    res = conn.pgconn.prepare(b"", text.encode())
    if res.status != pq.ExecStatus.COMMAND_OK:
        msg = (res.error_message or b"").decode(errors="replace").strip()
        msg = msg.removeprefix("ERROR:").strip()
        if "multiple commands" in msg:
            raise CatdbError("catdb query runs ONE statement: the text holds several (';'-separated); "
                             "run them one at a time")
        raise CatdbError(f"query failed: {msg}")
    desc = conn.pgconn.describe_prepared(b"")
    if desc.status != pq.ExecStatus.COMMAND_OK or desc.nfields == 0:
        raise CatdbError("catdb query is read-only and runs one query that returns rows (SELECT, WITH, "
                         "VALUES, TABLE, SHOW, EXPLAIN); this statement returns none (INSERT, UPDATE, DELETE, "
                         "CREATE, DROP, SET, COPY and transaction control are refused)")


@contextmanager
def reader_session(conn):
    """Yield ``conn`` and always roll back and close it: a reader session never commits.

    Large-object functions (``lo_from_bytea``) write even in a read-only transaction, so a
    reader session must not commit at all.
    """
    try:
        yield conn
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()


def reader_connection(url, timeout_s: float):
    """A read-only connection for user SQL: logged in as ``catdb_reader`` when possible.

    Parameters
    ----------
    url : str or None
        Database URL (``--db``); ``CATDB_READER_URL`` overrides it for the reader login.
    timeout_s : float or None
        Statement timeout [s]; None for none.

    Returns
    -------
    psycopg.Connection
        In a read-only transaction, as ``catdb_reader`` (login or ``SET ROLE``) when the role exists.

    Raises
    ------
    catdb.errors.CatdbError
        ``timeout_s`` given but not positive; the server cannot be reached.
    """
    if timeout_s is not None and not (timeout_s > 0 and math.isfinite(timeout_s)):
        raise CatdbError(f"--timeout {timeout_s!r}: expected a finite number of seconds > 0")
    ms = None if timeout_s is None else max(1, int(round(timeout_s * 1000)))
    reader_url = os.environ.get("CATDB_READER_URL")
    url = resolve_url(url)
    try:
        if reader_url:
            return connect(reader_url, read_only=True, statement_timeout_ms=ms)
        return connect(url, read_only=True, statement_timeout_ms=ms, user=READER)
    except DatabaseUnavailable:
        if reader_url:
            raise
    conn = connect(url, read_only=True, statement_timeout_ms=ms)
    if conn.execute("SELECT pg_has_role(%s, 'MEMBER') FROM pg_roles WHERE rolname = %s",
                    (READER, READER)).fetchone():
        conn.execute("SET ROLE catdb_reader")
    return conn
