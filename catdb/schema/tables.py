"""catdb's tables: SQLAlchemy Core definitions, the one source of truth.

Every column carries a description and a unit; in PostgreSQL they become
``COMMENT ON COLUMN ... IS 'description [unit]'`` so exports (VOTable, FITS)
can carry them.  :func:`column_unit` and :func:`column_description` read them
back.

Keys and indexes are chosen for tables of 10^9 detections: bigint identity
keys, B-tree indexes on foreign keys, and a q3c index on
``q3c_ang2ipix(ra, dec)`` for every table with positions.  See
``docs/schema.md`` for the partitioning decision.
"""
from __future__ import annotations

import re

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Column, Date, DateTime, Double,
                        ForeignKey, Identity, Index, Integer, MetaData, REAL as Real, SmallInteger, Table, Text,
                        UniqueConstraint, func, text)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


def C(name, type_, desc, *args, **kw):
    """A column whose comment is ``desc [unit]`` (the unit is kept in ``info`` too).

    ``args`` may start with the unit (a string); the rest (e.g. a ForeignKey) go to Column.
    """
    unit = None
    if args and isinstance(args[0], str):
        unit, args = args[0], args[1:]
    comment = f"{desc} [{unit}]" if unit else desc
    kw.setdefault("nullable", not kw.get("primary_key", False))
    return Column(name, type_, *args, comment=comment, info={"unit": unit, "description": desc}, **kw)


def pk():
    return Column("id", BigInteger, Identity(always=False), primary_key=True,
                  comment="Primary key", info={"unit": None, "description": "Primary key"})


def run_fk(nullable=True):
    return C("stage_run_id", BigInteger, "Stage run that wrote this row (provenance)",
             ForeignKey("stage_run.id", ondelete="CASCADE" if not nullable else "SET NULL"), nullable=nullable)


def q3c_index(table, ra="ra", dec="dec"):
    """Functional index on ``q3c_ang2ipix(ra, dec)`` (extension or SQL-compatible backend)."""
    return Index(f"ix_{table.name}_q3c", func.q3c_ang2ipix(table.c[ra], table.c[dec]))


_UNIT_RE = re.compile(r"^(.*?)(?: \[([^\]]*)\])?$", re.S)


def column_unit(comment: str | None) -> str | None:
    """Unit parsed from a column comment ``"description [unit]"``."""
    if not comment:
        return None
    return _UNIT_RE.match(comment).group(2)


def column_description(comment: str | None) -> str | None:
    """Description parsed from a column comment ``"description [unit]"``."""
    if not comment:
        return None
    return _UNIT_RE.match(comment).group(1)


# ---------------------------------------------------------------------------
stage_run = Table(
    "stage_run", metadata,
    pk(),
    C("stage", Text, "Stage name (catdb stage list)", nullable=False),
    C("params", JSONB, "Stage parameters as given and defaulted", nullable=False, server_default=text("'{}'::jsonb")),
    C("code_version", Text, "catdb version that ran the stage", nullable=False),
    C("input_where", Text, "SQL condition selecting the inputs (--where)"),
    C("input_ids", ARRAY(BigInteger), "Ids of the input exposures (or other input keys) the run selected"),
    C("input_count", BigInteger, "Number of inputs selected"),
    C("counts", JSONB, "Output counts per table / ledger figures", server_default=text("'{}'::jsonb")),
    C("status", Text, "running, ok, failed or replaced", nullable=False, server_default=text("'running'")),
    C("error", Text, "Error message when status is failed"),
    C("started_at", DateTime(timezone=True), "Start time", nullable=False, server_default=func.now()),
    C("finished_at", DateTime(timezone=True), "End time"),
    C("db_user", Text, "Database role that ran the stage", server_default=func.current_user()),
    C("backend_pid", Integer, "Process id of the database session that ran the stage (pg_backend_pid)"),
    C("backend_start", DateTime(timezone=True), "Start time of that session (pg_stat_activity.backend_start); "
      "with backend_pid it tells a live run from one whose session is gone"),
    CheckConstraint("status IN ('running','ok','failed','replaced')", name="status"),
    comment="Provenance: one row per stage execution; every row a stage writes references it",
)
Index("ix_stage_run_stage", stage_run.c.stage, stage_run.c.started_at)

