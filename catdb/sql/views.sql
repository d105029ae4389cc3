-- catdb views (documentation copy; created by migration 0003, catdb/migrations/versions/0003_calib_sets.py).
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
