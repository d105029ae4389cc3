"""``catdb ingest catalog|image -j N``: the same results as a serial run, safe under concurrency.

Real LCO SExtractor catalogues (``tests/data/lco``), replicas of the real FITS_LDAC with other
rows (resampled with other seeds, as ``tests/test_ingest_atomic.py`` builds them), the bad-input
corpus of ``tests/test_ingest_badinput.py`` and real Lowell frames.  Serial and ``-j 2`` runs load
into two fresh databases and are compared row by row; two ``catdb ingest`` processes on
overlapping file lists load each file once.
"""
import re
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.db.engine import connect
from catdb.errors import InputError
from catdb.ingest.load import ingest_catalogs
from tests.helpers import REPO, REPO_DATA, TEST_DATA
from tests.test_ingest_atomic import _big_ldac
from tests.test_ingest_badinput import _corpus

LCO = TEST_DATA / "lco"
LOWELL = REPO_DATA / "lowell42-5945"


def _mixed_dir(tmp_path):
    """A directory of good (real and replicated) and bad catalogues; the paths in a fixed order."""
    d = tmp_path / "mixed"
    d.mkdir()
    good = [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits", *sorted((LCO / "CatalogFiles")
                                                                                        .glob("*_cat.fits"))]
    for p in good:
        shutil.copy(p, d / p.name)
    for k in range(4):
        _big_ldac(d / f"replica{k}.ldac", 1500 + 250 * k, seed=10 + k)
    bad = _corpus(tmp_path)
    for name in ("notfits", "dec_91", "dup_number", "bad_time", "truncated"):
        shutil.copy(bad[name][0], d / f"bad_{name}.fits")
    return sorted(d.iterdir())


def _without_ids(output):
    """CLI output lines with exposure ids and the timing removed (ids are assigned in commit order)."""
    out = []
    for line in output.splitlines():
        line = re.sub(r"exposure [\d,]+(,|$)", r"exposure N\1", line)
        line = re.sub(r" in [\d.]+ s( \([\d,]+ detections/s\))?", "", line)
        out.append(line)
    return out


def _snapshot(url):
    """Exposures and detections of a database keyed by file, not by id."""
    with connect(url) as c:
        exp = c.execute("SELECT catalog_path, path, hdu, mjd_mid, filter, ra_center, dec_center, catalog_sha256, "
                        "(SELECT count(*) FROM detection d WHERE d.exposure_id = e.id) FROM exposure e "
                        "ORDER BY catalog_path, hdu").fetchall()
        det = c.execute("SELECT e.catalog_path, d.number, d.ra, d.dec, d.flux_auto, d.mag_auto, d.flags, "
                        "d.flux_aper::text, d.extra::text FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                        "ORDER BY 1, 2").fetchall()
        runs = c.execute("SELECT stage, status, counts, input_count FROM stage_run ORDER BY id").fetchall()
        dup = c.execute("SELECT count(*) FROM (SELECT exposure_id, number FROM detection GROUP BY 1, 2 "
                        "HAVING count(*) > 1) q").fetchone()[0]
    for r in runs:
        r[2].pop("seconds", None)
    return exp, det, runs, dup


def test_cli_j2_same_results_as_serial_on_mixed_directory(pg_server, template_db, tmp_path):
    from tests.conftest import create_database

    paths = [str(p) for p in _mixed_dir(tmp_path)]
    paths.append(next(p for p in paths if p.endswith("ldac_test_catalog.fits")))
    # (the same file twice in one call: loaded once, then unchanged)
    url_serial, url_par = create_database(pg_server, template_db), create_database(pg_server, template_db)
    r1 = CliRunner().invoke(cli, ["--db", url_serial, "-q", "ingest", "catalog", *paths])
    r2 = CliRunner().invoke(cli, ["--db", url_par, "-q", "ingest", "catalog", "-j", "2", *paths])
    assert r1.exit_code == 1, r1.output  # some files failed
    assert r2.exit_code == r1.exit_code, r2.output
    assert _without_ids(r2.output) == _without_ids(r1.output)
    m = re.search(r"files: (\d+) ok, (\d+) unchanged, (\d+) failed; (\d+) exposures, (\d+) detections",
                  r2.output)
    assert m and tuple(map(int, m.groups()[:4])) == (8, 1, 5, 8), r2.output
    assert int(m.group(5)) == 974 + 360 + 45 + 319 + sum(1500 + 250 * k for k in range(4))
    s1, s2 = _snapshot(url_serial), _snapshot(url_par)
    assert s2[0] == s1[0] and len(s2[0]) == 8  # exposures
    assert s2[1] == s1[1]  # every detection, column for column (numbers, positions, arrays, extra)
    assert s2[2] == s1[2] and len(s2[2]) == 1  # one stage_run, same status and counts (failed_files too)
    assert s2[3] == s1[3] == 0
    # again with -j 2: everything unchanged or failed, as serially
    r3 = CliRunner().invoke(cli, ["--db", url_par, "-q", "ingest", "catalog", "-j", "2", *paths])
    assert r3.exit_code == 1 and re.search(r"files: 0 ok, 9 unchanged, 5 failed; 0 exposures, 0 detections",
                                           r3.output), r3.output
    assert _snapshot(url_par)[1] == s1[1]


def test_exit_status_2_and_0_with_jobs(fresh_db_url, tmp_path):
    c = _corpus(tmp_path)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", "-j", "2",
                                 str(c["notfits"][0]), str(c["dec_91"][0]), str(c["nan_ra"][0])])
    assert r.exit_code == 2 and re.search(r"0 ok, 0 unchanged, 3 failed", r.output), r.output
    assert all(n in r.output for n in ("notfits.fits", "dec_91.fits", "nan_ra.fits"))
    good = [str(p) for p in sorted((LCO / "CatalogFiles").glob("*_cat.fits"))]
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", "-j", "3", *good])
    assert r.exit_code == 0 and re.search(rf"{len(good)} ok, 0 unchanged, 0 failed", r.output), r.output
    with connect(fresh_db_url) as conn:
        st = conn.execute("SELECT status, counts->>'failed' FROM stage_run ORDER BY id").fetchall()
    assert st == [("failed", "3"), ("ok", "0")]


