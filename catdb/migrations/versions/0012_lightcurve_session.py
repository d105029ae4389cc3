"""imported light curves: lightcurve_session, lightcurve_session_point (catdb lightcurve import, ALCDEF)

Revision ID: 0012
Revises: 0011

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  New tables only; nothing existing changes.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    col = sa.Column
    op.create_table(
        "lightcurve_session",
        col("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        col("source_path", sa.Text(), nullable=False, comment="File the session was imported from (absolute path)"),
        col("source_sha256", sa.Text(), nullable=False, comment="SHA-256 of the imported file"),
        col("block", sa.Integer(), nullable=False, comment="Position of the light-curve block in the file (1 = first)"),
        col("line", sa.Integer(), nullable=False, comment="Line of the block's STARTMETADATA in the file"),
        col("object_number", sa.Integer(), nullable=True, comment="OBJECTNUMBER (minor-planet number; 0 = unnumbered)"),
        col("object_name", sa.Text(), nullable=True, comment="OBJECTNAME"),
        col("mpc_desig", sa.Text(), nullable=True, comment="MPCDESIG (MPC designation)"),
        col("session_date", sa.Date(), nullable=True, comment="SESSIONDATE (UT date of the session)"),
        col("session_time", sa.Time(), nullable=True, comment="SESSIONTIME (UT time of the session)"),
        col("filter", sa.Text(), nullable=True, comment="FILTER (filter used; C = clear)"),
        col("mag_band", sa.Text(), nullable=True, comment="MAGBAND (band the magnitudes are given in)"),
        col("observers", sa.Text(), nullable=True, comment="OBSERVERS"),
        col("contact_name", sa.Text(), nullable=True, comment="CONTACTNAME"),
        col("mpc_code", sa.Text(), nullable=True, comment="MPCCODE (MPC observatory code)"),
        col("obs_longitude", sa.Double(), nullable=True, comment="OBSLONGITUDE (east positive) [deg]"),
        col("obs_latitude", sa.Double(), nullable=True, comment="OBSLATITUDE [deg]"),
        col("differ_mags", sa.Boolean(), nullable=True,
            comment="DIFFERMAGS (magnitudes are differential, target minus comparison)"),
        col("standard", sa.Text(), nullable=True,
            comment="STANDARD (NONE, INTERNAL or TRANSFORMED: the magnitude system)"),
        col("ltc_app", sa.Text(), nullable=True,
            comment="LTCAPP (light-time correction applied: NONE, AVERAGE or POINT)"),
        col("ltc_type", sa.Text(), nullable=True, comment="LTCTYPE"),
        col("ltc_days", sa.Double(), nullable=True, comment="LTCDAYS (light-time correction) [d]"),
        col("reduced_mags", sa.Text(), nullable=True,
            comment="REDUCEDMAGS (magnitudes reduced to unit distances: NONE, AVERAGE or POINT)"),
        col("ucor_mag", sa.Double(), nullable=True,
            comment="UCORMAG (correction to unit-distance magnitudes, -5 log10(r Delta)) [mag]"),
        col("mag_adjust", sa.Double(), nullable=True, comment="MAGADJUST (zero-point adjustment applied) [mag]"),
        col("phase_angle", sa.Double(), nullable=True, comment="PHASE (solar phase angle) [deg]"),
        col("pabl", sa.Double(), nullable=True, comment="PABL (phase angle bisector longitude) [deg]"),
        col("pabb", sa.Double(), nullable=True, comment="PABB (phase angle bisector latitude) [deg]"),
        col("lcblockid", sa.Text(), nullable=True, comment="LCBLOCKID (the ALCDEF database's block id)"),
        col("n_points", sa.Integer(), nullable=False, comment="DATA lines of the session"),
        col("jd_first", sa.Double(), nullable=True, comment="First JD of the session [d]"),
        col("jd_last", sa.Double(), nullable=True, comment="Last JD of the session [d]"),
        col("meta", postgresql.JSONB(astext_type=sa.Text()), nullable=False,
            comment="Every metadata line in file order as [keyword, value text] pairs"),
        col("stage_run_id", sa.BigInteger(), nullable=False, comment="Stage run that wrote this row (provenance)"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"],
                                name=op.f("fk_lightcurve_session_stage_run_id_stage_run"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lightcurve_session")),
        comment="Imported light-curve sessions (ALCDEF blocks): catdb lightcurve import",
    )
    op.create_index("ix_lightcurve_session_stage_run_id", "lightcurve_session", ["stage_run_id"], unique=False)
    op.create_index("ix_lightcurve_session_object_number", "lightcurve_session", ["object_number"], unique=False)
    op.create_index("ix_lightcurve_session_source_path", "lightcurve_session", ["source_path"], unique=False)
    op.create_table(
        "lightcurve_session_point",
        col("session_id", sa.BigInteger(), nullable=False, comment="Session (lightcurve_session.id)"),
        col("seq", sa.Integer(), nullable=False, comment="Position of the DATA line in the session (1 = first)"),
        col("jd", sa.Double(), nullable=False,
            comment="Julian Date of the observation, as in the file (EXPJD says start, mid or end) [d]"),
        col("mjd", sa.Double(), nullable=False, comment="jd - 2400000.5 [d]"),
        col("mag", sa.Double(), nullable=False,
            comment="Magnitude (MAGBAND; see the session's DIFFERMAGS/STANDARD/REDUCEDMAGS) [mag]"),
        col("mag_err", sa.Double(), nullable=True, comment="Magnitude error (NULL: not given in the file) [mag]"),
        col("airmass", sa.Double(), nullable=True, comment="Airmass (NULL: not given in the file)"),
        col("data_text", sa.Text(), nullable=False, comment="The DATA value as written in the file"),
        sa.ForeignKeyConstraint(["session_id"], ["lightcurve_session.id"],
                                name=op.f("fk_lightcurve_session_point_session_id_lightcurve_session"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_lightcurve_session_point"),
        comment="Points of imported light-curve sessions (ALCDEF DATA lines)",
    )


def downgrade() -> None:
    op.drop_table("lightcurve_session_point")
    op.drop_index("ix_lightcurve_session_source_path", table_name="lightcurve_session")
    op.drop_index("ix_lightcurve_session_object_number", table_name="lightcurve_session")
    op.drop_index("ix_lightcurve_session_stage_run_id", table_name="lightcurve_session")
    op.drop_table("lightcurve_session")
