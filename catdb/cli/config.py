"""catdb config defaults DIR: write the default keyword maps and SExtractor files for editing."""
from __future__ import annotations

import shutil
from pathlib import Path

import click


@click.group("config", epilog="""\b
Examples:
  catdb config defaults ./catdb-config
  catdb ingest image --instrument ./catdb-config/lowell42.toml raw/*.fits.fz""")
def command():
    """Configuration files (header keyword maps, SExtractor defaults)."""


@command.command()
@click.argument("directory", type=click.Path(file_okay=False))
def defaults(directory):
    """Write the shipped keyword maps (TOML) and SExtractor files (catdb.sex, catdb.param) to DIRECTORY.

    Existing files are kept (not overwritten).  Use the SExtractor files with
    ``source-extractor -c catdb.sex -PARAMETERS_NAME catdb.param`` or as a start for
    ``catdb extract --config KEY=VALUE`` overrides.
    """
    from ..ingest.extract import default_config_dir
    from ..ingest.headers import write_default_keymaps

    for p in write_default_keymaps(directory):
        click.echo(str(p))
    for name in ("catdb.sex", "catdb.param"):
        dst = Path(directory) / name
        if dst.exists():
            continue
        shutil.copyfile(default_config_dir() / name, dst)
        click.echo(str(dst))
