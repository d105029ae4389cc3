"""forced_source.aper_corr: the aperture correction applied to the calibrated magnitude

Revision ID: 0010
Revises: 0009

The DDL is written out here as it was at this revision (a migration does not import the live
schema): the column with its comment (unit mag), and the new comment of ``mag``.  Rows written
before this migration keep NULL (no correction was applied).
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MAG_BEFORE = "Calibrated magnitude (instrumental + zeropoint) [mag]"
MAG_AFTER = "Calibrated total magnitude: -2.5 log10(flux) + aper_corr + zeropoint [mag]"


def upgrade() -> None:
    op.add_column("forced_source", sa.Column(
        "aper_corr", sa.REAL(), nullable=True,
        comment="Aperture correction to total flux: 2.5 log10 of the bright stars' median fraction of their flux "
                "inside aperture_radius (growth curve; <= 0; 0 when not measured) [mag]"))
    op.alter_column("forced_source", "mag", comment=MAG_AFTER, existing_comment=MAG_BEFORE)


def downgrade() -> None:
    op.alter_column("forced_source", "mag", comment=MAG_BEFORE, existing_comment=MAG_AFTER)
    op.drop_column("forced_source", "aper_corr")
