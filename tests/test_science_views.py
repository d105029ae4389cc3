"""The named science views of migration 0008 (lightcurve_point, exposure_catalog, detections_in_cone)
on the real Lowell night (8 frames, associated and relatively calibrated), the light-curve library
function and the light-time correction.

Each view is checked against the tables it summarises; detections_in_cone against the spatial layer
(catdb.spatial.sql.cone) and an independent great-circle distance in numpy; `catdb query` shows
the units of the view columns.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from astropy.table import Table
from click.testing import CliRunner

from catdb.cli.main import cli
from tests.lowell_night import needs_lowell, night_db_url

pytestmark = [needs_lowell, pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
              pytest.mark.filterwarnings("ignore::astropy.wcs.FITSFixedWarning")]


@pytest.fixture(scope="module")
def night(pg_server, template_db):
    from catdb.db.engine import connect

    url, info = night_db_url(pg_server, template_db, n_frames=8, steps=("associate", "movers5", "calibrate-relative"))
    c = connect(url)
    yield url, c, info
    c.close()


def q(url, *args, code=0):
    r = CliRunner().invoke(cli, ["--db", url, "query", *args])
    assert r.exit_code == code, r.output
    return r


def _csv(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Table.read(text, format="ascii.csv")


def test_lightcurve_point_of_an_object_is_its_detections_plus_zeropoint(night):
    url, c, info = night
    oid = c.execute("SELECT id FROM object ORDER BY n_detections DESC, id LIMIT 1").fetchone()[0]
    ref = np.array(c.execute(
        "SELECT d.id, e.mjd_mid, d.mag_auto + z.zp, d.mag_auto FROM detection_object dob "
        "JOIN detection d ON d.id = dob.detection_id JOIN exposure e ON e.id = d.exposure_id "
        "JOIN zeropoint z ON z.exposure_id = e.id AND z.ok WHERE dob.object_id = %s ORDER BY e.mjd_mid",
        (oid,)).fetchall(), dtype=float)
    got = np.array(c.execute(
        "SELECT detection_id, mjd_mid, mag_cal, mag_auto FROM lightcurve_point WHERE kind = 'object' "
        "AND target_id = %s AND source = 'detection' ORDER BY mjd_mid", (oid,)).fetchall(), dtype=float)
    assert len(ref) == len(got) == 8  # a star on every frame, every frame calibrated
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-6)
    # the library function reads the same points, in days and magnitudes
    from catdb.export.lightcurve import lightcurve

    t = lightcurve(c, object=oid)
    assert str(t["mjd"].unit) == "d" and str(t["mag"].unit) == "mag" and t.meta["target"] == f"object:{oid}"
    np.testing.assert_allclose(np.sort(t["mag"]), np.sort(ref[:, 2]), atol=1e-6)
    assert np.all(t["calibrated"]) and set(t["source"]) == {"detection"}


def test_lightcurve_point_of_a_track_and_its_forced_photometry(night):
    url, c, info = night
    tid, n_td = c.execute("SELECT td.track_id, count(*) FROM track_detection td GROUP BY 1 ORDER BY 2 DESC, 1 "
                          "LIMIT 1").fetchone()
    n_out = c.execute("SELECT count(*) FROM track_detection WHERE track_id = %s AND outlier", (tid,)).fetchone()[0]
    # forced photometry of the track's detections' positions, as the forced stage would write it
    run = c.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('test-forced', 't', 'ok') "
                    "RETURNING id").fetchone()[0]
    c.execute("INSERT INTO forced_source (track_id, exposure_id, ra, dec, flux, flux_err, mag, mag_err, band, flags, "
              "stage_run_id) SELECT td.track_id, d.exposure_id, d.ra, d.dec, d.flux_auto, d.fluxerr_auto, "
              "d.mag_auto + 25, 0.01, 'VR', 0, %s FROM track_detection td JOIN detection d ON d.id = td.detection_id "
              "WHERE td.track_id = %s", (run, tid))
    c.commit()
    counts = dict(c.execute("SELECT source, count(*) FROM lightcurve_point WHERE kind = 'track' AND target_id = %s "
                            "GROUP BY 1", (tid,)).fetchall())
    assert counts == {"detection": n_td, "forced": n_td}
    from catdb.export.lightcurve import lightcurve

    t = lightcurve(c, track=tid)                       # outlier epochs of the fit left out
    assert int(np.sum(t["source"] == "detection")) == n_td - n_out
    f = t[t["source"] == "forced"]
    np.testing.assert_allclose(np.sort(f["mag"]), np.sort(f["mag_inst"] + 25), atol=1e-5)  # -2.5 log10(FLUX_AUTO)
    assert list(t["source"][:len(f)]) == ["forced"] * len(f)           # forced first, then by time
    # catdb export lightcurve reads the forced points from the same view
    from catdb.export.api import lightcurve_query
    from catdb.export.table import query_table

    e = query_table(c, lightcurve_query(tid))
    assert len(e) == n_td and set(e["track_id"]) == {tid} and str(e["mjd_mid"].unit) == "d"
    assert np.all(np.diff(e["mjd_mid"]) >= 0)
    # the saved query: detections (outliers flagged 65536) and forced rows
    s = _csv(q(url, "-f", "csv", "--saved", "lightcurve", "--param", f"track_id={tid}").stdout)
    assert len(s) == 2 * n_td and int(np.sum(np.asarray(s["flags"]) >= 65536)) == n_out


def test_exposure_catalog_is_the_calibrated_catalogue_of_the_frame(night):
    url, c, info = night
    eid = info["exposure_ids"][2]
    n, n_linked = c.execute("SELECT count(*), count(dob.object_id) FROM detection d LEFT JOIN detection_object dob "
                            "ON dob.detection_id = d.id WHERE d.exposure_id = %s", (eid,)).fetchone()
    zp = c.execute("SELECT zp FROM zeropoint WHERE exposure_id = %s AND ok", (eid,)).fetchone()[0]
    out = q(url, "-f", "votable", "SELECT * FROM exposure_catalog WHERE exposure_id = " + str(eid)).stdout_bytes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Table.read(io.BytesIO(out), format="votable")
    assert len(t) == n > 500 and int(np.sum(~np.ma.getmaskarray(t["object_id"]))) == n_linked > n / 2
    np.testing.assert_allclose(t["mag_cal"] - t["mag_auto"], zp, atol=1e-5)
    assert str(t["mag_cal"].unit) == "mag" and str(t["ra"].unit) == "deg" and str(t["mjd_mid"].unit) == "d"
    # relative zeropoints: every row says so, and the column says what that means for mag_cal
    assert set(np.asarray(t["zp_method"]).astype(str)) == {"relative"}
    assert "arbitrary scale" in t["zp_method"].description


def test_detections_in_cone_agrees_with_the_spatial_layer_and_numpy(night):
    url, c, info = night
    from catdb.spatial.sql import cone

    ra0, dec0 = c.execute("SELECT ra, dec FROM object ORDER BY n_detections DESC, id LIMIT 1").fetchone()
    r_deg = 90 / 3600
    got = dict(c.execute("SELECT detection_id, dist_arcsec FROM detections_in_cone(%s, %s, %s)",
                         (ra0, dec0, r_deg)).fetchall())
    frag = cone("detection", "ra", "dec", ra0, dec0, r_deg, columns=["id"])
    layer = dict(c.execute(frag.sql, frag.params).fetchall())
    assert got.keys() == layer.keys() and len(got) > 8
    allx = np.array(c.execute("SELECT id, ra, dec FROM detection").fetchall())
    r1, d1, r2, d2 = map(np.radians, (allx[:, 1], allx[:, 2], ra0, dec0))
    sep = np.degrees(2 * np.arcsin(np.sqrt(np.sin((d1 - d2) / 2) ** 2
                                           + np.cos(d1) * np.cos(d2) * np.sin((r1 - r2) / 2) ** 2))) * 3600
    inside = sep < 90
    assert set(got) == set(allx[inside, 0].astype(int))
    np.testing.assert_allclose([got[i] for i in allx[inside, 0].astype(int)], sep[inside], atol=1e-4)
    # as a reader through catdb query, joined to the view for units
    t = _csv(q(url, "-f", "csv", f"SELECT c.dist_arcsec, d.* FROM detections_in_cone({ra0}, {dec0}, 2.0 / 3600) c "
                                 "JOIN detection_calibrated d ON d.id = c.detection_id ORDER BY c.dist_arcsec").stdout)
    assert len(t) == 8 and len(set(t["exposure_id"])) == 8 and np.all(t["dist_arcsec"] < 2)


def test_light_time_from_track_skybot_delta_column(night):
    """When the schema has track.skybot_delta (the skybot stage's distance), the correction uses it."""
    url, c, info = night
    from catdb.errors import InputError
    from catdb.export.lightcurve import AU_LIGHT_DAYS, lightcurve

    tid = c.execute("SELECT id FROM track ORDER BY id LIMIT 1").fetchone()[0]
    with pytest.raises(InputError, match="no SkyBoT identification"):
        lightcurve(c, track=tid, light_time=True)
    c.execute("ALTER TABLE track ADD COLUMN IF NOT EXISTS skybot_delta double precision")
    c.execute("UPDATE track SET skybot_delta = 1.25 WHERE id = %s", (tid,))
    c.commit()
    t = lightcurve(c, track=tid, light_time=True)
    assert t.meta["delta_source"] == "track.skybot_delta" and t.meta["delta_au"] == 1.25
    np.testing.assert_allclose((t["mjd"] - t["mjd_lt"]) * 86400, 1.25 * 499.004784, atol=1e-4)  # 623.8 s
    assert str(t["mjd_lt"].unit) == "d" and AU_LIGHT_DAYS * 86400 == pytest.approx(499.004784, abs=1e-6)
    # --delta overrides the column; catdb lightcurve prints mjd_lt
    t2 = lightcurve(c, track=tid, delta_au=2.0)
    np.testing.assert_allclose((t2["mjd"] - t2["mjd_lt"]) * 86400, 2 * 499.004784, atol=1e-4)
    r = CliRunner().invoke(cli, ["--db", url, "lightcurve", f"track:{tid}", "--light-time"])
    assert r.exit_code == 0 and "mjd_lt" in r.output, r.output
    with pytest.raises(InputError, match="one at a time"):
        lightcurve(c, track=[tid, tid], light_time=True)
    with pytest.raises(InputError, match="must be > 0 au"):
        lightcurve(c, track=tid, delta_au=-1.0)
