"""catdb query on the real Lowell night: output formats with units, the saved science queries.

The night (MANIFEST ``lowell42-5945``, 8 of the 23 frames) is reduced, extracted and
associated; the movers stage finds the tracks.  Each saved query is checked against what
an astronomer would check: the light curve of the known asteroid follows its MANIFEST
positions, a cone search agrees with an independent great-circle distance in numpy, the
calibrated catalogue of a frame has that frame's detections.
"""
from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from catdb.cli.main import cli
from tests.lowell_night import mover_radec, needs_lowell, night_db_url

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning"), pytest.mark.spatial_backends]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, n_frames=8, steps=("associate", "movers5"))
    c = connect(url)
    yield url, c, info
    c.close()


def q(url, *args, ok=True):
    r = CliRunner().invoke(cli, ["--db", url, "query", *args])
    if ok:
        assert r.exit_code == 0, r.output
    return r


def _read(path, fmt=None):
    from astropy.table import Table

    if isinstance(path, io.StringIO):
        path = path.getvalue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(path, format=fmt) if fmt else Table.read(path)


def _mover1_track(conn):
    for tid, ra, dec, mjd_ref in conn.execute(
            "SELECT id, ra, dec, mjd_ref FROM track WHERE status = 'candidate'").fetchall():
        pra, pdec = mover_radec("mover1", mjd_ref)
        if np.hypot((ra - pra) * np.cos(np.radians(dec)), dec - pdec) * 3600 < 2:
            return tid
    raise AssertionError("mover 1 track not found")


EXPO = "SELECT id, mjd_mid, exptime, fwhm, filter FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid"


@pytest.mark.parametrize("fmt,ext", [("votable", "vot"), ("fits", "fits"), ("parquet", "parquet"),
                                     ("ecsv", "ecsv"), ("csv", "csv"), ("tsv", "tsv"), ("json", "json")])
def test_formats_carry_values_and_units(night, tmp_path, fmt, ext):
    url, conn, info = night
    rows = conn.execute(EXPO).fetchall()
    assert len(rows) == 8
    out = tmp_path / f"e.{ext}"
    q(url, "-o", str(out), EXPO)  # format from the extension
    if fmt == "json":
        doc = json.loads(out.read_text())
        units = {c["name"]: c["unit"] for c in doc["columns"]}
        mjd = [r["mjd_mid"] for r in doc["rows"]]
        assert units["mjd_mid"] == "d" and units["exptime"] == "s"
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        tab = pq.read_table(out)
        mjd = tab["mjd_mid"].to_pylist()
        assert tab.schema.field("mjd_mid").metadata[b"unit"] == b"d"
        assert tab.schema.field("exptime").metadata[b"unit"] == b"s"
    else:
        t = _read(out, {"tsv": "ascii.tab", "csv": "ascii.csv"}.get(fmt))
        mjd = list(t["mjd_mid"])
        if fmt not in ("csv", "tsv"):
            assert str(t["mjd_mid"].unit) == "d" and str(t["exptime"].unit) == "s"
        if fmt in ("votable", "ecsv"):
            assert "time" in t["exptime"].description.lower()
        if fmt == "fits":
            from astropy.io import fits

            h = fits.getheader(out, 1)
            k = [h[f"TTYPE{i}"] for i in range(1, 6)].index("exptime") + 1
            assert h[f"TUNIT{k}"] == "s" and "time" in h[f"TCOMM{k}"].lower()
    assert np.allclose(mjd, [r[1] for r in rows], rtol=0, atol=1e-9)


def test_table_output_stdout_and_limit(night):
    url, conn, info = night
    r = q(url, EXPO)
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["id", "mjd_mid", "exptime"] and lines[1].split()[:2] == ["d", "s"]
    assert len(lines) == 3 + 8
    r = q(url, "--limit", "2", EXPO)  # applied in the SQL, every format
    assert "(2 rows)" in r.stderr and len(r.stdout.splitlines()) == 3 + 2
    assert len(q(url, "-f", "csv", "--limit", "3", EXPO).stdout.splitlines()) == 1 + 3
    # stdout CSV/TSV/VOTable/JSON (pipes)
    assert q(url, "-f", "tsv", EXPO).stdout.splitlines()[0] == "id\tmjd_mid\texptime\tfwhm\tfilter"
    t = _read(io.BytesIO(q(url, "-f", "votable", EXPO).stdout_bytes), "votable")
    assert len(t) == 8 and str(t["mjd_mid"].unit) == "d"
    assert json.loads(q(url, "-f", "json", EXPO).stdout)["n_rows"] == 8
    r = q(url, "-f", "fits", EXPO, ok=False)
    assert r.exit_code == 1 and "-o FILE" in r.output