ingest_lock = Table(
    "ingest_lock", metadata,
    C("key", Text, "Ingest key: 'sha256:<hex>' (file content) or 'path:<path>#<hdu>'", primary_key=True),
    C("locked_at", DateTime(timezone=True), "Last time an ingest transaction locked the key",
      server_default=func.now()),
    comment="One row per ingest key; an ingest transaction locks its rows (INSERT ... ON CONFLICT DO UPDATE) "
            "until it commits, so two loads of the same content take turns; only writers can lock a row",
)

detached_index = Table(
    "detached_index", metadata,
    C("index_name", Text, "Name of the dropped index", primary_key=True),
    C("table_name", Text, "Table the index belongs to", nullable=False),
    C("definition", Text, "CREATE INDEX statement that re-creates it (pg_get_indexdef)", nullable=False),
    run_fk(),
    C("detached_at", DateTime(timezone=True), "When the bulk load dropped it", nullable=False,
      server_default=func.now()),
    comment="Indexes dropped by a bulk load (catdb ingest catalog --bulk) and not yet re-created; catdb re-creates "
            "them when the load ends, at the next ingest after a crash, or on catdb db restore-indexes",
)

catdb_info = Table(
    "catdb_info", metadata,
    C("key", Text, "Setting name", primary_key=True),
    C("value", Text, "Setting value", nullable=False),
    comment="Database-level settings recorded by catdb (spatial backend, ...)",
)

