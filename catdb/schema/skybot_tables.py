"""Tables ``skybot_query`` and ``skybot_object``: the SkyBoT cache.

Written by stage ``skybot`` (:mod:`catdb.stages.skybot`) and by ``catdb skybot import``
(:func:`catdb.ingest.skybot.import_skybot_votable`).  One ``skybot_query`` row per SkyBoT
cone search (one per exposure, at mid-exposure, from the exposure's observatory), with its
outcome (``ok``, ``empty`` or ``failed`` with the message); one ``skybot_object`` row per
known object SkyBoT returned for that cone.  A later run of the stage reads the cache instead
of calling the service (``--param refresh=true`` asks again).  Kept in its own module so the
tables are added by migration 0007 without editing :mod:`catdb.schema.tables`.
"""
from __future__ import annotations

from sqlalchemy import (REAL as Real, BigInteger, CheckConstraint, DateTime, Double, ForeignKey, Index, Integer,
                        SmallInteger, Table, Text, func)

from .tables import C, metadata, pk, q3c_index, run_fk

#: statuses of a SkyBoT cone search
QUERY_STATUS = ("ok", "empty", "failed")

skybot_query = Table(
    "skybot_query", metadata,
    pk(),
    C("exposure_id", BigInteger, "Exposure the cone was asked for", ForeignKey("exposure.id", ondelete="CASCADE"),
      nullable=False),
    C("mjd_epoch", Double, "Epoch of the query (UTC; the exposure's mid-time, or the epoch of an imported "
      "response)", "d", nullable=False),
    C("ra", Double, "Cone centre, right ascension (ICRS)", "deg", nullable=False),
    C("dec", Double, "Cone centre, declination (ICRS)", "deg", nullable=False),
    C("radius", Double, "Cone radius", "arcsec", nullable=False),
    C("observatory_code", Text, "MPC observatory code of the query (500 = geocentre)", nullable=False),
    C("status", Text, "ok (objects returned), empty (none in the cone) or failed (service error)", nullable=False),
    C("n_rows", Integer, "Objects returned (rows in skybot_object)", nullable=False),
    C("attempts", SmallInteger, "Service calls made for this cone (retries included; 0 = imported file)",
      nullable=False),
    C("message", Text, "Error message of the last attempt (failed), else NULL"),
    C("source", Text, "'SkyBoT service', or the path of the imported VOTable", nullable=False),
    C("fetched_at", DateTime(timezone=True), "When the response was received (or imported)",
      server_default=func.now(), nullable=False),
    run_fk(nullable=False),
    CheckConstraint("status IN ('ok', 'empty', 'failed')", name="status"),
    comment="SkyBoT cone searches (one per exposure) and their outcome: the cache index (stage skybot)",
)
Index("ix_skybot_query_exposure_id", skybot_query.c.exposure_id)
Index("ix_skybot_query_stage_run_id", skybot_query.c.stage_run_id)

skybot_object = Table(
    "skybot_object", metadata,
    pk(),
    C("query_id", BigInteger, "SkyBoT cone search that returned this object",
      ForeignKey("skybot_query.id", ondelete="CASCADE"), nullable=False),
    C("exposure_id", BigInteger, "Exposure of the query", ForeignKey("exposure.id", ondelete="CASCADE"),
      nullable=False),
    C("mjd_epoch", Double, "Epoch of the predicted position (UTC)", "d", nullable=False),
    C("number", Text, "Minor-planet number (NULL when unnumbered)"),
    C("name", Text, "Name or provisional designation", nullable=False),
    C("class", Text, "SkyBoT dynamical class (e.g. MB>Middle, NEA>Apollo, KBO>Detached, Comet)"),
    C("ra", Double, "Predicted right ascension (astrometric J2000) at mjd_epoch", "deg", nullable=False),
    C("dec", Double, "Predicted declination (astrometric J2000) at mjd_epoch", "deg", nullable=False),
    C("rate_ra", Double, "Predicted motion d(RA)/dt cos(Dec)", "arcsec/h"),
    C("rate_dec", Double, "Predicted motion d(Dec)/dt", "arcsec/h"),
    C("mag_v", Real, "Predicted V magnitude", "mag"),
    C("pos_err", Double, "Uncertainty of the predicted position", "arcsec"),
    C("center_dist", Double, "Distance from the cone centre", "arcsec"),
    C("dist_geo", Double, "Distance from the observer (geocentric for code 500)", "AU"),
    C("dist_helio", Double, "Distance from the Sun", "AU"),
    C("fetched_at", DateTime(timezone=True), "When the response was received (or imported)",
      server_default=func.now(), nullable=False),
    run_fk(nullable=False),
    comment="Known Solar System objects in each SkyBoT cone: the SkyBoT cache (stage skybot)",
)
Index("ix_skybot_object_query_id", skybot_object.c.query_id)
Index("ix_skybot_object_exposure_id", skybot_object.c.exposure_id)
Index("ix_skybot_object_stage_run_id", skybot_object.c.stage_run_id)
q3c_index(skybot_object)
