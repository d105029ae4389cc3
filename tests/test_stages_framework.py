"""The stage framework: provenance, replace-on-rerun, atomic failure."""
import pytest

from catdb.errors import StageError
from catdb.stages import Param, Stage, all_stages, register, run_stage


def _load_exposures(conn, n_exp=3, n_det=50):
    ids = []
    for i in range(n_exp):
        eid = conn.execute("INSERT INTO exposure (path, hdu, image_type, mjd_mid) VALUES (%s, 0, 'science', %s) "
                           "RETURNING id", (f"img{i}.fits", 58568.6 + i * 0.01)).fetchone()[0]
        conn.execute(
            "INSERT INTO detection (exposure_id, number, ra, dec, fwhm, flags, snr, class_star, mag_auto) "
            "SELECT %s, g, 124.6 + g * 1e-4, 25.3, 2.0 + %s * 0.5 + (g %% 3) * 0.1, (g %% 10 = 0)::int * 2, "
            "100, 0.95, -10 FROM generate_series(1, %s) g", (eid, i, n_det))
        ids.append(eid)
    conn.commit()
    return ids


def test_exposure_summary_provenance_and_rerun(conn):
    ids = _load_exposures(conn)
    res = run_stage("exposure-summary", conn=conn)
    assert res.input_count == 3
    rows = conn.execute("SELECT exposure_id, n_detections, n_unflagged, fwhm_median, stage_run_id "
                        "FROM exposure_summary ORDER BY exposure_id").fetchall()
    assert [r[1] for r in rows] == [50, 50, 50]
    assert [r[2] for r in rows] == [45, 45, 45]
    # median of 2.0/2.1/2.2 pattern on unflagged rows, +0.5 per exposure
    assert rows[0][3] == pytest.approx(2.1, abs=1e-6)
    assert rows[2][3] == pytest.approx(3.1, abs=1e-6)
    assert {r[4] for r in rows} == {res.run_id}
    run = conn.execute("SELECT stage, status, code_version, input_ids, counts, params FROM stage_run WHERE id = %s",
                       (res.run_id,)).fetchone()
    assert run[0] == "exposure-summary" and run[1] == "ok" and run[2]
    assert sorted(run[3]) == sorted(ids)
    assert run[4]["exposure_summary"] == 3
    assert run[5]["snr_min"] == 20.0
    # re-run on the same inputs replaces, not duplicates
    res2 = run_stage("exposure-summary", conn=conn)
    assert conn.execute("SELECT count(*) FROM exposure_summary").fetchone()[0] == 3
    assert conn.execute("SELECT status FROM stage_run WHERE id = %s", (res.run_id,)).fetchone()[0] == "replaced"
    # a narrower run replaces only its own input
    res3 = run_stage("exposure-summary", conn=conn, where=f"e.id = {ids[0]}")
    got = dict(conn.execute("SELECT exposure_id, stage_run_id FROM exposure_summary").fetchall())
    assert got[ids[0]] == res3.run_id and got[ids[1]] == res2.run_id
    conn.commit()


@register
class _Boom(Stage):
    name = "test-boom"
    description = "fails half way (test only)"
    params = [Param("n", int, 1, "rows")]
    outputs = []

    def run(self, ctx):
        ctx.execute("INSERT INTO ledger (stage_run_id, step, filter, n_in, n_rejected, n_kept) "
                    "SELECT %s, 1, 'x', id, 0, id FROM exposure WHERE id = ANY(%s)", (ctx.run_id, ctx.inputs))
        assert ctx.execute("SELECT count(*) FROM ledger").fetchone()[0] > 0
        raise RuntimeError("disk on fire")


def test_failed_stage_writes_nothing_and_is_recorded(conn):
    with pytest.raises(StageError, match="disk on fire"):
        run_stage("test-boom", conn=conn)
    assert conn.execute("SELECT count(*) FROM ledger").fetchone()[0] == 0
    st, err = conn.execute("SELECT status, error FROM stage_run WHERE stage = 'test-boom' ORDER BY id DESC"
                           ).fetchone()
    assert st == "failed" and "disk on fire" in err
    conn.commit()


def test_bad_parameter_is_refused(conn):
    from catdb.errors import CatdbError

    with pytest.raises(CatdbError, match="unknown parameter 'snr'"):
        run_stage("exposure-summary", conn=conn, params={"snr": "3"})
    with pytest.raises(CatdbError, match="expected float"):
        run_stage("exposure-summary", conn=conn, params={"snr_min": "lots"})


def test_registry_lists_real_stages():
    assert "exposure-summary" in all_stages()
