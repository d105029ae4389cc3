"""The catdb command line against a real server."""

import json
import re

from click.testing import CliRunner

from catdb import __version__
from catdb.cli.main import cli


def run(args, url, ok=True):
    r = CliRunner().invoke(cli, ["--db", url, *args], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


def test_version_and_help():
    r = CliRunner().invoke(cli, ["--version"])
    assert __version__ in r.output
    r = CliRunner().invoke(cli, ["--help"])
    assert "Examples:" in r.output and "catdb db init" in r.output


def test_db_commands(db_url):
    assert "(head)" in run(["db", "current"], db_url).output
    assert "agree" in run(["db", "check"], db_url).output


def test_stage_list_run_history(db_url):
    assert "exposure-summary" in run(["stage", "list"], db_url).output
    out = run(["stage", "exposure-summary", "--snr-min", "10"], db_url).output
    assert "ok" in out
    h = run(["stage", "history", "--limit", "1"], db_url).output
    assert "exposure-summary" in h and " ok " in h
    r = run(["stage", "exposure-summary", "--param", "nope=1"], db_url, ok=False)
    assert r.exit_code == 1 and "unknown parameter" in r.output


def test_query_read_only_with_units(fresh_db_url, tmp_path):
    import psycopg
    from astropy.table import Table

    db_url = fresh_db_url
    with psycopg.connect(db_url) as c:
        c.execute("INSERT INTO exposure (path, mjd_mid, exptime) VALUES ('a.fits', 58568.5, 300.0)")
    out = tmp_path / "x.vot"
    run(["query", "-f", "votable", "-o", str(out), "SELECT id, mjd_mid, exptime AS t_exp FROM exposure"], db_url)
    t = Table.read(out)
    assert list(t["mjd_mid"]) == [58568.5] and list(t["t_exp"]) == [300.0]
    # units and descriptions from the columns' comments, whatever the output column is called
    assert str(t["mjd_mid"].unit) == "d" and str(t["t_exp"].unit) == "s" and t["id"].unit is None
    assert t["t_exp"].description == "Exposure time"
    # a computed column has no source column: no unit rather than a guessed one
    run(["query", "-f", "votable", "-o", str(out), "SELECT exptime * 2 AS twice FROM exposure"], db_url)
    assert Table.read(out)["twice"].unit is None

    # positions and magnitudes: the units row of the table printed on stdout, and JSON's column list
    with psycopg.connect(db_url) as c:
        c.execute("INSERT INTO detection (exposure_id, number, ra, dec, mag_auto, fwhm) "
                  "SELECT id, 1, 124.62662, 25.34294, -9.5, 2.5 FROM exposure")
    sql = "SELECT ra, dec AS de, mag_auto, fwhm, number FROM detection"
    lines = run(["query", sql], db_url).output.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", lines[2])]  # the dashes under each column
    assert [lines[0][a:b].strip() for a, b in spans] == ["ra", "de", "mag_auto", "fwhm", "number"]
    assert [lines[1][a:b].strip() for a, b in spans] == ["deg", "deg", "mag", "arcsec", ""]  # number: no unit
    assert lines[3].split() == ["124.62662", "25.34294", "-9.5", "2.5", "1"]
    cols = json.loads(run(["query", "-f", "json", sql], db_url).output)["columns"]
    assert [(c["name"], c["unit"]) for c in cols] == [
        ("ra", "deg"), ("de", "deg"), ("mag_auto", "mag"), ("fwhm", "arcsec"), ("number", None)]
    r = run(["query", "DELETE FROM stage_run"], db_url, ok=False)
    assert r.exit_code == 1 and "read-only" in r.output
    r = run(["query", "SET TRANSACTION READ WRITE; DELETE FROM stage_run"], db_url, ok=False)
    assert r.exit_code == 1
    r = run(["query", "-f", "csv", "SELECT count(*) AS n FROM stage_run"], db_url)
    assert r.output.splitlines()[0] == "n"
    r = run(["query", "--timeout", "0.2", "SELECT pg_sleep(2)"], db_url, ok=False)
    assert r.exit_code == 1 and "timeout" in r.output


def test_command_on_uninitialised_database_says_init(empty_db_url):
    """A command that needs catdb's tables, on a database never initialised: one line saying what to
    run, exit status 1, no traceback."""
    from pathlib import Path

    cat = Path(__file__).parent / "data" / "lco" / "ldac_test_catalog.fits"
    r = CliRunner().invoke(cli, ["--db", empty_db_url, "ingest", "catalog", str(cat)])
    assert r.exit_code == 1
    assert "has no catdb schema" in r.output and "catdb db init" in r.output
    assert "Traceback" not in r.output
