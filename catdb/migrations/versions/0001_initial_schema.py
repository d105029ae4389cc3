"""initial schema: spatial backend, all tables with column comments, roles

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:14:49.778256

Like every migration, this one carries its own DDL and imports no catdb module: the spatial
backend is installed by the SQL below, and catdb's SQL port of q3c (backend ``sql``) is the copy
frozen with this revision, ``catdb/migrations/frozen/q3c_compat_0001.sql`` (not the live
``catdb/sql/q3c_compat.sql``, which a later fix may change: such a fix reaches existing databases
through a migration of its own that installs a new frozen copy).
"""
from pathlib import Path

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


ROLES_SQL = """
DO $$
DECLARE can_create boolean;
BEGIN
  SELECT rolsuper OR rolcreaterole INTO can_create FROM pg_roles WHERE rolname = current_user;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    IF can_create THEN
      CREATE ROLE catdb_reader LOGIN;
      COMMENT ON ROLE catdb_reader IS 'catdb read-only role (catdb query)';
    ELSE
      RAISE NOTICE 'catdb: no CREATEROLE privilege, role catdb_reader not created';
    END IF;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_writer') THEN
    IF can_create THEN
      CREATE ROLE catdb_writer NOLOGIN;
      COMMENT ON ROLE catdb_writer IS 'catdb writer role (ingest, stages)';
    END IF;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO catdb_reader', current_schema());
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO catdb_reader', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO catdb_reader', current_schema());
    IF can_create AND NOT pg_has_role(current_user, 'catdb_reader', 'MEMBER') THEN
      GRANT catdb_reader TO CURRENT_USER;
    END IF;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_writer') THEN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO catdb_writer', current_schema());
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO catdb_writer', current_schema());
    EXECUTE format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %I TO catdb_writer', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO catdb_writer', current_schema());
    EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT USAGE, SELECT ON SEQUENCES TO catdb_writer', current_schema());
  END IF;
END $$;
"""

#: catdb's SQL port of q3c 2.0 as installed by this revision (``@extschema@`` = target schema)
Q3C_COMPAT_SQL = Path(__file__).resolve().parents[1] / "frozen" / "q3c_compat_0001.sql"

#: removes the SQL port (every q3c_* function of the current schema) on downgrade to base
UNINSTALL_PORT_SQL = r"""
DO $$
DECLARE f record;
BEGIN
  FOR f IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = current_schema() AND p.proname LIKE 'q3c\_%'
  LOOP
    EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', f.sig);
  END LOOP;
END $$"""


def _install_spatial(backend: str) -> str:
    """Install the q3c extension or the frozen SQL port; returns 'q3c' or 'sql'.

    ``auto``: the extension when the server has it (or it is installed), else the SQL port.
    """
    raw = op.get_bind().connection.driver_connection  # psycopg: the script runs unparsed
    if backend not in ("auto", "q3c", "sql"):
        raise ValueError(f"spatial backend must be auto, q3c or sql, not {backend!r}")
    available = raw.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'q3c'").fetchone() is not None
    if backend == "auto":
        installed = raw.execute("SELECT 1 FROM pg_extension WHERE extname = 'q3c'").fetchone() is not None
        backend = "q3c" if installed or available else "sql"
    schema = raw.execute("SELECT current_schema()").fetchone()[0]
    quoted = '"' + schema.replace('"', '""') + '"'
    if backend == "q3c":
        if not available:
            raise RuntimeError("the q3c extension is not available on this server (Debian: apt-get install "
                               "postgresql-15-q3c); use --spatial sql for catdb's SQL port of q3c")
        raw.execute(f"CREATE EXTENSION IF NOT EXISTS q3c SCHEMA {quoted}")
        return "q3c"
    raw.execute(Q3C_COMPAT_SQL.read_text("utf-8").replace("@extschema@", quoted))
    return "sql"


def _uninstall_spatial() -> None:
    raw = op.get_bind().connection.driver_connection
    if raw.execute("SELECT 1 FROM pg_extension WHERE extname = 'q3c'").fetchone():
        raw.execute("DROP EXTENSION IF EXISTS q3c")
    else:
        raw.execute(UNINSTALL_PORT_SQL)


REVOKE_SQL = """
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['catdb_reader', 'catdb_writer'] LOOP
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
      EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON TABLES FROM %I', current_schema(), r);
      EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM %I', current_schema(), r);
      EXECUTE format('REVOKE ALL ON SCHEMA %I FROM %I', current_schema(), r);
    END IF;
  END LOOP;
END $$;
"""


