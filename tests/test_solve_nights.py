"""The observing night of exposures grouped "by night" (solve's registration groups, the QA stages' IQR groups).

Without ``exposure.night`` and ``site_lon`` no longitude is assumed: the exposures form observing sessions
split at gaps of more than 6 h (:mod:`catdb.algorithms.nights`).  A western night (Arizona, 02:00-13:00 UTC
in winter) is one group, not two split at 12:00 UTC as a Greenwich longitude would give.
"""
from __future__ import annotations

import datetime
import shutil

import numpy as np
import pytest

from catdb.algorithms.nights import SESSION_GAP_DAYS, observing_groups
from catdb.stages import run_stage
from tests.lowell_night import needs_lowell

MJD_2024_01_05 = 60314.0  # 2024-01-05 00:00 UTC
#: one winter night at a western site (lon -111.5: local midnight ~07:26 UTC), 02:00 to 13:00 UTC
WEST_NIGHT_H = np.array([2.0, 4.5, 7.0, 9.5, 11.9, 12.1, 13.0])


def _mjd(hours, day=MJD_2024_01_05):
    return day + np.asarray(hours, float) / 24.0


# --------------------------------------------------------------------------- the pure rule
def test_western_night_without_site_is_one_session():
    labels, basis = observing_groups(_mjd(WEST_NIGHT_H))
    assert set(basis) == {"time_gap"}
    assert set(labels) == {"session starting 2024-01-05T02:00:00 UTC"}


def test_two_nights_a_day_apart_are_two_sessions_in_any_order():
    t = np.concatenate([_mjd(WEST_NIGHT_H), _mjd(WEST_NIGHT_H, MJD_2024_01_05 + 1)])
    perm = np.random.default_rng(1).permutation(t.size)
    labels, _ = observing_groups(t[perm])
    first = perm < WEST_NIGHT_H.size  # the shuffled exposures that came from the first night
    assert set(labels[first]) == {"session starting 2024-01-05T02:00:00 UTC"}
    assert set(labels[~first]) == {"session starting 2024-01-06T02:00:00 UTC"}


def test_session_gap_boundary_and_instruments():
    gap_h = SESSION_GAP_DAYS * 24
    labels, _ = observing_groups(_mjd([0.0, gap_h - 0.1, 2 * gap_h + 0.1]))
    assert labels[0] == labels[1] != labels[2]  # a gap just over 6 h starts a new session
    # interleaved instruments: sessions per instrument, named
    labels, _ = observing_groups(_mjd([1, 2, 3, 4]), instrument=["a", "b", "a", None])
    assert list(labels) == ["session starting 2024-01-05T01:00:00 UTC, instrument a",
                            "session starting 2024-01-05T02:00:00 UTC, instrument b",
                            "session starting 2024-01-05T01:00:00 UTC, instrument a",
                            "session starting 2024-01-05T04:00:00 UTC"]
    with pytest.raises(ValueError, match="positive"):
        observing_groups(_mjd([1]), gap=0)


def test_site_longitude_keeps_the_local_noon_rule_and_stored_night_wins():
    t = np.concatenate([_mjd(WEST_NIGHT_H), _mjd([19.5])])  # 19:30 UTC = 12:04 local: the next night
    labels, basis = observing_groups(t, site_lon=np.full(t.size, -111.5))
    assert set(basis) == {"site_lon"}
    assert list(labels) == ["2024-01-04"] * WEST_NIGHT_H.size + ["2024-01-05"]
    # east: lon +135 (local = UTC + 9 h); 08:00 and 14:00 UTC are 17:00 and 23:00 local on 2024-01-05;
    # 02:00 UTC is 11:00 local, still the night of 2024-01-04
    labels, _ = observing_groups(_mjd([2, 8, 14]), site_lon=[135.0] * 3)
    assert list(labels) == ["2024-01-04", "2024-01-05", "2024-01-05"]
    labels, basis = observing_groups(_mjd([2, 12.5, 13, None]), night=[datetime.date(2024, 1, 3), None, None, None],
                                     site_lon=[None, -111.5, None, None])
    assert list(basis) == ["night", "site_lon", "time_gap", "unknown"]
    assert list(labels) == ["2024-01-03", "2024-01-04", "session starting 2024-01-05T13:00:00 UTC", None]