exposure = Table(
    "exposure", metadata,
    pk(),
    C("path", Text, "Image (or catalogue) file path as ingested", nullable=False),
    C("sha256", Text, "SHA-256 of the file"),
    C("hdu", SmallInteger, "HDU index within the file (0-based)", nullable=False, server_default=text("0")),
    C("catalog_path", Text, "SExtractor catalogue path the detections came from"),
    C("catalog_sha256", Text, "SHA-256 of the catalogue file"),
    C("instrument", Text, "Instrument (keyword map name or INSTRUME)"),
    C("telescope", Text, "Telescope (TELESCOP)"),
    C("observatory_code", Text, "MPC observatory code"),
    C("object", Text, "Target name (OBJECT)"),
    C("filter", Text, "Filter name as in the header"),
    C("band", Text, "Normalised photometric band"),
    C("image_type", Text, "science, bias, flat, dark, ... (IMAGETYP)", nullable=False,
      server_default=text("'science'")),
    C("date_obs", Text, "DATE-OBS as written in the header"),
    C("mjd_mid", Double, "Modified Julian Date of mid-exposure (UTC)", "d"),
    C("night", Date, "Observing night (local date at start of night)"),
    C("exptime", Double, "Exposure time", "s"),
    C("airmass", Double, "Airmass at mid-exposure"),
    C("fwhm", Double, "Seeing FWHM", "arcsec"),
    C("gain", Double, "Detector gain", "electron/adu"),
    C("readnoise", Double, "Read noise", "electron"),
    C("saturation", Double, "Saturation level", "adu"),
    C("pixscale", Double, "Pixel scale", "arcsec/pix"),
    C("naxis1", Integer, "Image width", "pix"),
    C("naxis2", Integer, "Image height", "pix"),
    C("binning", Text, "Detector binning (e.g. 3x3)"),
    C("ra_center", Double, "Right ascension of the image centre (ICRS)", "deg"),
    C("dec_center", Double, "Declination of the image centre (ICRS)", "deg"),
    C("radius", Double, "Radius from the centre to the farthest corner", "deg"),
    C("corners", ARRAY(Double), "Footprint corners ra1,dec1,...,ra4,dec4 (ICRS)", "deg"),
    C("wcs_header", Text, "WCS cards of the image"),
    C("header", Text, "Full image header (80-character cards, newline separated)"),
    C("site_lat", Double, "Observatory latitude", "deg"),
    C("site_lon", Double, "Observatory longitude, east positive", "deg"),
    C("site_height", Double, "Observatory height", "m"),
    C("pointing_ra", Double, "Commanded pointing RA from the header (OBJCTRA, RA, TELRA; not a WCS)", "deg"),
    C("pointing_dec", Double, "Commanded pointing Dec from the header (OBJCTDEC, DEC, TELDEC; not a WCS)", "deg"),
    C("ccd_temp", Real, "CCD temperature (CCD-TEMP)", "deg_C"),
    C("wcs_status", Text, "Astrometric state: header, solved, registered, approximate or none",
      nullable=False, server_default=text("'none'")),
    C("wcs_source", Text, "Where the WCS came from (FITS header, SCAMP, astrometry.net, "
      "registration to exposure N, pointing keywords), or why there is none"),
    C("wcs_refcat", Text, "Reference catalogue of the astrometric solution"),
    C("wcs_nstars", Integer, "Number of stars the astrometric solution used"),
    C("wcs_rms", Real, "RMS of the astrometric solution's star residuals", "arcsec"),
    C("wcs_run_id", BigInteger, "Stage run (solve) that wrote the WCS",
      ForeignKey("stage_run.id", ondelete="SET NULL")),
    C("bkg_mean", Double, "Background mean (sigma-clipped, sources masked)", "adu"),
    C("bkg_median", Double, "Background median", "adu"),
    C("bkg_std", Double, "Background standard deviation", "adu"),
    C("bkg_mad", Double, "Background median absolute deviation", "adu"),
    C("quality_flags", Integer, "Bit mask of quality flags (see catdb.schema.QUALITY_FLAGS)", nullable=False,
      server_default=text("0")),
    C("ingested_at", DateTime(timezone=True), "Ingest time", server_default=func.now()),
    run_fk(),
    UniqueConstraint("path", "hdu", name="uq_exposure_path_hdu"),
    CheckConstraint("wcs_status IN ('header','solved','registered','approximate','none')", name="wcs_status"),
    comment="One row per image, or per extension of a multi-extension image",
)
Index("ix_exposure_mjd_mid", exposure.c.mjd_mid)
Index("ix_exposure_night", exposure.c.night)
q3c_index(exposure, "ra_center", "dec_center")

#: bits of exposure.quality_flags
QUALITY_FLAGS = {
    "astrometric_outlier": 1,
    "not_solved": 2,
    "background_outlier": 4,
    "bad_zeropoint": 8,
    "fwhm_outlier": 16,
    # set by the reduce stage on science exposures it left out (size/binning other than the night's
    # science frames, e.g. focus-run subframes); the stages' default selection skips them
    "not_reduced": 32,
    # set by the exposure-summary stage: far fewer sources than the other exposures of the night
    # (IQR rule on log10 of the detection count): clouds, lost focus, a closed shutter
    "few_sources": 64,
}

#: values of exposure.wcs_status, best first, with what each means
WCS_STATUS = {
    "header": "WCS from the image or catalogue header (e.g. an observatory pipeline's solution)",
    "solved": "catdb solved the field against a reference catalogue (SCAMP or astrometry.net)",
    "registered": "registered to another exposure of the night: positions agree across the night, "
                  "the absolute frame comes from that exposure (pointing keywords when it is not solved)",
    "approximate": "a TAN WCS from the pointing keywords and pixel scale only: off by up to arcminutes",
    "none": "no WCS: no sky position can be computed",
}
#: statuses whose positions the stages may write (detections, footprints)
WCS_USABLE = ("header", "solved", "registered")
#: statuses whose positions are absolute (what the MPC / ADES exports accept)
WCS_ABSOLUTE = ("header", "solved")

