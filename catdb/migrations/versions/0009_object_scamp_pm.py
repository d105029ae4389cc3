"""object: scamp_source, epoch, pmra, pmdec, pmra_err, pmdec_err (SCAMP merged catalogues)

Revision ID: 0009
Revises: 0008

The columns are those of :data:`catdb.schema.tables.object_` (the source of truth), with
their comments (units): SCAMP's SOURCE_NUMBER as the key of an object loaded from a SCAMP
full/merged catalogue, and the merged catalogue's reference epoch and proper motions.
"""
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = ("scamp_source", "epoch", "pmra", "pmdec", "pmra_err", "pmdec_err")


def upgrade() -> None:
    from catdb.schema.tables import object_

    for name in COLUMNS:
        c = object_.c[name]
        op.add_column("object", c._copy())


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("object", name)
