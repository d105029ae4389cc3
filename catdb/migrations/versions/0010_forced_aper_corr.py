"""forced_source.aper_corr: the aperture correction applied to the calibrated magnitude

Revision ID: 0010
Revises: 0009

The column is that of :data:`catdb.schema.tables.forced_source` (the source of truth), with its
comment (unit mag); rows written before this migration keep NULL (no correction was applied).
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from catdb.schema.tables import forced_source

    op.add_column("forced_source", forced_source.c["aper_corr"]._copy())
    op.alter_column("forced_source", "mag", comment=forced_source.c["mag"].comment,
                    existing_comment="Calibrated magnitude (instrumental + zeropoint) [mag]")


def downgrade() -> None:
    op.alter_column("forced_source", "mag", comment="Calibrated magnitude (instrumental + zeropoint) [mag]")
    op.drop_column("forced_source", "aper_corr")
