"""HATS export and LSDB: the real LCO frame's detections and its Gaia DR2 stars exported as HATS
collections (HEALPix-partitioned Parquet + margin caches, units kept), opened with LSDB on a
dask.distributed LocalCluster (2 workers) and cross-matched: the same pairs as catdb's xmatch stage.
"""
import numpy as np
import pytest

from tests.helpers import TEST_DATA

LCO = TEST_DATA / "lco"
pytest.importorskip("hats_import", reason="hats-import not installed (pip install catdb[hats])")
pytest.importorskip("lsdb", reason="lsdb not installed (pip install catdb[hats])")
pytestmark = pytest.mark.skipif(not (LCO / "ldac_test_catalog.fits").exists() or not (LCO / "GAIA-DR2.cat").exists(),
                                reason=f"real data missing: {LCO}/ldac_test_catalog.fits and GAIA-DR2.cat "
                                       "(tests/data/lco)")

RADIUS = 1.5  # arcsec: the xmatch stage's radius and LSDB's


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """One LocalCluster (2 worker processes, 1 thread each) for the module."""
    import logging

    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           local_directory=str(tmp_path_factory.mktemp("dask")), silence_logs=logging.ERROR)
    c = Client(cluster)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def db_url(lco_gaia):
    """The module's database: a copy of conftest's ``lco_gaia`` (the LCO frame and Gaia DR2 as 'gaia-dr2')."""
    return lco_gaia[0]


@pytest.fixture(scope="module")
def lco(db_url, lco_gaia):
    """The LDAC frame and Gaia DR2 (``lco_gaia``), and the xmatch stage run (radius RADIUS)."""
    from catdb.db.engine import connect
    from catdb.stages import run_stage

    eid = lco_gaia[1]
    with connect(db_url) as c:
        res = run_stage("xmatch", conn=c, where=f"e.id = {eid}", params={"refcat": "gaia-dr2",
                                                                          "radius": str(RADIUS)})
        c.commit()
    return {"exposure_id": eid, "xmatch_run": res.run_id}


@pytest.fixture(scope="module")
def exported(db_url, lco, client, tmp_path_factory):
    """Detections and the Gaia stars as HATS collections, small pixels so the field spans several.

    Several chunk files per table (``chunk_rows``), so hats-import maps and splits more than one input.
    ``highest_order=8`` (13.7' pixels) instead of the default 10 keeps hats-import's binning step short.
    """
    from catdb.db.engine import connect
    from catdb.export.hats import export_hats

    out = tmp_path_factory.mktemp("hats")
    with connect(db_url) as c:
        det = export_hats(c, out, "detection", where=f"exposure_id = {lco['exposure_id']}",
                          pixel_threshold=500, highest_order=8, margin_arcsec=5, client=client, chunk_rows=400)
        ref = export_hats(c, out, "refcat", where="catalog = 'gaia-dr2'", name="gaia-dr2",
                          pixel_threshold=100, highest_order=8, margin_arcsec=5, client=client, chunk_rows=100)
    return out, det, ref


def test_hats_catalogues_hold_every_row_with_units(db_url, lco, exported):
    import hats
    import pyarrow.parquet as pq

    from catdb.db.engine import connect

    out, det, ref = exported
    with connect(db_url) as c:
        n_det = c.execute("SELECT count(*) FROM detection WHERE exposure_id = %s",
                          (lco["exposure_id"],)).fetchone()[0]
        n_ref = c.execute("SELECT count(*) FROM refcat_source WHERE catalog = 'gaia-dr2'").fetchone()[0]
    assert (det.n_rows, ref.n_rows) == (n_det, n_ref) == (974, 249)
    # the pixel threshold split the field: several HEALPix pixels, each at most the threshold
    assert det.n_partitions >= 3 and ref.n_partitions >= 3
    # streamed through several chunk files of at most chunk_rows rows (974 / 400, 249 / 100)
    assert (det.n_chunks, ref.n_chunks) == (3, 3)
    for res, thr in ((det, 500), (ref, 100)):
        cat = hats.read_hats(res.catalog_path)
        sizes = [pq.ParquetFile(hats.io.pixel_catalog_file(cat.catalog_base_dir, p).path).metadata.num_rows
                 for p in cat.get_healpix_pixels()]
        assert sum(sizes) == res.n_rows and max(sizes) <= thr
        assert res.n_margin_rows > 0 and res.margin_arcsec == pytest.approx(5)
        # units and descriptions from the column comments, in every pixel file's schema
        schema = pq.read_schema(hats.io.pixel_catalog_file(cat.catalog_base_dir, cat.get_healpix_pixels()[0]).path)
        assert schema.field("ra").metadata[b"unit"] == b"deg"
        assert schema.field("dec").metadata[b"unit"] == b"deg"
        assert cat.catalog_info.catdb_table in ("detection", "refcat_source")
    schema = pq.read_schema(hats.io.paths.get_common_metadata_pointer(det.catalog_path).path)
    assert schema.field("mag_auto").metadata[b"unit"] == b"mag"
    assert schema.field("fwhm").metadata[b"unit"] == b"arcsec"
    assert b"FLUX_AUTO" in schema.field("flux_auto").metadata[b"description"]
    assert schema.field("mag_aper").type.list_size >= 1  # the aperture vector kept as a fixed-size list
    schema = pq.read_schema(hats.io.paths.get_common_metadata_pointer(ref.catalog_path).path)
    assert schema.field("pmra").metadata[b"unit"] == b"mas/yr"
    # no temporary chunk files left beside the collections
    assert sorted(p.name for p in out.iterdir()) == ["detection", "gaia-dr2"]