def test_long_table_goes_through_the_pager(night, monkeypatch):
    import sys

    import click

    from catdb.cli import query as qmod

    url, conn, info = night
    paged = []
    monkeypatch.setattr(click, "echo_via_pager", lambda text: paged.append(text))
    monkeypatch.setattr(qmod, "_terminal_rows", lambda: 20)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    from catdb.export.table import query_table

    t = query_table(conn, "SELECT id, ra, dec FROM detection ORDER BY id LIMIT 50")
    qmod._write(t, "table", None, None, {"quiet": True})
    assert len(paged) == 1 and len(paged[0].splitlines()) == 3 + 50
    qmod._write(t[:5], "table", None, None, {"quiet": True})  # short: printed, not paged
    assert len(paged) == 1


def test_default_timeout_is_five_minutes(night):
    url, conn, info = night
    assert q(url, "-f", "csv", "SHOW statement_timeout").stdout.splitlines()[1] == "5min"
    assert q(url, "-f", "csv", "--timeout", "2.5", "SHOW statement_timeout").stdout.splitlines()[1] == "2500ms"


def test_list_saved(night):
    url, conn, info = night
    out = q(url, "--list-saved").stdout
    for name in ("lightcurve", "cone", "calibrated-catalog", "stage-runs"):
        assert f"\n{name}: " in "\n" + out
    assert "radius_arcsec (float" in out and "object_id (int" in out


def test_saved_lightcurve_of_the_asteroid_follows_manifest(night, tmp_path):
    url, conn, info = night
    tid = _mover1_track(conn)
    out = tmp_path / "lc.vot"
    q(url, "--saved", "lightcurve", "--param", f"track_id={tid}", "-o", str(out))
    t = _read(out)
    det = t[t["source"] == "detection"]
    n = conn.execute("SELECT count(*) FROM track_detection WHERE track_id = %s", (tid,)).fetchone()[0]
    assert len(det) == n >= 5
    assert np.all(np.diff(t["mjd_mid"]) >= 0)
    assert str(t["mjd_mid"].unit) == "d" and str(t["ra"].unit) == "deg" and str(t["mag_auto"].unit) == "mag"
    pra, pdec = mover_radec("mover1", np.asarray(det["mjd_mid"]))
    sep = np.hypot((np.asarray(det["ra"]) - pra) * np.cos(np.radians(pdec)), np.asarray(det["dec"]) - pdec) * 3600
    assert np.max(sep) < 2.0  # arcsec, as the MANIFEST positions
    # instrumental magnitudes of the bright asteroid are the SExtractor ones of its detections
    ref = conn.execute("SELECT d.mag_auto FROM track_detection td JOIN detection d ON d.id = td.detection_id "
                       "JOIN exposure e ON e.id = d.exposure_id WHERE td.track_id = %s ORDER BY e.mjd_mid",
                       (tid,)).fetchall()
    assert np.allclose(np.asarray(det["mag_auto"]), [r[0] for r in ref])
    # no calibrate run: no calibrated magnitude, and no error for it either
    assert np.ma.getmaskarray(det["mag"]).all() and np.ma.getmaskarray(det["mag_err"]).all()


def test_saved_lightcurve_of_an_object(night):
    url, conn, info = night
    oid, n_det = conn.execute("SELECT id, n_detections FROM object ORDER BY n_detections DESC, id LIMIT 1").fetchone()
    assert n_det == 8  # a star seen on every frame
    t = _read(io.StringIO(q(url, "-f", "csv", "--saved", "lightcurve", "--param", f"object_id={oid}").stdout),
              "ascii.csv")
    assert len(t) == n_det and len(set(t["exposure_id"])) == 8
    assert np.ptp(t["ra"]) * 3600 * np.cos(np.radians(t["dec"][0])) < 1.5  # a static star: within ~1"
    r = q(url, "--saved", "lightcurve", ok=False)
    assert r.exit_code == 1 and "exactly one of" in r.output
    r = q(url, "--saved", "lightcurve", "--param", f"object_id={oid}", "--param", "track_id=1", ok=False)
    assert r.exit_code == 1 and "exactly one of" in r.output


