"""catdb serve: the TAP 1.1 service, checked with the clients astronomers use.

The real Lowell night (MANIFEST ``lowell42-5945``, 8 frames reduced and extracted,
associated) is served on a free localhost port in a thread; pyvo (sync, async,
tables), STILTS ``tapquery`` and ``taplint`` talk to it over HTTP.  The same cone
through ADQL and through ``catdb query`` with ``q3c_radial_query`` must give the
same rows; a BOX must select what a gnomonic projection in numpy selects; the
service must refuse writes and non-ADQL.
"""
from __future__ import annotations

import io
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings

import numpy as np
import pytest

from catdb.tap.adql import AdqlError, translate

pyvo = pytest.importorskip("pyvo", reason="pyvo (the serve extra) is not installed")
pytest.importorskip("waitress", reason="waitress (the serve extra) is not installed")

from tests.lowell_night import needs_lowell, night_db_url  # noqa: E402

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

warnings.filterwarnings("ignore", module="astropy.io.votable")
warnings.filterwarnings("ignore", module="pyvo")


# --------------------------------------------------------------------------- the translator alone
@pytest.mark.parametrize("adql,expect", [
    ("SELECT TOP 5 ra FROM detection ORDER BY ra", "SELECT ra FROM detection ORDER BY ra LIMIT 5"),
    ("SELECT ra FROM detection WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5)) = 1",
     "q3c_radial_query(ra, dec, 10, 20, 0.5)"),
    ("SELECT ra FROM detection WHERE 1 = CONTAINS(POINT(ra, dec), CIRCLE(10, 20, 0.5))",
     "WHERE (q3c_radial_query(ra, dec, 10, 20, 0.5))"),
    ("SELECT ra FROM t WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 10, 20, 0.5)) = 0",
     "NOT (q3c_radial_query("),
    ("SELECT DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2)) FROM t", "q3c_dist(ra, dec, 1, 2)"),
    ("SELECT * FROM t WHERE CONTAINS(POINT('ICRS', ra, dec), POLYGON('ICRS', 1, 2, 3, 4, 5, 6)) = 1",
     "q3c_poly_query(ra, dec, CAST(ARRAY[1, 2, 3, 4, 5, 6] AS double precision[]))"),
    ("SELECT CEILING(x), LOG(x), LOG10(x), RAND(), TRUNCATE(x, 2) FROM t",
     "ceil(x) , ln(x) , log10(x) , random() , CAST(trunc(CAST(x AS numeric), CAST(2 AS integer)) AS double precision)"),
    ("SELECT a || b, LOWER(c) FROM t", "a || b , lower(c)"),
    ('SELECT "size" FROM "TAP_SCHEMA".columns', 'SELECT "size" FROM tap_schema.columns'),
    ("SELECT id FROM t WHERE id IN (SELECT TOP 3 id FROM u ORDER BY id)",
     "IN (SELECT id FROM u ORDER BY id LIMIT 3)"),
])
def test_translation(adql, expect):
    assert expect in translate(adql).sql


@pytest.mark.parametrize("adql,word", [
    ("SELECT 1; DELETE FROM detection", "several statements"),
    ("DELETE FROM detection", "must be an ADQL SELECT"),
    ("SELECT pg_sleep(10)", "pg_sleep() at character 8 is not supported"),
    ("SELECT * FROM detection LIMIT 5", "use SELECT TOP n"),
    ("SELECT ra::text FROM detection", "use CAST"),
    ("SELECT * INTO t2 FROM detection", "read-only"),
    ("SELECT * FROM t WHERE CONTAINS(POINT('GALACTIC', l, b), CIRCLE('ICRS', 1, 2, 3)) = 1", "ICRS"),
    ("SELECT AREA(CIRCLE('ICRS', 1, 2, 3)) FROM t", "AREA"),
    ("SELECT * FROM t WHERE CONTAINS(CIRCLE('ICRS', 1, 2, 3), POINT('ICRS', ra, dec)) = 1", "CONTAINS(CIRCLE, POINT)"),
    ("SELECT (ra FROM t", "missing ')'"),
    ("SELECT 'abc FROM t", "unterminated string"),
    ("", "empty query"),
])
def test_translation_refused(adql, word):
    with pytest.raises(AdqlError, match=None) as e:
        translate(adql)
    assert word in str(e.value)


