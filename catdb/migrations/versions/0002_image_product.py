"""image_product: files written by stages (reduced images, catalogues, coadds)

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_product",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("exposure_id", sa.BigInteger(), nullable=True,
                  comment="Exposure the product derives from (null for coadds)"),
        sa.Column("kind", sa.Text(), nullable=False,
                  comment="reduced, catalog, coadd, master_bias, master_flat, cutout, ..."),
        sa.Column("path", sa.Text(), nullable=False, comment="File written"),
        sa.Column("sha256", sa.Text(), nullable=True, comment="SHA-256 of the file"),
        sa.Column("hdu", sa.SmallInteger(), server_default=sa.text("0"), nullable=False,
                  comment="HDU holding the product"),
        sa.Column("band", sa.Text(), nullable=True, comment="Band of the product"),
        sa.Column("input_ids", postgresql.ARRAY(sa.BigInteger()), nullable=True,
                  comment="Exposures combined (coadds, master calibrations)"),
        sa.Column("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                  comment="Product details (combine method, frames skipped and why, SExtractor config, ...)"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=False,
                  comment="Stage run that wrote this row (provenance)"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_image_product_exposure_id_exposure"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"],
                                name=op.f("fk_image_product_stage_run_id_stage_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_image_product")),
        comment="Files written by stages (reduced images, catalogues, coadds, master calibrations)",
    )
    op.create_index("ix_image_product_exposure_id", "image_product", ["exposure_id", "kind"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_image_product_exposure_id", table_name="image_product")
    op.drop_table("image_product")
