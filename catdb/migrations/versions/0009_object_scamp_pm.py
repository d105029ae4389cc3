"""object: scamp_source, epoch, pmra, pmdec, pmra_err, pmdec_err (SCAMP merged catalogues)

Revision ID: 0009
Revises: 0008

The DDL is written out here as it was at this revision (a migration does not import the live
schema): SCAMP's SOURCE_NUMBER as the key of an object loaded from a SCAMP full/merged
catalogue, and the merged catalogue's reference epoch and proper motions, with their comments
(units).
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("scamp_source", sa.Integer(), "SCAMP SOURCE_NUMBER of the merged source (objects loaded by ingest-scamp; "
                                   "unique within its stage run)"),
    ("epoch", sa.Double(), "Julian epoch of ra/dec (SCAMP merged EPOCH: 2000 + (MJD - 51544.5) / 365.25) [yr]"),
    ("pmra", sa.REAL(), "Proper motion in RA times cos(dec) (SCAMP PMALPHA_J2000) [mas/yr]"),
    ("pmdec", sa.REAL(), "Proper motion in Dec (SCAMP PMDELTA_J2000) [mas/yr]"),
    ("pmra_err", sa.REAL(), "Error of pmra (SCAMP PMALPHAERR_J2000) [mas/yr]"),
    ("pmdec_err", sa.REAL(), "Error of pmdec (SCAMP PMDELTAERR_J2000) [mas/yr]"),
)


def upgrade() -> None:
    for name, type_, comment in COLUMNS:
        op.add_column("object", sa.Column(name, type_, nullable=True, comment=comment))


def downgrade() -> None:
    for name, _, _ in reversed(COLUMNS):
        op.drop_column("object", name)