def test_point_in_select_list_is_a_dali_point():
    tr = translate("SELECT id, POINT('ICRS', ra, dec) AS pos, CIRCLE('ICRS', ra, dec, 0.1), "
                   "DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 1, 2)) AS d FROM detection")
    assert tr.xtypes == {1: "point", 2: "circle"}
    assert tr.units == {3: ("deg", "pos.angDistance")}


def test_ucds_are_ucd1plus_words():
    """Every UCD catdb publishes is valid UCD1+ (primary word first, words from the vocabulary)."""
    from astropy.io.votable.ucd import check_ucd

    from catdb.schema import ucd

    words = set(ucd.BY_NAME.values()) | {v for t in ucd.BY_TABLE.values() for v in t.values()}
    words |= {u for _, u in ucd._RULES}
    bad = [w for w in sorted(words) if not check_ucd(w, check_controlled_vocabulary=True, has_colon=False)]
    assert not bad
    assert ucd.column_ucd("detection", "ra") == "pos.eq.ra;meta.main"
    assert ucd.column_ucd("exposure", "mjd_mid") == "time.epoch"
    assert ucd.column_ucd("detection", "mag_aper") == "phot.mag"
    assert ucd.column_ucd("forced_source", "flux") == "phot.flux"


def test_tabledata_rows_of_every_length_leave_the_heap_intact():
    """Rows whose TABLEDATA text is 256 or 512 bytes long are written without a heap overrun.

    astropy's C TABLEDATA writer (astropy issue #20419) wrote a NUL one byte past its buffer for
    such rows, and the service crashed later, anywhere; Python's debug allocator
    (``PYTHONMALLOC=debug``) checks the guard bytes of every block and aborts on the first overrun.
    """
    import os
    import sys
    from pathlib import Path

    code = (
        "import io, numpy as np\n"
        "from astropy.io.votable import parse_single_table\n"
        "from catdb.tap.votable import ResultField, write_result\n"
        "f = [ResultField('s', 'unicodeChar', '*', None, None, None, None)]\n"
        "for n in range(150, 1100):\n"
        "    body = write_result(f, [np.ma.array(['x' * n], mask=[False])], False)\n"
        "    assert parse_single_table(io.BytesIO(body)).array['s'][0] == 'x' * n\n"
        "print('ok')\n")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, PYTHONMALLOC="debug",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[:3000]


# --------------------------------------------------------------------------- the service on the real night
@pytest.fixture(scope="module")
def night(pg_server, template_db):
    if needs_lowell.args[0]:
        pytest.skip(needs_lowell.kwargs["reason"])
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, n_frames=8, steps=("associate",))
    c = connect(url)
    yield url, c, info
    c.close()


@pytest.fixture(scope="module")
def tap(night):
    from catdb.tap import create_server, stop_server

    url = night[0]
    server, app = create_server(url, "127.0.0.1", 0, threads=4, timeout=60, default_maxrec=20000,
                                max_rows=50000, workers=2)
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    base = f"http://127.0.0.1:{server.effective_port}/tap"
    yield base, app
    stop_server(server, app, t)
    assert not t.is_alive()


