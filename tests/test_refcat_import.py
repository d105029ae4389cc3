"""catdb refcat import: the same real catalogue in every format gives the same rows; column maps; errors."""
from __future__ import annotations

import numpy as np
import psycopg
import pytest
from astropy.io import fits
from astropy.table import Table
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.cli.refcat import parse_column_map
from catdb.errors import InputError
from catdb.ingest.refcat import read_refcat
from tests.helpers import REPO_DATA, TEST_DATA

GAIA_LDAC = TEST_DATA / "lco" / "GAIA-DR2.cat"
TYCHO = REPO_DATA / "tycho2" / "tycho2_lowell_field.csv"
pytestmark = [pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.spatial_backends]
COLMAP = ["--ra", "XWIN_WORLD", "--dec", "YWIN_WORLD", "--id", "NUMBER", "--epoch", "OBSDATE",
          "--mag", "G=MAG:MAGERR"]


def _gaia_table(errors_in_mas=False) -> Table:
    """The real SCAMP Gaia DR2 catalogue as a plain table (units kept), with a NUMBER column."""
    t = Table(fits.open(GAIA_LDAC)["LDAC_OBJECTS"].data)
    for c in fits.open(GAIA_LDAC)["LDAC_OBJECTS"].columns:
        t[c.name].unit = c.unit
    t.add_column(np.arange(1, len(t) + 1), name="NUMBER", index=0)
    if errors_in_mas:  # a CSV has no units: values must be in the target units (mas)
        for c in ("ERRAWIN_WORLD", "ERRBWIN_WORLD"):
            t[c] = np.asarray(t[c], dtype=float) * 3.6e6
            t[c].unit = None
        for c in t.colnames:
            t[c].unit = None
    return t


def _rows(conn, catalog):
    with conn.transaction():
        r = conn.execute("SELECT source_id, ra, dec, epoch, ra_err, dec_err, (mags->>'G')::float8, "
                         "(mag_errs->>'G')::float8 FROM refcat_source WHERE catalog = %s ORDER BY source_id::int",
                         (catalog,)).fetchall()
    return np.array([x[1:] for x in r], dtype=float), [x[0] for x in r]


def test_every_format_gives_identical_rows(db_url, tmp_path):
    files = {"ldac": GAIA_LDAC}
    t = _gaia_table()
    for fmt, name, kw in (("fits", "g.fits", {}), ("votable", "g.vot", {}),
                          ("ecsv", "g.ecsv", {"format": "ascii.ecsv"}),
                          ("parquet", "g.parquet", {"format": "parquet"})):
        p = tmp_path / name
        t.write(p, **({"format": fmt} if not kw else kw))
        files[fmt] = p
    _gaia_table(errors_in_mas=True).write(tmp_path / "g.csv", format="ascii.csv")
    files["csv"] = tmp_path / "g.csv"
    assert (tmp_path / "g.parquet").read_bytes()[:4] == b"PAR1"
    runner = CliRunner()
    for fmt, p in files.items():
        args = ["--band", "G"] if fmt == "ldac" else COLMAP
        res = runner.invoke(cli, ["--db", db_url, "-q", "refcat", "import", str(p), "--catalog", f"g-{fmt}", *args])
        assert res.exit_code == 0, (fmt, res.output)
        assert "249 stars" in res.output
    with psycopg.connect(db_url) as conn:
        ref, ids = _rows(conn, "g-ldac")
        assert ref.shape == (249, 7) and ids[:3] == ["1", "2", "3"]
        assert np.all(ref[:, 2] == 2015.5) and np.all((ref[:, 3] > 0) & (ref[:, 3] < 50))  # epoch, err in mas
        assert 8 < np.nanmin(ref[:, 5]) and np.nanmax(ref[:, 5]) < 21  # Gaia G
        for fmt in files:
            got, gids = _rows(conn, f"g-{fmt}")
            assert gids == ids, fmt
            np.testing.assert_allclose(got, ref, rtol=1e-6, atol=0, err_msg=fmt)
        # the import is recorded as a run and re-importing the same file is "unchanged"
        with conn.transaction():
            n_runs = conn.execute("SELECT count(*) FROM stage_run WHERE stage = 'ingest-refcat' AND status = 'ok' "
                                  "AND params ? 'columns'").fetchone()[0]
        assert n_runs == 5
    res = runner.invoke(cli, ["--db", db_url, "-q", "refcat", "import", str(files["parquet"]), "--catalog",
                              "g-parquet", *COLMAP])
    assert res.exit_code == 0 and "unchanged" in res.output


