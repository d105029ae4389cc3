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
