"""Stage xmatch on real data: LCO LDAC catalogue vs Gaia DR2 (the same pairs as astropy and q3c)."""
import numpy as np
import pytest
from click.testing import CliRunner

from catdb.errors import StageError
from catdb.stages import run_stage
from catdb.algorithms.crossmatch import match_unit_vectors, spatial_order
from catdb.algorithms.sphere import unit_vectors
from tests.helpers import TEST_DATA

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

LCO = TEST_DATA / "lco"


@pytest.fixture(scope="module")
def db_url(lco_gaia):
    """The module's database: a copy of conftest's ``lco_gaia`` (the LCO frame and Gaia DR2 as 'gaia-dr2')."""
    return lco_gaia[0]


@pytest.fixture(scope="module")
def ldac(lco_gaia):
    """Id of the exposure of the real LDAC catalogue (band 'w')."""
    return lco_gaia[1]


def pairs(conn, run_id):
    return conn.execute("SELECT detection_id, ref_id, sep_arcsec, dra_arcsec, ddec_arcsec, rank FROM xmatch "
                        "WHERE stage_run_id = %s ORDER BY detection_id, rank", (run_id,)).fetchall()


def test_real_lco_vs_gaia_same_pairs_as_astropy_and_q3c(conn, ldac):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    from catdb.spatial import nearest_join

    res = run_stage("xmatch", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr2", "radius": "1"})
    got = pairs(conn, res.run_id)
    assert 60 <= len(got) <= 200, len(got)          # "about a hundred" stars of 249 within 1"
    sep = np.array([r[2] for r in got])
    assert np.median(sep) < 0.3 and sep.max() < 1.0
    assert {r[5] for r in got} == {1}
    # independent: astropy nearest neighbour on the same rows
    det = np.array(conn.execute("SELECT id, ra, dec FROM detection WHERE exposure_id = %s ORDER BY id",
                                (ldac,)).fetchall())
    ref = np.array(conn.execute("SELECT id, ra, dec FROM refcat_source WHERE catalog = 'gaia-dr2' ORDER BY id")
                   .fetchall())
    c1 = SkyCoord(det[:, 1] * u.deg, det[:, 2] * u.deg)
    c2 = SkyCoord(ref[:, 1] * u.deg, ref[:, 2] * u.deg)
    idx, d2d, _ = c1.match_to_catalog_sky(c2)
    ok = d2d.arcsec < 1.0
    expect = sorted(zip(det[ok, 0].astype(int).tolist(), ref[idx[ok], 0].astype(int).tolist()))
    assert [(r[0], r[1]) for r in got] == expect
    np.testing.assert_allclose(sep, d2d.arcsec[ok][np.argsort(det[ok, 0])], atol=1e-6)
    # offsets: dra, ddec reproduce the separation (small-angle), and agree with astropy's spherical offsets
    dra, ddec = np.array([r[3] for r in got]), np.array([r[4] for r in got])
    np.testing.assert_allclose(np.hypot(dra, ddec), sep, atol=1e-3)
    # the q3c LATERAL nearest join gives the same pairs and separations
    conn.execute("CREATE TEMP TABLE _d AS SELECT id, ra, dec FROM detection WHERE exposure_id = %s", (ldac,))
    conn.execute("CREATE TEMP TABLE _r AS SELECT id, ra, dec FROM refcat_source WHERE catalog = 'gaia-dr2'")
    f = nearest_join("_d", "_r", 1 / 3600, columns1=["id"], columns2=["id"])
    q3c = sorted((int(a), int(b), float(s)) for a, b, s in conn.execute(*f).fetchall())
    conn.execute("DROP TABLE _d, _r")
    assert [(a, b) for a, b, _ in q3c] == [(r[0], r[1]) for r in got]
    np.testing.assert_allclose([s for *_, s in q3c], sep, atol=1e-6)


def test_rerun_replaces_and_cuts_apply(conn, ldac):
    w = f"e.id = {ldac}"
    r1 = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2"})
    n1 = conn.execute("SELECT count(*) FROM xmatch WHERE catalog = 'gaia-dr2'").fetchone()[0]
    r2 = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2"})
    rows = conn.execute("SELECT stage_run_id, count(*) FROM xmatch WHERE catalog = 'gaia-dr2' "
                        "GROUP BY 1").fetchall()
    assert rows == [(r2.run_id, n1)]
    assert r2.counts["replaced_rows"] == n1
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (r1.run_id,)).fetchone()[0] == "replaced"
    # quality cuts: only detections passing them are matched
    r3 = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "flags_max": "0", "snr_min": "20"})
    bad = conn.execute("SELECT count(*) FROM xmatch x JOIN detection d ON d.id = x.detection_id "
                       "WHERE x.stage_run_id = %s AND (d.flags > 0 OR d.snr < 20)", (r3.run_id,)).fetchone()[0]
    n3 = conn.execute("SELECT count(*) FROM xmatch WHERE stage_run_id = %s", (r3.run_id,)).fetchone()[0]
    assert bad == 0 and 0 < n3 < n1