def _get(url, data=None):
    """(status, body) of a GET (or a POST of ``data``) without raising on 4xx."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    try:
        with urllib.request.urlopen(url, data=body, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _votable(body):
    from astropy.io.votable import parse_single_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_single_table(io.BytesIO(body)).to_table()


def _center(conn):
    """A position in the middle of the detections of the night (deg)."""
    return conn.execute("SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ra), "
                        "percentile_cont(0.5) WITHIN GROUP (ORDER BY dec) FROM detection").fetchone()


def test_cone_same_rows_as_catdb_query(night, tap):
    """The ADQL cone through TAP returns exactly the rows q3c_radial_query returns through catdb query."""
    import json

    from click.testing import CliRunner

    from catdb.cli.main import cli

    url, conn, _ = night
    base, _ = tap
    ra0, dec0 = _center(conn)
    r = 0.03
    res = pyvo.dal.TAPService(base).search(
        f"SELECT id, ra, dec, mag_auto, exposure_id FROM detection "
        f"WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r})) = 1")
    t = res.to_table()
    out = CliRunner().invoke(cli, ["--db", url, "query", "-f", "json",
                                   f"SELECT id, ra, dec, mag_auto, exposure_id FROM detection "
                                   f"WHERE q3c_radial_query(ra, dec, {ra0!r}, {dec0!r}, {r})"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout[out.stdout.index("{"):])["rows"]
    assert len(rows) > 20  # a real cone on a real field
    assert sorted(t["id"].tolist()) == sorted(x["id"] for x in rows)
    by_id = {x["id"]: x for x in rows}
    assert all(by_id[i]["ra"] == ra and by_id[i]["dec"] == dec for i, ra, dec in zip(t["id"], t["ra"], t["dec"]))
    # and it is the cone: great-circle distance in numpy
    d = np.degrees(np.arccos(np.clip(
        np.sin(np.radians(dec0)) * np.sin(np.radians(t["dec"])) + np.cos(np.radians(dec0))
        * np.cos(np.radians(t["dec"])) * np.cos(np.radians(t["ra"] - ra0)), -1, 1)))
    assert d.max() <= r
    # units and UCDs on the FIELDs
    ucds = {f.name: f.ucd for f in res.fielddescs}
    assert ucds["ra"] == "pos.eq.ra;meta.main" and ucds["dec"] == "pos.eq.dec;meta.main"
    assert ucds["id"] == "meta.id;meta.main" and ucds["mag_auto"] == "phot.mag"
    assert str(t["ra"].unit) == "deg" and str(t["mag_auto"].unit) == "mag"
    # DISTANCE in degrees, agreeing with numpy, and POINT as a DALI point
    res = pyvo.dal.TAPService(base).search(
        f"SELECT id, POINT('ICRS', ra, dec) AS p, DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', {ra0!r}, {dec0!r})) "
        f"AS d FROM detection WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', {ra0!r}, {dec0!r}, {r})) = 1 "
        "ORDER BY id")
    td = res.to_table()
    assert str(td["d"].unit) == "deg" and {f.name: f.xtype for f in res.fielddescs}["p"] == "point"
    order = np.argsort(np.asarray(t["id"]))
    np.testing.assert_allclose(np.asarray(td["d"]), d[order], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(np.asarray(td["p"])[:, 0], np.asarray(t["ra"])[order])


def test_box_is_a_gnomonic_rectangle(night, tap):
    """BOX selects what a TAN projection about its centre says is inside +-w/2, +-h/2."""
    _, conn, _ = night
    base, _ = tap
    ra0, dec0 = _center(conn)
    w, h = 0.05, 0.03
    t = pyvo.dal.TAPService(base).search(
        f"SELECT id FROM detection WHERE CONTAINS(POINT('ICRS', ra, dec), "
        f"BOX('ICRS', {ra0!r}, {dec0!r}, {w}, {h})) = 1").to_table()
    ids, ra, dec = (np.array(v) for v in zip(*conn.execute("SELECT id, ra, dec FROM detection").fetchall()))
    a, d, a0, d0 = np.radians(ra), np.radians(dec), np.radians(ra0), np.radians(dec0)
    cosc = np.sin(d0) * np.sin(d) + np.cos(d0) * np.cos(d) * np.cos(a - a0)
    xi = np.cos(d) * np.sin(a - a0) / cosc
    eta = (np.cos(d0) * np.sin(d) - np.sin(d0) * np.cos(d) * np.cos(a - a0)) / cosc
    inside = (np.abs(xi) <= np.tan(np.radians(w / 2))) & (np.abs(eta) <= np.tan(np.radians(h / 2)))
    assert inside.sum() > 10
    assert sorted(t["id"].tolist()) == sorted(ids[inside].tolist())


def test_pyvo_maxrec_overflow_and_binary2(night, tap):
    base, _ = tap
    svc = pyvo.dal.TAPService(base)
    n = night[1].execute("SELECT count(*) FROM detection").fetchone()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = svc.search("SELECT id, mag_aper FROM detection ORDER BY id", maxrec=7)
    assert len(res) == 7 and res.query_status == "OVERFLOW"
    status, body = _get(f"{base}/sync", {"LANG": "ADQL",
                                         "QUERY": "SELECT TOP 7 id, mag_aper FROM detection ORDER BY id",
                                         "RESPONSEFORMAT": "votable/b2"})
    assert status == 200 and b"<BINARY2>" in body
    b2 = _votable(body)
    td = res.to_table()
    assert b2["id"].tolist() == td["id"].tolist()
    np.testing.assert_array_equal(np.asarray(b2["mag_aper"]), np.asarray(td["mag_aper"]))
    assert b"OVERFLOW" not in body  # TOP 7 of many rows with MAXREC unset: not an overflow
    full = svc.search("SELECT TOP 3 id FROM detection")
    assert full.query_status == "OK" and n > 3


def test_pyvo_async_job_lifecycle(night, tap):
    base, _ = tap
    svc = pyvo.dal.TAPService(base)
    q = "SELECT exposure_id, COUNT(*) AS n FROM detection GROUP BY exposure_id ORDER BY exposure_id"
    t = svc.run_async(q).to_table()
    expect = night[1].execute("SELECT exposure_id, count(*) FROM detection GROUP BY 1 ORDER BY 1").fetchall()
    assert [tuple(int(v) for v in r) for r in zip(t["exposure_id"], t["n"])] == expect
    # a job with bad ADQL ends in ERROR with the message
    job = svc.submit_job("SELECT nonsense_column FROM detection")
    job.run()
    job.wait(phases=["COMPLETED", "ERROR", "ABORTED"], timeout=60)
    assert job.phase == "ERROR"
    with pytest.raises(pyvo.dal.DALQueryError, match="nonsense_column"):
        job.raise_if_error()
    status, body = _get(f"{job.url}/error")
    assert status == 200 and b'value="ERROR"' in body
    # a pending job aborted, then deleted
    job2 = svc.submit_job("SELECT TOP 1 id FROM detection")
    assert job2.phase == "PENDING"
    job2.abort()
    assert job2.phase == "ABORTED"
    job2_url = job2.url
    job2.delete()
    assert _get(job2_url)[0] == 404


def test_pyvo_tables_and_tap_schema(tap):
    base, _ = tap
    svc = pyvo.dal.TAPService(base)
    tables = {t.name: t for t in svc.tables}
    assert {"exposure", "detection", "object", "forced_source", "track", "zeropoint", "refcat_source",
            "lightcurve_point", "TAP_SCHEMA.columns"} <= set(tables)
    cols = {c.name: c for c in tables["detection"].columns}
    assert cols["ra"].unit == "deg" and cols["ra"].ucd == "pos.eq.ra;meta.main"
    assert "indexed" in cols["ra"].flags
    t = svc.search("SELECT column_name, unit, ucd, datatype, description FROM TAP_SCHEMA.columns "
                   "WHERE table_name = 'exposure' ORDER BY column_index").to_table()
    row = {n: (u, ucd, dt) for n, u, ucd, dt in zip(t["column_name"], t["unit"], t["ucd"], t["datatype"])}
    assert row["mjd_mid"] == ("d", "time.epoch", "double")
    assert row["ra_center"][1] == "pos.eq.ra;meta.main"
    # reserved words published delimited, and usable so
    t = svc.search('SELECT TOP 1 "catalog" FROM refcat_source').to_table()
    assert "catalog" in t.colnames


def test_writes_and_non_adql_refused(night, tap):
    base, _ = tap
    conn = night[1]
    before = conn.execute("SELECT count(*) FROM detection").fetchone()[0]
    for q in ["DELETE FROM detection", "SELECT 1; DELETE FROM detection", "SELECT pg_sleep(5)",
              "SELECT lo_from_bytea(0, 'x')", "SELECT * INTO evil FROM detection"]:
        status, body = _get(f"{base}/sync", {"LANG": "ADQL", "QUERY": q})
        assert status == 400, q
        assert b'<INFO name="QUERY_STATUS" value="ERROR">' in body
    status, body = _get(f"{base}/sync", {"QUERY": "SELECT TOP 1 id FROM detection"})
    assert status == 400 and b"LANG is required" in body
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM detection").fetchone()[0] == before


def test_statement_timeout(night):
    """A query longer than the service's timeout is cancelled and reported, not left running."""
    from catdb.tap import prepare
    from catdb.tap.service import TapService

    app = TapService(night[0], prepare(night[0]), timeout=0.5)
    status, _, body = app.sync({"LANG": "ADQL",
                                "QUERY": "SELECT COUNT(*) FROM detection AS a, detection AS b, detection AS c"})
    assert status.startswith("400") and b"0.5 s execution limit" in body


