"""Bulk COPY: NULLs, arrays, jsonb, constants, row counts."""
import numpy as np

from catdb.db.copy import copy_table


def test_copy_detections_roundtrip(conn):
    eid = conn.execute("INSERT INTO exposure (path) VALUES ('copytest.fits') RETURNING id").fetchone()[0]
    n = 1000
    rng = np.random.default_rng(1)
    ra = rng.uniform(124, 125, n)
    mag = rng.normal(15, 1, n)
    mag[::10] = np.nan
    aper = rng.normal(10, 1, (n, 3))
    aper[5, 1] = np.nan
    cols = {"number": np.arange(1, n + 1), "ra": ra, "dec": np.full(n, 25.3), "mag_auto": mag,
            "flags": np.zeros(n, dtype=np.int16), "mag_aper": aper}
    got = copy_table(conn, "detection", cols, constants={"exposure_id": eid},
                     json_column="extra", json_values={"VIGNET_SUM": np.arange(n) * 0.5,
                                                       "NOTE": np.array(["a", 'b"q'] * (n // 2))})
    assert got == n
    rows = conn.execute("SELECT number, ra, mag_auto, mag_aper, extra FROM detection WHERE exposure_id = %s "
                        "ORDER BY number", (eid,)).fetchall()
    assert len(rows) == n
    assert rows[0][2] is None  # NaN -> NULL
    assert abs(rows[1][2] - mag[1]) < 1e-5
    assert abs(rows[3][1] - ra[3]) < 1e-9  # double precision kept to 1e-9 deg (~4 microarcsec)
    assert len(rows[5][3]) == 3 and np.isnan(rows[5][3][1])
    assert rows[1][4] == {"VIGNET_SUM": 0.5, "NOTE": 'b"q'}
    conn.rollback()


def test_fetch_arrays_matches_rows_in_query_order(conn):
    """fetch_arrays returns what a plain SELECT returns: same order, NULLs, unicode, big values."""
    import pytest

    from catdb.db.copy import fetch_arrays

    conn.execute("CREATE TEMP TABLE _f (k int, i bigint, x float8, s text)")
    rng = np.random.default_rng(5)
    n = 5000
    i = rng.integers(-2**62, 2**62, n)
    x = rng.normal(0, 1e3, n)
    s = np.array(["r", "g", "Hα", "", "z'"], dtype=object)[rng.integers(0, 5, n)]
    copy_table(conn, "_f", {"k": rng.permutation(n), "i": i, "x": x, "s": s})
    conn.execute("UPDATE _f SET x = NULL WHERE k % 7 = 0; UPDATE _f SET s = NULL WHERE k % 11 = 0")
    q = "SELECT k, i, x, s, k::float8 / 3 AS third FROM _f WHERE k >= %(lo)s ORDER BY k DESC"
    got = fetch_arrays(conn, q, {"lo": 10}, {"k": "int64", "i": "int64", "x": "float64", "s": "string",
                                              "third": "float64"})
    rows = conn.execute(q, {"lo": 10}).fetchall()
    assert len(got["k"]) == len(rows) == n - 10
    assert got["k"].dtype == np.int64 and got["k"].tolist() == [r[0] for r in rows]  # ORDER BY kept
    assert got["i"].tolist() == [r[1] for r in rows]  # 64-bit integers exact
    xs = np.array([np.nan if r[2] is None else r[2] for r in rows])
    np.testing.assert_array_equal(got["x"], xs)  # bit-exact doubles, NULL -> NaN
    assert got["s"].tolist() == [r[3] for r in rows]  # unicode, empty strings and NULL (None)
    np.testing.assert_array_equal(got["third"], [r[4] for r in rows])
    # an integer column with NULLs comes back as float with NaN; an empty selection as empty arrays
    conn.execute("UPDATE _f SET i = NULL WHERE k = 20")
    g = fetch_arrays(conn, "SELECT k, i FROM _f ORDER BY k", {}, {"k": "int64", "i": "int64"})
    assert np.isnan(g["i"][20]) and np.isfinite(np.delete(g["i"], 20)).all()
    e = fetch_arrays(conn, "SELECT k, s FROM _f WHERE k < 0", {}, {"k": "int64", "s": "string"})
    assert len(e["k"]) == 0 and len(e["s"]) == 0
    with pytest.raises(ValueError, match="'k'.*int32"):
        fetch_arrays(conn, "SELECT k FROM _f", {}, {"k": "int32"})
    conn.rollback()


def _detection_rows(conn, eid):
    return conn.execute("SELECT number, ra, dec, ra_err, x, flux_auto, mag_auto, flux_aper, mag_aper, flags, "
                        "imaflags, snr, extra, stage_run_id FROM detection WHERE exposure_id = %s ORDER BY number",
                        (eid,)).fetchall()


def test_binary_copy_stores_the_same_rows_as_csv(conn):
    """``copy_table(binary=True)`` on a real catalogue's columns: every value as the CSV path stores it.

    The columns are those ``load_detections`` builds from the real LCO FITS_1.0 catalogue (its split
    FLUX_APER1..n columns as ``real[]``, its unused columns in ``extra``), with NULLs, NaN inside an
    array, a NULL integer, a non-ASCII string and JSON metacharacters added.
    """
    from catdb.ingest.sextractor import detection_columns, read_catalog
    from tests.helpers import TEST_DATA

    cat = read_catalog(TEST_DATA / "lco" / "oracdr_test_catalog.fits")
    dc = detection_columns(cat)
    cols = {k: np.asarray(v) for k, v in dc.columns.items()}
    n = len(cols["number"])
    cols["mag_auto"] = cols["mag_auto"].copy()
    cols["mag_auto"][[0, 7]] = [np.nan, np.inf]
    cols["flux_aper"] = cols["flux_aper"].copy()
    cols["flux_aper"][3, 0] = np.nan
    cols["flags"] = np.where(cols["flags"] < 0, 0, cols["flags"]).astype(np.int64)
    im = np.zeros(n)
    im[2] = np.nan
    cols["imaflags"] = im
    extra = {k: np.asarray(v) for k, v in dc.extra.items() if np.asarray(v).ndim == 1}
    extra["NOTE"] = np.array(['é "q" \\ {', "plain"] * (n // 2) + ["x"] * (n % 2))
    ids = []
    for binary in (False, True):
        eid = conn.execute("INSERT INTO exposure (path) VALUES (%s) RETURNING id", (f"bin{binary}",)).fetchone()[0]
        got = copy_table(conn, "detection", cols, constants={"exposure_id": eid, "stage_run_id": None},
                         json_column="extra", json_values=extra, binary=binary)
        assert got == n
        ids.append(eid)
    csv_rows, bin_rows = _detection_rows(conn, ids[0]), _detection_rows(conn, ids[1])
    assert len(bin_rows) == n and cols["flux_aper"].shape[1] > 1
    for a, b in zip(csv_rows, bin_rows):
        for x, y in zip(a, b):
            if isinstance(x, list):
                assert np.array_equal(np.array(x, float), np.array(y, float), equal_nan=True)
            else:
                assert x == y
    assert bin_rows[0][6] is None and bin_rows[7][6] is None and bin_rows[2][10] is None
    assert np.isnan(bin_rows[3][7][0]) and bin_rows[0][12]["NOTE"] == 'é "q" \\ {'
    conn.rollback()


def test_binary_copy_refuses_out_of_range_and_falls_back_for_other_types(conn):
    import pytest

    from catdb.db.copy import copy_binary

    eid = conn.execute("INSERT INTO exposure (path) VALUES ('range') RETURNING id").fetchone()[0]
    with pytest.raises(ValueError, match="out of range"):
        copy_binary(conn, "detection", {"exposure_id": np.array([eid]), "number": np.array([2**40]),
                                        "ra": np.array([1.0]), "dec": np.array([2.0])})
    # a timestamptz column has no binary encoder here: nothing sent, None returned
    assert copy_binary(conn, "exposure", {"path": np.array(["p"], dtype=object),
                                          "ingested_at": np.array(["2020-01-01"], dtype=object)}) is None
    conn.rollback()
