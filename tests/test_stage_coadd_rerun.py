"""Stage ``coadd``: quality selection, re-run replacement and clear errors (two small real frames)."""
from __future__ import annotations

import pytest

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
