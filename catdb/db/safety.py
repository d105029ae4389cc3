"""Guards for user-written SQL: one statement that returns rows, sessions that never commit."""
from __future__ import annotations

from contextlib import contextmanager

from ..errors import CatdbError


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
    import psycopg
    from psycopg import pq

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
