"""Reviewers' decisions about moving-object candidates (table ``track_review``).

A candidate track of the ``movers`` stage is looked at by a person (the review page of
``catdb serve``, ``/review``: :mod:`catdb.tap.review`) and decided ``real`` (a new moving
object), ``artefact`` (not an object) or ``known`` (a real, catalogued object).  Each decision
is one ``track_review`` row written in one transaction together with its own ``stage_run``
(stage ``review``: who, when, which track), so a decision has the same provenance as any
stage output.  Decisions are history: the latest row of a track (``decided_at``, then ``id``)
is the track's decision (:data:`LATEST_SQL`).

The MPC / ADES exports (:func:`catdb.export.tracks.export_tracks`) take by default only tracks
whose decision is ``real`` or ``known`` (:data:`catdb.schema.EXPORTED_DECISIONS`); the report
(``catdb report``) shows the decisions.
"""
from __future__ import annotations

import getpass
import json
import os
from datetime import UTC

from ._version import __version__
from .errors import InputError
from .schema.review_tables import DECISIONS, EXPORTED_DECISIONS

__all__ = ["DECISIONS", "EXPORTED_DECISIONS", "LATEST_SQL", "default_reviewer", "record_decision",
           "latest_decisions", "review_history", "review_counts", "MAX_COMMENT"]

#: the latest decision of every reviewed track (one row per track)
LATEST_SQL = ("SELECT DISTINCT ON (track_id) track_id, decision, comment, reviewer, decided_at, stage_run_id, id "
              "FROM track_review ORDER BY track_id, decided_at DESC, id DESC")

#: longest comment kept [characters]
MAX_COMMENT = 4000


def default_reviewer() -> str:
    """The operating-system user running catdb (``getpass.getuser``), or ``uid <n>`` when it has no name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def record_decision(conn, track_id: int, decision: str, *, reviewer: str, comment: str | None = None) -> dict:
    """Record one decision about a track, with its ``stage_run`` (stage ``review``), in one transaction.

    Parameters
    ----------
    conn : psycopg.Connection
        A writer connection (the review is a write; ``catdb_reader`` cannot).
    track_id : int
    decision : {'real', 'artefact', 'known'}
    reviewer : str
        Who decided (``catdb serve --reviewer``, else the operating-system user).
    comment : str, optional
        Free text (at most :data:`MAX_COMMENT` characters); blank is stored as NULL.

    Returns
    -------
    dict
        ``id``, ``track_id``, ``decision``, ``comment``, ``reviewer``, ``decided_at`` (ISO 8601 UTC)
        and ``stage_run_id`` of the row written.

    Raises
    ------
    catdb.errors.InputError
        An unknown decision, no such track, an empty reviewer or a comment too long.
    """
    if decision not in DECISIONS:
        raise InputError(f"decision {decision!r}: expected one of {', '.join(DECISIONS)}", keyword="decision")
    reviewer = " ".join(str(reviewer or "").split())
    if not reviewer:
        raise InputError("a decision needs a reviewer name", keyword="reviewer")
    comment = (comment or "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise InputError(f"comment of {len(comment)} characters: at most {MAX_COMMENT}", keyword="comment")
    try:
        tid = int(track_id)
    except (TypeError, ValueError):
        raise InputError(f"track id {track_id!r}: expected a whole number", keyword="track_id") from None
    with conn.transaction():
        if conn.execute("SELECT 1 FROM track WHERE id = %s", (tid,)).fetchone() is None:
            raise InputError(f"no track {tid} in the database", keyword="track_id")
        params = {"track_id": tid, "decision": decision, "reviewer": reviewer}
        run = conn.execute(
            "INSERT INTO stage_run (stage, params, code_version, input_ids, input_count, counts, status, "
            "finished_at, backend_pid) VALUES ('review', %s, %s, %s, 1, %s, 'ok', now(), pg_backend_pid()) "
            "RETURNING id", (json.dumps(params), __version__, [tid], json.dumps({"track_review": 1}))).fetchone()[0]
        row = conn.execute(
            "INSERT INTO track_review (track_id, decision, comment, reviewer, stage_run_id) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id, decided_at", (tid, decision, comment, reviewer, run)).fetchone()
    return {"id": int(row[0]), "track_id": tid, "decision": decision, "comment": comment, "reviewer": reviewer,
            "decided_at": _iso(row[1]), "stage_run_id": int(run)}


def _iso(t):
    return None if t is None else t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def latest_decisions(conn, track_ids=None) -> dict:
    """The current decision of reviewed tracks: ``{track_id: {decision, comment, reviewer, decided_at,
    stage_run_id}}`` (all tracks, or those of ``track_ids``); unreviewed tracks are absent."""
    q = f"SELECT * FROM ({LATEST_SQL}) r"
    params = ()
    if track_ids is not None:
        q += " WHERE track_id = ANY(%s)"
        params = ([int(t) for t in track_ids],)
    out = {}
    for tid, dec, com, who, when, run, _ in conn.execute(q, params).fetchall():
        out[int(tid)] = {"decision": dec, "comment": com, "reviewer": who, "decided_at": _iso(when),
                         "stage_run_id": int(run)}
    return out


def review_history(conn, track_id: int) -> list[dict]:
    """Every decision about one track, newest first."""
    rows = conn.execute("SELECT decision, comment, reviewer, decided_at, stage_run_id FROM track_review "
                        "WHERE track_id = %s ORDER BY decided_at DESC, id DESC", (int(track_id),)).fetchall()
    return [{"decision": d, "comment": c, "reviewer": w, "decided_at": _iso(t), "stage_run_id": int(r)}
            for d, c, w, t, r in rows]


def review_counts(conn, status: str = "candidate") -> dict:
    """How far the review of the tracks of one status is: ``{'tracks': n, 'reviewed': m, 'real': .., 'artefact':
    .., 'known': ..}`` (each track counted by its latest decision)."""
    rows = conn.execute(
        f"SELECT r.decision, count(*) FROM track t LEFT JOIN ({LATEST_SQL}) r ON r.track_id = t.id "
        "WHERE t.status = %s GROUP BY r.decision", (status,)).fetchall()
    out = {"tracks": 0, "reviewed": 0, **{d: 0 for d in DECISIONS}}
    for dec, n in rows:
        out["tracks"] += int(n)
        if dec is not None:
            out["reviewed"] += int(n)
            out[dec] = int(n)
    return out
