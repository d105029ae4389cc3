"""Stage ``movers`` with ``source=scamp``: SCAMP's own cross-epoch associations as the candidate links.

The real SCAMP run of tests/test_ingest_scamp_merged.py (three reduced Lowell 42-inch frames, 30 min
apart, ``CROSSID_RADIUS`` 3" so that SCAMP links asteroid (5945), which moves ~2.4" between frames):
the filter chain keeps the asteroid's SCAMP source as a candidate at its MANIFEST rate and rejects the
static sources.
"""
from __future__ import annotations

import itertools

import pytest

from catdb.errors import StageError
from catdb.ingest.load import ingest_catalogs
from catdb.ingest.scamp_load import ingest_scamp_full
from catdb.stages import run_stage
from tests.test_ingest_scamp_merged import _mover, pm_run  # noqa: F401 (fixture)

pytestmark = [pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning",
                                        "ignore::astropy.wcs.FITSFixedWarning", "ignore::astropy.units.UnitsWarning"),
              pytest.mark.spatial_backends]


def test_scamp_links_give_the_asteroid_and_reject_the_stars(conn, pm_run):  # noqa: F811
    cats = pm_run["cats"]
    ingest_catalogs(conn, cats)
    # before any SCAMP load: a clear error, nothing written
    with pytest.raises(StageError, match="no SCAMP associations .*catdb ingest scamp"):
        run_stage("movers", conn=conn, params={"source": "scamp", "min_detections": "3"})
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM track").fetchone()[0] == 0
    full = ingest_scamp_full(conn, pm_run["full"], catalogs=cats)
    conn.commit()
    oid = _mover(conn, full.run_id)
    n_src = conn.execute("SELECT count(*) FROM object WHERE stage_run_id = %s AND n_epochs >= 1",
                         (full.run_id,)).fetchone()[0]
    res = run_stage("movers", conn=conn, params={"source": "scamp", "min_detections": "3"})
    conn.commit()
    assert res.counts["source_used"] == f"scamp associations of ingest-scamp run {full.run_id}"
    cand = conn.execute("SELECT id, n_detections, rate, rate_ra, rate_dec FROM track WHERE status = 'candidate' "
                        "AND stage_run_id = %s", (res.run_id,)).fetchall()
    # the asteroid's track is exactly SCAMP's source: its three detections
    mover_dets = {r[0] for r in conn.execute("SELECT detection_id FROM detection_object WHERE object_id = %s",
                                             (oid,)).fetchall()}
    by_track = {t[0]: {r[0] for r in conn.execute("SELECT detection_id FROM track_detection WHERE track_id = %s",
                                                  (t[0],)).fetchall()} for t in cand}
    hit = [t for t in cand if by_track[t[0]] == mover_dets]
    assert len(hit) == 1, (cand, mover_dets)
    _, n, rate, rate_ra, rate_dec = hit[0]
    assert n == 3 and rate == pytest.approx(9.3, rel=0.05)  # MANIFEST: ~9.3"/h (+4.0, -8.4)
    assert rate_ra > 0 and rate_dec < 0
    # the static sources do not survive: few candidates among > 1000 SCAMP sources
    assert n_src > 1000 and len(cand) <= 5
    led = conn.execute("SELECT step, filter, n_in, n_rejected, n_kept FROM ledger WHERE stage_run_id = %s "
                       "ORDER BY step", (res.run_id,)).fetchall()
    assert led[0][1] == "search" and led[0][2] == n_src  # one candidate link per SCAMP source with detections
    for a, b in itertools.pairwise(led):
        assert b[2] == a[4] and b[2] - b[3] == b[4]  # each filter's input is the previous one's output
    assert led[-1][4] == len(cand)
    rej = dict(conn.execute("SELECT status, count(*) FROM track WHERE stage_run_id = %s GROUP BY 1",
                            (res.run_id,)).fetchall())
    # sources seen on fewer than 3 frames go at the first filter; the static ones on all 3 at the rate
    # filter (rate S/N < 3: no motion beyond their scatter)
    n3 = conn.execute("SELECT count(*) FROM object WHERE stage_run_id = %s AND n_epochs >= 3",
                      (full.run_id,)).fetchone()[0]
    assert rej["rejected:detections"] == n_src - n3
    assert rej.get("rejected:rate", 0) + rej.get("rejected:pixel_shift", 0) >= 0.99 * (n3 - len(cand))


def test_trail_filter_is_a_parameter(conn, pm_run):  # noqa: F811
    """trail=true runs the ssos constant-trail filter (skipped by default, as in ssos); the asteroid's
    A_IMAGE/B_IMAGE are constant over the three frames, so it stays a candidate."""
    res = run_stage("movers", conn=conn, params={"source": "scamp", "min_detections": "3", "trail": "true"})
    conn.commit()
    led = dict(conn.execute("SELECT filter, l.params->>'parameters' FROM ledger l WHERE stage_run_id = %s",
                            (res.run_id,)).fetchall())
    assert led["trail"] == "trail_ratio=0.25"
    n = conn.execute("SELECT count(*) FROM track WHERE stage_run_id = %s AND status = 'candidate' "
                     "AND abs(rate - 9.3) < 0.5", (res.run_id,)).fetchone()[0]
    assert n == 1
