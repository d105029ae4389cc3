"""detached_index: indexes dropped by a bulk load until they are re-created (crash-safe bulk ingest)

Revision ID: 0017
Revises: 0016

The DDL is written out here as it was at this revision (a migration does not import the live
schema).  One new table, no change to existing ones.

``catdb ingest catalog --bulk`` (and large loads, automatically) drops the secondary indexes of
``detection`` for the load and re-creates them once at the end (docs/schema.md, "Ingest at the
COPY limit").  Each dropped index's ``CREATE INDEX`` statement is recorded here in the transaction
that drops it, and deleted in the transaction that re-creates it, so an index is always either
present or listed here, whatever is killed when; catdb re-creates what is listed at the next
ingest (``catdb.db.bulk.restore_indexes``).

Downgrade re-creates every index still listed before dropping the table, so a database left by
a killed bulk load keeps its indexes.  (``catdb db downgrade`` names such rows as data the
downgrade deletes and asks for ``--yes``; ``catdb db restore-indexes`` first empties the table.)
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "detached_index",
        sa.Column("index_name", sa.Text(), nullable=False, comment="Name of the dropped index"),
        sa.Column("table_name", sa.Text(), nullable=False, comment="Table the index belongs to"),
        sa.Column("definition", sa.Text(), nullable=False,
                  comment="CREATE INDEX statement that re-creates it (pg_get_indexdef)"),
        sa.Column("stage_run_id", sa.BigInteger(), nullable=True,
                  comment="Stage run that wrote this row (provenance)"),
        sa.Column("detached_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False,
                  comment="When the bulk load dropped it"),
        sa.ForeignKeyConstraint(["stage_run_id"], ["stage_run.id"],
                                name="fk_detached_index_stage_run_id_stage_run", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("index_name", name="pk_detached_index"),
        comment="Indexes dropped by a bulk load (catdb ingest catalog --bulk) and not yet re-created; catdb "
                "re-creates them when the load ends, at the next ingest after a crash, or on catdb db "
                "restore-indexes",
    )
    # as 0015: writers record and delete rows, readers see them
    op.execute("""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_writer') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON detached_index TO catdb_writer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    REVOKE ALL ON detached_index FROM catdb_reader;
    GRANT SELECT ON detached_index TO catdb_reader;
  END IF;
END $$;
""")


def downgrade() -> None:
    op.execute("""
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT index_name, definition FROM detached_index ORDER BY index_name LOOP
    IF to_regclass(r.index_name) IS NULL THEN
      EXECUTE r.definition;
    END IF;
  END LOOP;
END $$;
""")
    op.drop_table("detached_index")