def test_mode_all_ranks_and_proper_motion(conn, ldac):
    w = f"e.id = {ldac}"
    near = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "5"})
    near_pairs = pairs(conn, near.run_id)  # the next run (same catalogue) replaces these rows
    allr = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "5", "mode": "all"})
    rows = pairs(conn, allr.run_id)
    # rank 1 of mode=all is the nearest match; ranks are 1..k by increasing separation
    assert [(r[0], r[1]) for r in rows if r[5] == 1] == [(r[0], r[1]) for r in near_pairs]
    by_det = {}
    for d, _, s, _, _, k in rows:
        by_det.setdefault(d, []).append((k, s))
    for v in by_det.values():
        assert [k for k, _ in v] == list(range(1, len(v) + 1)) and [s for _, s in v] == sorted(s for _, s in v)
    # a q3c pair join gives the same number of pairs within 5"
    from catdb.spatial import pair_join
    conn.execute("CREATE TEMP TABLE _d AS SELECT id, ra, dec FROM detection WHERE exposure_id = %s", (ldac,))
    conn.execute("CREATE TEMP TABLE _r AS SELECT id, ra, dec FROM refcat_source WHERE catalog = 'gaia-dr2'")
    f = pair_join("_d", "_r", 5 / 3600, columns1=["id"], columns2=["id"])
    q3c = sorted((int(a), int(b)) for a, b, _ in conn.execute(*f).fetchall())
    conn.execute("DROP TABLE _d, _r")
    assert sorted((r[0], r[1]) for r in rows) == q3c
    # proper motion: give one matched star a large motion; use_pm moves it to the 2016.3 epoch and
    # the pm-aware q3c distance agrees
    d_id, r_id = near_pairs[0][:2]
    conn.execute("UPDATE refcat_source SET pmra = 0, pmdec = 0 WHERE catalog = 'gaia-dr2'")
    conn.execute("UPDATE refcat_source SET pmdec = 2000 WHERE id = %s", (r_id,))  # 2"/yr, ~1.6" by 2016.3
    pm = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "5", "use_pm": "true"})
    s_pm = conn.execute("SELECT sep_arcsec FROM xmatch WHERE stage_run_id = %s AND detection_id = %s AND "
                        "ref_id = %s", (pm.run_id, d_id, r_id)).fetchone()[0]
    s_q3c = conn.execute(
        "SELECT q3c_dist_pm(r.ra, r.dec, r.pmra, r.pmdec, 1, r.epoch, d.ra, d.dec, "
        "2000 + (e.mjd_mid - 51544.5) / 365.25) * 3600 FROM detection d, refcat_source r, exposure e "
        "WHERE d.id = %s AND r.id = %s AND e.id = d.exposure_id", (d_id, r_id)).fetchone()[0]
    s_plain = near_pairs[0][2]
    assert s_pm == pytest.approx(s_q3c, abs=1e-3) and abs(s_pm - s_plain) > 1.0
    conn.rollback()