def test_api_jobs_duplicates_and_raise_mode(fresh_db_url, tmp_path):
    c = _corpus(tmp_path)
    a, b = LCO / "oracdr_test_catalog.fits", LCO / "ldac_test_catalog.fits"
    with connect(fresh_db_url) as conn:
        res = ingest_catalogs(conn, [a, b, a, a], jobs=2)
        assert [r.status for r in res] == ["loaded", "loaded", "unchanged", "unchanged"]
        assert res[2].exposure_ids == res[0].exposure_ids
        assert [r.n_rows for r in res] == [360, 974, 0, 0]
        # raise mode: the first bad file in order is raised, naming it; the run is recorded failed
        with pytest.raises(InputError, match="dec_91.fits"):
            ingest_catalogs(conn, [a, c["dec_91"][0], c["notfits"][0]], jobs=2)
        assert conn.execute("SELECT status FROM stage_run ORDER BY id DESC LIMIT 1").fetchone()[0] == "failed"
        assert conn.execute("SELECT count(*) FROM exposure").fetchone()[0] == 2
        with pytest.raises(ValueError, match="jobs"):
            ingest_catalogs(conn, [a], jobs=0)


def test_two_concurrent_processes_overlapping_lists(fresh_db_url, tmp_path):
    """Two ``catdb ingest catalog -j 2`` processes at once on overlapping lists: each file once, both exit 0."""
    files = []
    for k in range(8):
        p = tmp_path / f"rep{k}.ldac"
        _big_ldac(p, 1200 + 100 * k, seed=100 + k)
        files.append(str(p))
    first, second = files[:6], files[2:][::-1]  # 4 files in both lists, met in opposite orders
    cmd = [sys.executable, "-m", "catdb.cli.main", "--db", fresh_db_url, "ingest", "catalog", "-j", "2"]
    procs = [subprocess.Popen(cmd + lst, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for lst in (first, second)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, (out, err)
        assert "ingest catalogues" in err  # the progress bar (not -q)
    status = {}
    for out, _ in outs:
        for line in out.splitlines():
            m = re.match(r"(.+): (loaded|unchanged|failed)", line)
            if m:
                status.setdefault(m.group(1), []).append(m.group(2))
    assert sorted(status) == sorted(files)
    for f in files[2:6]:  # in both lists: loaded by one process, found unchanged by the other
        assert sorted(status[f]) == ["loaded", "unchanged"], (f, status[f])
    with connect(fresh_db_url) as conn:
        n_exp, n_paths = conn.execute("SELECT count(*), count(DISTINCT catalog_path) FROM exposure").fetchone()
        assert n_exp == n_paths == 8
        assert conn.execute("SELECT count(*) FROM detection").fetchone()[0] == sum(1200 + 100 * k for k in range(8))
        assert conn.execute("SELECT count(*) FROM (SELECT exposure_id, number FROM detection GROUP BY 1, 2 "
                            "HAVING count(*) > 1) q").fetchone()[0] == 0
        assert [r[0] for r in conn.execute("SELECT status FROM stage_run ORDER BY id")] == ["ok", "ok"]


def test_cli_images_j2_same_as_serial(pg_server, template_db, tmp_path):
    from tests.conftest import create_database

    sci = sorted((LOWELL / "science").glob("*.fits.fz"))[:3]
    bad = tmp_path / "broken.fits.fz"
    bad.write_bytes(sci[0].read_bytes()[:5000])
    paths = [str(p) for p in [*sci, bad, *sorted((LOWELL / "zero").glob("*.fits.fz"))[:2], sci[1]]]
    urls = [create_database(pg_server, template_db) for _ in range(2)]
    outs = [CliRunner().invoke(cli, ["--db", u, "-q", "ingest", "image", *j, *paths])
            for u, j in zip(urls, ([], ["-j", "2"]))]
    assert outs[0].exit_code == outs[1].exit_code == 1, outs[1].output
    assert _without_ids(outs[1].output) == _without_ids(outs[0].output)
    assert re.search(r"files: 5 ok, 1 unchanged, 1 failed; 5 exposures", outs[1].output), outs[1].output
    q = ("SELECT path, hdu, image_type, mjd_mid, ra_center, dec_center, sha256 FROM exposure ORDER BY path, hdu")
    rows = []
    for u in urls:
        with connect(u) as c:
            rows.append(c.execute(q).fetchall())
    assert rows[0] == rows[1] and len(rows[0]) == 5
