"""Provenance: the ``stage_run`` row every unit of work that writes to the database records.

:func:`start_run` inserts a run (status ``running``) and commits it, so even a crash leaves a
trace; :func:`finish_run` stores its inputs and output counts with status ``ok`` inside the unit of
work's transaction; :func:`fail_run` marks it ``failed`` after that transaction was rolled back;
:func:`reap_dead_runs` marks ``failed`` the runs whose database session is gone.

Used by :func:`catdb.stages.base.run_stage` (registered stages) and by the units of work that are not
stages (``catdb.ingest``: catalogue, SCAMP, reference-catalogue, SkyBoT, Horizons, ALCDEF and
VASCO60 loads), so that everything written has provenance.  This module sits in the database layer
(:mod:`catdb.db`) so that ingest need not import the stage framework.
"""
from __future__ import annotations

import json

import numpy as np
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus

from .._version import __version__
from ..errors import CatdbError

#: ``stage_run.error`` of a run whose database session ended before it finished
INTERRUPTED = "interrupted: the session that ran it ended before it finished (client killed, connection lost " \
              "or server restarted); nothing it had not committed was kept"

_DEAD_RUNS = """
UPDATE stage_run r SET status = 'failed', finished_at = now(),
       error = %s || ' (database session pid ' || r.backend_pid || ')'
WHERE r.status = 'running' AND r.backend_pid IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                  WHERE a.pid = r.backend_pid AND (a.backend_start = r.backend_start OR a.backend_start IS NULL))
RETURNING r.id"""


def reap_dead_runs(conn) -> list[int]:
    """Mark ``failed`` (interrupted) every run still ``running`` whose database session is gone.

    Each run records the process id and start time of the session that runs it
    (``stage_run.backend_pid``, ``backend_start``); a run whose session no longer appears in
    ``pg_stat_activity`` (a killed client, a lost connection, a restarted server) can never
    finish, and its uncommitted work was rolled back by the server.  A session of another role
    whose start time this role may not see counts as alive (never a live run marked failed).
    Runs recorded before migration 0014 (no ``backend_pid``) are left alone.

    Parameters
    ----------
    conn : psycopg.Connection
        Runs in its own transaction (or the caller's, when one is open).

    Returns
    -------
    list of int
        Ids of the runs marked failed.
    """
    with conn.transaction():
        return [r[0] for r in conn.execute(_DEAD_RUNS, (INTERRUPTED,)).fetchall()]


def start_run(conn, stage: str, params: dict, where: str | None = None) -> int:
    """Insert a ``stage_run`` row with status running and commit it; returns its id.

    Used by :func:`run_stage` and by units of work that are not registered
    stages (ingest), so that everything written has provenance.  The row records the
    session (``backend_pid``, ``backend_start``) so that a run whose session dies is found and
    marked failed by :func:`reap_dead_runs`, which runs here first.
    """
    reap_dead_runs(conn)
    with conn.transaction():
        return conn.execute(
            "INSERT INTO stage_run (stage, params, code_version, input_where, backend_pid, backend_start) "
            "SELECT %s, %s, %s, %s, pg_backend_pid(), "
            "(SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()) RETURNING id",
            (stage, json.dumps(params, default=str), __version__, where)).fetchone()[0]


def finish_run(conn, run_id: int, *, inputs=None, counts=None, status="ok", error=None) -> None:
    conn.execute(
        "UPDATE stage_run SET status = %s, error = %s, finished_at = now(), "
        "input_ids = COALESCE(%s, input_ids), input_count = COALESCE(%s, input_count), "
        "counts = COALESCE(%s, counts) WHERE id = %s",
        (status, error, inputs, None if inputs is None else len(inputs),
         None if counts is None else json.dumps(counts, default=_jsonable), run_id))


def fail_run(conn, run_id: int, exc: BaseException) -> None:
    """Mark a run failed (after its transaction was rolled back).

    A lost connection cannot record anything: the run is then marked failed (interrupted) by
    :func:`reap_dead_runs` the next time catdb looks.
    """
    msg = "interrupted (KeyboardInterrupt)" if isinstance(exc, KeyboardInterrupt) else f"{type(exc).__name__}: {exc}"
    try:
        if conn.info.transaction_status == TransactionStatus.INERROR:
            conn.rollback()
        with conn.transaction():
            finish_run(conn, run_id, status="failed", error=msg)
    except (psycopg.OperationalError, psycopg.InterfaceError):
        if not isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, KeyboardInterrupt)):
            raise


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def exposure_set_condition(conn, name: str) -> str:
    """SQL condition (alias ``e``) restricting exposures to the named set of ``exposure_set``.

    Parameters
    ----------
    conn : psycopg.Connection
    name : str
        Set name (``catdb exposures select --name``).

    Returns
    -------
    str
        ``e.id IN (SELECT exposure_id FROM exposure_set WHERE name = '<name>')`` with the name
        quoted as an SQL literal, ready to be AND-ed to a ``--where`` condition.

    Raises
    ------
    catdb.errors.CatdbError
        No set of that name (the message lists the sets there are).
    """
    with conn.transaction():  # no transaction left open: run_stage commits its stage_run row by itself
        found = conn.execute("SELECT EXISTS (SELECT 1 FROM exposure_set WHERE name = %s)", (name,)).fetchone()[0]
        known = [r[0] for r in conn.execute("SELECT DISTINCT name FROM exposure_set ORDER BY 1").fetchall()]
    if not found:
        raise CatdbError(f"--exposures: no exposure set named {name!r}; sets: {', '.join(known) or 'none'} "
                         f"(make one with `catdb exposures select --name NAME ...`)")
    cond = sql.SQL("e.id IN (SELECT exposure_id FROM exposure_set WHERE name = {})").format(sql.Literal(name))
    return cond.as_string(conn)
