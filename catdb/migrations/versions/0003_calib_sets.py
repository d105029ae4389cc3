"""exposure_set table and detection_calibrated view

Revision ID: 0003
Revises: 0002
"""
from pathlib import Path

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: the view, its comments and grants (the same text as catdb/sql/views.sql, read from there)
VIEWS_SQL = (Path(__file__).resolve().parents[2] / "sql" / "views.sql").read_text()


def upgrade() -> None:
    op.create_table(
        "exposure_set",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("name", sa.Text(), nullable=False,
                  comment="Name of the exposure set (catdb exposures select --name; stages --exposures)"),
        sa.Column("exposure_id", sa.BigInteger(), nullable=False, comment="Exposure in the set"),
        sa.Column("criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                  comment="Selection criteria the set was made with (max_seeing, band, where, ...)"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the set was saved"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_exposure_set_exposure_id_exposure"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposure_set")),
        sa.UniqueConstraint("name", "exposure_id", name="uq_exposure_set_name_exposure_id"),
        comment="Named sets of exposures (catdb exposures select), usable as stage inputs (--exposures NAME)",
    )
    op.create_index("ix_exposure_set_exposure_id", "exposure_set", ["exposure_id"], unique=False)
    op.execute(VIEWS_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS detection_calibrated")
    op.drop_index("ix_exposure_set_exposure_id", table_name="exposure_set")
    op.drop_table("exposure_set")