detection = Table(
    "detection", metadata,
    pk(),
    # no per-row foreign keys (migration 0016, docs/schema.md "Ingest at the COPY limit"): exposure_id is
    # checked once per file by the code that writes detections, and deleting (truncating) exposures deletes
    # their detections through a statement trigger on exposure
    C("exposure_id", BigInteger, "Exposure the source was extracted from", nullable=False),
    C("number", Integer, "SExtractor NUMBER (running object number)", nullable=False),
    C("ra", Double, "Right ascension (ICRS; ALPHAWIN_J2000 or ALPHA_J2000)", "deg", nullable=False),
    C("dec", Double, "Declination (ICRS; DELTAWIN_J2000 or DELTA_J2000)", "deg", nullable=False),
    C("ra_err", Real, "Position error along RA", "arcsec"),
    C("dec_err", Real, "Position error along Dec", "arcsec"),
    C("x", Double, "X_IMAGE (1-based, SExtractor convention)", "pix"),
    C("y", Double, "Y_IMAGE (1-based)", "pix"),
    C("xwin", Double, "XWIN_IMAGE", "pix"),
    C("ywin", Double, "YWIN_IMAGE", "pix"),
    C("flux_auto", Real, "FLUX_AUTO", "adu"),
    C("fluxerr_auto", Real, "FLUXERR_AUTO", "adu"),
    C("mag_auto", Real, "MAG_AUTO (instrumental)", "mag"),
    C("magerr_auto", Real, "MAGERR_AUTO", "mag"),
    C("flux_aper", ARRAY(Real), "FLUX_APER, one element per aperture", "adu"),
    C("fluxerr_aper", ARRAY(Real), "FLUXERR_APER", "adu"),
    C("mag_aper", ARRAY(Real), "MAG_APER (instrumental)", "mag"),
    C("magerr_aper", ARRAY(Real), "MAGERR_APER", "mag"),
    C("flux_iso", Real, "FLUX_ISO", "adu"),
    C("fluxerr_iso", Real, "FLUXERR_ISO", "adu"),
    C("mag_iso", Real, "MAG_ISO (instrumental)", "mag"),
    C("magerr_iso", Real, "MAGERR_ISO", "mag"),
    C("flux_psf", Real, "FLUX_PSF", "adu"),
    C("fluxerr_psf", Real, "FLUXERR_PSF", "adu"),
    C("mag_psf", Real, "MAG_PSF (instrumental)", "mag"),
    C("magerr_psf", Real, "MAGERR_PSF", "mag"),
    C("flux_max", Real, "FLUX_MAX (peak above background)", "adu"),
    C("flux_radius", Real, "FLUX_RADIUS (half-light radius)", "pix"),
    C("fwhm_image", Real, "FWHM_IMAGE", "pix"),
    C("fwhm", Real, "FWHM_WORLD", "arcsec"),
    C("a_image", Real, "A_IMAGE (semi-major axis)", "pix"),
    C("b_image", Real, "B_IMAGE (semi-minor axis)", "pix"),
    C("theta_image", Real, "THETA_IMAGE", "deg"),
    C("a_world", Real, "A_WORLD", "arcsec"),
    C("b_world", Real, "B_WORLD", "arcsec"),
    C("theta_world", Real, "THETA_J2000 (east of north)", "deg"),
    C("elongation", Real, "ELONGATION (A/B)"),
    C("ellipticity", Real, "ELLIPTICITY (1 - B/A)"),
    C("class_star", Real, "CLASS_STAR (star/galaxy classifier, 1 = star)"),
    C("flags", Integer, "SExtractor FLAGS", nullable=False, server_default=text("0")),
    C("imaflags", Integer, "IMAFLAGS_ISO"),
    C("background", Real, "BACKGROUND at the source", "adu"),
    C("threshold", Real, "THRESHOLD (detection threshold above background)", "adu"),
    C("spread_model", Real, "SPREAD_MODEL"),
    C("spreaderr_model", Real, "SPREADERR_MODEL"),
    C("snr", Real, "Signal-to-noise ratio FLUX_AUTO / FLUXERR_AUTO"),
    C("extra", JSONB, "Other catalogue columns, by SExtractor name"),
    # a plain column: deleting a stage_run sets it NULL through a statement trigger (migration 0016)
    C("stage_run_id", BigInteger, "Stage run that wrote this row (provenance)"),
    comment="One row per extracted source",
)
Index("ix_detection_exposure_id", detection.c.exposure_id, detection.c.number)
q3c_index(detection)

