"""Table ``refcat_region``: sky regions of reference catalogues fetched from a service.

Written by ``catdb refcat fetch`` (:mod:`catdb.ingest.refcat_fetch`): one row per
cone fetched, so a later fetch of a circle inside a recorded region of the same
catalogue (and magnitude limit) is served from the database.  Kept in its own
module so that migration 0006 can create it without editing :mod:`catdb.schema.tables`.
"""
from __future__ import annotations

from sqlalchemy import DateTime, Double, Index, Integer, Table, Text, func

from .tables import C, metadata, pk, run_fk

refcat_region = Table(
    "refcat_region", metadata,
    pk(),
    C("catalog", Text, "Reference catalogue name (refcat_source.catalog: gaia-dr3, ps1, ucac4, ...)",
      nullable=False),
    C("ra", Double, "Right ascension of the centre of the fetched cone (ICRS)", "deg", nullable=False),
    C("dec", Double, "Declination of the centre of the fetched cone (ICRS)", "deg", nullable=False),
    C("radius_deg", Double, "Radius of the fetched cone", "deg", nullable=False),
    C("mag_limit", Double, "Faint magnitude limit of the query (NULL: none)", "mag"),
    C("n_rows", Integer, "Rows the service returned for this cone", nullable=False),
    C("n_new", Integer, "Rows written to refcat_source (not already stored from an earlier region)",
      nullable=False),
    C("service", Text, "Service queried (e.g. VizieR at vizier.cds.unistra.fr)", nullable=False),
    C("query", Text, "Query sent (catalogue id, cone, columns, filters)", nullable=False),
    C("fetched_at", DateTime(timezone=True), "When the cone was fetched", server_default=func.now(),
      nullable=False),
    run_fk(nullable=False),
    comment="Sky regions of reference catalogues fetched from a service (catdb refcat fetch), the fetch cache",
)
Index("ix_refcat_region_catalog", refcat_region.c.catalog)
Index("ix_refcat_region_stage_run_id", refcat_region.c.stage_run_id)
