"""One file, one exposure: identity is the content (SHA-256), not the path.

Real LCO SExtractor catalogues and real Lowell raw frames (``tests/data/lco``, ``data/lowell42-5945``), copied under
other paths: a byte-identical copy is never a second exposure (serial, ``-j 2``, two racing processes),
a moved file is re-pointed, ``--relocate`` re-points a copy, and the per-file lock that makes two
loads of the same content take turns cannot be taken by the read-only role.
"""
import re
import shutil
import subprocess
import sys

import psycopg
import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.db.engine import connect
from catdb.ingest.load import ingest_catalogs, ingest_images
from tests.helpers import REPO, REPO_DATA, TEST_DATA

LCO = TEST_DATA / "lco"
RAW = REPO_DATA / "lowell42-5945" / "science" / "20190326.0126.fits.fz"

pytestmark = pytest.mark.skipif(not (LCO / "ldac_test_catalog.fits").exists() or not RAW.exists(),
                                reason=f"real data missing: {LCO}/ldac_test_catalog.fits, {RAW}")


def _one(url, q, *a):
    with connect(url) as c:
        return c.execute(q, a).fetchone()


def test_catalogue_copy_is_the_same_exposure(fresh_db_url, tmp_path):
    a, b = tmp_path / "a" / "cat.fits", tmp_path / "b" / "copy.fits"
    for p in (a, b):
        p.parent.mkdir()
        shutil.copy(LCO / "ldac_test_catalog.fits", p)
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", str(a), str(b)])
    assert r.exit_code == 0, r.output
    eid = _one(fresh_db_url, "SELECT min(id) FROM exposure")[0]
    assert f"{b}: unchanged (same content as exposure {eid}, {a})" in r.output
    assert "files: 1 ok, 1 unchanged, 0 failed; 1 exposure, 974 detections" in r.output
    assert _one(fresh_db_url, "SELECT count(*), count(DISTINCT catalog_sha256) FROM exposure") == (1, 1)
    assert _one(fresh_db_url, "SELECT count(*) FROM detection")[0] == 974
    # -j 2 on the same pair, again: nothing new
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "catalog", "-j", "2", str(b), str(a)])
    assert r.exit_code == 0 and "0 ok, 2 unchanged" in r.output, r.output
    assert _one(fresh_db_url, "SELECT count(*) FROM exposure")[0] == 1


def test_raw_frame_from_three_directories_is_one_exposure(fresh_db_url, tmp_path):
    copies = []
    for d in ("night", "backup", "usb"):
        (tmp_path / d).mkdir()
        copies.append(tmp_path / d / RAW.name)
        shutil.copy(RAW, copies[-1])
    r = CliRunner().invoke(cli, ["--db", fresh_db_url, "-q", "ingest", "image", *map(str, copies)])
    assert r.exit_code == 0, r.output
    assert "files: 1 ok, 2 unchanged, 0 failed; 1 exposure" in r.output
    assert len(re.findall(rf"unchanged \(same content as exposure \d+, {re.escape(str(copies[0]))}\)", r.output)) == 2
    assert _one(fresh_db_url, "SELECT count(*), min(path) FROM exposure") == (1, str(copies[0]))


def test_moved_file_is_repointed_copy_only_with_relocate(fresh_db_url, tmp_path):
    a = tmp_path / "old" / "cat.fits"
    a.parent.mkdir()
    shutil.copy(LCO / "oracdr_test_catalog.fits", a)
    with connect(fresh_db_url) as conn:
        eid = ingest_catalogs(conn, [a])[0].exposure_ids[0]
        # a copy beside it: reported, the stored path stays
        b = tmp_path / "copy.fits"
        shutil.copy(a, b)
        r = ingest_catalogs(conn, [b])[0]
        assert r.status == "unchanged" and r.exposure_ids == [eid] and str(a) in r.detail
        assert conn.execute("SELECT path, catalog_path FROM exposure").fetchall() == [(str(a), str(a))]
        # --relocate: the copy becomes the stored path
        r = ingest_catalogs(conn, [b], relocate=True)[0]
        assert r.status == "unchanged" and "path updated" in r.detail
        assert conn.execute("SELECT path, catalog_path FROM exposure").fetchall() == [(str(b), str(b))]
        # a move (the stored file is gone): re-pointed without being asked
        c = tmp_path / "new" / "cat.fits"
        c.parent.mkdir()
        shutil.move(b, c)
        r = ingest_catalogs(conn, [c])[0]
        assert r.status == "unchanged" and "no longer there" in r.detail
        assert conn.execute("SELECT id, path, catalog_path FROM exposure").fetchall() == [(eid, str(c), str(c))]
        assert conn.execute("SELECT count(*) FROM detection").fetchone()[0] == 360


def test_moved_image_is_repointed(fresh_db_url, tmp_path):
    a = tmp_path / "a.fits.fz"
    shutil.copy(RAW, a)
    with connect(fresh_db_url) as conn:
        eid = ingest_images(conn, [a])[0].exposure_ids[0]
        b = tmp_path / "moved.fits.fz"
        a.rename(b)
        r = ingest_images(conn, [b])[0]
        assert r.status == "unchanged" and r.exposure_ids == [eid]
        assert conn.execute("SELECT path FROM exposure").fetchall() == [(str(b),)]


def test_two_processes_racing_on_two_copies_load_once(fresh_db_url, tmp_path):
    """Two ``catdb ingest`` processes started together, each on its own copies of the same catalogues."""
    src = [LCO / "ldac_test_catalog.fits", LCO / "oracdr_test_catalog.fits",
           *sorted((LCO / "CatalogFiles").glob("*_cat.fits"))[:2]]
    lists = []
    for d in ("one", "two"):
        (tmp_path / d).mkdir()
        lists.append([str(shutil.copy(p, tmp_path / d / p.name)) for p in src])
    cmd = [sys.executable, "-m", "catdb.cli.main", "--db", fresh_db_url, "-q", "ingest", "catalog"]
    procs = [subprocess.Popen(cmd + ["-j", "2"] + lists[0], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True),
             subprocess.Popen(cmd + lists[1][::-1], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    loaded = sum(len(re.findall(r": loaded,", o)) for o, _ in outs)
    same = sum(len(re.findall(r": unchanged \(same content as exposure \d+", o)) for o, _ in outs)
    assert (loaded, same) == (len(src), len(src)), outs
    with connect(fresh_db_url) as c:
        assert c.execute("SELECT count(*), count(DISTINCT catalog_sha256) FROM exposure").fetchone() == (4, 4)
        assert c.execute("SELECT count(*) FROM (SELECT exposure_id, number FROM detection GROUP BY 1, 2 "
                         "HAVING count(*) > 1) q").fetchone()[0] == 0


def test_reader_cannot_take_the_ingest_lock(fresh_db_url):
    """The row lock an ingest takes needs INSERT/UPDATE on ingest_lock: catdb_reader has neither."""
    with psycopg.connect(fresh_db_url, user="catdb_reader") as r:
        for q in ("INSERT INTO ingest_lock (key) VALUES ('sha256:x') ON CONFLICT (key) DO UPDATE SET locked_at = now()",
                  "SELECT * FROM ingest_lock FOR UPDATE", "SELECT * FROM ingest_lock FOR KEY SHARE"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                r.execute(q)
            r.rollback()
