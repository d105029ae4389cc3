"""Stage ``coadd``: quality selection, re-run replacement and clear errors (two small real frames)."""
from __future__ import annotations

import pytest
from astropy.io import fits

from catdb.errors import StageError
from catdb.stages import run_stage
from tests.helpers import REPO_DATA

LOWELL = REPO_DATA / "lowell42-5945"
SCIENCE = [LOWELL / "science" / f"20190326.{n:04d}.fits.fz" for n in (129, 132, 135)]

pytestmark = pytest.mark.skipif(not (LOWELL / "science").is_dir(), reason=f"real data not found at {LOWELL}")


def test_exclude_flags_rerun_and_errors(fresh_db_url, tmp_path):
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_images

    c = connect(fresh_db_url)
    try:
        ids = [i for r in ingest_images(c, SCIENCE) for i in r.exposure_ids]
        ingest_images(c, sorted((LOWELL / "zero").glob("*.fits.fz"))[:2])
        ingest_images(c, sorted((LOWELL / "flat").glob("*.fits.fz"))[1:3])
        # only two frames reduced: the third has no reduced product
        run_stage("reduce", conn=c, where=f"e.id IN ({ids[0]}, {ids[1]})", params={"outdir": str(tmp_path)})
        with pytest.raises(StageError, match=rf"exposure {ids[2]} .* has no reduced product"):
            run_stage("coadd", conn=c, params={"outdir": str(tmp_path)})
        # a flagged exposure is left out by default, and then one frame is not enough
        c.execute("UPDATE exposure SET quality_flags = 4 WHERE id = %s", (ids[1],))
        c.commit()
        with pytest.raises(StageError, match=rf"at least 2 exposures; the selection has 1 after leaving out 1 .*"
                                             rf"\[{ids[1]}\]"):
            run_stage("coadd", conn=c, where=f"e.id <> {ids[2]}", params={"outdir": str(tmp_path)})
        assert c.execute("SELECT count(*) FROM image_product WHERE kind = 'coadd'").fetchone()[0] == 0
        # exclude_flags=false keeps it; a re-run on the same set replaces product and file
        where = f"e.id <> {ids[2]}"
        p = {"outdir": str(tmp_path), "exclude_flags": "false", "weights": "equal"}
        r1 = run_stage("coadd", conn=c, where=where, params=p)
        path1 = c.execute("SELECT path FROM image_product WHERE kind = 'coadd'").fetchone()[0]
        r2 = run_stage("coadd", conn=c, where=where, params=p)
        rows = c.execute("SELECT path, stage_run_id, input_ids FROM image_product WHERE kind = 'coadd'").fetchall()
        assert rows == [(path1, r2.run_id, sorted(ids[:2]))]
        assert r2.counts["replaced_rows"] == 1
        assert c.execute("SELECT status FROM stage_run WHERE id = %s", (r1.run_id,)).fetchone()[0] == "replaced"
        c.commit()
    finally:
        c.close()


def test_coadd_epoch_from_the_exposures_null_when_one_is_unknown(fresh_db_url, tmp_path):
    """The stack's epoch comes from the exposures' mjd_mid (what ingest derived with the keymap), not
    from a guess at the reduced frames' headers; with one input's time unknown the stack has no
    epoch (no MJD-MID, coadd objects' mjd_first/mjd_last NULL) and the run names the input."""
    from catdb.db.engine import connect
    from catdb.ingest.load import ingest_images

    c = connect(fresh_db_url)
    try:
        ids = [i for r in ingest_images(c, SCIENCE[:2]) for i in r.exposure_ids]
        ingest_images(c, sorted((LOWELL / "zero").glob("*.fits.fz"))[:2])
        ingest_images(c, sorted((LOWELL / "flat").glob("*.fits.fz"))[1:3])
        run_stage("reduce", conn=c, where=f"e.id IN ({ids[0]}, {ids[1]})", params={"outdir": str(tmp_path)})
        # the time of the second exposure is not known (its header's DATE-OBS + UTCSTART are still there)
        c.execute("UPDATE exposure SET mjd_mid = NULL WHERE id = %s", (ids[1],))
        c.commit()
        res = run_stage("coadd", conn=c, params={"outdir": str(tmp_path), "detect": "true"})
        assert res.counts["inputs_without_mjd_mid"] == [ids[1]] and "inputs_without_exptime" not in res.counts
        path, meta = c.execute("SELECT path, meta FROM image_product WHERE kind = 'coadd'").fetchone()
        assert meta["mjd_mid"] is None and meta["mjd_beg"] is None and meta["mjd_end"] is None
        assert meta["texptime"] == pytest.approx(600.0)  # both exposure times are known
        with fits.open(path) as hl:
            assert "MJD-MID" not in hl[0].header and "MJD-BEG" not in hl[0].header
        n, n_dated = c.execute("SELECT count(*), count(mjd_first) + count(mjd_last) FROM object "
                               "WHERE kind = 'coadd'").fetchone()
        assert n > 100 and n_dated == 0
        c.commit()
    finally:
        c.close()
