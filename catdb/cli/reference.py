"""The command-line reference (``docs/cli.md``) generated from the commands' own ``--help``.

``docs/cli.md`` holds a cog block (https://nedbatchelder.com/code/cog, PyPI ``cogapp``) that calls
:func:`markdown`; ``make docs`` (``cog -r docs/cli.md``) rewrites it and ``tests/test_docs.py``
fails when it is stale, so a new command, option or help text reaches the reference with the
change that made it.
"""
from __future__ import annotations

from collections.abc import Iterator

import click

from ..stages import all_stages

#: help is formatted for this width, whatever the terminal: the file must not depend on who made it
WIDTH = 100


def commands(root: click.Command | None = None, name: str = "catdb",
             parent: click.Context | None = None) -> Iterator[tuple[str, click.Command, click.Context]]:
    """Every command, depth first, groups before their subcommands (hidden commands included).

    Yields
    ------
    path : str
        e.g. ``"catdb db init"``.
    command : click.Command
    context : click.Context
        Its context (parent chain set), for :meth:`click.Command.get_help`.
    """
    if root is None:
        from .main import cli as root
    ctx = click.Context(root, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    path = f"{parent.command_path} {name}" if parent is not None else name
    yield path, root, ctx
    if isinstance(root, click.Group):
        for sub in root.list_commands(ctx):
            cmd = root.get_command(ctx, sub)
            # hidden ones too (`catdb lightcurve TARGET` runs the hidden `show`); not the stages a
            # test suite registers for itself
            if cmd is not None and not (path == "catdb stage" and not _shipped_stage(sub)):
                yield from commands(cmd, sub, ctx)


def _shipped_stage(name: str) -> bool:
    """False for a stage registered outside ``catdb.stages`` (a test's); True otherwise (list, history)."""
    cls = all_stages().get(name)
    return cls is None or cls.__module__.startswith("catdb.stages.")


def markdown() -> str:
    """The reference: a table of contents, then one section per command with its ``--help``."""
    items = list(commands())
    out = ["| command | what it does |", "|---|---|"]
    for path, cmd, _ in items:
        anchor = path.replace(" ", "-")
        out.append(f"| [`{path}`](#{anchor}) | {cmd.get_short_help_str(limit=90).replace('|', '/')} |")
    for path, cmd, ctx in items:
        out += ["", f"## {path}", "", "```", cmd.get_help(ctx).rstrip(), "```"]
    return "\n".join(out) + "\n"
