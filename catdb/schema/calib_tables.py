"""Tables of migration 0003: named exposure sets (``catdb exposures select``).

The view ``detection_calibrated`` of the same migration is SQL, written in the migration
(``catdb/migrations/versions/0003_calib_sets.py``);
alembic's comparison (``catdb db check``) does not look at views.
"""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from .tables import C, metadata

exposure_set = Table(
    "exposure_set", metadata,
    Column("id", BigInteger, Identity(always=False), primary_key=True, comment="Primary key",
           info={"unit": None, "description": "Primary key"}),
    C("name", Text, "Name of the exposure set (catdb exposures select --name; stages --exposures)", nullable=False),
    C("exposure_id", BigInteger, "Exposure in the set", ForeignKey("exposure.id", ondelete="CASCADE"),
      nullable=False),
    C("criteria", JSONB, "Selection criteria the set was made with (max_seeing, band, where, ...)"),
    C("created_at", DateTime(timezone=True), "When the set was saved", server_default=func.now(), nullable=False),
    UniqueConstraint("name", "exposure_id", name="uq_exposure_set_name_exposure_id"),
    comment="Named sets of exposures (catdb exposures select), usable as stage inputs (--exposures NAME)",
)
Index("ix_exposure_set_exposure_id", exposure_set.c.exposure_id)
