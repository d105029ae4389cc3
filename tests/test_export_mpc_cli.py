"""catdb export mpc / ades: 80-column records and ADES PSV of tracks along the MANIFEST movers."""
from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.export.mpc import parse_ades_psv, parse_mpc80, table_to_mpc80
from tests.lowell_night import needs_lowell
from tests.track_db import TRACK_RMS, build

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def db(db_url):
    from catdb.db.engine import connect

    from catdb.review import record_decision

    c = connect(db_url)
    info = build(c)
    # reviewed: the exports take tracks reviewed real or known (test_review.py tests the filter)
    record_decision(c, info["tracks"]["mover1"]["id"], "real", reviewer="test")
    record_decision(c, info["tracks"]["mover2"]["id"], "known", reviewer="test", comment="2019 RB21 (SkyBoT)")
    c.close()
    return db_url, info


def run(url, *args, code=0):
    r = CliRunner().invoke(cli, ["--db", url, *args])
    assert r.exit_code == code, (r.output, r.exception)
    return r


def _sep_arcsec(ra1, dec1, ra2, dec2):
    return np.hypot((np.asarray(ra1) - ra2) * np.cos(np.radians(dec2)), np.asarray(dec1) - dec2) * 3600


def test_mpc80_records_round_trip_with_header_and_discovery(db, tmp_path):
    url, info = db
    t1, t2 = info["tracks"]["mover1"], info["tracks"]["mover2"]
    toml = tmp_path / "obs.toml"
    toml.write_text('[mpc]\ncon = "A. Observer, Lowell Observatory [a@example.org]"\nobs = "A. Observer"\n'
                    'tel = "1.1-m f/8 reflector + CCD"\nnet = "Gaia-DR2"\nack = "catdb test"\n')
    out = tmp_path / "c.mpc"
    run(url, "export", "mpc", "-o", str(out), "--header-toml", str(toml), "--mea", "B. Measurer", "--discovery")
    lines = out.read_text().splitlines()
    head = [ln for ln in lines if ln[:3] in ("COD", "CON", "OBS", "MEA", "TEL", "NET", "ACK")]
    assert head[0] == "COD 688" and "MEA B. Measurer" in head and "NET Gaia-DR2" in head
    assert lines[:len(head)] == head                                   # header block first
    recs = lines[len(head):]
    n = info["mjd"].size
    assert len(recs) == 2 * n and all(len(r) == 80 for r in recs)
    t = parse_mpc80(recs)
    assert table_to_mpc80(t) == recs                                   # parse + format reproduces the file
    m1 = t["designation"] == f"cdb{t1['id']:04d}"
    m2 = t["designation"] == "2019 RB21"
    assert m1.sum() == m2.sum() == n
    assert set(t["provid"][m2]) == {"K19R21B"}                         # packed provisional designation
    # time to 1e-5 d, positions to the 80-column rounding (0.01 s of RA, 0.1" of Dec)
    np.testing.assert_allclose(t["mjd"][m1], info["mjd"], atol=0.6e-5)
    assert _sep_arcsec(t["ra"][m1], t["dec"][m1], t1["ra"], t1["dec"]).max() < 0.1
    assert _sep_arcsec(t["ra"][m2], t["dec"][m2], t2["ra"], t2["dec"]).max() < 0.1
    assert set(t["obscode"]) == {"688"} and set(t["note2"]) == {"C"}
    np.testing.assert_allclose(np.sort(t["mag"][m1]), np.sort(np.round(t1["mag"], 1)), atol=0.051)
    # discovery asterisk: once, on the first observation of the unidentified track only
    assert t["discovery"].sum() == 1 and t["discovery"][m1][0] and t["mjd"][m1][0] == t["mjd"][m1].min()


def test_mpc80_track_selection_and_no_header(db, tmp_path):
    url, info = db
    t2 = info["tracks"]["mover2"]["id"]
    out = tmp_path / "one.mpc"
    run(url, "export", "mpc", "--track-id", str(t2), "-o", str(out))
    t = parse_mpc80(out)
    assert len(t) == info["mjd"].size and set(t["designation"]) == {"2019 RB21"} and not t["discovery"].any()
    assert not out.read_text().startswith("COD")
    # --header alone writes the COD line
    run(url, "export", "mpc", "--track-id", str(t2), "-o", str(out), "--header")
    assert out.read_text().splitlines()[0] == "COD 688"


def test_ades_rms_floor_header_and_round_trip(db, tmp_path):
    url, info = db
    t1, t2 = info["tracks"]["mover1"], info["tracks"]["mover2"]
    out = tmp_path / "c.psv"
    run(url, "export", "ades", "-o", str(out), "--obs", "A. Observer, C. Observer", "--mea", "B. Measurer",
        "--con", "A. Observer", "--ast-cat", "Gaia2")
    header, t = parse_ades_psv(out.read_text())
    assert header["version"] == "2022" and header["observatory"]["mpcCode"] == "688"
    assert header["observers"]["name"] == ["A. Observer", "C. Observer"]
    assert header["measurers"]["name"] == "B. Measurer" and header["submitter"]["name"] == "A. Observer"
    n = info["mjd"].size
    assert len(t) == 2 * n and set(t["astCat"]) == {"Gaia2"}
    # SExtractor errors of 0.04" are floored at the track's fit RMS
    assert np.all(np.asarray(t["rmsRA"], float) == pytest.approx(TRACK_RMS))
    assert np.all(np.asarray(t["rmsDec"], float) == pytest.approx(TRACK_RMS))
    m1 = np.asarray(t["trkSub"]) == f"cdb{t1['id']:04d}"
    m2 = np.asarray(t["provID"]) == "2019 RB21"
    assert m1.sum() == m2.sum() == n
    ra, dec = np.asarray(t["ra"], float), np.asarray(t["dec"], float)
    assert _sep_arcsec(ra[m2], dec[m2], t2["ra"], t2["dec"]).max() < 1e-3
    from astropy.time import Time

    mjd = Time(np.char.rstrip(np.asarray(t["obsTime"]).astype(str), "Z"), format="isot", scale="utc").mjd
    np.testing.assert_allclose(mjd[m1], info["mjd"], atol=0.6e-3 / 86400)
    run(url, "export", "ades", "-o", str(out), "--no-rms-floor")
    _, t = parse_ades_psv(out.read_text())
    assert np.all(np.asarray(t["rmsRA"], float) == pytest.approx(0.04))