def test_lsdb_crossmatch_on_localcluster_equals_xmatch_stage(db_url, lco, exported, client):
    import lsdb
    from dask.distributed import get_task_stream

    from catdb.db.engine import connect

    out, det, ref = exported
    dets = lsdb.open_catalog(det.collection_path)
    stars = lsdb.open_catalog(ref.collection_path)
    assert stars.margin is not None and dets.margin is not None
    with get_task_stream(client) as ts:  # computed by the LocalCluster's workers
        m = dets.crossmatch(stars, n_neighbors=1, radius_arcsec=RADIUS, require_right_margin=True,
                            suffixes=("_det", "_ref")).compute()
    assert len({t["worker"] for t in ts.data}) >= 1 and len(ts.data) >= det.n_partitions
    got = sorted(zip(m["id_det"].astype(int), m["id_ref"].astype(int)))
    with connect(db_url) as c:
        want = c.execute("SELECT detection_id, ref_id, sep_arcsec FROM xmatch WHERE stage_run_id = %s "
                         "ORDER BY detection_id", (lco["xmatch_run"],)).fetchall()
    assert len(want) > 50
    assert got == [(a, b) for a, b, _ in want]
    sep = m.sort_values("id_det")["_dist_arcsec"].to_numpy()
    np.testing.assert_allclose(sep, [s for *_, s in want], atol=1e-6)


def test_cli_export_hats_two_origins_combined_in_lsdb(db_url, lco, exported, client, tmp_path):
    """Two "servers" each export their half of the stars (``catdb export hats --origin``, here on the
    module's cluster via --scheduler, and the Python API): LSDB concatenates them and the detections
    cross-match the union exactly as the xmatch stage matched the whole catalogue."""
    import lsdb
    import pyarrow.parquet as pq
    from click.testing import CliRunner

    from catdb.cli.main import cli
    from catdb.db.engine import connect
    from catdb.export.hats import export_hats

    args = ["--db", db_url, "export", "hats", str(tmp_path), "--table", "refcat", "--where",
            "catalog = 'gaia-dr2' AND dec > -9.8", "--name", "north", "--origin", "node-a", "--pixel-threshold",
            "100", "--highest-order", "8", "--margin", "3", "--scheduler", client.scheduler.address]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    with connect(db_url) as c:
        south = export_hats(c, tmp_path, "refcat", where="catalog = 'gaia-dr2' AND dec <= -9.8", name="south",
                            origin="node-b", pixel_threshold=100, highest_order=8, margin_arcsec=3, client=client)
        ids = {o: [i for (i,) in c.execute(f"SELECT id FROM refcat_source WHERE catalog = 'gaia-dr2' AND dec {w} "
                                            "ORDER BY id").fetchall()] for o, w in (("node-a", "> -9.8"),
                                                                                   ("node-b", "<= -9.8"))}
    assert south.n_rows == len(ids["node-b"]) and len(ids["node-a"]) + len(ids["node-b"]) == 249
    north = lsdb.open_catalog(tmp_path / "north")
    assert north.margin is not None and north.margin.hc_structure.catalog_info.margin_threshold == pytest.approx(3)
    schema = pq.read_schema(north.hc_structure.catalog_base_dir / "dataset" / "_common_metadata")
    assert schema.field("parallax").metadata[b"unit"] == b"mas" and schema.names[:2] == ["_healpix_29", "origin"]
    assert north.hc_structure.catalog_info.catdb_origin == "node-a"
    both = north.concat(lsdb.open_catalog(tmp_path / "south"))
    df = both.compute()
    for o in ("node-a", "node-b"):
        assert sorted(df.loc[df["origin"] == o, "id"].astype(int)) == ids[o]
    dets = lsdb.open_catalog(exported[1].collection_path)
    m = dets.crossmatch(both, n_neighbors=1, radius_arcsec=RADIUS, suffixes=("_det", "_ref")).compute()
    with connect(db_url) as c:
        want = c.execute("SELECT detection_id, ref_id FROM xmatch WHERE stage_run_id = %s ORDER BY 1",
                         (lco["xmatch_run"],)).fetchall()
    assert sorted(zip(m["id_det"].astype(int), m["id_ref"].astype(int))) == [tuple(w) for w in want]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["north", "south"]  # no chunk files left
    r = CliRunner().invoke(cli, args)
    assert r.exit_code != 0 and "exists" in r.output and "--overwrite" in r.output


def test_refused_inputs(db_url, tmp_path):
    from catdb.db.engine import connect
    from catdb.errors import CatdbError
    from catdb.export.hats import export_hats

    with connect(db_url) as c:
        with pytest.raises(CatdbError, match="unknown table 'exposure'.*detection"):
            export_hats(c, tmp_path, "exposure")
        with pytest.raises(CatdbError, match="no rows"):
            export_hats(c, tmp_path, "object", where="id < 0")
        with pytest.raises(CatdbError, match="name 'a/b'"):
            export_hats(c, tmp_path, "refcat", name="a/b")
        # a position HATS cannot place stops the export, naming the count and the first id
        c.execute("CREATE TEMP TABLE _x AS SELECT 1::bigint AS id, 'NaN'::float8 AS ra, 0::float8 AS dec")
        from catdb.export.hats import stream_to_chunks
        from psycopg import sql

        with pytest.raises(CatdbError, match=r"1 rows .*no valid sky position \(first: id 1\)"):
            stream_to_chunks(c, sql.SQL("SELECT * FROM _x"), str(tmp_path), table="_x")
        c.rollback()
    assert not [p for p in tmp_path.iterdir() if p.name != "schema.parquet"]
