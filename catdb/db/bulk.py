"""Bulk loads without index maintenance: secondary indexes detached, rows COPYed, indexes rebuilt once.

PostgreSQL manual 14.4 ("Populating a Database", "Remove Indexes"): creating an index on
existing data is quicker than updating it row by row.  A bulk ingest (``catdb ingest catalog
--bulk``, or automatically for a load that is large next to the table) therefore drops the
secondary indexes of ``detection`` (every non-unique index that backs no constraint:
``(exposure_id, number)``, q3c, and any a user added), loads its files, one transaction per file as always, and
re-creates them with one sorted build each at the end.  The primary key stays (five tables
reference it; appending ascending identity values to it is cheap).

Crash safety.  Dropping an index and recording its definition (``pg_get_indexdef``) in
``detached_index`` happen in one transaction, and so do re-creating it and deleting the record:
at every instant each index either exists or is listed there, whatever is killed when.
:func:`restore_indexes` re-creates whatever is listed: ``catdb ingest`` calls it when it starts
and when it ends, and ``catdb db restore-indexes`` on demand.  A bulk loader holds a shared
session-level advisory lock (:data:`BULK_LOCK`) while it loads, and the last one to finish
rebuilds: a rebuild is skipped while another *catdb ingest run* (a running ``stage_run`` of that
session) holds the lock.  The lock is only a hint of who rebuilds: any interleaving leaves the
same rows and, at the end, the same indexes (a rebuild during another load only makes that load
maintain them again), and a lock held by any other session (a reader can take advisory locks) is
ignored.  A killed loader's lock ends with its session.

Concurrent sessions.  ``DROP INDEX`` takes an ACCESS EXCLUSIVE lock on the table for the instant
of the drop (it waits at most ``lock_timeout`` for running queries, then the load goes on
without bulk mode).  While the indexes are detached, readers get the same rows, by sequential
scans (a cone search reads the whole table); writers are not blocked.  The rebuild (plain
``CREATE INDEX``: a SHARE lock) lets readers run and makes writers wait until it commits.
"""
from __future__ import annotations

import logging

from psycopg import errors as pg_errors
from psycopg import sql

log = logging.getLogger("catdb.db.bulk")

#: advisory lock key held (shared, for the session) by every bulk load
BULK_LOCK = 0x63617464625F6275  # 'catdb_bu'
#: how long a bulk load waits for the ACCESS EXCLUSIVE lock of DROP INDEX before loading without it (ms)
DROP_LOCK_TIMEOUT_MS = 5000


