"""xmatch: cross-matches of detections (stage xmatch)

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "xmatch",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("detection_id", sa.BigInteger(), nullable=False, comment="Detection matched"),
        sa.Column("catalog", sa.Text(), nullable=False,
                  comment="Counterpart catalogue: refcat_source.catalog name, or 'detection'"),
        sa.Column("ref_id", sa.BigInteger(), nullable=False,
                  comment="Counterpart: refcat_source.id, or detection.id when catalog = 'detection'"),
        sa.Column("sep_arcsec", sa.Double(), nullable=False,
                  comment="Angular separation detection - counterpart (at the exposure epoch with use_pm) [arcsec]"),
        sa.Column("dra_arcsec", sa.Double(), nullable=False, comment="(RA_det - RA_ref) cos(Dec_det) [arcsec]"),
        sa.Column("ddec_arcsec", sa.Double(), nullable=False, comment="Dec_det - Dec_ref [arcsec]"),
        sa.Column("rank", sa.SmallInteger(), nullable=False,
                  comment="Rank of the counterpart by separation for this detection (1 = nearest)"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=False,
                  comment="Stage run that wrote this row (provenance)"),
        sa.ForeignKeyConstraint(["detection_id"], ["detection.id"], name=op.f("fk_xmatch_detection_id_detection"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"], name=op.f("fk_xmatch_stage_run_id_stage_run"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_xmatch")),
        comment="Cross-matches of detections with a reference catalogue or another detection set (stage xmatch)",
    )
    op.create_index("ix_xmatch_detection_id", "xmatch", ["detection_id"], unique=False)
    op.create_index("ix_xmatch_stage_run_id", "xmatch", ["stage_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_xmatch_stage_run_id", table_name="xmatch")
    op.drop_index("ix_xmatch_detection_id", table_name="xmatch")
    op.drop_table("xmatch")
