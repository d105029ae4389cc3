"""named science views: lightcurve_point, exposure_catalog, detections_in_cone()

Revision ID: 0008
Revises: 0007

The SQL is written out here as it was at this revision (a migration does not read the live
code); a later change to a view or the function is a new migration that drops and re-creates it.
"""
from alembic import op

revision = "0008"
down_revision = '0007'
branch_labels = None
depends_on = None

#: the views, the function, their comments and grants
SCIENCE_VIEWS_SQL = r"""-- catdb named science views of migration 0008, as at this revision (catdb/export/lightcurve.py,
-- catdb/export/saved.py, the lightcurve stage and catdb lightcurve/period read light curves from
-- lightcurve_point).
--
-- lightcurve_point: every magnitude of an object, a moving-object track or a user position, one row per
--   measurement, from two sources:
--     source = 'detection': a SExtractor detection linked to an object (detection_object, associate stage)
--                           or to a track (track_detection, movers stage), calibrated as detection_calibrated
--                           does it (latest ok zeropoint of the exposure: mag_cal = mag_auto + zp,
--                           magerr_cal = sqrt(magerr_auto^2 + zp_err^2); NULL without a zeropoint);
--     source = 'forced':    a forced_source row (forced stage; mag_cal = its mag, calibrated when it was
--                           measured; NULL and flag 8 without a zeropoint).
--   kind = 'object' | 'track' | 'position' (forced photometry of a user position: target_id NULL, label set).
--   Filter on (kind, target_id): the condition reaches the index of each branch.
-- exposure_catalog: the calibrated catalogue of an exposure (detection_calibrated with the object each
--   detection is linked to): SELECT * FROM exposure_catalog WHERE exposure_id = 7.
-- detections_in_cone(ra, dec, radius_deg): ids of the detections within radius_deg of (ra, dec) (degrees,
--   ICRS) and their distance in arcsec, through q3c_radial_query (the q3c extension and catdb's SQL port
--   both provide it, so the function works on either spatial backend).  Join detection_calibrated (or
--   exposure_catalog) on id = detection_id for the columns with their units.
--
-- The views name their columns: a migration that alters a column they read must drop and re-create them.

CREATE VIEW lightcurve_point AS
SELECT 'object'::text AS kind, dob.object_id AS target_id, 'detection'::text AS source, dc.exposure_id,
       dc.mjd_mid, e.filter, COALESCE(dc.zp_band, dc.band) AS band,
       dc.mag_cal, CASE WHEN dc.mag_cal IS NOT NULL THEN dc.magerr_cal END AS magerr_cal,
       dc.mag_cal IS NOT NULL AS calibrated,
       dc.mag_auto::double precision AS mag_auto, dc.magerr_auto::double precision AS magerr_auto,
       dc.flux_auto::double precision AS flux, dc.fluxerr_auto::double precision AS flux_err,
       dc.ra, dc.dec, dc.flags::integer AS flags, false AS outlier, dc.quality_flags,
       dc.id AS detection_id, NULL::bigint AS forced_id, NULL::text AS label, dob.stage_run_id
FROM detection_object dob
JOIN detection_calibrated dc ON dc.id = dob.detection_id
JOIN exposure e ON e.id = dc.exposure_id
UNION ALL
SELECT 'track', td.track_id, 'detection', dc.exposure_id,
       dc.mjd_mid, e.filter, COALESCE(dc.zp_band, dc.band),
       dc.mag_cal, CASE WHEN dc.mag_cal IS NOT NULL THEN dc.magerr_cal END, dc.mag_cal IS NOT NULL,
       dc.mag_auto, dc.magerr_auto, dc.flux_auto, dc.fluxerr_auto,
       dc.ra, dc.dec, dc.flags, td.outlier, dc.quality_flags,
       dc.id, NULL, NULL, t.stage_run_id
FROM track_detection td
JOIN track t ON t.id = td.track_id
JOIN detection_calibrated dc ON dc.id = td.detection_id
JOIN exposure e ON e.id = dc.exposure_id
UNION ALL
SELECT CASE WHEN f.object_id IS NOT NULL THEN 'object' WHEN f.track_id IS NOT NULL THEN 'track' ELSE 'position' END,
       COALESCE(f.object_id, f.track_id), 'forced', f.exposure_id,
       e.mjd_mid, e.filter, f.band,
       f.mag, f.mag_err, f.mag IS NOT NULL,
       NULL, NULL, f.flux, f.flux_err,
       f.ra, f.dec, f.flags, false, e.quality_flags,
       NULL, f.id, f.label, f.stage_run_id
FROM forced_source f
JOIN exposure e ON e.id = f.exposure_id;

COMMENT ON VIEW lightcurve_point IS 'Light-curve points of objects, tracks and user positions: linked detections (calibrated with the latest ok zeropoint) and forced photometry';
COMMENT ON COLUMN lightcurve_point.kind IS 'Target kind: object, track or position (forced photometry of a user position)';
COMMENT ON COLUMN lightcurve_point.target_id IS 'object.id (kind object) or track.id (kind track); NULL for a user position';
COMMENT ON COLUMN lightcurve_point.source IS 'detection (SExtractor, linked by associate/movers) or forced (forced stage)';
COMMENT ON COLUMN lightcurve_point.exposure_id IS 'Exposure of the measurement';
COMMENT ON COLUMN lightcurve_point.mjd_mid IS 'Modified Julian Date of mid-exposure (UTC) [d]';
COMMENT ON COLUMN lightcurve_point.filter IS 'Filter name as in the header';
COMMENT ON COLUMN lightcurve_point.band IS 'Band of mag_cal (the zeropoint''s band; the exposure''s band when uncalibrated)';
COMMENT ON COLUMN lightcurve_point.mag_cal IS 'Calibrated magnitude: mag_auto + zp (detection) or forced_source.mag; NULL without an ok zeropoint [mag]';
COMMENT ON COLUMN lightcurve_point.magerr_cal IS 'Error of mag_cal, zeropoint error included; NULL when mag_cal is [mag]';
COMMENT ON COLUMN lightcurve_point.calibrated IS 'True when mag_cal is set (the exposure had an ok zeropoint)';
COMMENT ON COLUMN lightcurve_point.mag_auto IS 'SExtractor MAG_AUTO, instrumental (detections only) [mag]';
COMMENT ON COLUMN lightcurve_point.magerr_auto IS 'SExtractor MAGERR_AUTO (detections only) [mag]';
COMMENT ON COLUMN lightcurve_point.flux IS 'FLUX_AUTO (detection) or background-subtracted aperture flux (forced) [adu]';
COMMENT ON COLUMN lightcurve_point.flux_err IS 'Error of flux [adu]';
COMMENT ON COLUMN lightcurve_point.ra IS 'Right ascension of the measurement (ICRS) [deg]';
COMMENT ON COLUMN lightcurve_point.dec IS 'Declination of the measurement (ICRS) [deg]';
COMMENT ON COLUMN lightcurve_point.flags IS 'SExtractor FLAGS (detection) or forced flags (1 edge, 2 saturated, 4 masked, 8 no zeropoint, 16 bad background)';
COMMENT ON COLUMN lightcurve_point.outlier IS 'Detection rejected as an outlier epoch of the track''s linear fit (movers stage)';
COMMENT ON COLUMN lightcurve_point.quality_flags IS 'Exposure quality flags (see catdb.schema.QUALITY_FLAGS)';
COMMENT ON COLUMN lightcurve_point.detection_id IS 'detection.id (source detection)';
COMMENT ON COLUMN lightcurve_point.forced_id IS 'forced_source.id (source forced)';
COMMENT ON COLUMN lightcurve_point.label IS 'User label of a forced user position';
COMMENT ON COLUMN lightcurve_point.stage_run_id IS 'Stage run that wrote the link (associate, movers) or the forced measurement';

CREATE VIEW exposure_catalog AS
SELECT dc.*, dob.object_id
FROM detection_calibrated dc
LEFT JOIN detection_object dob ON dob.detection_id = dc.id;

COMMENT ON VIEW exposure_catalog IS 'Calibrated catalogue of each exposure: detection_calibrated with the linked object (WHERE exposure_id = N)';
COMMENT ON COLUMN exposure_catalog.object_id IS 'Object the detection is linked to (associate stage); NULL for orphans';
-- the other columns keep detection_calibrated's descriptions and units
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT a.attname, col_description('detection_calibrated'::regclass, a.attnum) AS c FROM pg_attribute a
           WHERE a.attrelid = 'detection_calibrated'::regclass AND a.attnum > 0 LOOP
    EXECUTE format('COMMENT ON COLUMN exposure_catalog.%I IS %L', r.attname, r.c);
  END LOOP;
END $$;

CREATE FUNCTION detections_in_cone(ra_deg double precision, dec_deg double precision, radius_deg double precision)
RETURNS TABLE (detection_id bigint, dist_arcsec double precision)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT d.id, q3c_dist(d.ra, d.dec, $1, $2) * 3600.0
    FROM detection d
    WHERE q3c_radial_query(d.ra, d.dec, $1, $2, $3)
$$;

COMMENT ON FUNCTION detections_in_cone(double precision, double precision, double precision) IS
    'Detections within radius_deg [deg] of (ra, dec) [deg, ICRS]: detection_id and dist_arcsec [arcsec] (q3c_radial_query)';

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    GRANT SELECT ON lightcurve_point, exposure_catalog TO catdb_reader;
    GRANT EXECUTE ON FUNCTION detections_in_cone(double precision, double precision, double precision) TO catdb_reader;
  END IF;
END $$;
"""


def upgrade() -> None:
    op.execute(SCIENCE_VIEWS_SQL)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS detections_in_cone(double precision, double precision, double precision)")
    op.execute("DROP VIEW IF EXISTS exposure_catalog")
    op.execute("DROP VIEW IF EXISTS lightcurve_point")
