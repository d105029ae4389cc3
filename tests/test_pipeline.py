"""catdb run: steps in order, up-to-date steps skipped on re-run, a failing step named."""
import textwrap

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import InputError
from catdb.pipeline import Pipeline
from tests.helpers import REPO, TEST_DATA

LCO = TEST_DATA / "lco"


def write(tmp_path, text):
    p = tmp_path / "p.toml"
    p.write_text(textwrap.dedent(text))
    return p


def test_run_rerun_skips_and_failure_is_named(fresh_db_url, tmp_path):
    p = write(tmp_path, f"""
        [pipeline]
        name = "t"
        outdir = "{tmp_path}/out"
        [[step]]
        ingest = "catalog"
        paths = ["{LCO}/ldac_test_catalog.fits"]
        [[step]]
        ingest = "refcat"
        path = "{LCO}/GAIA-DR2.cat"
        catalog = "gaia-dr2"
        band = "G"
        [[step]]
        stage = "exposure-summary"
        [[step]]
        stage = "calibrate"
        params = {{ refcat = "gaia-dr2", band = "G" }}
        """)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "[4/4] calibrate: ran" in r.output
    # everything up to date: the stages are skipped, ingest finds its files unchanged
    r2 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert r2.exit_code == 0, r2.output
    assert "[3/4] exposure-summary: skipped" in r2.output and "[4/4] calibrate: skipped" in r2.output
    # a changed parameter re-runs that step (and only steps after it would follow)
    p.write_text(p.read_text().replace('band = "G" }', 'band = "G", method = "regression", mag_max = 17 }'))
    r3 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert "[3/4] exposure-summary: skipped" in r3.output and "[4/4] calibrate: ran" in r3.output
    # a failing step stops the run, named, non-zero exit
    p.write_text(p.read_text().replace('refcat = "gaia-dr2"', 'refcat = "no-such-catalogue"'))
    r4 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)])
    assert r4.exit_code == 1
    assert "pipeline stopped at step 4 (calibrate)" in r4.output


def test_bad_pipeline_files(tmp_path):
    with pytest.raises(InputError, match="unknown stage 'calibrat'"):
        Pipeline.load(write(tmp_path, '[[step]]\nstage = "calibrat"\n'))
    with pytest.raises(InputError, match="not valid TOML"):
        Pipeline.load(write(tmp_path, "[[step]\n"))
    with pytest.raises(InputError, match="no \\[\\[step\\]\\]"):
        Pipeline.load(write(tmp_path, '[pipeline]\nname = "x"\n'))


def test_missing_input_files_named(fresh_db_url, tmp_path):
    p = write(tmp_path, f"""
        [pipeline]
        outdir = "{tmp_path}/out"
        [[step]]
        ingest = "image"
        paths = ["{tmp_path}/nothing/*.fits"]
        """)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)])
    assert r.exit_code == 1 and "no file matches" in r.output


def test_default_pipeline_is_valid():
    r = CliRunner().invoke(cli, ["run", "--default"])
    assert r.exit_code == 0 and "[[step]]" in r.output
    import tomllib

    doc = tomllib.loads(r.output)
    assert any(s.get("stage") == "movers" for s in doc["step"])


def test_demo_pipeline_is_valid():
    p = Pipeline.load(REPO / "pipelines" / "lowell42-demo.toml")
    stages = [s.get("stage") for s in p.steps if "stage" in s]
    assert stages[:2] == ["reduce", "extract"] and "movers" in stages and "forced" in stages
    assert len(p.extra["summary"]["known_mover"]) == 2


def test_a_stage_twice_with_different_targets_is_up_to_date_twice(fresh_db_url, tmp_path):
    """Two steps of one stage with different output scopes (the demo's two forced steps, here two veto
    survivor sets): on a re-run each step finds its own earlier run, so both are skipped."""
    p = write(tmp_path, f"""
        [pipeline]
        name = "t"
        outdir = "{tmp_path}/out"
        [[step]]
        ingest = "catalog"
        paths = ["{LCO}/ldac_test_catalog.fits"]
        [[step]]
        stage = "veto"
        params = {{ set = "clean", steps = "flags" }}
        [[step]]
        stage = "veto"
        params = {{ set = "round", steps = "elongation", elongation_max = 1.2 }}
        """)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "[2/3] veto: ran" in r.output and "[3/3] veto: ran" in r.output
    r2 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert r2.exit_code == 0, r2.output
    assert "[2/3] veto: skipped" in r2.output and "[3/3] veto: skipped" in r2.output
    # the same survivor set with another threshold replaces the earlier run: it is not up to date
    p.write_text(p.read_text().replace("elongation_max = 1.2", "elongation_max = 1.5"))
    r3 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert "[2/3] veto: skipped" in r3.output and "[3/3] veto: ran" in r3.output
    p.write_text(p.read_text().replace("elongation_max = 1.5", "elongation_max = 1.2"))
    r4 = CliRunner().invoke(cli, ["--db", fresh_db_url, "run", str(p)], catch_exceptions=False)
    assert "[3/3] veto: ran" in r4.output


def test_known_mover_in_pixels_is_checked_or_says_why():
    """[[summary.known_mover]] in one exposure's pixels: incomplete entries are refused by name, and
    without a database it is reported as not checked (never FOUND/NOT found by default)."""
    from catdb.summary import match_known

    with pytest.raises(InputError, match="needs exposure, x, y, rate_px_h .*missing exposure, rate_px_h"):
        match_known([], [{"name": "m", "x": 1.0, "y": 2.0}])
    with pytest.raises(InputError, match="direction 'west'"):
        match_known([], [{"name": "m", "exposure": "*15.fit", "x": 1.0, "y": 2.0, "rate_px_h": 9.2,
                          "direction": "west"}])
    got = match_known([], [{"name": "m", "exposure": "*15.fit", "x": 1.0, "y": 2.0, "rate_px_h": 9.2,
                            "direction": "-x"}])
    assert got == {"m": (None, None, "not checked: no database connection")}
