"""exposure_set table and detection_calibrated view

Revision ID: 0003
Revises: 0002

The view's SQL is written out here as it was at this revision (a migration does not read the
live code); a later change to the view is a new migration that drops and re-creates it.
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: the view, its comments and grants
VIEWS_SQL = r"""-- catdb views of migration 0003 (as at this revision).
--
-- detection_calibrated: every detection with its calibrated magnitude from its exposure's latest
-- ok zeropoint (the newest zeropoint row with ok = true; NULL columns when the exposure has none):
--   mag_cal    = mag_auto + zp
--   magerr_cal = sqrt(magerr_auto^2 + zp_err^2)
-- zp_band is the band the zeropoint calibrates to; quality_flags are the exposure's bits
-- (catdb.schema.QUALITY_FLAGS), so `WHERE quality_flags = 0` keeps clean exposures only.
-- The view names its detection columns (join detection ON id for the others): a migration
-- that alters one of these columns must drop and re-create the view.
CREATE VIEW detection_calibrated AS
SELECT d.id, d.exposure_id, d.number, d.ra, d.dec, d.ra_err, d.dec_err, d.x, d.y,
       d.flux_auto, d.fluxerr_auto, d.mag_auto, d.magerr_auto, d.fwhm, d.class_star, d.flags,
       e.mjd_mid,
       e.band,
       z.id AS zeropoint_id,
       z.zp,
       z.zp_err,
       z.band AS zp_band,
       z.method AS zp_method,
       d.mag_auto + z.zp AS mag_cal,
       sqrt(d.magerr_auto::double precision ^ 2 + COALESCE(z.zp_err, 0) ^ 2) AS magerr_cal,
       e.quality_flags
FROM detection d
JOIN exposure e ON e.id = d.exposure_id
LEFT JOIN LATERAL (
    SELECT zz.id, zz.zp, zz.zp_err, zz.band, zz.method
    FROM zeropoint zz
    WHERE zz.exposure_id = d.exposure_id AND zz.ok AND zz.zp IS NOT NULL
    ORDER BY zz.stage_run_id DESC, zz.id DESC
    LIMIT 1
) z ON true;

COMMENT ON VIEW detection_calibrated IS 'Detections with calibrated magnitudes from the latest ok zeropoint of their exposure';
COMMENT ON COLUMN detection_calibrated.mjd_mid IS 'Modified Julian Date of mid-exposure (UTC) [d]';
COMMENT ON COLUMN detection_calibrated.band IS 'Normalised photometric band of the exposure';
COMMENT ON COLUMN detection_calibrated.zeropoint_id IS 'Zeropoint row used (latest ok zeropoint of the exposure)';
COMMENT ON COLUMN detection_calibrated.zp IS 'Zeropoint: calibrated = instrumental + zp [mag]';
COMMENT ON COLUMN detection_calibrated.zp_err IS 'Zeropoint error [mag]';
COMMENT ON COLUMN detection_calibrated.zp_band IS 'Band the zeropoint calibrates to';
COMMENT ON COLUMN detection_calibrated.zp_method IS 'Calibration method (pp, regression, relative, ensemble)';
COMMENT ON COLUMN detection_calibrated.mag_cal IS 'Calibrated magnitude mag_auto + zp [mag]';
COMMENT ON COLUMN detection_calibrated.magerr_cal IS 'Calibrated magnitude error sqrt(magerr_auto^2 + zp_err^2) [mag]';
COMMENT ON COLUMN detection_calibrated.quality_flags IS 'Exposure quality flags (see catdb.schema.QUALITY_FLAGS)';
-- the detection columns keep detection's descriptions and units
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT a.attname, col_description('detection'::regclass, a.attnum) AS c FROM pg_attribute a
           WHERE a.attrelid = 'detection'::regclass AND a.attnum > 0 AND a.attname IN
                 (SELECT attname FROM pg_attribute WHERE attrelid = 'detection_calibrated'::regclass) LOOP
    EXECUTE format('COMMENT ON COLUMN detection_calibrated.%I IS %L', r.attname, r.c);
  END LOOP;
END $$;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    GRANT SELECT ON detection_calibrated TO catdb_reader;
    GRANT SELECT ON exposure_set TO catdb_reader;
  END IF;
END $$;
"""


def upgrade() -> None:
    op.create_table(
        "exposure_set",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False, comment="Primary key"),
        sa.Column("name", sa.Text(), nullable=False,
                  comment="Name of the exposure set (catdb exposures select --name; stages --exposures)"),
        sa.Column("exposure_id", sa.BigInteger(), nullable=False, comment="Exposure in the set"),
        sa.Column("criteria", postgresql.JSONB(astext_type=sa.Text()), nullable=True,
                  comment="Selection criteria the set was made with (max_seeing, band, where, ...)"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the set was saved"),
        sa.ForeignKeyConstraint(["exposure_id"], ["exposure.id"], name=op.f("fk_exposure_set_exposure_id_exposure"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exposure_set")),
        sa.UniqueConstraint("name", "exposure_id", name="uq_exposure_set_name_exposure_id"),
        comment="Named sets of exposures (catdb exposures select), usable as stage inputs (--exposures NAME)",
    )
    op.create_index("ix_exposure_set_exposure_id", "exposure_set", ["exposure_id"], unique=False)
    op.execute(VIEWS_SQL)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS detection_calibrated")
    op.drop_index("ix_exposure_set_exposure_id", table_name="exposure_set")
    op.drop_table("exposure_set")
