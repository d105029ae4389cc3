"""The generated command-line reference (docs/cli.md) is current, and the hand-written docs name
only commands that exist."""
import os
import re
import subprocess
import sys

import click

from catdb.cli.main import cli
from tests.helpers import REPO

CLI_MD = REPO / "docs" / "cli.md"


def _fresh_python(code):
    """Run ``code`` in a new interpreter: the commands a user's catdb has, not those of the stages
    this test session registers for itself."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=300)


def test_cli_reference_is_current():
    """`cog --check`: the text between the cog markers is what the commands print now."""
    r = _fresh_python(f"import sys; from cogapp import Cog; sys.exit(Cog().main(['cog', '--check', {str(CLI_MD)!r}]))")
    assert r.returncode == 0, ("docs/cli.md is stale (a command, option or help text changed): run `make docs`\n"
                               + r.stdout + r.stderr)


def test_every_command_has_a_section_with_its_help():
    text = CLI_MD.read_text()
    sections = dict(re.findall(r"^## (catdb[^\n]*)\n\n```\n(.*?)\n```", text, flags=re.S | re.M))
    r = _fresh_python("from catdb.cli.reference import commands; print('\\n'.join(p for p, _, _ in commands()))")
    assert r.returncode == 0, r.stderr
    paths = r.stdout.splitlines()
    assert len(paths) > 40  # the walk reached the subcommands, stages included
    assert "catdb lightcurve show" in paths  # hidden commands too (catdb lightcurve TARGET runs it)
    missing = [p for p in paths if p not in sections]
    assert not missing, f"commands without a section in docs/cli.md: {missing} (run `make docs`)"
    assert set(sections) == set(paths), f"sections of commands that do not exist: {set(sections) - set(paths)}"
    for p in ("catdb db upgrade", "catdb stage exposure-summary", "catdb export catalog"):
        assert sections[p].startswith(f"Usage: {p} "), sections[p][:80]


def _resolve(words):
    """The command a `catdb ...` line runs, or the first word that names no command."""
    cmd, ctx = cli, click.Context(cli, info_name="catdb")
    for w in words:
        if not isinstance(cmd, click.Group) or not re.fullmatch(r"[a-z][a-z-]*", w):
            break  # options, arguments, or prose ("catdb ingest / stages" in a diagram)
        sub = cmd.get_command(ctx, w)
        if sub is None:
            if type(cmd).parse_args is not click.Group.parse_args:
                break  # a group that routes its arguments itself (catdb lightcurve TARGET)
            return None, w
        cmd, ctx = sub, click.Context(sub, info_name=w, parent=ctx)
    return cmd, None


def test_docs_name_only_existing_commands():
    """Every `catdb ...` line in the README's and docs' code blocks starts with a real command."""
    bad = []
    for md in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        if md == CLI_MD:
            continue
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", md.read_text(), flags=re.S | re.M):
            for line in block.splitlines():
                m = re.match(r"\s*(?:[A-Z_]+=\S+\s+)*catdb\s+(.*)", line)
                if not m:
                    continue
                words = m.group(1).split("#")[0].split()
                while words and words[0].startswith("-"):  # global options: --db URL, -q, ...
                    words = words[2:] if words[0] in ("--db", "--data-dir", "--database", "--log-level") else words[1:]
                if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
                    continue  # output text ("catdb lowell42-5945 demo: done"), not a command line
                cmd, unknown = _resolve(words)
                if unknown is not None:
                    bad.append(f"{md.name}: {line.strip()} ({unknown!r} is not a command)")
    assert not bad, "\n".join(bad)


def test_no_reduce_command():
    """Reduction is a stage (catdb stage reduce); there is no top-level `catdb reduce`."""
    assert cli.get_command(click.Context(cli), "reduce") is None
    assert "catdb reduce" not in CLI_MD.read_text().replace("catdb stage reduce", "")
