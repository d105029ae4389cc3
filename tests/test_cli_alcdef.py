"""catdb lightcurve import / sessions / period and catdb export lightcurve --format alcdef, on a real server."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.ingest.alcdef import read_alcdef
from tests.lowell_night import needs_lowell

DATA = Path(__file__).parent / "data" / "alcdef"
ZACHIA = DATA / "ALCDEF_999_Zachia_20170614_142554.txt"
CERES = DATA / "ALCDEF_1_Ceres.TXT"
ZACHIA_P_H = 22.77  # published rotation period [h], see tests/data/alcdef/README.md


def run(url, *args, code=0):
    r = CliRunner().invoke(cli, ["--db", url, *args])
    assert r.exit_code == code, (r.output, r.stderr, r.exception)
    return r


def counts(conn):
    return conn.execute("SELECT (SELECT count(*) FROM lightcurve_session), "
                        "(SELECT count(*) FROM lightcurve_session_point)").fetchone()


def test_import_is_idempotent_and_keeps_provenance(fresh_db_url, tmp_path):
    from catdb.db.engine import connect

    r = run(fresh_db_url, "lightcurve", "import", str(ZACHIA), str(CERES))
    assert "imported 9 sessions, 1336 points from 2 of 2 files" in r.output
    assert "no ENDDATA" in r.stderr  # the Ceres file's departure from the standard is reported
    with connect(fresh_db_url) as conn:
        assert counts(conn) == (9, 1336)
        first_ids = [x[0] for x in conn.execute("SELECT id FROM lightcurve_session ORDER BY id").fetchall()]
        row = conn.execute("SELECT s.object_number, s.object_name, s.mpc_desig, s.session_date::text, s.filter, "
                           "s.mag_band, s.standard, s.differ_mags, s.ucor_mag, s.n_points, r.stage, r.status "
                           "FROM lightcurve_session s JOIN stage_run r ON r.id = s.stage_run_id "
                           "WHERE s.object_number = 999 ORDER BY s.jd_first LIMIT 1").fetchone()
        assert row == (999, "Zachia", "1923 NW", "1999-09-04", "C", "R", "INTERNAL", False, -1.8189, 35,
                       "lightcurve-import", "ok")
        pt = conn.execute("SELECT p.jd, p.mjd, p.mag, p.mag_err, p.airmass, p.data_text "
                          "FROM lightcurve_session_point p "
                          "JOIN lightcurve_session s ON s.id = p.session_id WHERE s.object_number = 1 "
                          "ORDER BY s.jd_first, p.seq LIMIT 1").fetchone()
        assert pt == (2455817.735937, pytest.approx(55817.235937), 7.328, 0.004, None, "2455817.735937|7.328|0.004")
    # again (the same files, and the same content under another name): replaced, not duplicated
    copy = tmp_path / "zachia_copy.txt"
    copy.write_bytes(ZACHIA.read_bytes())
    r = run(fresh_db_url, "lightcurve", "import", str(ZACHIA), str(CERES), str(copy))
    assert "replaced 4 earlier sessions" in r.stderr and "replaced 5 earlier sessions" in r.stderr
    with connect(fresh_db_url) as conn:
        assert counts(conn) == (9, 1336)
        ids = [x[0] for x in conn.execute("SELECT id FROM lightcurve_session ORDER BY id").fetchall()]
        assert not set(ids) & set(first_ids)
        n_runs = conn.execute("SELECT count(*) FROM stage_run WHERE stage = 'lightcurve-import'").fetchone()[0]
        assert n_runs == 2
    out = run(fresh_db_url, "lightcurve", "sessions").output
    assert out.count("999 Zachia") == 4 and out.count("1 Ceres") == 5 and "1999-09-04" in out


def test_bad_file_is_reported_with_its_line_and_others_imported(fresh_db_url, tmp_path):
    from catdb.db.engine import connect

    bad = tmp_path / "bad.alcdef"
    bad.write_text(ZACHIA.read_text().replace("DATA=2451427.645160|13.379|0.008|1.392|",
                                              "DATA=2451427.645160;13.379;0.008;1.392"))
    r = run(fresh_db_url, "lightcurve", "import", str(bad), str(ZACHIA), code=1)
    assert "bad.alcdef, row 138, DATA" in r.stderr and "NOT imported" in r.stderr
    assert "from 1 of 2 files" in r.output
    with connect(fresh_db_url) as conn:
        assert counts(conn) == (4, 126)
        assert conn.execute("SELECT count(*) FROM lightcurve_session WHERE source_path LIKE %s",
                            ("%bad.alcdef",)).fetchone()[0] == 0


def test_period_of_imported_sessions_and_export_back(fresh_db_url, tmp_path):
    run(fresh_db_url, "lightcurve", "import", str(ZACHIA))
    png = tmp_path / "fold.png"
    out = run(fresh_db_url, "lightcurve", "period", "--object", "Zachia", "--max-period-h", "72",
              "--png", str(png)).output
    m = re.search(r"rotation period \(2P\) = ([\d.]+) \+- ([\d.]+) h", out)
    p, err = float(m.group(1)), float(m.group(2))
    assert abs(p - ZACHIA_P_H) / ZACHIA_P_H < 0.003 and err >= abs(p - ZACHIA_P_H)
    assert "one zero point" in out and "UCORMAG" in out and "jackknife" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # imported sessions written back: identical metadata and DATA text, byte-identical file
    from catdb.db.engine import connect

    with connect(fresh_db_url) as conn:
        ids = [str(r[0]) for r in conn.execute("SELECT id FROM lightcurve_session ORDER BY jd_first").fetchall()]
    dest = tmp_path / "zachia_out.alcdef"
    run(fresh_db_url, "export", "lightcurve", "-f", "alcdef", "-o", str(dest),
        *sum((["--session", i] for i in ids), []))
    assert dest.read_bytes() == ZACHIA.read_bytes().replace(b"\r\n", b"\n")
    # nothing selected / nothing found: clear errors
    r = run(fresh_db_url, "lightcurve", "period", code=1)
    assert "--session" in r.output
    r = run(fresh_db_url, "lightcurve", "period", "--object", "Ceres", code=1)
    assert "no imported light-curve session of object 'Ceres'" in r.output


@needs_lowell
def test_export_track_as_alcdef(fresh_db_url, tmp_path):
    """A catdb track (real Lowell exposures, MPC code 688) written as ALCDEF and read back."""
    from catdb.db.engine import connect
    from tests.track_db import build

    with connect(fresh_db_url) as conn:
        info = build(conn)
    t1, t2 = info["tracks"]["mover1"]["id"], info["tracks"]["mover2"]["id"]
    # an unidentified track without --object-name: the exposures' OBJECT names the target, or an error
    out = tmp_path / "t2.alcdef"
    r = run(fresh_db_url, "export", "lightcurve", "--format", "alcdef", "-o", str(out), "--track-id", str(t2),
            "--observers", "A. Observer")
    (s,) = read_alcdef(out)
    assert s.get("OBJECTNUMBER") == "0" and s.get("OBJECTNAME") == "2019 RB21" and s.get("MPCDESIG") == "2019 RB21"
    assert s.get("MPCCODE") == "688" and s.get("OBSERVERS") == "A. Observer" and s.get("CONTACTNAME") is None
    assert s.get("DIFFERMAGS") == "FALSE" and s.get("STANDARD") == "INTERNAL" and s.get("EXPJD") == "MID"
    assert s.get("LTCAPP") == "NONE" and s.get("REDUCEDMAGS") == "NONE" and s.get("DELIMITER") == "PIPE"
    assert len(s) == info["mjd"].size and "validated" in r.stderr
    import numpy as np

    np.testing.assert_allclose(np.sort(s.jd) - 2400000.5, np.sort(info["mjd"]), atol=1e-6)
    out1 = tmp_path / "t1.alcdef"
    run(fresh_db_url, "export", "lightcurve", "-f", "alcdef", "-o", str(out1), "--track-id", str(t1),
        "--object-name", "5945 Roachapproach")
    (s1,) = read_alcdef(out1)
    assert (s1.get("OBJECTNUMBER"), s1.get("OBJECTNAME"), s1.get("MPCDESIG")) == ("5945", "Roachapproach", "")
    np.testing.assert_allclose(np.sort(s1.mag), np.sort(info["forced_mag"]), atol=1e-4)  # forced photometry
