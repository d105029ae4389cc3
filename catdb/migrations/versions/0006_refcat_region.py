"""refcat_region: sky regions fetched by catdb refcat fetch (the fetch cache)

Revision ID: 0006
Revises: 0004

The DDL is written out here as it was at this revision (a migration does not import the live
schema): the table with its column comments, foreign key and indexes.
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "refcat_region",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("catalog", sa.Text(), nullable=False,
                  comment="Reference catalogue name (refcat_source.catalog: gaia-dr3, ps1, ucac4, ...)"),
        sa.Column("ra", sa.Double(), nullable=False,
                  comment="Right ascension of the centre of the fetched cone (ICRS) [deg]"),
        sa.Column("dec", sa.Double(), nullable=False, comment="Declination of the centre of the fetched cone (ICRS) [deg]"),
        sa.Column("radius_deg", sa.Double(), nullable=False, comment="Radius of the fetched cone [deg]"),
        sa.Column("mag_limit", sa.Double(), nullable=True, comment="Faint magnitude limit of the query (NULL: none) [mag]"),
        sa.Column("n_rows", sa.Integer(), nullable=False, comment="Rows the service returned for this cone"),
        sa.Column("n_new", sa.Integer(), nullable=False,
                  comment="Rows written to refcat_source (not already stored from an earlier region)"),
        sa.Column("service", sa.Text(), nullable=False, comment="Service queried (e.g. VizieR at vizier.cds.unistra.fr)"),
        sa.Column("query", sa.Text(), nullable=False, comment="Query sent (catalogue id, cone, columns, filters)"),
        sa.Column("fetched_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the cone was fetched"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=False, comment="Stage run that wrote this row (provenance)"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"], name=op.f("fk_refcat_region_stage_run_id_stage_run"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_refcat_region")),
        comment="Sky regions of reference catalogues fetched from a service (catdb refcat fetch), the fetch cache",
    )
    op.create_index("ix_refcat_region_catalog", "refcat_region", ["catalog"], unique=False)
    op.create_index("ix_refcat_region_stage_run_id", "refcat_region", ["stage_run_id"], unique=False)


def downgrade() -> None:
    op.drop_table("refcat_region")
