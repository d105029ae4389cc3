"""Table ``track_review``: an astronomer's decision about a moving-object candidate.

Written by the review page of ``catdb serve`` (``/review``, :mod:`catdb.tap.review`) through
:func:`catdb.review.record_decision`; one row per decision, each with its own ``stage_run`` of
stage ``review`` (who, when, which track).  Decisions are kept as history: the latest row of a
track (largest ``decided_at``, then ``id``) is its decision.  ``catdb export mpc`` / ``ades``
take only tracks whose latest decision is ``real`` or ``known`` unless ``--all``.  Kept in its
own module so the table is added by its own migration (0015) without editing
:mod:`catdb.schema.tables`.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, Index, Table, Text, func

from .tables import C, metadata, pk, run_fk

#: what a reviewer can decide about a candidate
DECISIONS = ("real", "artefact", "known")
#: decisions whose tracks the MPC/ADES exports take by default
EXPORTED_DECISIONS = ("real", "known")

track_review = Table(
    "track_review", metadata,
    pk(),
    C("track_id", BigInteger, "Track decided about", ForeignKey("track.id", ondelete="CASCADE"), nullable=False),
    C("decision", Text, "real (a new moving object), artefact (not an object: noise, cosmic rays, a star's "
      "wing, a bad link) or known (a real, already catalogued object)", nullable=False),
    C("comment", Text, "Reviewer's comment (NULL when none was written)"),
    C("reviewer", Text, "Who decided: the --reviewer name of catdb serve, else the operating-system user "
      "that ran it", nullable=False),
    C("decided_at", DateTime(timezone=True), "When the decision was recorded", nullable=False,
      server_default=func.now()),
    run_fk(nullable=False),
    CheckConstraint("decision IN ('real', 'artefact', 'known')", name="decision"),
    comment="Reviewers' decisions about moving-object candidates (catdb serve /review); the latest per track "
            "is its decision, earlier ones are history",
)
Index("ix_track_review_track_id", track_review.c.track_id, track_review.c.decided_at)
Index("ix_track_review_stage_run_id", track_review.c.stage_run_id)
