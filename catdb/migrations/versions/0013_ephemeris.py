"""ephemeris cache and target link: ephemeris, ephemeris_target (stage ephemeris, JPL Horizons)

Revision ID: 0013
Revises: 0012

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  Two new tables, no change to existing ones.
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _run_fk(table):
    return sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"], name=op.f(f"fk_{table}_stage_run_id_stage_run"),
                                   ondelete="CASCADE")


def _run_col():
    return sa.Column("stage_run_id", sa.BigInteger(), nullable=False,
                     comment="Stage run that wrote this row (provenance)")


def upgrade() -> None:
    col = sa.Column
    op.create_table(
        "ephemeris",
        col("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        col("exposure_id", sa.BigInteger(), nullable=False, comment="Exposure the ephemeris was asked for"),
        col("target", sa.Text(), nullable=False,
            comment="Horizons identifier asked (number, designation or name, e.g. '5945', 'C/2020 F3')"),
        col("id_type", sa.Text(), nullable=False,
            comment="Horizons id_type of the query (smallbody, designation, name, majorbody, ...)"),
        col("target_name", sa.Text(), nullable=True,
            comment="Target body name Horizons returned (e.g. '5945 Roachapproach (1984 CA)')"),
        col("mjd_epoch", sa.Double(), nullable=False,
            comment="Epoch of the predicted position (UTC; the exposure's mid-time when asked by the stage) [d]"),
        col("location", sa.Text(), nullable=False,
            comment="Observer of the query: MPC code (e.g. '688'), 'lon,lat,height' of the site "
                    "(deg east, deg, km) or '500' (geocentre)"),
        col("location_kind", sa.Text(), nullable=False,
            comment="code, site or geocentre (no observatory known: positions off by the parallax)"),
        col("status", sa.Text(), nullable=False,
            comment="ok (a prediction) or failed (service error, unknown target, no row for the epoch)"),
        col("message", sa.Text(), nullable=True, comment="Error message (failed), else NULL"),
        col("attempts", sa.SmallInteger(), nullable=False,
            comment="Service calls made for the batch holding this epoch (0 = imported file)"),
        col("source", sa.Text(), nullable=False, comment="'JPL Horizons', or the path of the imported response"),
        col("ra", sa.Double(), nullable=True,
            comment="Predicted astrometric right ascension (ICRF) at mjd_epoch [deg]"),
        col("dec", sa.Double(), nullable=True, comment="Predicted astrometric declination (ICRF) at mjd_epoch [deg]"),
        col("rate_ra", sa.Double(), nullable=True, comment="Predicted motion d(RA)/dt cos(Dec) [arcsec/h]"),
        col("rate_dec", sa.Double(), nullable=True, comment="Predicted motion d(Dec)/dt [arcsec/h]"),
        col("mag", sa.REAL(), nullable=True,
            comment="Predicted apparent magnitude (APmag, V for asteroids; T-mag for comets) [mag]"),
        col("delta", sa.Double(), nullable=True, comment="Distance from the observer [AU]"),
        col("r", sa.Double(), nullable=True, comment="Distance from the Sun [AU]"),
        col("alpha", sa.REAL(), nullable=True, comment="Phase angle Sun-target-observer [deg]"),
        col("ra_3sigma", sa.Double(), nullable=True,
            comment="3-sigma uncertainty of the predicted RA (Horizons RA_3sigma) [arcsec]"),
        col("dec_3sigma", sa.Double(), nullable=True, comment="3-sigma uncertainty of the predicted Dec [arcsec]"),
        col("fetched_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
            comment="When the response was received (or imported)"),
        _run_col(),
        sa.CheckConstraint("status IN ('ok', 'failed')", name=op.f("ck_ephemeris_status")),
        sa.CheckConstraint("location_kind IN ('code', 'site', 'geocentre')", name=op.f("ck_ephemeris_location_kind")),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_ephemeris_exposure_id_exposure"),
                                ondelete="CASCADE"),
        _run_fk("ephemeris"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ephemeris")),
        comment="JPL Horizons ephemerides of named targets, one row per (target, exposure): the cache "
                "(stage ephemeris)",
    )
    op.create_index("ix_ephemeris_exposure_id", "ephemeris", ["exposure_id"], unique=False)
    op.create_index("ix_ephemeris_target", "ephemeris", ["target"], unique=False)
    op.create_index("ix_ephemeris_stage_run_id", "ephemeris", ["stage_run_id"], unique=False)
    op.create_table(
        "ephemeris_target",
        col("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        col("target", sa.Text(), nullable=False, comment="Horizons identifier of the target (as in ephemeris.target)"),
        col("target_name", sa.Text(), nullable=True, comment="Target body name Horizons returned"),
        col("track_id", sa.BigInteger(), nullable=False, comment="The track that follows the target's ephemeris"),
        col("mode", sa.Text(), nullable=False,
            comment="position (offsets from the ephemeris) or motion (rate and relative positions only: the "
                    "exposures' WCS is registered, its absolute frame unknown)"),
        col("n_exposures", sa.Integer(), nullable=False,
            comment="Exposures where the track's detections were compared with the ephemeris"),
        col("sep_median", sa.Double(), nullable=True,
            comment="Median separation detection - ephemeris (position mode; NULL in motion mode) [arcsec]"),
        col("offset_spread", sa.Double(), nullable=True,
            comment="Median distance of the offsets from their median offset (how well the track "
                    "follows the ephemeris up to a constant shift) [arcsec]"),
        col("rate_diff", sa.Double(), nullable=True,
            comment="Length of (track rate vector - mean predicted rate vector) [arcsec/h]"),
        col("uncertainty", sa.Double(), nullable=True,
            comment="Median 3-sigma uncertainty of the ephemeris (RA, Dec combined; plus the parallax "
                    "when geocentric); NULL when Horizons gave none [arcsec]"),
        col("limit_sep", sa.Double(), nullable=True,
            comment="Separation (position) or spread (motion) limit applied: max(tolerance, uncertainty) [arcsec]"),
        col("n_candidates", sa.Integer(), nullable=False,
            comment="Candidate tracks within the limits (1 = unambiguous)"),
        _run_col(),
        sa.CheckConstraint("mode IN ('position', 'motion')", name=op.f("ck_ephemeris_target_mode")),
        sa.ForeignKeyConstraint(["track_id"], ["track.id"], name=op.f("fk_ephemeris_target_track_id_track"),
                                ondelete="CASCADE"),
        _run_fk("ephemeris_target"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ephemeris_target")),
        sa.UniqueConstraint("target", "track_id", name="uq_ephemeris_target_target_track_id"),
        comment="The track identified as a named target by its JPL Horizons ephemeris (stage ephemeris)",
    )
    op.create_index("ix_ephemeris_target_track_id", "ephemeris_target", ["track_id"], unique=False)
    op.create_index("ix_ephemeris_target_stage_run_id", "ephemeris_target", ["stage_run_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_ephemeris_target_stage_run_id", table_name="ephemeris_target")
    op.drop_index("ix_ephemeris_target_track_id", table_name="ephemeris_target")
    op.drop_table("ephemeris_target")
    op.drop_index("ix_ephemeris_stage_run_id", table_name="ephemeris")
    op.drop_index("ix_ephemeris_target", table_name="ephemeris")
    op.drop_index("ix_ephemeris_exposure_id", table_name="ephemeris")
    op.drop_table("ephemeris")
