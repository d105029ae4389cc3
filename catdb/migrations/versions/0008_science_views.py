"""named science views: lightcurve_point, exposure_catalog, detections_in_cone()

Revision ID: 0008
Revises: 0004
"""
from pathlib import Path

from alembic import op

revision = "0008"
down_revision = '0007'
branch_labels = None
depends_on = None

#: the views, the function, their comments and grants (catdb/sql/science_views.sql, read from there)
SCIENCE_VIEWS_SQL = (Path(__file__).resolve().parents[2] / "sql" / "science_views.sql").read_text()


def upgrade() -> None:
    op.execute(SCIENCE_VIEWS_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS detections_in_cone(double precision, double precision, double precision)")
    op.execute("DROP VIEW IF EXISTS exposure_catalog")
    op.execute("DROP VIEW IF EXISTS lightcurve_point")