def upgrade() -> None:
    ctx = op.get_context()
    backend = ctx.config.attributes.get("spatial_backend", "auto") if ctx.config is not None else "auto"
    installed = _install_spatial(backend)
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table('catdb_info',
    sa.Column('key', sa.Text(), nullable=False, comment='Setting name'),
    sa.Column('value', sa.Text(), nullable=False, comment='Setting value'),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_catdb_info')),
    comment='Database-level settings recorded by catdb (spatial backend, ...)'
    )
    op.create_table('stage_run',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('stage', sa.Text(), nullable=False, comment='Stage name (catdb stage list)'),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False, comment='Stage parameters as given and defaulted'),
    sa.Column('code_version', sa.Text(), nullable=False, comment='catdb version that ran the stage'),
    sa.Column('input_where', sa.Text(), nullable=True, comment='SQL condition selecting the inputs (--where)'),
    sa.Column('input_ids', postgresql.ARRAY(sa.BigInteger()), nullable=True, comment='Ids of the input exposures (or other input keys) the run selected'),
    sa.Column('input_count', sa.BigInteger(), nullable=True, comment='Number of inputs selected'),
    sa.Column('counts', postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=True, comment='Output counts per table / ledger figures'),
    sa.Column('status', sa.Text(), server_default=sa.text("'running'"), nullable=False, comment='running, ok, failed or replaced'),
    sa.Column('error', sa.Text(), nullable=True, comment='Error message when status is failed'),
    sa.Column('started_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False, comment='Start time'),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True, comment='End time'),
    sa.Column('db_user', sa.Text(), server_default=sa.text('CURRENT_USER'), nullable=True, comment='Database role that ran the stage'),
    sa.CheckConstraint("status IN ('running','ok','failed','replaced')", name=op.f('ck_stage_run_status')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_run')),
    comment='Provenance: one row per stage execution; every row a stage writes references it'
    )
    op.create_index('ix_stage_run_stage', 'stage_run', ['stage', 'started_at'], unique=False)
    op.create_table('exposure',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('path', sa.Text(), nullable=False, comment='Image (or catalogue) file path as ingested'),
    sa.Column('sha256', sa.Text(), nullable=True, comment='SHA-256 of the file'),
    sa.Column('hdu', sa.SmallInteger(), server_default=sa.text('0'), nullable=False, comment='HDU index within the file (0-based)'),
    sa.Column('catalog_path', sa.Text(), nullable=True, comment='SExtractor catalogue path the detections came from'),
    sa.Column('catalog_sha256', sa.Text(), nullable=True, comment='SHA-256 of the catalogue file'),
    sa.Column('instrument', sa.Text(), nullable=True, comment='Instrument (keyword map name or INSTRUME)'),
    sa.Column('telescope', sa.Text(), nullable=True, comment='Telescope (TELESCOP)'),
    sa.Column('observatory_code', sa.Text(), nullable=True, comment='MPC observatory code'),
    sa.Column('object', sa.Text(), nullable=True, comment='Target name (OBJECT)'),
    sa.Column('filter', sa.Text(), nullable=True, comment='Filter name as in the header'),
    sa.Column('band', sa.Text(), nullable=True, comment='Normalised photometric band'),
    sa.Column('image_type', sa.Text(), server_default=sa.text("'science'"), nullable=False, comment='science, bias, flat, dark, ... (IMAGETYP)'),
    sa.Column('date_obs', sa.Text(), nullable=True, comment='DATE-OBS as written in the header'),
    sa.Column('mjd_mid', sa.Double(), nullable=True, comment='Modified Julian Date of mid-exposure (UTC) [d]'),
    sa.Column('night', sa.Date(), nullable=True, comment='Observing night (local date at start of night)'),
    sa.Column('exptime', sa.Double(), nullable=True, comment='Exposure time [s]'),
    sa.Column('airmass', sa.Double(), nullable=True, comment='Airmass at mid-exposure'),
    sa.Column('fwhm', sa.Double(), nullable=True, comment='Seeing FWHM [arcsec]'),
    sa.Column('gain', sa.Double(), nullable=True, comment='Detector gain [electron/adu]'),
    sa.Column('readnoise', sa.Double(), nullable=True, comment='Read noise [electron]'),
    sa.Column('saturation', sa.Double(), nullable=True, comment='Saturation level [adu]'),
    sa.Column('pixscale', sa.Double(), nullable=True, comment='Pixel scale [arcsec/pix]'),
    sa.Column('naxis1', sa.Integer(), nullable=True, comment='Image width [pix]'),
    sa.Column('naxis2', sa.Integer(), nullable=True, comment='Image height [pix]'),
    sa.Column('binning', sa.Text(), nullable=True, comment='Detector binning (e.g. 3x3)'),
    sa.Column('ra_center', sa.Double(), nullable=True, comment='Right ascension of the image centre (ICRS) [deg]'),
    sa.Column('dec_center', sa.Double(), nullable=True, comment='Declination of the image centre (ICRS) [deg]'),
    sa.Column('radius', sa.Double(), nullable=True, comment='Radius from the centre to the farthest corner [deg]'),
    sa.Column('corners', postgresql.ARRAY(sa.Double()), nullable=True, comment='Footprint corners ra1,dec1,...,ra4,dec4 (ICRS) [deg]'),
    sa.Column('wcs_header', sa.Text(), nullable=True, comment='WCS cards of the image'),
    sa.Column('header', sa.Text(), nullable=True, comment='Full image header (80-character cards, newline separated)'),
    sa.Column('site_lat', sa.Double(), nullable=True, comment='Observatory latitude [deg]'),
    sa.Column('site_lon', sa.Double(), nullable=True, comment='Observatory longitude, east positive [deg]'),
    sa.Column('site_height', sa.Double(), nullable=True, comment='Observatory height [m]'),
    sa.Column('bkg_mean', sa.Double(), nullable=True, comment='Background mean (sigma-clipped, sources masked) [adu]'),
    sa.Column('bkg_median', sa.Double(), nullable=True, comment='Background median [adu]'),
    sa.Column('bkg_std', sa.Double(), nullable=True, comment='Background standard deviation [adu]'),
    sa.Column('bkg_mad', sa.Double(), nullable=True, comment='Background median absolute deviation [adu]'),
    sa.Column('quality_flags', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='Bit mask of quality flags (see catdb.schema.QUALITY_FLAGS)'),
    sa.Column('ingested_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=True, comment='Ingest time'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=True, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_exposure_stage_run_id_stage_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exposure')),
    sa.UniqueConstraint('path', 'hdu', name='uq_exposure_path_hdu'),
    comment='One row per image, or per extension of a multi-extension image'
    )
    op.create_index('ix_exposure_mjd_mid', 'exposure', ['mjd_mid'], unique=False)
    op.create_index('ix_exposure_night', 'exposure', ['night'], unique=False)
    op.create_index('ix_exposure_q3c', 'exposure', [sa.literal_column('q3c_ang2ipix(ra_center, dec_center)')], unique=False)
    op.create_table('ledger',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.Column('step', sa.Integer(), nullable=False, comment='Order of the filter within the run'),
    sa.Column('filter', sa.Text(), nullable=False, comment='Filter / veto name'),
    sa.Column('n_in', sa.BigInteger(), nullable=False, comment='Input count'),
    sa.Column('n_rejected', sa.BigInteger(), nullable=False, comment='Rejected count'),
    sa.Column('n_kept', sa.BigInteger(), nullable=False, comment='Kept count'),
    sa.Column('params', postgresql.JSONB(astext_type=sa.Text()), nullable=True, comment='Filter parameters'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_ledger_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger')),
    comment='Filter-chain / veto ledger: counts in, rejected and kept per filter of a stage run'
    )
    op.create_index('ix_ledger_stage_run_id', 'ledger', ['stage_run_id', 'step'], unique=False)
    op.create_table('object',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('ra', sa.Double(), nullable=False, comment='Mean right ascension (weighted) [deg]'),
    sa.Column('dec', sa.Double(), nullable=False, comment='Mean declination (weighted) [deg]'),
    sa.Column('ra_err', sa.REAL(), nullable=True, comment='Error of the mean RA [arcsec]'),
    sa.Column('dec_err', sa.REAL(), nullable=True, comment='Error of the mean Dec [arcsec]'),
    sa.Column('kind', sa.Text(), server_default=sa.text("'static'"), nullable=False, comment='static, moving or coadd'),
    sa.Column('n_detections', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='Number of linked detections'),
    sa.Column('n_epochs', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='Number of distinct exposures'),
    sa.Column('band', sa.Text(), nullable=True, comment='Band of the summary photometry'),
    sa.Column('mean_mag', sa.REAL(), nullable=True, comment='Mean calibrated magnitude [mag]'),
    sa.Column('std_mag', sa.REAL(), nullable=True, comment='Standard deviation of the calibrated magnitudes [mag]'),
    sa.Column('chi2_var', sa.REAL(), nullable=True, comment='Variability index: reduced chi-square about the mean magnitude'),
    sa.Column('mjd_first', sa.Double(), nullable=True, comment='First epoch [d]'),
    sa.Column('mjd_last', sa.Double(), nullable=True, comment='Last epoch [d]'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_object_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_object')),
    comment='Associated sources across epochs'
    )
    op.create_index('ix_object_q3c', 'object', [sa.literal_column('q3c_ang2ipix(ra, dec)')], unique=False)
    op.create_index('ix_object_stage_run_id', 'object', ['stage_run_id'], unique=False)
    op.create_table('refcat_source',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('catalog', sa.Text(), nullable=False, comment='Reference catalogue name (gaia-dr2, tycho2, ucac4, ...)'),
    sa.Column('source_id', sa.Text(), nullable=True, comment='Identifier within the catalogue'),
    sa.Column('ra', sa.Double(), nullable=False, comment='Right ascension at the reference epoch (ICRS) [deg]'),
    sa.Column('dec', sa.Double(), nullable=False, comment='Declination at the reference epoch (ICRS) [deg]'),
    sa.Column('epoch', sa.Double(), nullable=True, comment='Reference epoch of the position [yr]'),
    sa.Column('ra_err', sa.REAL(), nullable=True, comment='RA error [mas]'),
    sa.Column('dec_err', sa.REAL(), nullable=True, comment='Dec error [mas]'),
    sa.Column('pmra', sa.REAL(), nullable=True, comment='Proper motion in RA (times cos dec) [mas/yr]'),
    sa.Column('pmdec', sa.REAL(), nullable=True, comment='Proper motion in Dec [mas/yr]'),
    sa.Column('parallax', sa.REAL(), nullable=True, comment='Parallax [mas]'),
    sa.Column('mags', postgresql.JSONB(astext_type=sa.Text()), nullable=True, comment='Magnitudes by band, e.g. {"G": 15.2, "r": 15.4} [mag]'),
    sa.Column('mag_errs', postgresql.JSONB(astext_type=sa.Text()), nullable=True, comment='Magnitude errors by band [mag]'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=True, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_refcat_source_stage_run_id_stage_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refcat_source')),
    comment='Reference catalogue stars (astrometric and photometric references, bright-star vetoes)'
    )
    op.create_index('ix_refcat_source_catalog', 'refcat_source', ['catalog', 'source_id'], unique=False)
    op.create_index('ix_refcat_source_q3c', 'refcat_source', [sa.literal_column('q3c_ang2ipix(ra, dec)')], unique=False)
    op.create_table('track',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('n_detections', sa.Integer(), nullable=False, comment='Detections on the track'),
    sa.Column('mjd_first', sa.Double(), nullable=True, comment='First epoch [d]'),
    sa.Column('mjd_last', sa.Double(), nullable=True, comment='Last epoch [d]'),
    sa.Column('ra', sa.Double(), nullable=True, comment='RA at the reference epoch mjd_ref [deg]'),
    sa.Column('dec', sa.Double(), nullable=True, comment='Dec at the reference epoch mjd_ref [deg]'),
    sa.Column('mjd_ref', sa.Double(), nullable=True, comment='Reference epoch of ra/dec [d]'),
    sa.Column('rate_ra', sa.Double(), nullable=True, comment='Rate in RA times cos(dec) [arcsec/h]'),
    sa.Column('rate_dec', sa.Double(), nullable=True, comment='Rate in Dec [arcsec/h]'),
    sa.Column('rate', sa.Double(), nullable=True, comment='Total rate of motion [arcsec/h]'),
    sa.Column('rate_err', sa.Double(), nullable=True, comment='Error of the rate [arcsec/h]'),
    sa.Column('pa', sa.Double(), nullable=True, comment='Position angle of motion (east of north) [deg]'),
    sa.Column('r2_ra', sa.Double(), nullable=True, comment='R^2 of the linear fit in RA'),
    sa.Column('r2_dec', sa.Double(), nullable=True, comment='R^2 of the linear fit in Dec'),
    sa.Column('rms', sa.Double(), nullable=True, comment='RMS residual of the linear fit [arcsec]'),
    sa.Column('mean_mag', sa.REAL(), nullable=True, comment='Mean magnitude [mag]'),
    sa.Column('status', sa.Text(), server_default=sa.text("'candidate'"), nullable=False, comment='candidate or rejected:<filter>'),
    sa.Column('designation', sa.Text(), nullable=True, comment='Identification (SkyBoT or user)'),
    sa.Column('skybot_name', sa.Text(), nullable=True, comment='SkyBoT match name'),
    sa.Column('skybot_sep', sa.Double(), nullable=True, comment='Separation from the SkyBoT prediction [arcsec]'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_track_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_track')),
    comment='Solar System object candidate tracks (movers stage)'
    )
    op.create_index('ix_track_q3c', 'track', [sa.literal_column('q3c_ang2ipix(ra, dec)')], unique=False)
    op.create_table('detection',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('exposure_id', sa.BigInteger(), nullable=False, comment='Exposure the source was extracted from'),
    sa.Column('number', sa.Integer(), nullable=False, comment='SExtractor NUMBER (running object number)'),
    sa.Column('ra', sa.Double(), nullable=False, comment='Right ascension (ICRS; ALPHAWIN_J2000 or ALPHA_J2000) [deg]'),
    sa.Column('dec', sa.Double(), nullable=False, comment='Declination (ICRS; DELTAWIN_J2000 or DELTA_J2000) [deg]'),
    sa.Column('ra_err', sa.REAL(), nullable=True, comment='Position error along RA [arcsec]'),
    sa.Column('dec_err', sa.REAL(), nullable=True, comment='Position error along Dec [arcsec]'),
    sa.Column('x', sa.Double(), nullable=True, comment='X_IMAGE (1-based, SExtractor convention) [pix]'),
    sa.Column('y', sa.Double(), nullable=True, comment='Y_IMAGE (1-based) [pix]'),
    sa.Column('xwin', sa.Double(), nullable=True, comment='XWIN_IMAGE [pix]'),
    sa.Column('ywin', sa.Double(), nullable=True, comment='YWIN_IMAGE [pix]'),
    sa.Column('flux_auto', sa.REAL(), nullable=True, comment='FLUX_AUTO [adu]'),
    sa.Column('fluxerr_auto', sa.REAL(), nullable=True, comment='FLUXERR_AUTO [adu]'),
    sa.Column('mag_auto', sa.REAL(), nullable=True, comment='MAG_AUTO (instrumental) [mag]'),
    sa.Column('magerr_auto', sa.REAL(), nullable=True, comment='MAGERR_AUTO [mag]'),
    sa.Column('flux_aper', postgresql.ARRAY(sa.REAL()), nullable=True, comment='FLUX_APER, one element per aperture [adu]'),
    sa.Column('fluxerr_aper', postgresql.ARRAY(sa.REAL()), nullable=True, comment='FLUXERR_APER [adu]'),
    sa.Column('mag_aper', postgresql.ARRAY(sa.REAL()), nullable=True, comment='MAG_APER (instrumental) [mag]'),
    sa.Column('magerr_aper', postgresql.ARRAY(sa.REAL()), nullable=True, comment='MAGERR_APER [mag]'),
    sa.Column('flux_iso', sa.REAL(), nullable=True, comment='FLUX_ISO [adu]'),
    sa.Column('fluxerr_iso', sa.REAL(), nullable=True, comment='FLUXERR_ISO [adu]'),
    sa.Column('mag_iso', sa.REAL(), nullable=True, comment='MAG_ISO (instrumental) [mag]'),
    sa.Column('magerr_iso', sa.REAL(), nullable=True, comment='MAGERR_ISO [mag]'),
    sa.Column('flux_psf', sa.REAL(), nullable=True, comment='FLUX_PSF [adu]'),
    sa.Column('fluxerr_psf', sa.REAL(), nullable=True, comment='FLUXERR_PSF [adu]'),
    sa.Column('mag_psf', sa.REAL(), nullable=True, comment='MAG_PSF (instrumental) [mag]'),
    sa.Column('magerr_psf', sa.REAL(), nullable=True, comment='MAGERR_PSF [mag]'),
    sa.Column('flux_max', sa.REAL(), nullable=True, comment='FLUX_MAX (peak above background) [adu]'),
    sa.Column('flux_radius', sa.REAL(), nullable=True, comment='FLUX_RADIUS (half-light radius) [pix]'),
    sa.Column('fwhm_image', sa.REAL(), nullable=True, comment='FWHM_IMAGE [pix]'),
    sa.Column('fwhm', sa.REAL(), nullable=True, comment='FWHM_WORLD [arcsec]'),
    sa.Column('a_image', sa.REAL(), nullable=True, comment='A_IMAGE (semi-major axis) [pix]'),
    sa.Column('b_image', sa.REAL(), nullable=True, comment='B_IMAGE (semi-minor axis) [pix]'),
    sa.Column('theta_image', sa.REAL(), nullable=True, comment='THETA_IMAGE [deg]'),
    sa.Column('a_world', sa.REAL(), nullable=True, comment='A_WORLD [arcsec]'),
    sa.Column('b_world', sa.REAL(), nullable=True, comment='B_WORLD [arcsec]'),
    sa.Column('theta_world', sa.REAL(), nullable=True, comment='THETA_J2000 (east of north) [deg]'),
    sa.Column('elongation', sa.REAL(), nullable=True, comment='ELONGATION (A/B)'),
    sa.Column('ellipticity', sa.REAL(), nullable=True, comment='ELLIPTICITY (1 - B/A)'),
    sa.Column('class_star', sa.REAL(), nullable=True, comment='CLASS_STAR (star/galaxy classifier, 1 = star)'),
    sa.Column('flags', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='SExtractor FLAGS'),
    sa.Column('imaflags', sa.Integer(), nullable=True, comment='IMAFLAGS_ISO'),
    sa.Column('background', sa.REAL(), nullable=True, comment='BACKGROUND at the source [adu]'),
    sa.Column('threshold', sa.REAL(), nullable=True, comment='THRESHOLD (detection threshold above background) [adu]'),
    sa.Column('spread_model', sa.REAL(), nullable=True, comment='SPREAD_MODEL'),
    sa.Column('spreaderr_model', sa.REAL(), nullable=True, comment='SPREADERR_MODEL'),
    sa.Column('snr', sa.REAL(), nullable=True, comment='Signal-to-noise ratio FLUX_AUTO / FLUXERR_AUTO'),
    sa.Column('extra', postgresql.JSONB(astext_type=sa.Text()), nullable=True, comment='Other catalogue columns, by SExtractor name'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=True, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_detection_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_detection_stage_run_id_stage_run'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detection')),
    comment='One row per extracted source'
    )
    op.create_index('ix_detection_exposure_id', 'detection', ['exposure_id', 'number'], unique=False)
    op.create_index('ix_detection_q3c', 'detection', [sa.literal_column('q3c_ang2ipix(ra, dec)')], unique=False)
    op.create_table('exposure_qa',
    sa.Column('exposure_id', sa.BigInteger(), nullable=False, comment='Exposure'),
    sa.Column('metric', sa.Text(), nullable=False, comment='Metric name (astrometry: sep_median, sep_scatter, n_matched; background: mean, ...)'),
    sa.Column('value', sa.Double(), nullable=True, comment="Metric value (unit in the metric name's documentation)"),
    sa.Column('is_outlier', sa.Boolean(), server_default=sa.text('false'), nullable=False, comment='IQR outlier within its group'),
    sa.Column('group_key', sa.Text(), nullable=True, comment='Group the IQR rule was applied in (night, ...)'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_exposure_qa_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_exposure_qa_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('exposure_id', 'metric', name=op.f('pk_exposure_qa')),
    comment='Per-exposure quality metrics written by the qa-* stages'
    )
    op.create_table('exposure_summary',
    sa.Column('exposure_id', sa.BigInteger(), nullable=False, comment='Exposure'),
    sa.Column('n_detections', sa.Integer(), nullable=False, comment='Number of detections'),
    sa.Column('n_unflagged', sa.Integer(), nullable=False, comment='Detections with FLAGS = 0'),
    sa.Column('fwhm_median', sa.REAL(), nullable=True, comment='Median FWHM of unflagged point-like detections [arcsec]'),
    sa.Column('mag_limit', sa.REAL(), nullable=True, comment='Instrumental magnitude at SNR 5 (median of 4.5 < SNR < 5.5) [mag]'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_exposure_summary_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_exposure_summary_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('exposure_id', name=op.f('pk_exposure_summary')),
    comment='Per-exposure detection statistics (stage exposure-summary)'
    )
    op.create_table('forced_source',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('object_id', sa.BigInteger(), nullable=True, comment='Object measured (null for user positions)'),
    sa.Column('track_id', sa.BigInteger(), nullable=True, comment='Moving-object track measured'),
    sa.Column('exposure_id', sa.BigInteger(), nullable=False, comment='Exposure measured'),
    sa.Column('ra', sa.Double(), nullable=False, comment='Position measured (ICRS) [deg]'),
    sa.Column('dec', sa.Double(), nullable=False, comment='Position measured (ICRS) [deg]'),
    sa.Column('x', sa.Double(), nullable=True, comment='Pixel position (1-based) [pix]'),
    sa.Column('y', sa.Double(), nullable=True, comment='Pixel position (1-based) [pix]'),
    sa.Column('aperture_radius', sa.REAL(), nullable=True, comment='Aperture radius [pix]'),
    sa.Column('flux', sa.Double(), nullable=True, comment='Background-subtracted aperture flux [adu]'),
    sa.Column('flux_err', sa.Double(), nullable=True, comment='Flux error (Poisson, background, read noise) [adu]'),
    sa.Column('background', sa.Double(), nullable=True, comment='Local background per pixel (annulus median) [adu]'),
    sa.Column('mag', sa.Double(), nullable=True, comment='Calibrated magnitude (instrumental + zeropoint) [mag]'),
    sa.Column('mag_err', sa.Double(), nullable=True, comment='Magnitude error including the zeropoint error [mag]'),
    sa.Column('band', sa.Text(), nullable=True, comment='Band of the calibrated magnitude'),
    sa.Column('flags', sa.Integer(), server_default=sa.text('0'), nullable=False, comment='1 edge, 2 saturated, 4 masked pixels, 8 no zeropoint'),
    sa.Column('label', sa.Text(), nullable=True, comment='User label for user-list positions'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_forced_source_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['object_id'], ['object.id'], name=op.f('fk_forced_source_object_id_object'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_forced_source_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['track_id'], ['track.id'], name=op.f('fk_forced_source_track_id_track'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_forced_source')),
    comment='Forced measurements of an object or track on an exposure'
    )
    op.create_index('ix_forced_source_exposure_id', 'forced_source', ['exposure_id'], unique=False)
    op.create_index('ix_forced_source_object_id', 'forced_source', ['object_id'], unique=False)
    op.create_index('ix_forced_source_q3c', 'forced_source', [sa.literal_column('q3c_ang2ipix(ra, dec)')], unique=False)
    op.create_table('lightcurve_period',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('object_id', sa.BigInteger(), nullable=True, comment='Object'),
    sa.Column('track_id', sa.BigInteger(), nullable=True, comment='Track'),
    sa.Column('n_points', sa.Integer(), nullable=True, comment='Points in the light curve'),
    sa.Column('period', sa.Double(), nullable=True, comment='Light-curve period (best Lomb-Scargle peak) [h]'),
    sa.Column('period_err', sa.Double(), nullable=True, comment='Period uncertainty [h]'),
    sa.Column('rotation_period', sa.Double(), nullable=True, comment='Rotation period (2 x light-curve period for a double-peaked curve) [h]'),
    sa.Column('amplitude', sa.Double(), nullable=True, comment='Peak-to-peak amplitude [mag]'),
    sa.Column('fap', sa.Double(), nullable=True, comment='False-alarm probability of the peak'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['object_id'], ['object.id'], name=op.f('fk_lightcurve_period_object_id_object'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_lightcurve_period_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['track_id'], ['track.id'], name=op.f('fk_lightcurve_period_track_id_track'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lightcurve_period')),
    comment='Light-curve periods of objects and tracks'
    )
    op.create_table('zeropoint',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False, comment='Primary key'),
    sa.Column('exposure_id', sa.BigInteger(), nullable=False, comment='Calibrated exposure'),
    sa.Column('band', sa.Text(), nullable=False, comment='Band the zeropoint calibrates to (reference band after transformation)'),
    sa.Column('mag_column', sa.Text(), nullable=True, comment='Instrumental magnitude column used (mag_auto, mag_aper[2], ...)'),
    sa.Column('zp', sa.Double(), nullable=True, comment='Zeropoint: calibrated = instrumental + zp [mag]'),
    sa.Column('zp_err', sa.Double(), nullable=True, comment='Zeropoint error [mag]'),
    sa.Column('color_term', sa.Double(), nullable=True, comment='Colour term coefficient'),
    sa.Column('color_index', sa.Text(), nullable=True, comment='Colour index of the colour term (e.g. g-r)'),
    sa.Column('slope', sa.Double(), nullable=True, comment='Slope of the regression (method regression; 1 for pp)'),
    sa.Column('n_matched', sa.Integer(), nullable=True, comment='Reference stars matched'),
    sa.Column('n_used', sa.Integer(), nullable=True, comment='Reference stars used after rejection'),
    sa.Column('chi2_red', sa.Double(), nullable=True, comment='Reduced chi-square of the fit'),
    sa.Column('r2', sa.Double(), nullable=True, comment='Coefficient of determination (method regression)'),
    sa.Column('scatter', sa.Double(), nullable=True, comment='Robust scatter of the residuals [mag]'),
    sa.Column('method', sa.Text(), nullable=False, comment='pp, regression or relative'),
    sa.Column('refcat', sa.Text(), nullable=True, comment='Reference catalogue (and transformation)'),
    sa.Column('ok', sa.Boolean(), server_default=sa.text('true'), nullable=False, comment='False when the calibration failed its quality threshold'),
    sa.Column('residuals', postgresql.JSONB(astext_type=sa.Text()), nullable=True, comment='Residuals of the used stars, for diagnostics'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['exposure_id'], ['exposure.id'], name=op.f('fk_zeropoint_exposure_id_exposure'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_zeropoint_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_zeropoint')),
    comment='Photometric zeropoint per exposure and band'
    )
    op.create_index('ix_zeropoint_exposure_id', 'zeropoint', ['exposure_id', 'band'], unique=False)
    op.create_table('detection_object',
    sa.Column('detection_id', sa.BigInteger(), nullable=False, comment='Detection'),
    sa.Column('object_id', sa.BigInteger(), nullable=False, comment='Object the detection belongs to'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['detection_id'], ['detection.id'], name=op.f('fk_detection_object_detection_id_detection'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['object_id'], ['object.id'], name=op.f('fk_detection_object_object_id_object'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_detection_object_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('detection_id', name=op.f('pk_detection_object')),
    comment='Link detection -> object (written by the associate stage)'
    )
    op.create_index('ix_detection_object_object_id', 'detection_object', ['object_id'], unique=False)
    op.create_table('survivor',
    sa.Column('set_name', sa.Text(), nullable=False, comment='Survivor set name (veto chain)'),
    sa.Column('step', sa.Integer(), nullable=False, comment='Veto step after which the row survived'),
    sa.Column('detection_id', sa.BigInteger(), nullable=False, comment='Surviving detection'),
    sa.Column('stage_run_id', sa.BigInteger(), nullable=False, comment='Stage run that wrote this row (provenance)'),
    sa.ForeignKeyConstraint(['detection_id'], ['detection.id'], name=op.f('fk_survivor_detection_id_detection'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['stage_run_id'], ['stage_run.id'], name=op.f('fk_survivor_stage_run_id_stage_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('set_name', 'step', 'detection_id', name=op.f('pk_survivor')),
    comment='Survivor sets of veto stages (VASCO60-style transient searches)'
    )
    op.create_table('track_detection',
    sa.Column('track_id', sa.BigInteger(), nullable=False, comment='Track'),
    sa.Column('detection_id', sa.BigInteger(), nullable=False, comment='Detection on the track'),
    sa.Column('residual', sa.REAL(), nullable=True, comment='Residual from the linear fit [arcsec]'),
    sa.Column('outlier', sa.Boolean(), server_default=sa.text('false'), nullable=False, comment='Rejected as an outlier epoch'),
    sa.ForeignKeyConstraint(['detection_id'], ['detection.id'], name=op.f('fk_track_detection_detection_id_detection'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['track_id'], ['track.id'], name=op.f('fk_track_detection_track_id_track'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('track_id', 'detection_id', name=op.f('pk_track_detection')),
    comment='Link track -> detections'
    )
    op.create_index('ix_track_detection_detection_id', 'track_detection', ['detection_id'], unique=False)
    # ### end Alembic commands ###
    op.execute(sa.text("INSERT INTO catdb_info (key, value) VALUES ('spatial_backend', :b)").bindparams(b=installed))
    op.execute(ROLES_SQL)


def downgrade() -> None:
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_index('ix_track_detection_detection_id', table_name='track_detection')
    op.drop_table('track_detection')
    op.drop_table('survivor')
    op.drop_index('ix_detection_object_object_id', table_name='detection_object')
    op.drop_table('detection_object')
    op.drop_index('ix_zeropoint_exposure_id', table_name='zeropoint')
    op.drop_table('zeropoint')
    op.drop_table('lightcurve_period')
    op.drop_index('ix_forced_source_q3c', table_name='forced_source')
    op.drop_index('ix_forced_source_object_id', table_name='forced_source')
    op.drop_index('ix_forced_source_exposure_id', table_name='forced_source')
    op.drop_table('forced_source')
    op.drop_table('exposure_summary')
    op.drop_table('exposure_qa')
    op.drop_index('ix_detection_q3c', table_name='detection')
    op.drop_index('ix_detection_exposure_id', table_name='detection')
    op.drop_table('detection')
    op.drop_index('ix_track_q3c', table_name='track')
    op.drop_table('track')
    op.drop_index('ix_refcat_source_q3c', table_name='refcat_source')
    op.drop_index('ix_refcat_source_catalog', table_name='refcat_source')
    op.drop_table('refcat_source')
    op.drop_index('ix_object_stage_run_id', table_name='object')
    op.drop_index('ix_object_q3c', table_name='object')
    op.drop_table('object')
    op.drop_index('ix_ledger_stage_run_id', table_name='ledger')
    op.drop_table('ledger')
    op.drop_index('ix_exposure_q3c', table_name='exposure')
    op.drop_index('ix_exposure_night', table_name='exposure')
    op.drop_index('ix_exposure_mjd_mid', table_name='exposure')
    op.drop_table('exposure')
    op.drop_index('ix_stage_run_stage', table_name='stage_run')
    op.drop_table('stage_run')
    op.drop_table('catdb_info')
    # ### end Alembic commands ###
    op.execute(REVOKE_SQL)  # roles are cluster-wide and may serve other databases: kept
    _uninstall_spatial()
