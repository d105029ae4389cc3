"""Tables ``ephemeris`` and ``ephemeris_target``: the JPL Horizons cache and the target link.

Written by stage ``ephemeris`` (:mod:`catdb.stages.ephemeris`) and by ``catdb ephemeris import``
(:func:`catdb.ingest.horizons.import_horizons`).  ``ephemeris`` holds one row per (target,
exposure) asked of JPL Horizons: the predicted astrometric position at the exposure's mid-time
from its observatory, rates, magnitude, distances, phase angle and the 3-sigma uncertainties,
or status ``failed`` with the message (NULL values).  A later run reads the cache instead of
calling the service.  ``ephemeris_target`` links each named target to the candidate track that
follows its ephemeris: that track's light curve is the target's.  Kept in its own module so the
tables are added by their own migration without editing :mod:`catdb.schema.tables`.
"""
from __future__ import annotations

from sqlalchemy import (REAL as Real, BigInteger, CheckConstraint, DateTime, Double, ForeignKey, Index, Integer,
                        SmallInteger, Table, Text, UniqueConstraint, func)

from .tables import C, metadata, pk, run_fk

#: statuses of one ephemeris row
EPHEMERIS_STATUS = ("ok", "failed")
#: how the observer was given to Horizons
LOCATION_KINDS = ("code", "site", "geocentre")
#: how a track was compared with the ephemeris
LINK_MODES = ("position", "motion")

ephemeris = Table(
    "ephemeris", metadata,
    pk(),
    C("exposure_id", BigInteger, "Exposure the ephemeris was asked for", ForeignKey("exposure.id", ondelete="CASCADE"),
      nullable=False),
    C("target", Text, "Horizons identifier asked (number, designation or name, e.g. '5945', 'C/2020 F3')",
      nullable=False),
    C("id_type", Text, "Horizons id_type of the query (smallbody, designation, name, majorbody, ...)", nullable=False),
    C("target_name", Text, "Target body name Horizons returned (e.g. '5945 Roachapproach (1984 CA)')"),
    C("mjd_epoch", Double, "Epoch of the predicted position (UTC; the exposure's mid-time when asked by the stage)",
      "d", nullable=False),
    C("location", Text, "Observer of the query: MPC code (e.g. '688'), 'lon,lat,height' of the site "
      "(deg east, deg, km) or '500' (geocentre)", nullable=False),
    C("location_kind", Text, "code, site or geocentre (no observatory known: positions off by the parallax)",
      nullable=False),
    C("status", Text, "ok (a prediction) or failed (service error, unknown target, no row for the epoch)",
      nullable=False),
    C("message", Text, "Error message (failed), else NULL"),
    C("attempts", SmallInteger, "Service calls made for the batch holding this epoch (0 = imported file)",
      nullable=False),
    C("source", Text, "'JPL Horizons', or the path of the imported response", nullable=False),
    C("ra", Double, "Predicted astrometric right ascension (ICRF) at mjd_epoch", "deg"),
    C("dec", Double, "Predicted astrometric declination (ICRF) at mjd_epoch", "deg"),
    C("rate_ra", Double, "Predicted motion d(RA)/dt cos(Dec)", "arcsec/h"),
    C("rate_dec", Double, "Predicted motion d(Dec)/dt", "arcsec/h"),
    C("mag", Real, "Predicted apparent magnitude (APmag, V for asteroids; T-mag for comets)", "mag"),
    C("delta", Double, "Distance from the observer", "AU"),
    C("r", Double, "Distance from the Sun", "AU"),
    C("alpha", Real, "Phase angle Sun-target-observer", "deg"),
    C("ra_3sigma", Double, "3-sigma uncertainty of the predicted RA (Horizons RA_3sigma)", "arcsec"),
    C("dec_3sigma", Double, "3-sigma uncertainty of the predicted Dec", "arcsec"),
    C("fetched_at", DateTime(timezone=True), "When the response was received (or imported)",
      server_default=func.now(), nullable=False),
    run_fk(nullable=False),
    CheckConstraint("status IN ('ok', 'failed')", name="status"),
    CheckConstraint("location_kind IN ('code', 'site', 'geocentre')", name="location_kind"),
    comment="JPL Horizons ephemerides of named targets, one row per (target, exposure): the cache "
            "(stage ephemeris)",
)
Index("ix_ephemeris_exposure_id", ephemeris.c.exposure_id)
Index("ix_ephemeris_target", ephemeris.c.target)
Index("ix_ephemeris_stage_run_id", ephemeris.c.stage_run_id)

ephemeris_target = Table(
    "ephemeris_target", metadata,
    pk(),
    C("target", Text, "Horizons identifier of the target (as in ephemeris.target)", nullable=False),
    C("target_name", Text, "Target body name Horizons returned"),
    C("track_id", BigInteger, "The track that follows the target's ephemeris",
      ForeignKey("track.id", ondelete="CASCADE"), nullable=False),
    C("mode", Text, "position (offsets from the ephemeris) or motion (rate and relative positions only: the "
      "exposures' WCS is registered, its absolute frame unknown)", nullable=False),
    C("n_exposures", Integer, "Exposures where the track's detections were compared with the ephemeris",
      nullable=False),
    C("sep_median", Double, "Median separation detection - ephemeris (position mode; NULL in motion mode)",
      "arcsec"),
    C("offset_spread", Double, "Median distance of the offsets from their median offset (how well the track "
      "follows the ephemeris up to a constant shift)", "arcsec"),
    C("rate_diff", Double, "Length of (track rate vector - mean predicted rate vector)", "arcsec/h"),
    C("uncertainty", Double, "Median 3-sigma uncertainty of the ephemeris (RA, Dec combined; plus the parallax "
      "when geocentric); NULL when Horizons gave none", "arcsec"),
    C("limit_sep", Double, "Separation (position) or spread (motion) limit applied: max(tolerance, uncertainty)",
      "arcsec"),
    C("n_candidates", Integer, "Candidate tracks within the limits (1 = unambiguous)", nullable=False),
    run_fk(nullable=False),
    UniqueConstraint("target", "track_id", name="uq_ephemeris_target_target_track_id"),
    CheckConstraint("mode IN ('position', 'motion')", name="mode"),
    comment="The track identified as a named target by its JPL Horizons ephemeris (stage ephemeris)",
)
Index("ix_ephemeris_target_track_id", ephemeris_target.c.track_id)
Index("ix_ephemeris_target_stage_run_id", ephemeris_target.c.stage_run_id)