needs_stilts = pytest.mark.skipif(shutil.which("stilts") is None, reason="stilts is not installed (Debian stilts)")


@needs_stilts
def test_stilts_tapquery(night, tap, tmp_path):
    base, _ = tap
    out = tmp_path / "e.vot"
    r = subprocess.run(["stilts", "tapquery", f"tapurl={base}", "sync=true", f"out={out}", "ofmt=votable",
                        "adql=SELECT id, mjd_mid, exptime FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    t = _votable(out.read_bytes())
    assert t["id"].tolist() == [x[0] for x in night[1].execute(
        "SELECT id FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid").fetchall()]
    assert str(t["mjd_mid"].unit) == "d"


@pytest.mark.spatial_backends("q3c")  # protocol checks, no spatial query; CONTAINS runs on the port above
@needs_stilts
def test_taplint_no_errors(tap):
    base, _ = tap
    r = subprocess.run(["stilts", "taplint", f"tapurl={base}", "report=EWF", "maxrepeat=3"],
                       capture_output=True, text=True, timeout=480)
    totals = [ln for ln in r.stdout.splitlines() if ln.startswith("Totals:")]
    assert totals, r.stdout[-2000:] + r.stderr[-2000:]
    assert "Errors: 0;" in totals[0], r.stdout


@pytest.mark.spatial_backends("q3c")  # the command's start and stop; CONTAINS runs on the port above
def test_catdb_serve_command(night):
    """`catdb serve --port 0` starts, prints its URL, answers VOSI availability, and stops on SIGINT."""
    import os
    import re
    import signal
    import sys

    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])  # this checkout's catdb first
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    p = subprocess.Popen([sys.executable, "-m", "catdb.cli.main", "--db", night[0], "serve", "--port", "0"],
                         stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = p.stderr.readline()  # blocks until the server prints where it listens
        m = re.search(r"(http://127\.0\.0\.1:\d+/tap)", line)
        assert m, line + p.stderr.read()
        status, body = _get(m.group(1) + "/availability")
        assert status == 200 and b"<vosi:available>true</vosi:available>" in body
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    assert p.returncode == 0
