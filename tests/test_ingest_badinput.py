"""Bad-input corpus for ``ingest catalog``: one clear error per file naming it, nothing written.

The corpus is built from real LCO SExtractor catalogues (``tests/data/lco``): copies
modified with astropy to carry one defect each.  Also: a multi-file run with
``on_error='collect'`` keeps the good files, and the CLI's exit status and summary.
"""
import re
import shutil

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.errors import InputError
from catdb.ingest.load import ingest_catalogs
from tests.helpers import REPO_DATA, TEST_DATA

LCO = TEST_DATA / "lco"
FITS10 = LCO / "oracdr_test_catalog.fits"  # FITS_1.0: image header in HDU 0, 360 sources in HDU 1


def _modified(tmp_path, name, header=None, table=None):
    """Copy of the real FITS_1.0 catalogue with its header / table changed by the callbacks."""
    out = tmp_path / name
    with fits.open(FITS10) as hl:
        hdr = hl[0].header.copy()
        data = hl[1].data.copy()
        cols = hl[1].columns
    if header:
        header(hdr)
    if table:
        cols, data = table(cols, data)
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.BinTableHDU(data)]).writeto(out)
    return out


def _drop_columns(names):
    def f(cols, data):
        keep = [c for c in cols if c.name not in names]
        hdu = fits.BinTableHDU.from_columns(fits.ColDefs(keep), nrows=len(data))
        for c in keep:
            hdu.data[c.name] = data[c.name]
        return hdu.columns, hdu.data
    return f


def _set_column(name, row, value):
    def f(cols, data):
        data[name][row] = value
        return cols, data
    return f


def _del_keys(*keys):
    def f(h):
        for k in keys:
            h.remove(k, ignore_missing=True, remove_all=True)
    return f


def _bad_time(h):
    # 20:61:54: minutes >= 60; the MJD-OBS fallback removed so the bad card must be read
    h["DATE-OBS"] = "2016-02-22T19:61:42.664"
    h.remove("MJD-OBS")