# --------------------------------------------------------------------------- in the database
def test_night_groups_of_the_qa_stages(fresh_db_url):
    """exposure-summary's ``group=night`` labels (exposure_qa.group_key): one session for the western night
    without site, the local-noon night with site_lon, the stored night first."""
    from catdb.db.engine import connect

    c = connect(fresh_db_url)
    try:
        def add(hours, day=MJD_2024_01_05, site_lon=None, night=None, instrument="cam"):
            return [c.execute("INSERT INTO exposure (path, catalog_path, mjd_mid, site_lon, night, instrument) "
                              "VALUES (%s, 'x.cat', %s, %s, %s, %s) RETURNING id",
                              (f"e{day}_{h}_{site_lon}_{night}.fits", float(_mjd(h, day)), site_lon, night,
                               instrument)).fetchone()[0] for h in hours]

        west = add(WEST_NIGHT_H)
        nxt = add([3.0, 8.0], day=MJD_2024_01_05 + 1)
        site = add(WEST_NIGHT_H, day=MJD_2024_01_05 + 10, site_lon=-111.5)
        stored = add([12.5], day=MJD_2024_01_05 + 20, night=datetime.date(2024, 1, 24))
        c.commit()
        run_stage("exposure-summary", conn=c)
        key = dict(c.execute("SELECT exposure_id, group_key FROM exposure_qa WHERE metric = 'n_detections'"))
        assert {key[i] for i in west} == {"session starting 2024-01-05T02:00:00 UTC, instrument cam"}
        assert {key[i] for i in nxt} == {"session starting 2024-01-06T03:00:00 UTC, instrument cam"}
        assert {key[i] for i in site} == {"2024-01-14"}
        assert key[stored[0]] == "2024-01-24"
    finally:
        c.close()


@pytest.mark.skipif(shutil.which("source-extractor") is None, reason="source-extractor not installed")
@needs_lowell
def test_solve_registers_a_western_night_without_site_as_one_group(fresh_db_url, tmp_path):
    """Four real reduced Lowell frames (one field) with night and site_lon removed, at 02:30, 07:45 and 13:00
    UTC and 03:00 UTC the next day: the first three are registered to one reference, the fourth alone."""
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_images
    from tests.lowell_night import night_catalogs

    frames = [img for img, _ in night_catalogs(4)]
    c = connect(fresh_db_url)
    try:
        ids = [i for r in ingest_images(c, frames, image_type="science") for i in r.exposure_ids]
        t = [_mjd(2.5, 58568.0), _mjd(7.75, 58568.0), _mjd(13.0, 58568.0), _mjd(3.0, 58569.0)]  # 2019-03-26
        c.execute("UPDATE exposure e SET night = NULL, site_lon = NULL, mjd_mid = v.t FROM unnest(%s::bigint[], "
                  "%s::float8[]) AS v(id, t) WHERE e.id = v.id", (ids, [float(x) for x in t]))
        c.commit()
        res = run_stage("solve", conn=c, params={"outdir": str(tmp_path), "use_raw": "true", "method": "register",
                                                 "redo_header": "true"})
        cnt = res.counts
        assert sorted(cnt["registered"]) == sorted(ids) and not cnt["failed"], cnt
        src = dict(c.execute("SELECT id, wcs_source FROM exposure WHERE id = ANY(%s)", (ids,)).fetchall())
        refs = sorted(cnt["registration_reference"])
        assert len(refs) == 2 and ids[3] in refs, cnt
        assert src[ids[3]].startswith("registration reference of 1 exposures")
        night_ref = refs[0] if refs[1] == ids[3] else refs[1]
        assert src[night_ref].startswith("registration reference of 3 exposures")
        assert all(src[i].startswith(f"registered to exposure {night_ref}") for i in ids[:3] if i != night_ref)
        assert cnt["registration_night_from"] == {"time_gap": 4}, cnt  # the run says how it grouped them
    finally:
        c.close()