refcat_source = Table(
    "refcat_source", metadata,
    pk(),
    C("catalog", Text, "Reference catalogue name (gaia-dr2, tycho2, ucac4, ...)", nullable=False),
    C("source_id", Text, "Identifier within the catalogue"),
    C("ra", Double, "Right ascension at the reference epoch (ICRS)", "deg", nullable=False),
    C("dec", Double, "Declination at the reference epoch (ICRS)", "deg", nullable=False),
    C("epoch", Double, "Reference epoch of the position", "yr"),
    C("ra_err", Real, "RA error", "mas"),
    C("dec_err", Real, "Dec error", "mas"),
    C("pmra", Real, "Proper motion in RA (times cos dec)", "mas/yr"),
    C("pmdec", Real, "Proper motion in Dec", "mas/yr"),
    C("parallax", Real, "Parallax", "mas"),
    C("mags", JSONB, "Magnitudes by band, e.g. {\"G\": 15.2, \"r\": 15.4}", "mag"),
    C("mag_errs", JSONB, "Magnitude errors by band", "mag"),
    run_fk(),
    comment="Reference catalogue stars (astrometric and photometric references, bright-star vetoes)",
)
Index("ix_refcat_source_catalog", refcat_source.c.catalog, refcat_source.c.source_id)
q3c_index(refcat_source)

zeropoint = Table(
    "zeropoint", metadata,
    pk(),
    C("exposure_id", BigInteger, "Calibrated exposure", ForeignKey("exposure.id", ondelete="CASCADE"), nullable=False),
    C("band", Text, "Band the zeropoint calibrates to (reference band after transformation)", nullable=False),
    C("mag_column", Text, "Instrumental magnitude column used (mag_auto, mag_aper[2], ...)"),
    C("zp", Double, "Zeropoint: calibrated = instrumental + zp", "mag"),
    C("zp_err", Double, "Zeropoint error", "mag"),
    C("color_term", Double, "Colour term coefficient"),
    C("color_index", Text, "Colour index of the colour term (e.g. g-r)"),
    C("slope", Double, "Slope of the regression (method regression; 1 for pp)"),
    C("n_matched", Integer, "Reference stars matched"),
    C("n_used", Integer, "Reference stars used after rejection"),
    C("chi2_red", Double, "Reduced chi-square of the fit"),
    C("r2", Double, "Coefficient of determination (method regression)"),
    C("scatter", Double, "Robust scatter of the residuals", "mag"),
    C("method", Text, "Calibration method: pp or regression (absolute, fitted to a reference catalogue), relative or "
      "ensemble (relative to a reference exposure given zp = zp_ref, default 0: an arbitrary scale)", nullable=False),
    C("refcat", Text, "Reference catalogue (and transformation)"),
    C("ok", Boolean, "False when the calibration failed its quality threshold", nullable=False,
      server_default=text("true")),
    C("residuals", JSONB, "Residuals of the used stars, for diagnostics"),
    run_fk(nullable=False),
    comment="Photometric zeropoint per exposure and band",
)
Index("ix_zeropoint_exposure_id", zeropoint.c.exposure_id, zeropoint.c.band)

