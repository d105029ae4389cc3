"""``catdb query`` with bounded client memory: --limit in the SQL, blocks through a server-side
cursor, files streamed, stdout table output capped with a message."""
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from catdb.cli import query as qmod
from catdb.cli.main import cli
from tests.helpers import REPO


def q(url, *args):
    return CliRunner().invoke(cli, ["--db", url, "query", *args])


def test_limit_is_applied_by_the_server(db_url):
    # 25 million rows: fetched whole this never finishes within the 60 s timeout
    r = q(db_url, "--timeout", "60", "-f", "csv", "--limit", "5",
          "SELECT a.g AS a, b.g AS b FROM generate_series(1, 5000) a(g), generate_series(1, 5000) b(g)")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == ["a,b", "1,1", "1,2", "1,3", "1,4", "1,5"]


def test_stdout_table_stops_at_the_cap_and_says_how_to_get_all(db_url):
    r = q(db_url, "--max-rows", "50", "SELECT g FROM generate_series(1, 100000) g")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].strip() == "g" and lines[-1].strip() == "50" and len(lines) == 2 + 50
    assert "showing the first 50 rows" in r.stderr and "-o FILE" in r.stderr and "--max-rows 0" in r.stderr
    r = q(db_url, "--max-rows", "50", "SELECT g FROM generate_series(1, 50) g")  # exactly the cap: no message
    assert "showing" not in r.stderr and "(50 rows)" in r.stderr
    r = q(db_url, "--limit", "60", "--max-rows", "0", "SELECT g FROM generate_series(1, 100) g")
    assert len(r.stdout.splitlines()) == 2 + 60


def test_blocks_give_the_same_output_as_one_block(db_url, monkeypatch, tmp_path):
    """Rows written block by block (7 rows a block here) equal one block: table, csv, tsv, json."""
    sel = ("SELECT g AS id, g * 0.25 AS x, CASE WHEN g % 3 = 0 THEN NULL ELSE 'r' || g END AS name, "
           "ARRAY[g, g + 1]::float8[] AS v FROM generate_series(1, 30) g")
    outs = {}
    for block in (7, 10_000):
        monkeypatch.setattr(qmod, "BLOCK_ROWS", block)
        for fmt in ("csv", "tsv", "json"):
            r = q(db_url, "-f", fmt, sel)
            assert r.exit_code == 0, r.output
            outs[(block, fmt)] = r.stdout
        f = tmp_path / f"t{block}.txt"
        assert q(db_url, "-o", str(f), sel).exit_code == 0
        outs[(block, "table-file")] = f.read_text()
    for fmt in ("csv", "tsv", "json"):
        assert outs[(7, fmt)] == outs[(10_000, fmt)], fmt
    doc = json.loads(outs[(7, "json")])
    assert doc["n_rows"] == 30 and doc["rows"][2]["name"] is None and doc["rows"][29]["v"] == [30.0, 31.0]
    assert outs[(7, "csv")].splitlines()[0] == "id,x,name,v_1,v_2"
    table = outs[(7, "table-file")].splitlines()
    assert table[0].split() == ["id", "x", "name", "v"] and len(table) == 2 + 30
    assert table[-1].split()[0] == "30"


def _peak_rss_kb(args):
    """Peak resident memory [kB] of ``catdb query ARGS`` run in its own process."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True); "
            "assert r.returncode == 0, r.stderr; print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "catdb.cli.main", *args],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip())


def test_client_memory_does_not_grow_with_the_result(db_url, tmp_path):
    big = "SELECT g, g * 0.5 AS x, md5(g::text) AS h FROM generate_series(1, 1500000) g"
    small = "SELECT g, g * 0.5 AS x, md5(g::text) AS h FROM generate_series(1, 1000) g"
    base = _peak_rss_kb(["--db", db_url, "query", small])
    on_terminal = _peak_rss_kb(["--db", db_url, "query", big])
    base_file = _peak_rss_kb(["--db", db_url, "query", "-o", str(tmp_path / "small.csv"), small])
    to_file = _peak_rss_kb(["--db", db_url, "query", "-o", str(tmp_path / "big.csv"), big])
    # 1.5 million rows held in the client as Python objects take ~500 MB (the CSV alone is ~70 MB);
    # the terminal output keeps 1000 of them, the file is written in 8 MB blocks
    assert on_terminal < base + 60_000, (base, on_terminal)
    assert to_file < base_file + 150_000, (base_file, to_file)
    with open(tmp_path / "big.csv") as f:
        assert sum(1 for _ in f) == 1 + 1_500_000


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "abc"])
def test_timeout_is_validated(db_url, value):
    r = q(db_url, "--timeout", value, "SELECT 1")
    assert r.exit_code == 2 and "Traceback" not in r.output and "--timeout" in r.output, r.output
    assert "finite number of seconds" in r.output or "not a number" in r.output
