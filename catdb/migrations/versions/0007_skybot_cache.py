"""skybot cache: skybot_query, skybot_object; track.skybot_rate_diff, track.skybot_delta (stage skybot)

Revision ID: 0007
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = '0006'
branch_labels = None
depends_on = None


def _run_fk(table):
    return sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"], name=op.f(f"fk_{table}_stage_run_id_stage_run"),
                                   ondelete="CASCADE")


def upgrade() -> None:
    op.add_column("track", sa.Column(
        "skybot_rate_diff", sa.Double(), nullable=True,
        comment="Length of (track rate vector - SkyBoT predicted rate vector) [arcsec/h]"))
    op.add_column("track", sa.Column(
        "skybot_delta", sa.Double(), nullable=True,
        comment="Distance from the observer of the SkyBoT match [AU]"))
    op.create_table(
        "skybot_query",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("exposure_id", sa.BigInteger(), nullable=False, comment="Exposure the cone was asked for"),
        sa.Column("mjd_epoch", sa.Double(), nullable=False,
                  comment="Epoch of the query (UTC; the exposure's mid-time, or the epoch of an imported response) [d]"),
        sa.Column("ra", sa.Double(), nullable=False, comment="Cone centre, right ascension (ICRS) [deg]"),
        sa.Column("dec", sa.Double(), nullable=False, comment="Cone centre, declination (ICRS) [deg]"),
        sa.Column("radius", sa.Double(), nullable=False, comment="Cone radius [arcsec]"),
        sa.Column("observatory_code", sa.Text(), nullable=False,
                  comment="MPC observatory code of the query (500 = geocentre)"),
        sa.Column("status", sa.Text(), nullable=False,
                  comment="ok (objects returned), empty (none in the cone) or failed (service error)"),
        sa.Column("n_rows", sa.Integer(), nullable=False, comment="Objects returned (rows in skybot_object)"),
        sa.Column("attempts", sa.SmallInteger(), nullable=False,
                  comment="Service calls made for this cone (retries included; 0 = imported file)"),
        sa.Column("message", sa.Text(), nullable=True, comment="Error message of the last attempt (failed), else NULL"),
        sa.Column("source", sa.Text(), nullable=False, comment="'SkyBoT service', or the path of the imported VOTable"),
        sa.Column("fetched_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the response was received (or imported)"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=False, comment="Stage run that wrote this row (provenance)"),
        sa.CheckConstraint("status IN ('ok', 'empty', 'failed')", name=op.f("ck_skybot_query_status")),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_skybot_query_exposure_id_exposure"),
                                ondelete="CASCADE"),
        _run_fk("skybot_query"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skybot_query")),
        comment="SkyBoT cone searches (one per exposure) and their outcome: the cache index (stage skybot)",
    )
    op.create_index("ix_skybot_query_exposure_id", "skybot_query", ["exposure_id"], unique=False)
    op.create_index("ix_skybot_query_stage_run_id", "skybot_query", ["stage_run_id"], unique=False)
    op.create_table(
        "skybot_object",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("query_id", sa.BigInteger(), nullable=False, comment="SkyBoT cone search that returned this object"),
        sa.Column("exposure_id", sa.BigInteger(), nullable=False, comment="Exposure of the query"),
        sa.Column("mjd_epoch", sa.Double(), nullable=False, comment="Epoch of the predicted position (UTC) [d]"),
        sa.Column("number", sa.Text(), nullable=True, comment="Minor-planet number (NULL when unnumbered)"),
        sa.Column("name", sa.Text(), nullable=False, comment="Name or provisional designation"),
        sa.Column("class", sa.Text(), nullable=True,
                  comment="SkyBoT dynamical class (e.g. MB>Middle, NEA>Apollo, KBO>Detached, Comet)"),
        sa.Column("ra", sa.Double(), nullable=False,
                  comment="Predicted right ascension (astrometric J2000) at mjd_epoch [deg]"),
        sa.Column("dec", sa.Double(), nullable=False, comment="Predicted declination (astrometric J2000) at mjd_epoch [deg]"),
        sa.Column("rate_ra", sa.Double(), nullable=True, comment="Predicted motion d(RA)/dt cos(Dec) [arcsec/h]"),
        sa.Column("rate_dec", sa.Double(), nullable=True, comment="Predicted motion d(Dec)/dt [arcsec/h]"),
        sa.Column("mag_v", sa.REAL(), nullable=True, comment="Predicted V magnitude [mag]"),
        sa.Column("pos_err", sa.Double(), nullable=True, comment="Uncertainty of the predicted position [arcsec]"),
        sa.Column("center_dist", sa.Double(), nullable=True, comment="Distance from the cone centre [arcsec]"),
        sa.Column("dist_geo", sa.Double(), nullable=True,
                  comment="Distance from the observer (geocentric for code 500) [AU]"),
        sa.Column("dist_helio", sa.Double(), nullable=True, comment="Distance from the Sun [AU]"),
        sa.Column("fetched_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the response was received (or imported)"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=False, comment="Stage run that wrote this row (provenance)"),
        sa.ForeignKeyConstraint(["query_id"], ["skybot_query.id"], name=op.f("fk_skybot_object_query_id_skybot_query"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_skybot_object_exposure_id_exposure"),
                                ondelete="CASCADE"),
        _run_fk("skybot_object"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_skybot_object")),
        comment="Known Solar System objects in each SkyBoT cone: the SkyBoT cache (stage skybot)",
    )
    op.create_index("ix_skybot_object_query_id", "skybot_object", ["query_id"], unique=False)
    op.create_index("ix_skybot_object_exposure_id", "skybot_object", ["exposure_id"], unique=False)
    op.create_index("ix_skybot_object_stage_run_id", "skybot_object", ["stage_run_id"], unique=False)
    op.create_index("ix_skybot_object_q3c", "skybot_object", [sa.literal_column("q3c_ang2ipix(ra, dec)")],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_skybot_object_q3c", table_name="skybot_object")
    op.drop_index("ix_skybot_object_stage_run_id", table_name="skybot_object")
    op.drop_index("ix_skybot_object_exposure_id", table_name="skybot_object")
    op.drop_index("ix_skybot_object_query_id", table_name="skybot_object")
    op.drop_table("skybot_object")
    op.drop_index("ix_skybot_query_stage_run_id", table_name="skybot_query")
    op.drop_index("ix_skybot_query_exposure_id", table_name="skybot_query")
    op.drop_table("skybot_query")
    op.drop_column("track", "skybot_delta")
    op.drop_column("track", "skybot_rate_diff")