def test_detection_set_and_errors(conn, ldac, db_url):
    from catdb.cli.main import cli

    # a shifted copy of the frame (0.5" north) as another exposure: every detection finds its twin
    new = conn.execute("INSERT INTO exposure (path, hdu, image_type, mjd_mid, ra_center, dec_center, radius) "
                       "SELECT 'copy', 0, image_type, mjd_mid + 1, ra_center, dec_center, radius FROM exposure "
                       "WHERE id = %s RETURNING id", (ldac,)).fetchone()[0]
    conn.execute("INSERT INTO detection (exposure_id, number, ra, dec) SELECT %s, number, ra, dec + 0.5 / 3600 "
                 "FROM detection WHERE exposure_id = %s", (new, ldac))
    conn.commit()
    r = run_stage("xmatch", conn=conn, where=f"e.id = {ldac}",
                  params={"refcat": f"detections:e.id = {new}", "radius": "0.8"})
    rows = conn.execute("SELECT d.number = o.number, x.sep_arcsec, x.ddec_arcsec FROM xmatch x "
                        "JOIN detection d ON d.id = x.detection_id JOIN detection o ON o.id = x.ref_id "
                        "WHERE x.stage_run_id = %s AND x.catalog = 'detection'", (r.run_id,)).fetchall()
    n_det = conn.execute("SELECT count(*) FROM detection WHERE exposure_id = %s", (ldac,)).fetchone()[0]
    assert len(rows) == n_det and all(same for same, _, _ in rows)
    assert np.allclose([s for _, s, _ in rows], 0.5, atol=1e-6) and np.allclose([d for *_, d in rows], -0.5, atol=1e-6)
    # bad refcat name: clear error naming it and the catalogues present, nothing written, run failed
    n0 = conn.execute("SELECT count(*) FROM xmatch").fetchone()[0]
    with pytest.raises(StageError, match=r"no reference catalogue named 'gaia-dr9'.*gaia-dr2"):
        run_stage("xmatch", conn=conn, where=f"e.id = {ldac}", params={"refcat": "gaia-dr9"})
    assert conn.execute("SELECT count(*) FROM xmatch").fetchone()[0] == n0
    assert conn.execute("SELECT status FROM stage_run WHERE stage = 'xmatch' ORDER BY id DESC LIMIT 1"
                        ).fetchone()[0] == "failed"
    with pytest.raises(StageError, match="radius"):
        run_stage("xmatch", conn=conn, params={"refcat": "gaia-dr2", "radius": "-1"})
    with pytest.raises(StageError, match="not a valid SQL condition on exposure e"):
        run_stage("xmatch", conn=conn, where=f"e.id = {ldac}", params={"refcat": "detections:e.nope = 1"})
    res = CliRunner().invoke(cli, ["--db", db_url, "-q", "stage", "xmatch", "--param", "refcat=nope"])
    assert res.exit_code != 0 and "nope" in res.output


def test_kdtree_matches_brute_force_across_ra_wrap():
    rng = np.random.default_rng(3)
    ra = np.r_[rng.uniform(359.9, 360, 300), rng.uniform(0, 0.1, 300)]
    dec = rng.uniform(-0.05, 0.05, 600)
    rra = (ra[:400] + rng.normal(0, 1, 400) / 3600) % 360
    rdec = dec[:400] + rng.normal(0, 1, 400) / 3600
    a, b = unit_vectors(ra, dec), unit_vectors(rra, rdec)
    i, j, _ = match_unit_vectors(a, b, 2.0)
    ang = np.degrees(np.arccos(np.clip(a @ b.T, -1, 1))) * 3600
    best = ang.argmin(1)
    ok = ang[np.arange(600), best] < 2.0
    assert np.array_equal(i, np.flatnonzero(ok)) and np.array_equal(j, best[ok])
    ia, ja, ra_ = match_unit_vectors(a, b, 2.0, mode="all")
    assert len(ia) == int((ang < 2.0).sum()) and np.array_equal(ja[ra_ == 1], best[ok])


def test_spatial_order_is_a_permutation_grouping_neighbours():
    rng = np.random.default_rng(5)
    ra, dec = rng.uniform(0, 360, 20000), np.degrees(np.arcsin(rng.uniform(-1, 1, 20000)))
    v = unit_vectors(ra, dec)
    o = spatial_order(v)
    assert np.array_equal(np.sort(o), np.arange(len(v)))
    # consecutive points in Z-order are far closer than in the random input order
    def step(w):
        return np.median(np.linalg.norm(np.diff(w, axis=0), axis=1))

    assert step(v[o]) < 0.1 * step(v)
    assert len(spatial_order(v[:0])) == 0


@pytest.mark.parametrize("mode", ["all", "nearest"])
def test_dec_bands_give_the_same_pairs(conn, ldac, mode):
    w = f"e.id = {ldac}"
    one = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3", "mode": mode})
    p1 = pairs(conn, one.run_id)
    many = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3", "mode": mode,
                                                           "band_rows": "50"})
    assert one.counts["bands"] == 1 and many.counts["bands"] >= 15
    assert pairs(conn, many.run_id) == p1


def _xmatch_ddl(conn):
    return sorted(conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'xmatch'::regclass "
        "UNION ALL SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
        "WHERE indrelid = 'xmatch'::regclass").fetchall())


