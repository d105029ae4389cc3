"""Table ``xmatch``: cross-matches of detections with a reference catalogue or another detection set.

Written by stage ``xmatch`` (:mod:`catdb.stages.xmatch`).  Kept in its own module so the
table can be added by migration 0004 without editing :mod:`catdb.schema.tables`.
"""
from __future__ import annotations

from sqlalchemy import BigInteger, Double, ForeignKey, Index, SmallInteger, Table, Text

from .tables import C, metadata, pk, run_fk

xmatch = Table(
    "xmatch", metadata,
    pk(),
    C("detection_id", BigInteger, "Detection matched", ForeignKey("detection.id", ondelete="CASCADE"),
      nullable=False),
    C("catalog", Text, "Counterpart catalogue: refcat_source.catalog name, or 'detection'", nullable=False),
    C("ref_id", BigInteger, "Counterpart: refcat_source.id, or detection.id when catalog = 'detection'",
      nullable=False),
    C("sep_arcsec", Double, "Angular separation detection - counterpart (at the exposure epoch with use_pm)",
      "arcsec", nullable=False),
    C("dra_arcsec", Double, "(RA_det - RA_ref) cos(Dec_det)", "arcsec", nullable=False),
    C("ddec_arcsec", Double, "Dec_det - Dec_ref", "arcsec", nullable=False),
    C("rank", SmallInteger, "Rank of the counterpart by separation for this detection (1 = nearest)",
      nullable=False),
    run_fk(nullable=False),
    comment="Cross-matches of detections with a reference catalogue or another detection set (stage xmatch)",
)
Index("ix_xmatch_detection_id", xmatch.c.detection_id)
Index("ix_xmatch_stage_run_id", xmatch.c.stage_run_id)