object_ = Table(
    "object", metadata,
    pk(),
    C("ra", Double, "Mean right ascension (weighted)", "deg", nullable=False),
    C("dec", Double, "Mean declination (weighted)", "deg", nullable=False),
    C("ra_err", Real, "Error of the mean RA", "arcsec"),
    C("dec_err", Real, "Error of the mean Dec", "arcsec"),
    C("kind", Text, "static, moving or coadd", nullable=False, server_default=text("'static'")),
    C("n_detections", Integer, "Number of linked detections", nullable=False, server_default=text("0")),
    C("n_epochs", Integer, "Number of distinct exposures", nullable=False, server_default=text("0")),
    C("band", Text, "Band of the summary photometry"),
    C("mean_mag", Real, "Mean calibrated magnitude", "mag"),
    C("std_mag", Real, "Standard deviation of the calibrated magnitudes", "mag"),
    C("chi2_var", Real, "Variability index: reduced chi-square about the mean magnitude"),
    C("mjd_first", Double, "First epoch", "d"),
    C("mjd_last", Double, "Last epoch", "d"),
    C("scamp_source", Integer, "SCAMP SOURCE_NUMBER of the merged source (objects loaded by ingest-scamp; unique "
      "within its stage run)"),
    C("epoch", Double, "Julian epoch of ra/dec (SCAMP merged EPOCH: 2000 + (MJD - 51544.5) / 365.25)", "yr"),
    C("pmra", Real, "Proper motion in RA times cos(dec) (SCAMP PMALPHA_J2000)", "mas/yr"),
    C("pmdec", Real, "Proper motion in Dec (SCAMP PMDELTA_J2000)", "mas/yr"),
    C("pmra_err", Real, "Error of pmra (SCAMP PMALPHAERR_J2000)", "mas/yr"),
    C("pmdec_err", Real, "Error of pmdec (SCAMP PMDELTAERR_J2000)", "mas/yr"),
    run_fk(nullable=False),
    comment="Associated sources across epochs",
)
q3c_index(object_)
Index("ix_object_stage_run_id", object_.c.stage_run_id)

detection_object = Table(
    "detection_object", metadata,
    C("detection_id", BigInteger, "Detection", ForeignKey("detection.id", ondelete="CASCADE"), primary_key=True),
    C("object_id", BigInteger, "Object the detection belongs to", ForeignKey("object.id", ondelete="CASCADE"),
      nullable=False),
    run_fk(nullable=False),
    comment="Link detection -> object (written by the associate stage)",
)
Index("ix_detection_object_object_id", detection_object.c.object_id)

forced_source = Table(
    "forced_source", metadata,
    pk(),
    C("object_id", BigInteger, "Object measured (null for user positions)",
      ForeignKey("object.id", ondelete="CASCADE")),
    C("track_id", BigInteger, "Moving-object track measured", ForeignKey("track.id", ondelete="CASCADE")),
    C("exposure_id", BigInteger, "Exposure measured", ForeignKey("exposure.id", ondelete="CASCADE"), nullable=False),
    C("ra", Double, "Position measured (ICRS)", "deg", nullable=False),
    C("dec", Double, "Position measured (ICRS)", "deg", nullable=False),
    C("x", Double, "Pixel position (1-based)", "pix"),
    C("y", Double, "Pixel position (1-based)", "pix"),
    C("aperture_radius", Real, "Aperture radius", "pix"),
    C("flux", Double, "Background-subtracted aperture flux", "adu"),
    C("flux_err", Double, "Flux error (Poisson, background, read noise)", "adu"),
    C("background", Double, "Local background per pixel (annulus median)", "adu"),
    C("mag", Double, "Calibrated total magnitude: -2.5 log10(flux) + aper_corr + zeropoint (the aperture magnitude "
                     "when aper_corr is NULL, flag 32)", "mag"),
    C("mag_err", Double, "Magnitude error including the zeropoint error", "mag"),
    C("aper_corr", Real, "Aperture correction to total flux: 2.5 log10 of the bright stars' median fraction of "
                         "their flux inside aperture_radius (growth curve; <= 0; NULL when not measured, flag 32)",
      "mag"),
    C("band", Text, "Band of the calibrated magnitude"),
    C("flags", Integer, "1 edge, 2 saturated, 4 masked pixels, 8 no zeropoint, 16 bad background annulus, "
                        "32 no aperture correction", nullable=False,
      server_default=text("0")),
    C("label", Text, "User label for user-list positions"),
    run_fk(nullable=False),
    comment="Forced measurements of an object or track on an exposure",
)
Index("ix_forced_source_exposure_id", forced_source.c.exposure_id)
Index("ix_forced_source_object_id", forced_source.c.object_id)
q3c_index(forced_source)