def test_saved_cone_agrees_with_numpy(night, tmp_path):
    url, conn, info = night
    ra0, dec0 = conn.execute("SELECT ra, dec FROM object ORDER BY n_detections DESC, id LIMIT 1").fetchone()
    out = tmp_path / "cone.fits"
    q(url, "--saved", "cone", "--param", f"ra={ra0}", "--param", f"dec={dec0}", "--param", "radius_arcsec=120",
      "-o", str(out))
    t = _read(out)
    assert str(t["dist_arcsec"].unit) == "arcsec" and str(t["ra"].unit) == "deg"
    assert t["dist_arcsec"][0] < 0.01 and np.all(np.diff(t["dist_arcsec"]) >= 0)
    allobj = np.array(conn.execute("SELECT id, ra, dec FROM object").fetchall())
    r1, d1, r2, d2 = map(np.radians, (allobj[:, 1], allobj[:, 2], ra0, dec0))
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.sin((d1 - d2) / 2) ** 2 +
                                           np.cos(d1) * np.cos(d2) * np.sin((r1 - r2) / 2) ** 2))) * 3600
    assert set(t["id"]) == set(allobj[sep < 120, 0].astype(int))
    assert np.allclose(np.sort(t["dist_arcsec"]), np.sort(sep[sep < 120]), atol=1e-3)
    # detections table, and the errors
    n = len(_read(io.StringIO(q(url, "-f", "csv", "--saved", "cone", "--param", f"ra={ra0}", "--param",
                                f"dec={dec0}", "--param", "radius_arcsec=2", "--param", "table=detection").stdout),
                  "ascii.csv"))
    assert n == 8
    r = q(url, "--saved", "cone", "--param", f"ra={ra0}", ok=False)
    assert r.exit_code == 1 and "dec is required" in r.output
    r = q(url, "--saved", "cone", "--param", "ra=1", "--param", "dec=95", ok=False)
    assert r.exit_code == 1 and "dec=95" in r.output


def test_saved_calibrated_catalog_of_one_frame(night, tmp_path):
    url, conn, info = night
    eid = info["exposure_ids"][3]
    n = conn.execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (eid,)).fetchone()[0]
    out = tmp_path / "cat.ecsv"
    q(url, "--saved", "calibrated-catalog", "--param", f"exposure_id={eid}", "-o", str(out))
    t = _read(out)
    assert len(t) == n > 500 and set(t["exposure_id"]) == {eid}
    assert str(t["mag_cal"].unit) == "mag" and str(t["ra"].unit) == "deg"
    assert np.count_nonzero(~t["object_id"].mask) > 0.5 * n  # most detections are associated
    r = q(url, "--saved", "calibrated-catalog", ok=False)
    assert r.exit_code == 1 and "exposure_id is required" in r.output


def test_saved_stage_runs(night):
    url, conn, info = night
    t = _read(io.StringIO(q(url, "-f", "csv", "--saved", "stage-runs").stdout), "ascii.csv")
    assert list(t["stage"][:2]) == ["movers", "associate"] and set(t["status"][:2]) == {"ok"}
    t = _read(io.StringIO(q(url, "-f", "csv", "--saved", "stage-runs", "--param", "stage=associate").stdout),
              "ascii.csv")
    assert set(t["stage"]) == {"associate"}
    r = q(url, "--saved", "nope", ok=False)
    assert r.exit_code == 1 and "no saved query 'nope'" in r.output
    r = q(url, "--saved", "stage-runs", "SELECT 1", ok=False)
    assert r.exit_code == 1 and "not both" in r.output
    r = q(url, "--param", "a=1", "SELECT 1", ok=False)
    assert r.exit_code == 1 and "--saved" in r.output


def test_saved_lightcurve_is_calibrated_after_calibrate(night):
    """After relative (ensemble) calibration, mag = MAG_AUTO + the exposure's zeropoint."""
    from catdb.stages import run_stage

    url, conn, info = night
    run_stage("calibrate", conn=conn, params={"method": "relative"}, progress=False)
    conn.commit()
    zp = dict(conn.execute("SELECT exposure_id, zp FROM zeropoint WHERE ok").fetchall())
    assert len(zp) >= 6
    oid = conn.execute("SELECT id FROM object ORDER BY n_detections DESC, id LIMIT 1").fetchone()[0]
    t = _read(q(url, "-f", "csv", "--saved", "lightcurve", "--param", f"object_id={oid}").stdout, "ascii.csv")
    cal = ~np.ma.getmaskarray(t["mag"])
    assert cal.sum() == sum(e in zp for e in t["exposure_id"]) >= 6
    expect = np.array([m + zp[e] for m, e in zip(t["mag_auto"][cal], t["exposure_id"][cal])])
    assert np.allclose(t["mag"][cal], expect, atol=1e-5)
    assert np.all(t["mag_err"][cal] >= t["magerr_auto"][cal] - 1e-7)
    # the star's calibrated light curve is flatter than its instrumental one (airmass, transparency)
    assert np.std(t["mag"][cal]) <= np.std(t["mag_auto"][cal]) + 1e-3
