"""Exports read by STILTS, the library behind TOPCAT: ``votlint`` finds no errors in the
VOTables, ``tpipe`` reads the FITS tables with the database's row counts and units.

Data: the real SExtractor catalogues of MANIFEST ``lco/`` (FITS_LDAC, 974 rows; FITS_1.0 with
4 apertures, 360 rows), ingested; the exports come from ``catdb query`` and ``catdb export``.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.ingest.load import ingest_catalogs
from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"
STILTS = shutil.which("stilts")
pytestmark = pytest.mark.skipif(STILTS is None, reason="stilts not installed")

#: vectors (mag_aper), NULLs (typed and untyped), JSON (extra), timestamps, booleans, text
QUERY = ("SELECT d.id, d.exposure_id, d.ra, d.dec, d.mag_auto, d.mag_aper, d.flags, d.extra, e.date_obs, "
         "e.filter, d.class_star > 0.9 AS star, NULL::float8 AS nothing "
         "FROM detection d JOIN exposure e ON e.id = d.exposure_id ORDER BY d.id")


@pytest.fixture(scope="module")
def loaded(db_url):
    from catdb.db.engine import connect

    c = connect(db_url)
    ingest_catalogs(c, [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits"])
    c.commit()
    n = c.execute("SELECT count(*) FROM detection").fetchone()[0]
    c.close()
    assert n == 974 + 360
    return db_url


def cli_ok(url, *args):
    r = CliRunner().invoke(cli, ["--db", url, *args])
    assert r.exit_code == 0, r.output
    return r


def votlint(path):
    r = subprocess.run([STILTS, "votlint", f"votable={path}"], capture_output=True, text=True, timeout=120)
    return [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("ERROR")]


def tpipe(path, omode):
    r = subprocess.run([STILTS, "tpipe", f"in={path}", f"omode={omode}"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("how", ["query", "catalog", "saved-cone"])
def test_votlint_finds_no_errors(loaded, tmp_path, how):
    out = tmp_path / "x.vot"
    args = {"query": ["query", "-o", str(out), QUERY],
            "catalog": ["export", "catalog", "-o", str(out)],
            "saved-cone": ["query", "--saved", "cone", "--param", "ra=219.836", "--param", "dec=-9.768",
                           "--param", "radius_arcsec=120", "--param", "table=detection", "-o", str(out)]}[how]
    cli_ok(loaded, *args)
    assert votlint(out) == []
    if how != "query":
        return
    # the check can fail: the same file with the RA column declared integer is an error
    bad = tmp_path / "bad.vot"
    bad.write_text(re.sub(r'(<FIELD ID="ra" datatype=")double', r"\1int", out.read_text()))
    assert votlint(bad)


@pytest.mark.parametrize("how", ["query", "catalog"])
def test_tpipe_reads_fits_rows_and_units(loaded, tmp_path, how):
    import psycopg

    out = tmp_path / "x.fits"
    args = {"query": ["query", "-o", str(out), QUERY],
            "catalog": ["export", "catalog", "-o", str(out)]}[how]
    cli_ok(loaded, *args)
    with psycopg.connect(loaded) as c:
        n = c.execute("SELECT count(*) FROM detection").fetchone()[0]
    meta = tpipe(out, "meta")
    assert re.search(r"^Rows:\s+(\d+)$", meta, re.M).group(1) == str(n)
    cols = dict(re.findall(r"^\s*\d+: (\w+)\([^)]*\)(/[^ ]+)? -", meta, re.M))
    assert cols["ra"] == "/deg" and cols["dec"] == "/deg" and cols["mag_auto"] == "/mag"
    if how != "catalog":
        assert cols["mag_aper"] == "/mag" and cols["flags"] == ""
    else:
        assert cols["mag_cal"] == "/mag" and cols["mjd_mid"] == "/d"
        return
    # the values survive: the brightest MAG_AUTO as STILTS computes it equals the database's
    stats = subprocess.run([STILTS, "tpipe", f"in={out}", "cmd=keepcols mag_auto", "omode=stats"],
                           capture_output=True, text=True, timeout=120).stdout
    with psycopg.connect(loaded) as c:
        lo = c.execute("SELECT min(mag_auto) FROM detection").fetchone()[0]
    row = next(ln for ln in stats.splitlines() if ln.strip().startswith("| mag_auto"))
    assert f"{lo:.3f}"[:6] in row.replace(" ", "")