track = Table(
    "track", metadata,
    pk(),
    C("n_detections", Integer, "Detections on the track", nullable=False),
    C("mjd_first", Double, "First epoch", "d"),
    C("mjd_last", Double, "Last epoch", "d"),
    C("ra", Double, "RA at the reference epoch mjd_ref", "deg"),
    C("dec", Double, "Dec at the reference epoch mjd_ref", "deg"),
    C("mjd_ref", Double, "Reference epoch of ra/dec", "d"),
    C("rate_ra", Double, "Rate in RA times cos(dec)", "arcsec/h"),
    C("rate_dec", Double, "Rate in Dec", "arcsec/h"),
    C("rate", Double, "Total rate of motion", "arcsec/h"),
    C("rate_err", Double, "Error of the rate", "arcsec/h"),
    C("pa", Double, "Position angle of motion (east of north)", "deg"),
    C("r2_ra", Double, "R^2 of the linear fit in RA"),
    C("r2_dec", Double, "R^2 of the linear fit in Dec"),
    C("rms", Double, "RMS residual of the linear fit", "arcsec"),
    C("mean_mag", Real, "Mean magnitude", "mag"),
    C("status", Text, "candidate or rejected:<filter>", nullable=False, server_default=text("'candidate'")),
    C("designation", Text, "Identification (SkyBoT or user)"),
    C("skybot_name", Text, "SkyBoT match name"),
    C("skybot_sep", Double, "Separation from the SkyBoT prediction", "arcsec"),
    C("skybot_rate_diff", Double, "Length of (track rate vector - SkyBoT predicted rate vector)", "arcsec/h"),
    C("skybot_delta", Double, "Distance from the observer of the SkyBoT match", "AU"),
    run_fk(nullable=False),
    comment="Solar System object candidate tracks (movers stage)",
)
q3c_index(track)

track_detection = Table(
    "track_detection", metadata,
    C("track_id", BigInteger, "Track", ForeignKey("track.id", ondelete="CASCADE"), primary_key=True),
    C("detection_id", BigInteger, "Detection on the track", ForeignKey("detection.id", ondelete="CASCADE"),
      primary_key=True),
    C("residual", Real, "Residual from the linear fit", "arcsec"),
    C("outlier", Boolean, "Rejected as an outlier epoch", nullable=False, server_default=text("false")),
    comment="Link track -> detections",
)
Index("ix_track_detection_detection_id", track_detection.c.detection_id)

ledger = Table(
    "ledger", metadata,
    pk(),
    run_fk(nullable=False),
    C("step", Integer, "Order of the filter within the run", nullable=False),
    C("filter", Text, "Filter / veto name", nullable=False),
    C("n_in", BigInteger, "Input count", nullable=False),
    C("n_rejected", BigInteger, "Rejected count", nullable=False),
    C("n_kept", BigInteger, "Kept count", nullable=False),
    C("params", JSONB, "Filter parameters"),
    comment="Filter-chain / veto ledger: counts in, rejected and kept per filter of a stage run",
)
Index("ix_ledger_stage_run_id", ledger.c.stage_run_id, ledger.c.step)