def _corpus(tmp_path):
    """name -> (path, regex the one-line error must match besides the file name)."""
    trunc = tmp_path / "truncated.fits"
    shutil.copy(LCO / "ldac_test_catalog_corrupt.fits", trunc)
    notfits = tmp_path / "notfits.fits"
    notfits.write_bytes(b"This is a text file, not FITS.\n" * 10)
    half = tmp_path / "half.fits"  # a real catalogue cut in the middle of its table
    raw = (LCO / "ldac_test_catalog.fits").read_bytes()
    half.write_bytes(raw[: len(raw) * 2 // 3])
    return {
        "truncated": (trunc, r"truncat|END card|corrupt|not a readable"),
        "half": (half, r"truncat"),
        "notfits": (notfits, r"not a SExtractor catalogue"),
        "nocoords": (_modified(tmp_path, "nocoords.fits", table=_drop_columns(
            {"ALPHA_J2000", "DELTA_J2000"})), r"no sky (position|coordinates).*WCS"),
        "noexptime": (_modified(tmp_path, "noexptime.fits", header=_del_keys("EXPTIME", "EXPOSURE")),
                      r"exposure time|EXPTIME|exptime"),
        "notime": (_modified(tmp_path, "notime.fits", header=_del_keys("DATE-OBS", "MJD-OBS", "UTSTART",
                                                                          "DATE", "MJD")),
                   r"observation time"),
        "nan_ra": (_modified(tmp_path, "nan_ra.fits", table=_set_column("ALPHA_J2000", 17, np.nan)),
                   r"row 18.*(finite|position)"),
        "dec_91": (_modified(tmp_path, "dec_91.fits", table=_set_column("DELTA_J2000", 4, 91.5)),
                   r"row 5.*DELTA_J2000.*-90"),
        "ra_400": (_modified(tmp_path, "ra_400.fits", table=_set_column("ALPHA_J2000", 9, 400.0)),
                   r"row 10.*ALPHA_J2000.*360"),
        "dup_number": (_modified(tmp_path, "dup_number.fits", table=_set_column("NUMBER", 30, 3)),
                       r"row 31.*NUMBER.*duplicate|duplicate.*NUMBER"),
        "bad_time": (_modified(tmp_path, "bad_time.fits", header=_bad_time), r"DATE-OBS.*19:61"),
    }


def _counts(conn):
    return conn.execute("SELECT (SELECT count(*) FROM exposure), (SELECT count(*) FROM detection)").fetchone()


def test_corpus_files_are_real_and_differ_by_one_defect(tmp_path):
    """The modified copies still read as FITS with the original rows (the defect is the only change)."""
    c = _corpus(tmp_path)
    with fits.open(c["dec_91"][0]) as a, fits.open(FITS10) as b:
        assert len(a[1].data) == len(b[1].data) == 360
        diff = np.flatnonzero(a[1].data["DELTA_J2000"] != b[1].data["DELTA_J2000"])
        assert diff.tolist() == [4]


@pytest.mark.parametrize("case", ["truncated", "half", "notfits", "nocoords", "noexptime", "notime", "nan_ra",
                                  "dec_91", "ra_400", "dup_number", "bad_time"])
def test_bad_file_one_line_error_nothing_written(conn, tmp_path, case):
    path, pattern = _corpus(tmp_path)[case]
    before = _counts(conn)
    with pytest.raises(InputError) as ei:
        ingest_catalogs(conn, [path])
    msg = str(ei.value)
    assert path.name in msg and "\n" not in msg.strip(), msg
    assert re.search(pattern, msg, re.IGNORECASE | re.DOTALL), msg
    assert _counts(conn) == before
    st = conn.execute("SELECT status, error FROM stage_run WHERE stage = 'ingest-catalog' ORDER BY id DESC "
                      "LIMIT 1").fetchone()
    assert st[0] == "failed" and path.name in st[1]


def test_collect_keeps_good_files_and_reports_bad(conn, tmp_path):
    c = _corpus(tmp_path)
    good = tmp_path / "good.fits"
    shutil.copy(FITS10, good)
    bad = [c[k][0] for k in ("notfits", "dec_91", "dup_number")]
    before = _counts(conn)
    res = ingest_catalogs(conn, [bad[0], good, *bad[1:]], on_error="collect")
    status = {r.path: r.status for r in res}
    assert status[str(good)] == "loaded"
    assert [status[str(b)] for b in bad] == ["failed"] * 3
    assert all(b.name in r.error for b in bad for r in res if r.path == str(b))
    after = _counts(conn)
    assert after[0] - before[0] == 1 and after[1] - before[1] == 360  # only the good file
    run = conn.execute("SELECT status, counts FROM stage_run WHERE stage = 'ingest-catalog' ORDER BY id DESC "
                       "LIMIT 1").fetchone()
    assert run[0] == "ok"
    assert run[1]["failed"] == 3 and run[1]["files"] == 4 and run[1]["detection"] == 360
    assert sorted(f["path"] for f in run[1]["failed_files"]) == sorted(map(str, bad))


def test_bad_on_error_value(conn):
    with pytest.raises(ValueError, match="on_error"):
        ingest_catalogs(conn, [FITS10], on_error="ignore")


def test_cli_many_files_exit_status_and_summary(fresh_db_url, tmp_path):
    c = _corpus(tmp_path)
    good = tmp_path / "good.fits"
    shutil.copy(FITS10, good)
    cats = sorted((LCO / "CatalogFiles").glob("*_cat.fits"))
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", str(good), *map(str, cats),
                                 str(c["notfits"][0]), str(c["bad_time"][0])])
    assert r.exit_code == 1, r.output
    assert "notfits.fits" in r.output and "bad_time.fits" in r.output
    m = re.search(r"files: (\d+) ok, (\d+) unchanged, (\d+) failed; (\d+) exposures?, (\d+) detections", r.output)
    assert m, r.output
    n_ok, n_unch, n_fail, n_exp, n_det = map(int, m.groups())
    assert (n_ok, n_unch, n_fail, n_exp) == (1 + len(cats), 0, 2, 1 + len(cats))
    assert n_det == 360 + 45 + 319
    assert re.search(r"detections/s", r.output)
    # again: every good file unchanged, same failures
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", str(good),
                                 str(c["notfits"][0])])
    assert r.exit_code == 1 and re.search(r"0 ok, 1 unchanged, 1 failed", r.output), r.output
    # every file bad: exit 2
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", str(c["notfits"][0]),
                                 str(c["dec_91"][0])])
    assert r.exit_code == 2 and re.search(r"0 ok, 0 unchanged, 2 failed", r.output), r.output
    # all fine: exit 0
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", str(good)])
    assert r.exit_code == 0, r.output


def test_cli_images_bad_file_does_not_stop_run(fresh_db_url, tmp_path):
    sci = REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz"
    bad = tmp_path / "broken.fits.fz"
    bad.write_bytes(sci.read_bytes()[:5000])
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "image", str(bad), str(sci)])
    assert r.exit_code == 1, r.output
    assert "broken.fits.fz" in r.output
    assert re.search(r"files: 1 ok, 0 unchanged, 1 failed; 1 exposure", r.output), r.output

