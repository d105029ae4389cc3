"""catdb refcat fetch: footprints -> VizieR cones (recorded responses, no network), region cache, retries."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from astropy.coordinates import SkyCoord
from astropy.table import Table
from click.testing import CliRunner

from catdb.cli.main import cli
from catdb.ingest import refcat_fetch
from catdb.ingest.load import ingest_catalogs
from catdb.ingest.refcat import read_table_any
from catdb.ingest.refcat_fetch import OfflineError, covered, fetch_refcat, merge_circles
from tests.helpers import TEST_DATA

#: stage suite: runs on the q3c extension and on catdb's SQL port (tests/conftest.py)
pytestmark = pytest.mark.spatial_backends

RECORDED = Path(__file__).parent / "data" / "recorded"
GAIA2 = RECORDED / "vizier_gaia2_I_345_lco.ecsv"
UCAC4 = RECORDED / "vizier_ucac4_I_322A_299.3+35.0.csv"
RESPONSES = {"I/345/gaia2": GAIA2, "I/322A/out": UCAC4}


class RecordedVizier:
    """Stands in for query_vizier: serves a recorded response, only the rows inside the cone."""

    def __init__(self):
        self.calls = []

    def __call__(self, catalog_id, center, radius, columns, row_limit=-1, column_filters=None, timeout=60.0):
        self.calls.append((catalog_id, tuple(center), radius, tuple(columns), column_filters))
        t = read_table_any(RESPONSES[catalog_id])
        if catalog_id == "I/322A/out":  # a real response: every column asked for by name is in it
            asked = [c for c in columns if c != "*"]
            assert set(asked) <= set(t.colnames), set(asked) - set(t.colnames)
        ra_col, dec_col = ("RA_ICRS", "DE_ICRS") if "RA_ICRS" in t.colnames else ("RAJ2000", "DEJ2000")
        sep = SkyCoord(t[ra_col], t[dec_col], unit="deg").separation(SkyCoord(*center, unit="deg")).deg
        t = t[sep < radius]
        for col, cond in (column_filters or {}).items():
            t = t[np.asarray(t[col], dtype=float) < float(cond.lstrip("<"))]
        return t


@pytest.fixture
def lco_db(fresh_db_url, monkeypatch):
    """A fresh database with the LCO frame ingested, and the recorded VizieR in place of the network."""
    fake = RecordedVizier()
    monkeypatch.setattr(refcat_fetch, "query_vizier", fake)
    with psycopg.connect(fresh_db_url) as conn:
        ingest_catalogs(conn, [TEST_DATA / "lco" / "ldac_test_catalog.fits"])
        yield conn, fake, fresh_db_url


def _one(conn, q, *a):
    with conn.transaction():
        return conn.execute(q, a).fetchone()


def test_fetch_writes_stars_records_region_second_fetch_is_cached(lco_db):
    conn, fake, url = lco_db
    ra0, dec0, rad0 = _one(conn, "SELECT ra_center, dec_center, radius FROM exposure")
    r = fetch_refcat(conn, "gaia-dr2", margin_arcmin=1.0)
    assert len(fake.calls) == 1 and r.n_fetched == 1 and r.n_cached == 0
    cat_id, center, radius, _, _ = fake.calls[0]
    assert cat_id == "I/345/gaia2" and radius == pytest.approx(rad0 + 1 / 60)
    assert center == pytest.approx((ra0, dec0))
    # the stars of the recorded response inside the footprint, each once, with the response's values
    rec = Table.read(GAIA2, format="ascii.ecsv")
    inside = SkyCoord(rec["RA_ICRS"], rec["DE_ICRS"]).separation(SkyCoord(ra0, dec0, unit="deg")).deg < radius
    n, n_ids, g, ep, err = _one(conn, "SELECT count(*), count(DISTINCT source_id), avg((mags->>'G')::float8), "
                                      "min(epoch), max(ra_err) FROM refcat_source WHERE catalog = 'gaia-dr2'")
    assert n == n_ids == inside.sum() == r.n_written and n > 100
    assert g == pytest.approx(float(np.mean(rec["Gmag"][inside])), rel=1e-6)
    assert ep == 2015.5 and 0 < err < 50  # mas, Gaia DR2 errors
    reg = _one(conn, "SELECT catalog, radius_deg, n_rows, n_new, service, query, stage_run_id FROM refcat_region")
    assert reg[0] == "gaia-dr2" and reg[1] == pytest.approx(radius) and reg[2] == reg[3] == n
    assert "VizieR" in reg[4] and "I/345/gaia2" in reg[5] and reg[6] == r.run_id
    run = _one(conn, "SELECT stage, status, counts, input_ids FROM stage_run WHERE id = %s", r.run_id)
    assert run[0] == "refcat-fetch" and run[1] == "ok" and run[2]["refcat_source"] == n and len(run[3]) == 1

    # second call: the same footprint is inside the recorded region: no query, nothing written, said so
    res = CliRunner().invoke(cli, ["--db", url, "-q", "refcat", "fetch", "--catalog", "gaia-dr2"])
    assert res.exit_code == 0, res.output
    assert len(fake.calls) == 1 and "nothing fetched" in res.output
    assert _one(conn, "SELECT count(*) FROM refcat_source")[0] == n
    assert _one(conn, "SELECT count(*) FROM refcat_region")[0] == 1

    # a region fetched without a magnitude limit covers any limited fetch of the same circle
    assert fetch_refcat(conn, "gaia-dr2", mag_limit=16).n_fetched == 0

    # a bigger area is not covered: fetched again, only the stars not stored yet are written
    r3 = fetch_refcat(conn, "gaia-dr2", margin_arcmin=6.0)
    assert r3.n_fetched == 1 and len(fake.calls) == 2
    big = inside | (SkyCoord(rec["RA_ICRS"], rec["DE_ICRS"]).separation(
        SkyCoord(ra0, dec0, unit="deg")).deg < fake.calls[1][2])
    n2, n2_ids = _one(conn, "SELECT count(*), count(DISTINCT source_id) FROM refcat_source")
    assert n2 == n2_ids == big.sum() > n and r3.n_written == n2 - n
    assert r3.circles[0][4] == big.sum()  # rows returned: the whole bigger cone

    # re-running replaces nothing and duplicates nothing: still one row per star after a fourth call
    fetch_refcat(conn, "gaia-dr2", margin_arcmin=3.0)
    assert _one(conn, "SELECT count(*) FROM refcat_source")[0] == n2 and len(fake.calls) == 2

    res = CliRunner().invoke(cli, ["--db", url, "refcat", "list"])
    assert res.exit_code == 0 and "gaia-dr2" in res.output and str(n2) in res.output


def test_mag_limit_region_does_not_cover_a_deeper_fetch(lco_db):
    conn, fake, _ = lco_db
    r = fetch_refcat(conn, "gaia-dr2", mag_limit=16.0)
    assert fake.calls[0][4] == {"Gmag": "<16"}
    n16 = _one(conn, "SELECT count(*), max((mags->>'G')::float8) FROM refcat_source")
    assert n16[0] == r.n_written > 10 and n16[1] < 16
    assert fetch_refcat(conn, "gaia-dr2", mag_limit=15.0).n_fetched == 0  # brighter: cached
    r2 = fetch_refcat(conn, "gaia-dr2")  # no limit: fetched, only the fainter stars are new
    assert r2.n_fetched == 1
    n, nid, fmin = _one(conn, "SELECT count(*), count(DISTINCT source_id), min((mags->>'G')::float8) FILTER "
                              "(WHERE stage_run_id = %s) FROM refcat_source", r2.run_id)
    assert n == nid == r.n_written + r2.n_written and fmin >= 16


def test_ucac4_cone_maps_the_real_vizier_columns(lco_db):
    conn, fake, url = lco_db
    res = CliRunner().invoke(cli, ["--db", url, "-q", "refcat", "fetch", "--catalog", "ucac4",
                                   "--cone", "299.59,35.20,0.1"])
    assert res.exit_code == 0, res.output
    assert fake.calls[0][0] == "I/322A/out" and fake.calls[0][2] == pytest.approx(0.1 + 1 / 60)
    n, ep, pm, eb, v = _one(conn, "SELECT count(*), min(epoch), max(abs(pmra)), "
                                  "percentile_cont(0.5) WITHIN GROUP (ORDER BY (mag_errs->>'B')::float8), "
                                  "count(*) FILTER (WHERE mags ? 'V') FROM refcat_source WHERE catalog = 'ucac4'")
    assert n > 100 and ep == 2000.0 and 0 < pm < 1000 and v > 10
    assert eb < 0.2  # APASS errors of 0.01-mag units converted to mag
    assert _one(conn, "SELECT count(*) FROM refcat_source WHERE source_id LIKE '___-______'")[0] == n


def test_offline_retries_then_fails_cleanly(lco_db, monkeypatch):
    conn, _, url = lco_db
    attempts, delays = [], []

    def offline(*a, **k):
        attempts.append(a)
        raise ConnectionError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(refcat_fetch, "query_vizier", offline)
    monkeypatch.setattr(refcat_fetch, "_sleep", delays.append)
    with pytest.raises(OfflineError, match=r"cannot reach VizieR at .*Network is unreachable; nothing written"):
        fetch_refcat(conn, "gaia-dr3", retries=3, backoff=0.5)
    assert len(attempts) == 4 and delays == [0.5, 1.0, 2.0]  # exponential backoff
    assert _one(conn, "SELECT count(*) FROM refcat_source")[0] == 0
    assert _one(conn, "SELECT count(*) FROM refcat_region")[0] == 0
    status, err = _one(conn, "SELECT status, error FROM stage_run WHERE stage = 'refcat-fetch'")
    assert status == "failed" and "cannot reach VizieR" in err

    monkeypatch.setattr(refcat_fetch, "_sleep", lambda s: None)
    res = CliRunner().invoke(cli, ["--db", url, "refcat", "fetch", "--catalog", "ps1", "--retries", "1"])
    assert res.exit_code != 0 and "cannot reach VizieR at" in res.output and "nothing written" in res.output
    assert len(attempts) == 6
    assert _one(conn, "SELECT count(*) FROM refcat_source")[0] == 0


def test_bad_selection_and_parameters(lco_db):
    conn, fake, url = lco_db
    res = CliRunner().invoke(cli, ["--db", url, "refcat", "fetch", "--catalog", "gaia-dr2", "--where", "e.id < 0"])
    assert res.exit_code != 0 and "no science exposures match" in res.output
    res = CliRunner().invoke(cli, ["--db", url, "refcat", "fetch", "--catalog", "gaia-dr2", "--cone", "10,95,1"])
    assert res.exit_code != 0 and "RA,DEC,RADIUS" in res.output
    assert fake.calls == [] and _one(conn, "SELECT count(*) FROM refcat_source")[0] == 0


def test_merge_circles_and_covered():
    # three overlapping dithers and one distant field
    ra = np.array([10.0, 10.1, 10.2, 50.0])
    dec = np.array([20.0, 20.0, 20.05, -30.0])
    out = merge_circles(ra, dec, np.full(4, 0.15))
    assert len(out) == 2
    (cra, cdec, crad, m), (fra, fdec, frad, m2) = sorted(out, key=lambda c: c[0])
    assert sorted(m.tolist()) == [0, 1, 2] and m2.tolist() == [3] and (fra, fdec, frad) == (50.0, -30.0, 0.15)
    # the merged circle encloses every member circle
    sep = SkyCoord(ra[:3], dec[:3], unit="deg").separation(SkyCoord(cra, cdec, unit="deg")).deg
    assert np.all(sep + 0.15 <= crad + 1e-9) and crad < 0.4
    # a wrap at RA 0 merges too; circles too large when merged stay separate
    w = merge_circles([359.95, 0.05], [0.0, 0.0], [0.1, 0.1])
    assert len(w) == 1 and (w[0][0] < 0.01 or w[0][0] > 359.99)
    assert len(merge_circles([0, 1.5, 3.0], [0, 0, 0], [0.8] * 3, max_radius=1.0)) == 3
    regions = [(10.0, 20.0, 1.0, None), (50.0, -30.0, 0.5, 17.0)]
    assert covered(10.3, 20.0, 0.6, regions) == 0 and covered(10.3, 20.0, 0.8, regions) is None
    assert covered(50.0, -30.0, 0.2, regions) is None  # no limit asked, region limited to 17
    assert covered(50.0, -30.0, 0.2, regions, mag_limit=16.5) == 1


def test_exposure_set_selects_the_footprints(lco_db):
    conn, fake, _ = lco_db
    with conn.transaction():
        conn.execute("INSERT INTO exposure_set (name, exposure_id) SELECT 'lco', id FROM exposure")
    with pytest.raises(Exception, match="no exposure set named 'nope'.*lco"):
        fetch_refcat(conn, "gaia-dr2", exposures="nope")
    r = fetch_refcat(conn, "gaia-dr2", exposures="lco", margin_arcmin=0)
    assert len(fake.calls) == 1 and r.n_written > 100
    run = _one(conn, "SELECT params->>'exposures', input_count FROM stage_run WHERE id = %s", r.run_id)
    assert run == ("lco", 1)
