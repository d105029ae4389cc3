"""magerr_cal NULL when mag_cal is NULL or the zeropoint error unknown; zp_method on lightcurve_point

Revision ID: 0019
Revises: 0018

The SQL is written out here as it was at this revision (a migration does not read the live code).

``detection_calibrated`` (migration 0003) computed ``magerr_cal = sqrt(magerr_auto^2 +
COALESCE(zp_err, 0)^2)``: a detection of an exposure without a zeropoint had a ``magerr_cal``
(its instrumental error) while ``mag_cal`` was NULL, and a zeropoint whose error is not known
(``zp_err`` NULL) silently counted as exact.  From this revision ``magerr_cal`` is NULL when
``mag_cal`` is NULL or ``zp_err`` is NULL.  ``exposure_catalog`` and ``lightcurve_point``
(migration 0008) read the column from ``detection_calibrated`` and follow.

A relative or ensemble zeropoint (``calibrate`` methods ``relative``/``ensemble``) puts
``mag_cal`` on an arbitrary scale anchored at ``zp_ref`` (default 0) on a reference exposure,
not an absolute magnitude.  ``detection_calibrated`` and ``exposure_catalog`` already carry the
zeropoint's ``zp_method``; its comment now says what each method means, and
``lightcurve_point`` gains the column (appended last, so ``CREATE OR REPLACE VIEW`` keeps the
other columns where they were; NULL on forced rows, whose ``forced_source`` row does not record
the zeropoint used).  ``zeropoint.method``'s comment lists ``ensemble`` too.

Downgrade restores the definitions and comments of revision 0018 (``lightcurve_point`` is
dropped and re-created as migration 0008 made it, since a view cannot lose a column in place).
"""
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

METHOD_BEFORE = "pp, regression or relative"
METHOD_AFTER = ("Calibration method: pp or regression (absolute, fitted to a reference catalogue), relative or "
                "ensemble (relative to a reference exposure given zp = zp_ref, default 0: an arbitrary scale)")

#: detection_calibrated with magerr_cal NULL when mag_cal is NULL or zp_err is NULL
DETECTION_CALIBRATED_SQL = r"""
CREATE OR REPLACE VIEW detection_calibrated AS
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
       CASE WHEN d.mag_auto IS NOT NULL THEN sqrt(d.magerr_auto::double precision ^ 2 + z.zp_err ^ 2) END
           AS magerr_cal,
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

COMMENT ON COLUMN detection_calibrated.zp_method IS 'Method of the zeropoint: pp or regression = absolute, fitted to a reference catalogue; relative or ensemble = relative to a reference exposure given zp = zp_ref (calibrate parameter, default 0), so mag_cal is on an arbitrary scale, not an absolute magnitude; NULL without a zeropoint';
COMMENT ON COLUMN detection_calibrated.mag_cal IS 'Calibrated magnitude mag_auto + zp, on the scale zp_method says (arbitrary for relative, ensemble); NULL without an ok zeropoint [mag]';
COMMENT ON COLUMN detection_calibrated.magerr_cal IS 'Error of mag_cal: sqrt(magerr_auto^2 + zp_err^2); NULL when mag_cal is NULL or the zeropoint error is not known (zp_err NULL) [mag]';
"""

#: detection_calibrated as migration 0003 made it
DETECTION_CALIBRATED_0003_SQL = r"""
CREATE OR REPLACE VIEW detection_calibrated AS
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

COMMENT ON COLUMN detection_calibrated.zp_method IS 'Calibration method (pp, regression, relative, ensemble)';
COMMENT ON COLUMN detection_calibrated.mag_cal IS 'Calibrated magnitude mag_auto + zp [mag]';
COMMENT ON COLUMN detection_calibrated.magerr_cal IS 'Calibrated magnitude error sqrt(magerr_auto^2 + zp_err^2) [mag]';
"""

#: exposure_catalog (SELECT dc.*, dob.object_id) keeps detection_calibrated's column comments
EXPOSURE_CATALOG_COMMENTS_SQL = r"""
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT a.attname, col_description('detection_calibrated'::regclass, a.attnum) AS c FROM pg_attribute a
           WHERE a.attrelid = 'detection_calibrated'::regclass AND a.attnum > 0 LOOP
    EXECUTE format('COMMENT ON COLUMN exposure_catalog.%I IS %L', r.attname, r.c);
  END LOOP;
END $$;
"""

