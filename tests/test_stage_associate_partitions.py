"""Stage associate by sky partitions (q3c cells with a margin) gives the association of all inputs at once.

Synthetic exposures (no shared data needed): star fields on a cube-face edge of q3c (RA 45),
across RA 0/360 and at Dec +60, slow movers whose friends-of-friends chains are longer than the
partition margin, and a few exposures with a zeropoint.  The association read in partitions of
a few thousand detections must hold the same objects (same detections, same summaries, same
kind) as the one read at once, which itself must equal the algorithm on all detections in memory.
"""
from __future__ import annotations

import numpy as np
import pytest

from catdb.algorithms.association import friends_of_friends, object_summary
from catdb.db.copy import copy_table
from catdb.stages import run_stage

N_EXP = 12
CENTRES = [(45.0, 0.05), (359.98, -0.3), (210.0, 60.0)]  # face edge, RA wrap, high Dec


def _make_survey(conn, rng, tag, n_exp=N_EXP, mjd0=60000.1):
    run = conn.execute("INSERT INTO stage_run (stage, code_version, status) VALUES ('test', 'test', 'ok') "
                       "RETURNING id").fetchone()[0]
    eids = []
    stars = []
    for ra0, dec0 in CENTRES:  # loop over fields (a few)
        n = 700
        dec = dec0 + rng.uniform(-0.08, 0.08, n)
        ra = (ra0 + rng.uniform(-0.08, 0.08, n) / np.cos(np.radians(dec))) % 360
        mag = rng.uniform(15, 21, n)
        # pairs closer than the linking radius (merged by friends-of-friends)
        k = rng.choice(n, 40, replace=False)
        ra[k[:20]], dec[k[:20]] = ra[k[20:]] + 1.0 / 3600 / np.cos(np.radians(dec[k[20:]])), dec[k[20:]]
        stars.append((ra, dec, mag))
    sra, sdec, smag = (np.concatenate(x) for x in zip(*stars))
    # slow movers (1.1"/exposure): chains of ~13" across partition edges, longer than the margin
    nm = 90
    mra0 = np.concatenate([c[0] + rng.uniform(-0.07, 0.07, nm // 3) for c in CENTRES]) % 360
    mdec0 = np.concatenate([c[1] + rng.uniform(-0.07, 0.07, nm // 3) for c in CENTRES])
    pa = rng.uniform(0, 2 * np.pi, nm)
    sfield = np.repeat(np.arange(len(CENTRES)), 700)
    mfield = np.repeat(np.arange(len(CENTRES)), nm // 3)
    for i in range(n_exp):  # loop over visits
        for f in range(len(CENTRES)):  # one exposure per field
            mjd = mjd0 + i * 0.01 + f * 0.002
            eid = conn.execute("INSERT INTO exposure (path, band, mjd_mid) VALUES (%s, 'r', %s) RETURNING id",
                               (f"{tag}-{i}-{f}.ldac", mjd)).fetchone()[0]
            eids.append(eid)
            seen = (rng.random(sra.size) < 0.9) & (sfield == f)
            ra = sra[seen] + rng.normal(0, 0.25, seen.sum()) / 3600 / np.cos(np.radians(sdec[seen]))
            dec = sdec[seen] + rng.normal(0, 0.25, seen.sum()) / 3600
            mag = smag[seen] + rng.normal(0, 0.03, seen.sum())
            m = mfield == f
            step = 1.1 * i / 3600
            ra = np.concatenate([ra, mra0[m] + step * np.sin(pa[m]) / np.cos(np.radians(mdec0[m]))]) % 360
            dec = np.concatenate([dec, mdec0[m] + step * np.cos(pa[m])])
            mag = np.concatenate([mag, np.full(m.sum(), 19.0)])
            n = ra.size
            copy_table(conn, "detection", {
                "number": np.arange(1, n + 1), "ra": ra, "dec": dec, "ra_err": np.full(n, 0.25),
                "dec_err": np.full(n, 0.25), "mag_auto": mag, "magerr_auto": np.full(n, 0.03),
                "snr": np.full(n, 30.0), "flags": np.zeros(n, np.int64)}, constants={"exposure_id": eid})
            if f == 0 or i % 4 == 0:  # field 0 calibrated on every visit, the others on some
                conn.execute("INSERT INTO zeropoint (exposure_id, band, zp, zp_err, method, ok, stage_run_id) "
                             "VALUES (%s, 'r', 25.0, 0.01, 'pp', true, %s)", (eid, run))
    conn.execute("ANALYZE detection")
    conn.commit()
    return eids


def _objects(conn, eids):
    """{frozenset of detection ids: object row} of the association of ``eids``."""
    rows = conn.execute(
        "SELECT array_agg(l.detection_id ORDER BY l.detection_id), o.ra, o.dec, o.ra_err, o.dec_err, o.kind, "
        "o.n_detections, o.n_epochs, o.band, o.mean_mag, o.std_mag, o.chi2_var, o.mjd_first, o.mjd_last "
        "FROM object o JOIN detection_object l ON l.object_id = o.id JOIN detection d ON d.id = l.detection_id "
        "WHERE d.exposure_id = ANY(%s) GROUP BY o.id", (eids,)).fetchall()
    return {frozenset(r[0]): r[1:] for r in rows}


@pytest.fixture(scope="module")
def survey(db_url):
    from catdb.db.engine import connect

    with connect(db_url) as c:
        return _make_survey(c, np.random.default_rng(42), "part")


def test_partitions_give_the_association_of_everything_at_once(conn, survey):
    eids = survey
    where = f"e.id = ANY(ARRAY[{', '.join(map(str, eids))}])"
    one = run_stage("associate", conn=conn, where=where, params={"partition_size": "0"})
    assert one.counts["partitions"] == 1
    whole = _objects(conn, eids)

    # the algorithm on all detections in memory (what the stage did before partitions)
    d = conn.execute("SELECT d.id, d.ra, d.dec, d.ra_err, d.dec_err, d.mag_auto, d.magerr_auto, d.exposure_id, "
                     "e.mjd_mid FROM detection d JOIN exposure e ON e.id = d.exposure_id "
                     "WHERE d.exposure_id = ANY(%s) ORDER BY d.exposure_id, d.id", (eids,)).fetchall()
    d = np.array(d, dtype=float)
    lab = friends_of_friends(d[:, 1], d[:, 2], 1.5)
    s = object_summary(lab, *d[:, 1:8].T, d[:, 8], min_epochs=4, motion_snr=3.0, scatter_factor=5.0)
    groups = {}
    for i, g in enumerate(lab):  # loop over detections (test only)
        groups.setdefault(g, []).append(int(d[i, 0]))
    mem = {frozenset(v): ("moving" if s["moving"][g] else "static", int(s["n_epochs"][g])) for g, v in groups.items()}
    assert {k: (v[4], v[6]) for k, v in whole.items()} == mem
    assert sum(v[4] == "moving" for v in whole.values()) >= 30  # the slow movers (and merged stars)

    # default margin (10"), and a narrow one (4") that the movers' 12" chains overrun
    for margin, deferred in (("10", 10), ("4", 10)):
        parts = run_stage("associate", conn=conn, where=where,
                          params={"partition_size": "1500", "partition_margin": margin})
        c = parts.counts
        print(f"\npartitions, margin {margin}\": {c}")
        assert c["partitions"] >= 6 and c["detections_deferred"] >= deferred
        assert 0 < c["objects_calibrated"] < c["object"]
        for k in ("object", "detection_object", "detections_used", "objects_moving", "objects_orphan",
                  "objects_calibrated", "objects_instrumental"):
            assert c[k] == one.counts[k], k
        split = _objects(conn, eids)
        assert split.keys() == whole.keys()
        assert split == whole  # every summary column bit for bit (same detections in the same order)
    # objects straddling partition edges: the cells of their detections differ
    cell = dict(conn.execute("SELECT id, q3c_ang2ipix(ra, dec) >> 38 FROM detection WHERE exposure_id = ANY(%s)",
                             (eids,)).fetchall())
    assert sum(len({cell[i] for i in k}) > 1 for k in split) > 20
    conn.commit()


def test_incremental_after_partitioned_association(conn, survey):
    eids = survey
    where = f"e.id = ANY(ARRAY[{', '.join(map(str, eids))}])"
    run_stage("associate", conn=conn, where=where, params={"partition_size": "3000"})
    n_obj = conn.execute("SELECT count(*) FROM object").fetchone()[0]
    new = _make_survey(conn, np.random.default_rng(42), "later", n_exp=2, mjd0=60000.5)
    res = run_stage("associate", conn=conn, where=f"e.id = ANY(ARRAY[{', '.join(map(str, eids + new))}])",
                    params={"incremental": "true"})
    c = res.counts
    # the same stars again: most new detections join existing objects
    assert c["detections_used"] == conn.execute("SELECT count(*) FROM detection WHERE exposure_id = ANY(%s)",
                                                (new,)).fetchone()[0]
    print(f"\nincremental: {c}")
    assert c["detections_matched"] > 0.9 * c["detections_used"]
    assert conn.execute("SELECT count(*) FROM object").fetchone()[0] == n_obj + c["object"]
    conn.commit()