def test_bulk_load_gives_the_same_rows_and_keeps_constraints(conn, ldac):
    import psycopg

    from catdb.ingest.load import ingest_refcat

    w = f"e.id = {ldac}"
    ddl = _xmatch_ddl(conn)
    assert any("FOREIGN KEY (detection_id)" in d for _, d in ddl)
    plain = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3", "bulk_load": "no"})
    assert plain.counts["bulk_load"] is False
    p_plain = pairs(conn, plain.run_id)
    # a second catalogue's rows must survive the bulk run on gaia-dr2 (no TRUNCATE then)
    ingest_refcat(conn, LCO / "GAIA-DR2.cat", catalog="gaia-copy", band="G")
    other = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-copy", "radius": "3"})
    n_other = conn.execute("SELECT count(*) FROM xmatch WHERE stage_run_id = %s", (other.run_id,)).fetchone()[0]
    bulk = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3", "bulk_load": "yes"})
    assert bulk.counts["bulk_load"] is True and bulk.counts["replaced_rows"] == len(p_plain)
    # row ids reserved from the identity sequence: the next default id is above every one written
    max_id, next_id = conn.execute("SELECT (SELECT max(id) FROM xmatch), "
                                   "nextval(pg_get_serial_sequence('xmatch', 'id'))").fetchone()
    assert next_id > max_id
    # the planner settings changed for the key checks are back as they were
    assert conn.execute("SELECT current_setting('enable_hashjoin')").fetchone()[0] == "on"
    got = pairs(conn, bulk.run_id)
    assert [r[:2] + (r[5],) for r in got] == [r[:2] + (r[5],) for r in p_plain]
    np.testing.assert_allclose([r[2] for r in got], [r[2] for r in p_plain], atol=1e-9)
    assert conn.execute("SELECT count(*) FROM xmatch WHERE stage_run_id = %s", (other.run_id,)).fetchone()[0] \
        == n_other > 0
    # the same keys and indexes afterwards, and they still hold
    assert _xmatch_ddl(conn) == ddl
    with pytest.raises(psycopg.errors.ForeignKeyViolation), conn.transaction():
        conn.execute("INSERT INTO xmatch (detection_id, catalog, ref_id, sep_arcsec, dra_arcsec, ddec_arcsec, "
                     "rank, stage_run_id) VALUES (-5, 'x', 1, 0, 0, 0, 1, %s)", (bulk.run_id,))
    # a bulk re-run that replaces every row of xmatch (TRUNCATE) counts them as replaced
    conn.execute("DELETE FROM xmatch WHERE stage_run_id <> %s", (bulk.run_id,))
    again = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3", "bulk_load": "yes"})
    assert again.counts["replaced_rows"] == len(p_plain)
    assert conn.execute("SELECT count(*) FROM xmatch").fetchone()[0] == len(p_plain)
    conn.rollback()


def test_bulk_load_auto_never_locks_out_another_session(conn, ldac, db_url):
    """bulk_load=auto takes the exclusive-lock path only when no other client is connected to the database
    and the run commits when it ends (not inside a caller's open transaction, where the locks would stay)."""
    import psycopg

    w = f"e.id = {ldac}"
    conn.commit()
    others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()[0]
    conn.commit()
    alone = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3"})
    assert alone.counts["bulk_load"] is (others == 0)
    with conn.transaction():  # a caller's unit of work around the stage: no exclusive locks
        nested = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3"})
        assert nested.counts["bulk_load"] is False
        with psycopg.connect(db_url) as reader:  # ... so another session reads detections meanwhile
            reader.execute("SET statement_timeout = '20s'")
            assert reader.execute("SELECT count(*) FROM detection").fetchone()[0] > 0
    with psycopg.connect(db_url) as reader:   # e.g. a user running `catdb query` meanwhile
        reader.execute("SET statement_timeout = '20s'")
        reader.execute("SELECT 1")
        shared = run_stage("xmatch", conn=conn, where=w, params={"refcat": "gaia-dr2", "radius": "3"})
        assert shared.counts["bulk_load"] is False
        assert reader.execute("SELECT count(*) FROM detection").fetchone()[0] > 0
    # the same matches whichever way they were written (each run replaced the one before)
    assert len(pairs(conn, shared.run_id)) == alone.counts["xmatch"] == nested.counts["xmatch"] > 100
