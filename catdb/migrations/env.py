"""alembic environment: catdb passes its connection in ``config.attributes['connection']``."""
from alembic import context

from catdb.schema import metadata

config = context.config


def include_object(obj, name, type_, reflected, compare_to):
    # q3c's own objects and tables of other tools are not ours to compare
    if type_ == "table" and reflected and compare_to is None:
        return False
    return True


def run_migrations_online():
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=metadata, include_object=include_object,
                      compare_type=True, transaction_per_migration=False)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("catdb migrations run online only (catdb db upgrade)")
run_migrations_online()