_LIGHTCURVE_SELECT = r"""
SELECT 'object'::text AS kind, dob.object_id AS target_id, 'detection'::text AS source, dc.exposure_id,
       dc.mjd_mid, e.filter, COALESCE(dc.zp_band, dc.band) AS band,
       dc.mag_cal, CASE WHEN dc.mag_cal IS NOT NULL THEN dc.magerr_cal END AS magerr_cal,
       dc.mag_cal IS NOT NULL AS calibrated,
       dc.mag_auto::double precision AS mag_auto, dc.magerr_auto::double precision AS magerr_auto,
       dc.flux_auto::double precision AS flux, dc.fluxerr_auto::double precision AS flux_err,
       dc.ra, dc.dec, dc.flags::integer AS flags, false AS outlier, dc.quality_flags,
       dc.id AS detection_id, NULL::bigint AS forced_id, NULL::text AS label, dob.stage_run_id{zp_method_as}
FROM detection_object dob
JOIN detection_calibrated dc ON dc.id = dob.detection_id
JOIN exposure e ON e.id = dc.exposure_id
UNION ALL
SELECT 'track', td.track_id, 'detection', dc.exposure_id,
       dc.mjd_mid, e.filter, COALESCE(dc.zp_band, dc.band),
       dc.mag_cal, CASE WHEN dc.mag_cal IS NOT NULL THEN dc.magerr_cal END, dc.mag_cal IS NOT NULL,
       dc.mag_auto, dc.magerr_auto, dc.flux_auto, dc.fluxerr_auto,
       dc.ra, dc.dec, dc.flags, td.outlier, dc.quality_flags,
       dc.id, NULL, NULL, t.stage_run_id{zp_method}
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
       NULL, f.id, f.label, f.stage_run_id{zp_method_forced}
FROM forced_source f
JOIN exposure e ON e.id = f.exposure_id;
"""

#: lightcurve_point with zp_method appended (CREATE OR REPLACE VIEW may add columns at the end)
LIGHTCURVE_POINT_SQL = ("CREATE OR REPLACE VIEW lightcurve_point AS" + _LIGHTCURVE_SELECT.format(
    zp_method_as=",\n       dc.zp_method", zp_method=", dc.zp_method", zp_method_forced=", NULL::text") + r"""
COMMENT ON COLUMN lightcurve_point.magerr_cal IS 'Error of mag_cal, zeropoint error included: detections sqrt(magerr_auto^2 + zp_err^2), NULL when mag_cal is NULL or the zeropoint error is not known; forced rows forced_source.mag_err [mag]';
COMMENT ON COLUMN lightcurve_point.zp_method IS 'Method of the zeropoint of a detection: pp or regression = absolute, fitted to a reference catalogue; relative or ensemble = relative to a reference exposure given zp = zp_ref (calibrate parameter, default 0), so mag_cal is on an arbitrary scale, not an absolute magnitude; NULL without a zeropoint and on forced rows (forced_source does not record the zeropoint it used)';
""")

#: lightcurve_point as migration 0008 made it (its comments and grants)
LIGHTCURVE_POINT_0008_SQL = ("CREATE VIEW lightcurve_point AS" + _LIGHTCURVE_SELECT.format(
    zp_method_as="", zp_method="", zp_method_forced="") + r"""
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

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    GRANT SELECT ON lightcurve_point TO catdb_reader;
  END IF;
END $$;
""")


def upgrade() -> None:
    op.execute(DETECTION_CALIBRATED_SQL)
    op.execute(EXPOSURE_CATALOG_COMMENTS_SQL)
    op.execute(LIGHTCURVE_POINT_SQL)
    op.alter_column("zeropoint", "method", comment=METHOD_AFTER, existing_comment=METHOD_BEFORE)


def downgrade() -> None:
    op.alter_column("zeropoint", "method", comment=METHOD_BEFORE, existing_comment=METHOD_AFTER)
    op.execute("DROP VIEW lightcurve_point")
    op.execute(LIGHTCURVE_POINT_0008_SQL)
    op.execute(DETECTION_CALIBRATED_0003_SQL)
    op.execute(EXPOSURE_CATALOG_COMMENTS_SQL)