def secondary_indexes(conn, table: str, keep_leading: str | None = None) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the valid, non-unique indexes of ``table`` that back no constraint,
    except those whose first column is ``keep_leading``.

    ``keep_leading='exposure_id'`` would keep ``(exposure_id, number)``, whose insertions a load
    makes at the right edge of the B-tree (new exposures have the highest ids): measured 5 %
    slower end to end than detaching it too (1.37 s against 1.29 s for 10^5 rows, 5.44 s against
    5.13 s for 5 x 10^5, best of 6 and 3), so catdb detaches every secondary index.
    """
    return [tuple(r) for r in conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
        "WHERE i.indrelid = to_regclass(%s) AND i.indisvalid AND NOT i.indisunique AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) "
        "AND (%s::text IS NULL OR a.attname IS NULL OR a.attname <> %s) ORDER BY 1",
        (table, keep_leading, keep_leading)).fetchall()]


def detached(conn, table: str | None = None) -> list[tuple[str, str, str]]:
    """(index name, table, definition) of the indexes detached and not yet re-created."""
    q = "SELECT index_name, table_name, definition FROM detached_index"
    if table is None:
        return [tuple(r) for r in conn.execute(q + " ORDER BY 1").fetchall()]
    return [tuple(r) for r in conn.execute(q + " WHERE table_name = %s ORDER BY 1", (table,)).fetchall()]


def _lock_args():
    return BULK_LOCK >> 32, BULK_LOCK & 0xFFFFFFFF


def other_bulk_loads(conn) -> list[int]:
    """Ids of the running catdb ingest runs of other sessions that hold the bulk lock."""
    hi, lo = _lock_args()
    return [r[0] for r in conn.execute(
        "SELECT DISTINCT r.id FROM pg_locks l JOIN stage_run r ON r.backend_pid = l.pid AND r.status = 'running' "
        "WHERE l.locktype = 'advisory' AND l.classid::bigint = %s AND l.objid::bigint = %s AND l.objsubid = 1 "
        "AND l.granted AND l.pid <> pg_backend_pid() ORDER BY 1", (hi, lo)).fetchall()]


def detach_indexes(conn, table: str, run_id: int | None, keep_leading: str | None = None) -> list[str] | None:
    """Start a bulk load of ``table``: take the bulk lock (shared) and drop its secondary indexes.

    Runs its own transactions (the connection must not be inside one).  The session keeps the
    shared advisory lock until :func:`end_bulk`.

    Returns
    -------
    list of str or None
        Names of the indexes now detached (dropped here or by an earlier, unfinished bulk load);
        None when the table's lock could not be had within :data:`DROP_LOCK_TIMEOUT_MS` (running
        queries), this role does not own the table, or another session holds the bulk lock
        exclusively: nothing changed, the load goes on with its indexes.
    """
    with conn.transaction():
        if not conn.execute("SELECT pg_try_advisory_lock_shared(%s)", (BULK_LOCK,)).fetchone()[0]:
            log.info("bulk load of %s: the bulk lock is held exclusively by another session; loading with "
                     "the indexes", table)
            return None
    try:
        with conn.transaction():
            conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{DROP_LOCK_TIMEOUT_MS}ms")))
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(table)))
            idx = secondary_indexes(conn, table, keep_leading)
            if idx:
                with conn.cursor() as cur:
                    cur.executemany("INSERT INTO detached_index (index_name, table_name, definition, stage_run_id) "
                                    "VALUES (%s, %s, %s, %s) ON CONFLICT (index_name) DO NOTHING",
                                    [(n, table, d, run_id) for n, d in idx])
                conn.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(", ").join(sql.Identifier(n) for n, _ in idx)))
    except (pg_errors.LockNotAvailable, pg_errors.InsufficientPrivilege) as e:
        log.info("bulk load of %s: %s; loading with its indexes", table,
                 "the table is in use (lock timeout)" if isinstance(e, pg_errors.LockNotAvailable)
                 else "this role does not own the table")
        with conn.transaction():
            conn.execute("SELECT pg_advisory_unlock_shared(%s)", (BULK_LOCK,))
        return None
    with conn.transaction():
        return [r[0] for r in detached(conn, table)]


def end_bulk(conn, table: str) -> list[str]:
    """End a bulk load started by :func:`detach_indexes`: rebuild the indexes unless another bulk load runs.

    Releases this session's shared bulk lock first (committed), then looks for other loaders: of
    two loads ending together at least one sees the other gone.  Returns the indexes re-created
    (empty when another bulk load is still running: the last one rebuilds them).
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_unlock_shared(%s)", (BULK_LOCK,))
    return restore_indexes(conn, table)


def restore_indexes(conn, table: str | None = None, force: bool = False) -> list[str]:
    """Re-create the detached indexes (of ``table``, or all) in one transaction, unless a bulk load runs.

    Two sessions restoring at once take turns on the rows of ``detached_index`` (the second finds
    them gone).  An index of the same name that exists already (re-created by hand) is kept.
    Runs its own transaction (a savepoint inside the caller's).

    Parameters
    ----------
    conn : psycopg.Connection
    table : str, optional
    force : bool
        Re-create them even while another catdb ingest is bulk loading (it then goes on with the
        indexes maintained row by row).

    Returns
    -------
    list of str
        Names re-created; empty when nothing was detached, another catdb ingest is bulk loading
        (it re-creates them when it ends), or this role does not own the table (a warning is logged).
    """
    try:
        return _restore(conn, table, force)
    except pg_errors.InsufficientPrivilege as e:  # a role that does not own the table (catdb_writer)
        log.warning("indexes listed in detached_index cannot be re-created by this role (%s): run catdb db "
                    "restore-indexes as the owner of the tables", str(e).splitlines()[0])
        return []


def _restore(conn, table, force):
    with conn.transaction():
        q = "SELECT index_name, definition FROM detached_index"
        q += "" if table is None else " WHERE table_name = %s"
        todo = conn.execute(q + " ORDER BY 1 FOR UPDATE", () if table is None else (table,)).fetchall()
        if not todo:
            return []
        others = [] if force else other_bulk_loads(conn)
        if others:
            log.info("indexes %s stay detached: catdb ingest run(s) %s are bulk loading and rebuild them when "
                     "they end", ", ".join(n for n, _ in todo), ", ".join(map(str, others)))
            return []
        done = []
        for name, ddl in todo:  # loop over the few indexes
            if conn.execute("SELECT to_regclass(%s) IS NULL", (name,)).fetchone()[0]:
                conn.execute(sql.SQL(ddl))
            conn.execute("DELETE FROM detached_index WHERE index_name = %s", (name,))
            done.append(name)
    return done
