"""refcat_region: sky regions fetched by catdb refcat fetch (the fetch cache)

Revision ID: 0006
Revises: 0004

Created from :mod:`catdb.schema.refcat_tables` (the source of truth): the table with its
column comments, foreign key and indexes.
"""
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from catdb.schema.refcat_tables import refcat_region

    refcat_region.create(op.get_bind())


def downgrade() -> None:
    op.drop_table("refcat_region")
