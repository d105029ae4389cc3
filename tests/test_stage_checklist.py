"""What docs/stages.md says every stage has: its output tables in the schema, with the columns the
default replace() needs, every parameter explained, and a place in the CLI."""
import click
import pytest

from catdb.cli.main import cli
from catdb.schema import metadata
from catdb.stages import Stage, all_stages

STAGES = all_stages()


@pytest.mark.parametrize("name", [n for n, c in STAGES.items() if c.__module__.startswith("catdb.stages.")])
def test_stage_follows_the_checklist(name):
    cls = STAGES[name]
    assert cls.description and all(p.help for p in cls.params), f"{name}: describe the stage and every parameter"
    for table in cls.outputs:
        assert table in metadata.tables, f"{name}: output table {table!r} is not in catdb.schema"
        cols = metadata.tables[table].c
        assert "stage_run_id" in cols, f"{name}: {table} has no stage_run_id (provenance)"
        if cls.replace is Stage.replace:  # the default deletes earlier rows by exposure_id and stage_run_id
            assert "exposure_id" in cols, (f"{name}: {table} has no exposure_id, which the default replace() "
                                           f"needs: add it or override replace()")
        assert all(c.comment for c in cols), f"{name}: {table} has columns without a description"
    cmd = cli.get_command(click.Context(cli), "stage").get_command(click.Context(cli), name)
    assert cmd is not None and {f"--{p.name.replace('_', '-')}" for p in cls.params} <= {
        o for p in cmd.params for o in p.opts}, f"{name}: catdb stage {name} lacks the parameters' options"

