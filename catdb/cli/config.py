"""catdb config defaults DIR: write the default keyword maps for editing."""
from __future__ import annotations

import click


@click.group("config", epilog="""\b
Examples:
  catdb config defaults ./catdb-config
  catdb ingest image --instrument ./catdb-config/lowell42.toml raw/*.fits.fz""")
def command():
    """Configuration files (header keyword maps)."""


@command.command()
@click.argument("directory", type=click.Path(file_okay=False))
def defaults(directory):
    """Write the shipped keyword maps (TOML) to DIRECTORY."""
    from ..ingest.headers import write_default_keymaps

    for p in write_default_keymaps(directory):
        click.echo(str(p))
