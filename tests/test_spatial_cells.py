"""q3c cells as sky partitions (catdb.spatial.cells) against q3c itself in PostgreSQL."""
import numpy as np
import pytest

from catdb.spatial import cells


def _random_sky(rng, n):
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return ra, dec


def _xyz(ra, dec):
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _ipix(conn, ra, dec):
    rows = conn.execute("SELECT q3c_ang2ipix(r, d) FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY "
                        "AS t(r, d, i) ORDER BY i", (ra.tolist(), dec.tolist())).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


@pytest.mark.parametrize("level", [3, 6, 10])
def test_points_lie_in_the_cell_q3c_gives_them(conn, level):
    rng = np.random.default_rng(level)
    ra, dec = _random_sky(rng, 3000)
    # and points on and near the cube's edges and the poles
    ra = np.concatenate([ra, [45.0, 135.0, 0.0, 10.0, 200.0, 315.0], rng.uniform(0, 360, 50)])
    dec = np.concatenate([dec, [35.26, -35.26, 89.9999, -89.9999, 0.0, 45.0], rng.uniform(-0.01, 0.01, 50)])
    cell = _ipix(conn, ra, dec) >> (2 * (30 - level))
    lo, hi = cells.cell_range(cell, level)
    ip = _ipix(conn, ra, dec)
    assert np.all((lo <= ip) & (ip <= hi))
    nrm = cells.edge_normals(cells.cell_corners(cell, level))
    xyz = _xyz(ra, dec)
    inside = np.einsum("nij,nj->ni", nrm, xyz).min(axis=1)
    assert inside.min() > -1e-12  # every point is inside the cell q3c put it in
    # and outside the neighbouring cells: the cell of a shifted point is the one whose planes hold it
    other = (cell + 1) % (6 << (2 * level))
    out = np.einsum("nij,nj->ni", cells.edge_normals(cells.cell_corners(other, level)), xyz).min(axis=1)
    assert np.all(out < 1e-12)


def test_dilated_polygon_holds_the_margin(conn):
    """Points within the margin of a cell are inside q3c_poly_query's polygon; far ones are not."""
    rng = np.random.default_rng(5)
    margin = 20 / 3600
    for level in (4, 9, 12):
        for cell in rng.choice(6 << (2 * level), 4, replace=False):
            nrm = cells.edge_normals(cells.cell_corners([cell], level))[0]
            poly = cells.dilated_polygon(nrm, 1.5 * margin)
            corners = cells.cell_corners([cell], level)[0]
            c = corners.mean(axis=0)
            c /= np.linalg.norm(c)
            size = np.degrees(np.arccos(np.clip(corners @ c, -1, 1))).max()
            # points scattered over the cell and 3 margins around it (tangent-plane offsets)
            ra_c = np.degrees(np.arctan2(c[1], c[0]))
            dec_c = np.degrees(np.arcsin(c[2]))
            e = np.cross([0, 0, 1.0], c) if abs(c[2]) < 0.999 else np.array([1.0, 0, 0])
            e /= np.linalg.norm(e)
            nn = np.cross(c, e)
            off = np.radians(rng.uniform(-1, 1, (20000, 2)) * (size + 3 * margin))
            v = c + off[:, :1] * e + off[:, 1:] * nn
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            ra = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360
            dec = np.degrees(np.arcsin(v[:, 2]))
            depth = cells.plane_distance(nrm, v)
            got = np.array([r[0] for r in conn.execute(
                "SELECT q3c_poly_query(r, d, %s::float8[]) FROM unnest(%s::float8[], %s::float8[]) "
                "WITH ORDINALITY AS t(r, d, i) ORDER BY i", (poly.ravel().tolist(), ra.tolist(), dec.tolist()))])
            near = depth >= -margin
            assert near.sum() > 1000 and got[near].all(), (level, cell, ra_c, dec_c)
            assert not got[depth < -2 * margin].any()


def test_adaptive_cells_cover_every_fine_cell_once():
    rng = np.random.default_rng(3)
    fine_level = 10
    # a dense clump and a sparse spread
    fine = np.unique(np.concatenate([rng.integers(0, 6 << 20, 3000),
                                     (5 << 20) * 0 + 123456 + rng.integers(0, 200, 300)]))
    counts = rng.integers(1, 500, fine.size)
    counts[(fine >= 123456) & (fine < 123656)] = 20000
    c, lv, n = cells.adaptive_cells(fine, counts, fine_level, 100_000)
    assert n.sum() == counts.sum() and np.all((n <= 100_000) | (lv == fine_level))
    lo, hi = cells.cell_range(c, lv)
    flo, _ = cells.cell_range(fine, fine_level)
    where = np.searchsorted(lo, flo, side="right") - 1
    assert np.all(where >= 0) and np.all(flo <= hi[where])  # each fine cell in one partition
    assert np.all(lo[1:] > hi[:-1])  # disjoint, sorted
    assert lv.min() >= cells.MIN_LEVEL and lv.max() > 5
    with pytest.raises(ValueError):
        cells.adaptive_cells(fine, counts, 2, 10)