survivor = Table(
    "survivor", metadata,
    C("set_name", Text, "Survivor set name (veto chain)", primary_key=True),
    C("step", Integer, "Veto step after which the row survived", primary_key=True),
    C("detection_id", BigInteger, "Surviving detection", ForeignKey("detection.id", ondelete="CASCADE"),
      primary_key=True),
    run_fk(nullable=False),
    comment="Survivor sets of veto stages (VASCO60-style transient searches)",
)

exposure_summary = Table(
    "exposure_summary", metadata,
    C("exposure_id", BigInteger, "Exposure", ForeignKey("exposure.id", ondelete="CASCADE"), primary_key=True),
    C("n_detections", Integer, "Number of detections", nullable=False),
    C("n_unflagged", Integer, "Detections with FLAGS = 0", nullable=False),
    C("fwhm_median", Real, "Median FWHM of unflagged point-like detections", "arcsec"),
    C("mag_limit", Real, "Instrumental magnitude at SNR 5 (median of 4.5 < SNR < 5.5)", "mag"),
    run_fk(nullable=False),
    comment="Per-exposure detection statistics (stage exposure-summary)",
)

exposure_qa = Table(
    "exposure_qa", metadata,
    C("exposure_id", BigInteger, "Exposure", ForeignKey("exposure.id", ondelete="CASCADE"), primary_key=True),
    C("metric", Text, "Metric name (astrometry: sep_median, sep_scatter, n_matched; background: mean, ...)",
      primary_key=True),
    C("value", Double, "Metric value (unit in the metric name's documentation)"),
    C("is_outlier", Boolean, "IQR outlier within its group", nullable=False, server_default=text("false")),
    C("group_key", Text, "Group the IQR rule was applied in (night, ...)"),
    run_fk(nullable=False),
    comment="Per-exposure quality metrics written by the qa-* stages",
)

lightcurve_period = Table(
    "lightcurve_period", metadata,
    pk(),
    C("object_id", BigInteger, "Object", ForeignKey("object.id", ondelete="CASCADE")),
    C("track_id", BigInteger, "Track", ForeignKey("track.id", ondelete="CASCADE")),
    C("n_points", Integer, "Points in the light curve"),
    C("period", Double, "Light-curve period (best Lomb-Scargle peak)", "h"),
    C("period_err", Double, "Period uncertainty", "h"),
    C("rotation_period", Double, "Rotation period (2 x light-curve period for a double-peaked curve)", "h"),
    C("amplitude", Double, "Peak-to-peak amplitude", "mag"),
    C("fap", Double, "False-alarm probability of the peak"),
    run_fk(nullable=False),
    comment="Light-curve periods of objects and tracks",
)

image_product = Table(
    "image_product", metadata,
    pk(),
    C("exposure_id", BigInteger, "Exposure the product derives from (null for coadds)",
      ForeignKey("exposure.id", ondelete="CASCADE")),
    C("kind", Text, "reduced, catalog, coadd, master_bias, master_flat, cutout, ...", nullable=False),
    C("path", Text, "File written", nullable=False),
    C("sha256", Text, "SHA-256 of the file"),
    C("hdu", SmallInteger, "HDU holding the product", nullable=False, server_default=text("0")),
    C("band", Text, "Band of the product"),
    C("input_ids", ARRAY(BigInteger), "Exposures combined (coadds, master calibrations)"),
    C("meta", JSONB, "Product details (combine method, frames skipped and why, SExtractor config, ...)"),
    run_fk(nullable=False),
    comment="Files written by stages (reduced images, catalogues, coadds, master calibrations)",
)
Index("ix_image_product_exposure_id", image_product.c.exposure_id, image_product.c.kind)

