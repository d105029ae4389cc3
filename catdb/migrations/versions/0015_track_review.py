"""track_review: reviewers' decisions about moving-object candidates (catdb serve /review)

Revision ID: 0015
Revises: 0014

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  One new table, no change to existing ones.  Every row references the ``stage_run``
(stage ``review``) that recorded it; the latest row of a track is its decision.
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    col = sa.Column
    op.create_table(
        "track_review",
        col("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        col("track_id", sa.BigInteger(), nullable=False, comment="Track decided about"),
        col("decision", sa.Text(), nullable=False,
            comment="real (a new moving object), artefact (not an object: noise, cosmic rays, a star's "
                    "wing, a bad link) or known (a real, already catalogued object)"),
        col("comment", sa.Text(), nullable=True, comment="Reviewer's comment (NULL when none was written)"),
        col("reviewer", sa.Text(), nullable=False,
            comment="Who decided: the --reviewer name of catdb serve, else the operating-system user "
                    "that ran it"),
        col("decided_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
            comment="When the decision was recorded"),
        col("stage_run_id", sa.BigInteger(), nullable=False, comment="Stage run that wrote this row (provenance)"),
        sa.CheckConstraint("decision IN ('real', 'artefact', 'known')", name=op.f("ck_track_review_decision")),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], name=op.f("fk_track_review_track_id_track"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"],
                                name=op.f("fk_track_review_stage_run_id_stage_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_track_review")),
        comment="Reviewers' decisions about moving-object candidates (catdb serve /review); the latest per track "
                "is its decision, earlier ones are history",
    )
    op.create_index("ix_track_review_track_id", "track_review", ["track_id", "decided_at"], unique=False)
    op.create_index("ix_track_review_stage_run_id", "track_review", ["stage_run_id"], unique=False)
    # the default privileges of 0001 grant catdb_reader SELECT and catdb_writer SELECT/INSERT/UPDATE/DELETE
    # on new tables when the migration runs as the role that set them; say it explicitly otherwise
    op.execute("""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_writer') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON track_review TO catdb_writer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    REVOKE ALL ON track_review FROM catdb_reader;
    GRANT SELECT ON track_review TO catdb_reader;
  END IF;
END $$;
""")


def downgrade() -> None:
    op.drop_index("ix_track_review_stage_run_id", table_name="track_review")
    op.drop_index("ix_track_review_track_id", table_name="track_review")
    op.drop_table("track_review")
