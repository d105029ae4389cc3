"""SkyBoT: recorded cone-search VOTable, live query (offline path), track matching."""
import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import Angle
from astropy.io.votable import parse_single_table

from catdb.errors import InputError
from catdb.ingest.skybot import (SkybotUnavailable, match_skybot, query_skybot,
                                 read_skybot_votable)
from tests.helpers import TEST_DATA

VOT = TEST_DATA / "skybot" / "skybot_query.vot"


def test_read_recorded_response():
    t = read_skybot_votable(VOT)
    assert len(t) == 4
    assert t.meta["epoch"].startswith("2025-01-02")
    raw = parse_single_table(str(VOT)).to_table()
    # degrees agree with SkyBoT's own sexagesimal columns to 1 mas
    ra_sexa = Angle(raw["ra"], unit=u.hourangle).deg
    dec_sexa = Angle(raw["de"], unit=u.deg).deg
    assert np.allclose(t["ra"], ra_sexa, atol=1e-6 / 3.6) and np.allclose(t["dec"], dec_sexa, atol=3e-7)
    assert t["ra"].unit == u.deg and t["rate_ra"].unit == u.arcsec / u.h
    assert "2014 UP224" in t["name"] and "523748" in t["number"]
    assert (t["number"] == "").sum() == 2  # unnumbered objects: '-' in SkyBoT
    # all objects lie inside the 720" cone around the query centre
    assert np.all(t["center_dist"] <= 720)
    assert np.all(np.isfinite(t["V"])) and np.all(t["dist_helio"] > 1)


def test_match_tracks_to_known_objects():
    t = read_skybot_votable(VOT)
    # two tracks 3" from objects 1 and 2, one track far from everything
    tra = np.array([t["ra"][1] + 3 / 3600 / np.cos(np.radians(t["dec"][1])), t["ra"][2], 81.0])
    tdec = np.array([t["dec"][1], t["dec"][2] + 1 / 3600, 4.0])
    m = match_skybot(tra, tdec, t, radius_arcsec=10)
    assert m["skybot_index"].tolist() == [1, 2, -1]
    assert m["sep_arcsec"][0] == pytest.approx(3.0, abs=0.01)
    assert m["name"][0] == "2014 UP224" and m["name"][2] == ""
    # with rates: a wildly different rate rejects the positional match
    m2 = match_skybot(tra, tdec, t, 10, track_rate_ra=np.asarray(t["rate_ra"])[[1, 2, 0]] + [0, 500, 0],
                      track_rate_dec=np.asarray(t["rate_dec"])[[1, 2, 0]], max_rate_diff=5)
    assert m2["skybot_index"].tolist() == [1, -1, -1]
    assert m2["rate_diff"][0] == pytest.approx(0, abs=1e-9)


def test_not_a_votable(tmp_path):
    p = tmp_path / "x.vot"
    p.write_text("<html>Service unavailable</html>")
    with pytest.raises(InputError, match="x.vot"):
        read_skybot_votable(p)


def test_live_query_or_clear_offline_error():
    from astroquery.imcce import conf
    with conf.set_temp("timeout", 10):
        try:
            t = query_skybot(81.2833, 4.49278, 720, 60677.0, location="500")
        except SkybotUnavailable as exc:
            assert "SkyBoT" in str(exc) and "read_skybot_votable" in str(exc)
            pytest.skip(f"offline: {exc}")
    assert {"name", "ra", "dec", "rate_ra"} <= set(t.colnames)