def test_epoch_value_and_autodetected_tycho_csv(db_url, tmp_path):
    r = read_refcat(TYCHO)  # autodetected: ra_deg/dec_deg, VT, observed Tycho-2 epoch
    assert r["catalog"][0] == "TYCHO2" and np.all(r["epoch"] == 1991.25) and "VT" in r["mags"]
    t = Table.read(TYCHO, format="ascii.csv")
    t.write(tmp_path / "tyc.parquet")
    cols = parse_column_map(ra="ra_deg", dec="dec_deg", epoch="2000.0", mags=("V=mag_vt",))
    p = read_refcat(tmp_path / "tyc.parquet", columns=cols)
    assert np.array_equal(p["ra"], r["ra"]) and np.array_equal(p["mags"]["V"], r["mags"]["VT"])
    assert np.all(p["epoch"] == 2000.0) and list(p["mags"]) == ["V"]
    # MJD / JD epoch columns become Julian years
    t["mjd"] = 51544.5 + 365.25 * 16
    t["jd"] = 2451545.0
    t.write(tmp_path / "tyc.ecsv", format="ascii.ecsv")
    assert np.allclose(read_refcat(tmp_path / "tyc.ecsv", columns={"ra": "ra_deg", "dec": "dec_deg",
                                                                   "epoch": "mjd"})["epoch"], 2016.0)
    assert np.allclose(read_refcat(tmp_path / "tyc.ecsv", columns={"ra": "ra_deg", "dec": "dec_deg",
                                                                   "epoch": "jd"})["epoch"], 2000.0)


def test_bad_column_map_names_file_and_column(db_url, tmp_path):
    p = tmp_path / "g.parquet"
    _gaia_table().write(p)
    with pytest.raises(InputError, match=r"g\.parquet.*'RA_NOPE' given for ra is not in the file.*XWIN_WORLD"):
        read_refcat(p, columns={"ra": "RA_NOPE", "dec": "YWIN_WORLD"})
    runner = CliRunner()
    res = runner.invoke(cli, ["--db", db_url, "refcat", "import", str(p), "--ra", "XWIN_WORLD", "--dec",
                              "YWIN_WORLD", "--mag", "G=MAG:MAGERR_NOPE"])
    assert res.exit_code == 2 and "g.parquet" in res.output and "MAGERR_NOPE" in res.output
    assert "mag_errs[G]" in res.output
    res = runner.invoke(cli, ["--db", db_url, "refcat", "import", str(p), "--mag", "G"])
    assert res.exit_code != 0 and "BAND=MAGCOL" in res.output
    # no RA/Dec found at all: the names tried and the options to use
    q = tmp_path / "noradec.ecsv"
    Table({"a": [1.0], "b": [2.0]}).write(q, format="ascii.ecsv")
    res = runner.invoke(cli, ["--db", db_url, "refcat", "import", str(q), str(p), *COLMAP])
    assert res.exit_code == 1 and "noradec.ecsv" in res.output and "XWIN_WORLD" in res.output  # one of two failed
    with psycopg.connect(db_url) as conn, conn.transaction():
        n = conn.execute("SELECT count(*) FROM refcat_source WHERE catalog = 'noradec'").fetchone()[0]
    assert n == 0
