"""exposure: astrometric state (wcs_status, source, reference catalogue, stars, RMS, run), pointing, CCD temperature; night filled

Revision ID: 0011
Revises: 0010

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  Existing rows: an exposure with WCS cards gets ``wcs_status = 'header'`` (where every
earlier catdb took its positions from), the others ``'none'``.  ``night`` is filled where
``mjd_mid`` and ``site_lon`` are known: the local date at the start of the night, i.e. the date
of local mean solar time minus 12 h (``floor(mjd_mid + site_lon/360 - 0.5)`` days after MJD 0,
1858-11-17), so a night never changes at local midnight.
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_STATUS = ("header", "solved", "registered", "approximate", "none")


def upgrade() -> None:
    add = lambda *a, **k: op.add_column("exposure", sa.Column(*a, **k))  # noqa: E731
    add("pointing_ra", sa.Double(), nullable=True,
        comment="Commanded pointing RA from the header (OBJCTRA, RA, TELRA; not a WCS) [deg]")
    add("pointing_dec", sa.Double(), nullable=True,
        comment="Commanded pointing Dec from the header (OBJCTDEC, DEC, TELDEC; not a WCS) [deg]")
    add("ccd_temp", sa.REAL(), nullable=True, comment="CCD temperature (CCD-TEMP) [deg_C]")
    add("wcs_status", sa.Text(), nullable=False, server_default=sa.text("'none'"),
        comment="Astrometric state: header, solved, registered, approximate or none")
    add("wcs_source", sa.Text(), nullable=True,
        comment="Where the WCS came from (FITS header, SCAMP, astrometry.net, registration to exposure N, "
                "pointing keywords), or why there is none")
    add("wcs_refcat", sa.Text(), nullable=True, comment="Reference catalogue of the astrometric solution")
    add("wcs_nstars", sa.Integer(), nullable=True, comment="Number of stars the astrometric solution used")
    add("wcs_rms", sa.REAL(), nullable=True, comment="RMS of the astrometric solution's star residuals [arcsec]")
    add("wcs_run_id", sa.BigInteger(), nullable=True, comment="Stage run (solve) that wrote the WCS")
    op.create_foreign_key("fk_exposure_wcs_run_id_stage_run", "exposure", "stage_run", ["wcs_run_id"], ["id"],
                          ondelete="SET NULL")
    op.create_check_constraint("ck_exposure_wcs_status", "exposure",
                               "wcs_status IN (" + ",".join(f"'{s}'" for s in _STATUS) + ")")
    op.execute("UPDATE exposure SET wcs_status = 'header', wcs_source = 'FITS header' WHERE wcs_header IS NOT NULL")
    op.execute("UPDATE exposure SET wcs_source = 'no WCS cards in the header' WHERE wcs_header IS NULL")
    op.execute("UPDATE exposure SET night = DATE '1858-11-17' + floor(mjd_mid + site_lon / 360.0 - 0.5)::int "
               "WHERE night IS NULL AND mjd_mid IS NOT NULL AND site_lon IS NOT NULL")


def downgrade() -> None:
    op.drop_constraint("ck_exposure_wcs_status", "exposure", type_="check")
    op.drop_constraint("fk_exposure_wcs_run_id_stage_run", "exposure", type_="foreignkey")
    for name in ("wcs_run_id", "wcs_rms", "wcs_nstars", "wcs_refcat", "wcs_source", "wcs_status", "ccd_temp",
                 "pointing_dec", "pointing_ra"):
        op.drop_column("exposure", name)
