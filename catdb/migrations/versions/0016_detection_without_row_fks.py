"""detection without per-row foreign keys: exposure deletes cascade by a statement trigger

Revision ID: 0016
Revises: 0015

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  Existing rows are kept; only constraints and triggers change.

Measured (``bench/ingest.py``, docs/schema.md "Ingest at the COPY limit"): the two foreign keys of
``detection`` cost more than the three indexes together -- each one fires a query per inserted
row (``SELECT 1 FROM exposure WHERE id = $1 FOR KEY SHARE``), and binary COPY into the table
runs at about half the rate without them.  Both are dropped:

* ``fk_detection_exposure_id_exposure`` (``ON DELETE CASCADE``).  Insert side: catdb checks
  ``exposure_id`` once per file (the exposure row is inserted in the same transaction, or locked
  ``FOR KEY SHARE`` by :func:`catdb.ingest.load.attach_catalog`).  Delete side: the statement
  trigger ``tg_exposure_delete_detection`` (``AFTER DELETE ON exposure ... FOR EACH
  STATEMENT``, transition table of the deleted rows) deletes their detections in one statement,
  and ``tg_exposure_truncate_detection`` truncates ``detection`` with ``exposure``, as the cascade
  did -- for catdb and for any SQL a user runs.
* ``fk_detection_stage_run_id_stage_run`` (``ON DELETE SET NULL``).  ``stage_run_id`` stays, a
  plain column (the stage that wrote the row: ``replace()`` deletes by it); deleting a
  ``stage_run`` sets it NULL through ``tg_stage_run_delete_detection``, as the key did.

Statistics: ``ANALYZE detection`` (run by ``catdb ingest catalog`` after a load that adds 10 % or
more to the table) spent half its time on the element statistics of the four aperture arrays and
the ``extra`` jsonb, which no query filters on: their statistics target is set to 0 (not
collected); downgrade sets it back to the default (-1).

Downgrade puts both keys back: dangling ``stage_run_id`` values become NULL (what the key's
``SET NULL`` would have done); a detection whose exposure is gone (only possible through SQL that
inserted it without an exposure) makes the downgrade fail with the count, and nothing changes.
"""
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

_TRIGGERS = """
CREATE FUNCTION catdb_exposure_delete_detection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM detection WHERE exposure_id IN (SELECT id FROM catdb_old_exposure);
  RETURN NULL;
END $$;
COMMENT ON FUNCTION catdb_exposure_delete_detection() IS
  'Deletes the detections of deleted exposures (replaces the per-row foreign key detection.exposure_id)';
CREATE TRIGGER tg_exposure_delete_detection AFTER DELETE ON exposure
  REFERENCING OLD TABLE AS catdb_old_exposure FOR EACH STATEMENT
  EXECUTE FUNCTION catdb_exposure_delete_detection();

CREATE FUNCTION catdb_exposure_truncate_detection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- a TRUNCATE naming detection too has emptied it already (and holds it open: no second TRUNCATE)
  IF EXISTS (SELECT 1 FROM detection) THEN
    TRUNCATE detection CASCADE;
  END IF;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION catdb_exposure_truncate_detection() IS
  'TRUNCATE exposure empties detection too (as the foreign key''s cascade did)';
CREATE TRIGGER tg_exposure_truncate_detection AFTER TRUNCATE ON exposure
  FOR EACH STATEMENT EXECUTE FUNCTION catdb_exposure_truncate_detection();

CREATE FUNCTION catdb_stage_run_delete_detection() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE detection SET stage_run_id = NULL WHERE stage_run_id IN (SELECT id FROM catdb_old_stage_run);
  RETURN NULL;
END $$;
COMMENT ON FUNCTION catdb_stage_run_delete_detection() IS
  'detection.stage_run_id of deleted stage runs becomes NULL (replaces the per-row foreign key)';
CREATE TRIGGER tg_stage_run_delete_detection AFTER DELETE ON stage_run
  REFERENCING OLD TABLE AS catdb_old_stage_run FOR EACH STATEMENT
  EXECUTE FUNCTION catdb_stage_run_delete_detection();
"""


_NO_STATS = ("flux_aper", "fluxerr_aper", "mag_aper", "magerr_aper", "extra")


def upgrade() -> None:
    op.drop_constraint("fk_detection_exposure_id_exposure", "detection", type_="foreignkey")
    op.drop_constraint("fk_detection_stage_run_id_stage_run", "detection", type_="foreignkey")
    op.execute(_TRIGGERS)
    for c in _NO_STATS:
        op.execute(f"ALTER TABLE detection ALTER COLUMN {c} SET STATISTICS 0")


def downgrade() -> None:
    for c in _NO_STATS:
        op.execute(f"ALTER TABLE detection ALTER COLUMN {c} SET STATISTICS -1")
    op.execute("""
DROP TRIGGER tg_stage_run_delete_detection ON stage_run;
DROP TRIGGER tg_exposure_truncate_detection ON exposure;
DROP TRIGGER tg_exposure_delete_detection ON exposure;
DROP FUNCTION catdb_stage_run_delete_detection();
DROP FUNCTION catdb_exposure_truncate_detection();
DROP FUNCTION catdb_exposure_delete_detection();
DO $$
DECLARE n bigint;
BEGIN
  SELECT count(*) INTO n FROM detection d WHERE NOT EXISTS (SELECT 1 FROM exposure e WHERE e.id = d.exposure_id);
  IF n > 0 THEN
    RAISE EXCEPTION 'cannot restore the foreign key detection.exposure_id: % detection rows have no exposure '
                    '(SELECT * FROM detection d WHERE NOT EXISTS (SELECT 1 FROM exposure e WHERE e.id = '
                    'd.exposure_id)); delete or re-attach them first', n;
  END IF;
END $$;
UPDATE detection d SET stage_run_id = NULL
 WHERE stage_run_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM stage_run r WHERE r.id = d.stage_run_id);
""")
    op.create_foreign_key("fk_detection_exposure_id_exposure", "detection", "exposure", ["exposure_id"], ["id"],
                          ondelete="CASCADE")
    op.create_foreign_key("fk_detection_stage_run_id_stage_run", "detection", "stage_run", ["stage_run_id"], ["id"],
                          ondelete="SET NULL")
