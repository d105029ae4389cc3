"""ingest_lock (row locks on ingest keys, writers only); stage_run.backend_pid/backend_start (dead runs)

Revision ID: 0014
Revises: 0013

The DDL is written out here as it was at this revision (a migration does not import the live
schema).

* ``ingest_lock``: one row per ingest key (``sha256:<hex>`` of a file's content, ``path:...`` of
  its database key).  An ingest transaction upserts and so row-locks its keys until it commits:
  two loads of the same content (two paths, two processes) take turns, and the second finds the
  first's exposure.  A row lock needs INSERT/UPDATE privilege, which ``catdb_reader`` does not
  have (an advisory lock, which any role can take, let a reader stall every ingest).
* ``stage_run.backend_pid`` / ``backend_start``: the database session that runs a stage.  A run
  still ``running`` whose session is gone (killed client, restarted server) is marked ``failed``
  (interrupted) the next time catdb looks.  Runs recorded before this revision have neither and
  are left as they are.
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_lock",
        sa.Column("key", sa.Text(), nullable=False,
                  comment="Ingest key: 'sha256:<hex>' (file content) or 'path:<path>#<hdu>'"),
        sa.Column("locked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=True,
                  comment="Last time an ingest transaction locked the key"),
        sa.PrimaryKeyConstraint("key", name="pk_ingest_lock"),
        comment="One row per ingest key; an ingest transaction locks its rows (INSERT ... ON CONFLICT DO UPDATE) "
                "until it commits, so two loads of the same content take turns; only writers can lock a row")
    op.add_column("stage_run", sa.Column(
        "backend_pid", sa.Integer(), nullable=True,
        comment="Process id of the database session that ran the stage (pg_backend_pid)"))
    op.add_column("stage_run", sa.Column(
        "backend_start", sa.DateTime(timezone=True), nullable=True,
        comment="Start time of that session (pg_stat_activity.backend_start); with backend_pid it tells a "
                "live run from one whose session is gone"))
    # the default privileges of 0001 grant catdb_reader SELECT and catdb_writer SELECT/INSERT/UPDATE/DELETE
    # on new tables when the migration runs as the role that set them; say it explicitly otherwise
    op.execute("""
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_writer') THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_lock TO catdb_writer;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    REVOKE ALL ON ingest_lock FROM catdb_reader;
    GRANT SELECT ON ingest_lock TO catdb_reader;
  END IF;
END $$;
""")


def downgrade() -> None:
    op.drop_column("stage_run", "backend_start")
    op.drop_column("stage_run", "backend_pid")
    op.drop_table("ingest_lock")