def test_bad_input_exit_nonzero_and_no_file(db, tmp_path):
    url, _ = db
    out = tmp_path / "x.mpc"
    assert "no track 999999" in run(url, "export", "mpc", "--track-id", "999999", "-o", str(out), code=1).output
    assert "no tracks with status 'accepted'" in run(url, "export", "ades", "--status", "accepted", "-o",
                                                        str(out), code=1).output
    bad = tmp_path / "bad.toml"
    bad.write_text('foo = "bar"\n')
    assert "FOO" in run(url, "export", "mpc", "--header-toml", str(bad), "-o", str(out), code=1).output
    r = run(url, "export", "mpc", "--tel", "x" * 90, "-o", str(out), code=1)
    assert "TEL" in r.output and "76" in r.output
    r = run(url, "export", "mpc", "--obscode", "68", "-o", str(out), code=1)
    assert "'68'" in r.output
    assert not out.exists()


def test_records_that_do_not_parse_back_are_refused(db, tmp_path, monkeypatch):
    """A formatter bug (here: RA shifted by one second of time) is caught by the read-back check."""
    from catdb.export import tracks

    url, _ = db
    real = tracks.format_mpc80

    def shifted(mjd, ra, dec, **kw):
        return real(mjd, np.asarray(ra) + 15 / 3600, dec, **kw)

    monkeypatch.setattr(tracks, "format_mpc80", shifted)
    out = tmp_path / "y.mpc"
    r = run(url, "export", "mpc", "-o", str(out), code=1)
    assert "does not parse back" in r.output and "row 1" in r.output
    assert not out.exists()


def test_ades_xml_submission_valid_against_submit_xsd(db, tmp_path):
    """ADES 2022 XML with a full context validates against the ADES master's submit.xsd; without a
    telescope it is a general ADES document; astCat is UNK when catdb does not know the catalogue."""
    pytest.importorskip("lxml", reason="lxml (the export extra) is not installed")
    from lxml import etree

    from catdb.export.ades import schema_file

    if schema_file("submit") is None:
        pytest.skip("the iau-ades package (ADES XML schemas; the export extra) is not installed")
    url, info = db
    toml = tmp_path / "obs.toml"
    toml.write_text('submitter = "A. Observer"\nmeasurers = ["B. Measurer"]\nobservatory_name = "Lowell"\n'
                    '[telescope]\ndesign = "reflector"\naperture = 1.1\ndetector = "CCD"\n')
    out = tmp_path / "sub.xml"
    r = run(url, "export", "ades", "-o", str(out), "--header-toml", str(toml), "--ast-cat", "Gaia2")
    assert "valid against submit.xsd" in r.output
    schema = etree.XMLSchema(etree.parse(str(schema_file("submit"))))
    doc = etree.parse(str(out))
    assert schema.validate(doc), schema.error_log            # independently of catdb's own check
    assert doc.getroot().get("version") == "2022"
    assert len(doc.findall(".//optical")) == 2 * info["mjd"].size
    assert doc.findtext(".//obsContext/telescope/aperture") == "1.1"
    # no context, no --ast-cat: general ADES; the exposures' header WCS names no catalogue -> UNK, said
    r = run(url, "export", "ades", "-o", str(tmp_path / "gen.xml"))
    assert "valid against general.xsd" in r.output and "not a submission" in r.output and "astCat UNK" in r.output
    gen = etree.parse(str(tmp_path / "gen.xml"))
    assert {e.text for e in gen.iter("astCat")} == {"UNK"}
    assert etree.XMLSchema(etree.parse(str(schema_file("general")))).validate(gen)


def test_magnitude_in_a_band_without_mpc_code_is_left_blank(db, tmp_path):
    """A zeropoint in Tycho-2 VT (no MPC band code): the 80-column record carries no magnitude rather
    than one under a blank band column (which the MPC reads as its default band); the result counts it."""
    from catdb.db.engine import connect
    from catdb.export.tracks import export_tracks

    url, info = db
    t2 = info["tracks"]["mover2"]["id"]
    c = connect(url)
    try:
        eids = [r[0] for r in c.execute("SELECT id FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid")]
        run = c.execute("SELECT max(stage_run_id) FROM zeropoint").fetchone()[0]
        # a newer ok zeropoint of the first three exposures, calibrated to VT (rolled back below)
        c.execute("INSERT INTO zeropoint (exposure_id, zp, zp_err, band, method, ok, stage_run_id) "
                  "SELECT unnest(%s::bigint[]), 25.1, 0.02, 'VT', 'pp', true, %s", (eids[:3], run))
        out = tmp_path / "vt.mpc"
        res = export_tracks(c, out, "mpc80", track_ids=[t2])
        t = parse_mpc80(out)
        assert np.isnan(t["mag"]).sum() == 3 and set(t["band"][np.isnan(t["mag"])]) == {""}
        assert np.isfinite(t["mag"]).sum() == info["mjd"].size - 3 and set(t["band"][np.isfinite(t["mag"])]) == {"R"}
        assert res["mag_no_mpc_band"] == {"VT": 3}
    finally:
        c.rollback()
        c.close()
