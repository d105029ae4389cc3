"""Tables ``lightcurve_session`` and ``lightcurve_session_point``: imported light curves (ALCDEF).

Written by ``catdb lightcurve import`` (:func:`catdb.ingest.alcdef.import_alcdef`): one
``lightcurve_session`` row per ALCDEF light-curve block (one observing session: one object,
one filter, one night), with the common metadata as columns and every metadata line, in file
order and as written, in ``meta`` (so a session exports back to ALCDEF unchanged); one
``lightcurve_session_point`` row per ``DATA`` line, its numbers as columns and its text as
written in ``data_text``.  The import is a ``stage_run`` (stage ``lightcurve-import``) and every
row points to it; re-importing a file (same path or same content) replaces its sessions.
Kept in its own module so that migration 0012 adds the tables without editing
:mod:`catdb.schema.tables`.  (``lightcurve_point``, the view of catdb's own light curves, is
another thing: see migration 0008, ``catdb/migrations/versions/0008_science_views.py``.)
"""
from __future__ import annotations

from sqlalchemy import (BigInteger, Boolean, Date, Double, ForeignKey, Index, Integer, PrimaryKeyConstraint, Table,
                        Text, Time)
from sqlalchemy.dialects.postgresql import JSONB

from .tables import C, metadata, pk, run_fk

lightcurve_session = Table(
    "lightcurve_session", metadata,
    pk(),
    C("source_path", Text, "File the session was imported from (absolute path)", nullable=False),
    C("source_sha256", Text, "SHA-256 of the imported file", nullable=False),
    C("block", Integer, "Position of the light-curve block in the file (1 = first)", nullable=False),
    C("line", Integer, "Line of the block's STARTMETADATA in the file", nullable=False),
    C("object_number", Integer, "OBJECTNUMBER (minor-planet number; 0 = unnumbered)"),
    C("object_name", Text, "OBJECTNAME"),
    C("mpc_desig", Text, "MPCDESIG (MPC designation)"),
    C("session_date", Date, "SESSIONDATE (UT date of the session)"),
    C("session_time", Time, "SESSIONTIME (UT time of the session)"),
    C("filter", Text, "FILTER (filter used; C = clear)"),
    C("mag_band", Text, "MAGBAND (band the magnitudes are given in)"),
    C("observers", Text, "OBSERVERS"),
    C("contact_name", Text, "CONTACTNAME"),
    C("mpc_code", Text, "MPCCODE (MPC observatory code)"),
    C("obs_longitude", Double, "OBSLONGITUDE (east positive)", "deg"),
    C("obs_latitude", Double, "OBSLATITUDE", "deg"),
    C("differ_mags", Boolean, "DIFFERMAGS (magnitudes are differential, target minus comparison)"),
    C("standard", Text, "STANDARD (NONE, INTERNAL or TRANSFORMED: the magnitude system)"),
    C("ltc_app", Text, "LTCAPP (light-time correction applied: NONE, AVERAGE or POINT)"),
    C("ltc_type", Text, "LTCTYPE"),
    C("ltc_days", Double, "LTCDAYS (light-time correction)", "d"),
    C("reduced_mags", Text, "REDUCEDMAGS (magnitudes reduced to unit distances: NONE, AVERAGE or POINT)"),
    C("ucor_mag", Double, "UCORMAG (correction to unit-distance magnitudes, -5 log10(r Delta))", "mag"),
    C("mag_adjust", Double, "MAGADJUST (zero-point adjustment applied)", "mag"),
    C("phase_angle", Double, "PHASE (solar phase angle)", "deg"),
    C("pabl", Double, "PABL (phase angle bisector longitude)", "deg"),
    C("pabb", Double, "PABB (phase angle bisector latitude)", "deg"),
    C("lcblockid", Text, "LCBLOCKID (the ALCDEF database's block id)"),
    C("n_points", Integer, "DATA lines of the session", nullable=False),
    C("jd_first", Double, "First JD of the session", "d"),
    C("jd_last", Double, "Last JD of the session", "d"),
    C("meta", JSONB, "Every metadata line in file order as [keyword, value text] pairs", nullable=False),
    run_fk(nullable=False),
    comment="Imported light-curve sessions (ALCDEF blocks): catdb lightcurve import",
)
Index("ix_lightcurve_session_stage_run_id", lightcurve_session.c.stage_run_id)
Index("ix_lightcurve_session_object_number", lightcurve_session.c.object_number)
Index("ix_lightcurve_session_source_path", lightcurve_session.c.source_path)

lightcurve_session_point = Table(
    "lightcurve_session_point", metadata,
    C("session_id", BigInteger, "Session (lightcurve_session.id)",
      ForeignKey("lightcurve_session.id", ondelete="CASCADE"), nullable=False),
    C("seq", Integer, "Position of the DATA line in the session (1 = first)", nullable=False),
    C("jd", Double, "Julian Date of the observation, as in the file (EXPJD says start, mid or end)", "d",
      nullable=False),
    C("mjd", Double, "jd - 2400000.5", "d", nullable=False),
    C("mag", Double, "Magnitude (MAGBAND; see the session's DIFFERMAGS/STANDARD/REDUCEDMAGS)", "mag",
      nullable=False),
    C("mag_err", Double, "Magnitude error (NULL: not given in the file)", "mag"),
    C("airmass", Double, "Airmass (NULL: not given in the file)"),
    C("data_text", Text, "The DATA value as written in the file", nullable=False),
    PrimaryKeyConstraint("session_id", "seq", name="pk_lightcurve_session_point"),
    comment="Points of imported light-curve sessions (ALCDEF DATA lines)",
)
