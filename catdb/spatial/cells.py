"""Cells of q3c's quad-tree cube as sky partitions: geometry and adaptive splitting.

q3c (Koposov & Bartunov 2006, ASP Conf. Ser. 351, 735; ``q3cube.c``, and catdb's port
``catdb/sql/q3c_compat.sql``) projects the sphere gnomonically onto the six faces of a cube and
numbers the 2^30 x 2^30 pixels of a face by a Morton code (x bits at even, y bits at odd
positions) plus ``face * 2^60``.  Dropping low bits gives the cells of a quad tree: the cell of
*level* ``L`` (0 = a whole face, 30 = one pixel) holding ``ipix`` is ``ipix >> 2 (30 - L)``, a
square of ``2^(30-L)`` x ``2^(30-L)`` pixels of one face, and it covers the contiguous range
:func:`cell_range` of ``q3c_ang2ipix`` values, which a B-tree index on ``q3c_ang2ipix(ra, dec)``
reads as one range.  The projection is gnomonic, so the edges of a cell are great-circle
arcs: a cell is a convex spherical quadrilateral, described here by its corners and the inward
normals of its four edge planes.

Used by the ``associate`` stage to work one sky partition at a time: :func:`adaptive_cells`
splits the sky into cells holding at most a given number of rows, :func:`dilated_polygon` gives
a polygon (for ``q3c_poly_query``) that contains every point within a margin of a cell, and
:func:`plane_distance` tells how deep inside the dilated cell a point lies.
"""
from __future__ import annotations

import numpy as np

#: bits of the Morton code of one face (2 x 30)
_FACE_SHIFT = 60
#: finest level (one q3c pixel)
MAX_LEVEL = 30
#: coarsest level used for partitions: a level-3 cell spans at most ~14 deg (q3c_poly_query
#: refuses polygons much wider than ~23 deg; a level-2 cell reaches ~27 deg at a face centre)
MIN_LEVEL = 3


def _compact(m):
    """The even bits of ``m`` (uint64) packed into the low half (inverse Morton interleave)."""
    m = m & np.uint64(0x5555555555555555)
    for shift, mask in ((1, 0x3333333333333333), (2, 0x0F0F0F0F0F0F0F0F), (4, 0x00FF00FF00FF00FF),
                        (8, 0x0000FFFF0000FFFF), (16, 0x00000000FFFFFFFF)):
        m = (m | (m >> np.uint64(shift))) & np.uint64(mask)
    return m


def cell_range(cell, level):
    """First and last ``q3c_ang2ipix`` value of the cells ``cell`` of level ``level``.

    Parameters
    ----------
    cell : int or array_like of int
        ``ipix >> 2 (30 - level)``.
    level : int or array_like of int
        0 (a cube face) to 30 (a pixel).

    Returns
    -------
    lo, hi : int64 or ndarray of int64
        Inclusive bounds.
    """
    shift = 2 * (MAX_LEVEL - np.asarray(level, dtype=np.int64))
    c = np.asarray(cell, dtype=np.int64)
    return c << shift, ((c + 1) << shift) - 1


def _face_vectors(face, X, Y):
    """Unit vectors of face coordinates ``X``, ``Y`` in [-1, 1] (inverse of q3c's projection)."""
    face = np.asarray(face)
    one = np.ones_like(X)
    # faces 1-4: the plane x = 1 rotated by 90 (face - 1) deg about the pole (q3c_ang2ipix_xy)
    a = np.radians(90.0 * (face - 1))
    eq = np.stack([np.cos(a) - np.sin(a) * X, np.sin(a) + np.cos(a) * X, Y], axis=-1)
    north = np.stack([-Y, X, one], axis=-1)   # face 0: x0 = sin(ra) cot(dec), y0 = -cos(ra) cot(dec)
    south = np.stack([Y, X, -one], axis=-1)   # face 5: x0 = -sin(ra) cot(dec), y0 = -cos(ra) cot(dec)
    v = np.where((face == 0)[..., None], north, np.where((face == 5)[..., None], south, eq))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def cell_corners(cell, level):
    """Corners of q3c cells as unit vectors, in order around each cell.

    Parameters
    ----------
    cell : int or array_like of int, shape (n,)
        Cell numbers at ``level`` (``q3c_ang2ipix(ra, dec) >> 2 (30 - level)``).
    level : int
        0 to 30.

    Returns
    -------
    ndarray, shape (n, 4, 3)
        Corners (x0, y0), (x1, y0), (x1, y1), (x0, y1) of each cell on its face, as ICRS unit
        vectors.
    """
    level = int(level)
    if not 0 <= level <= MAX_LEVEL:
        raise ValueError(f"level must be 0..30, got {level}")
    c = np.atleast_1d(np.asarray(cell, dtype=np.int64)).astype(np.uint64)
    bits = 2 * level
    face = (c >> np.uint64(bits)).astype(np.int64) if bits < 64 else np.zeros(c.shape, np.int64)
    morton = c & np.uint64((1 << bits) - 1)
    ix = _compact(morton).astype(np.float64)
    iy = _compact(morton >> np.uint64(1)).astype(np.float64)
    n = float(1 << level)
    x0, x1, y0, y1 = ix / n, (ix + 1) / n, iy / n, (iy + 1) / n
    xs = np.stack([x0, x1, x1, x0], axis=-1) * 2 - 1
    ys = np.stack([y0, y0, y1, y1], axis=-1) * 2 - 1
    return _face_vectors(face[:, None], xs, ys)


def edge_normals(corners):
    """Unit normals of the edge planes of convex cells, pointing inwards.

    Parameters
    ----------
    corners : ndarray, shape (n, 4, 3)
        From :func:`cell_corners`.

    Returns
    -------
    ndarray, shape (n, 4, 3)
        ``normals[:, i]`` is the plane of the edge from corner ``i`` to corner ``i + 1``; a
        point ``v`` is inside the cell when ``normals @ v >= 0`` for all four.
    """
    nxt = np.roll(corners, -1, axis=1)
    nrm = np.cross(corners, nxt)
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    centre = corners.sum(axis=1)
    sign = np.sign(np.einsum("nij,nj->ni", nrm, centre))
    return nrm * sign[..., None]


def plane_distance(normals, xyz):
    """Smallest signed angle (deg) from points to the four edge planes of one cell.

    Positive inside the cell; a point at ``plane_distance >= -m`` lies within the cell dilated
    by ``m`` degrees edge by edge, which holds every point within ``m`` of the cell (the angle
    to a great circle changes by at most the angle moved).

    Parameters
    ----------
    normals : ndarray, shape (4, 3)
        One cell's :func:`edge_normals`.
    xyz : ndarray, shape (N, 3)
        Unit vectors.

    Returns
    -------
    ndarray, shape (N,)
    """
    return np.degrees(np.arcsin(np.clip(xyz @ normals.T, -1, 1))).min(axis=1)


def dilated_polygon(normals, margin_deg):
    """Great-circle polygon containing every point within ``margin_deg`` of a cell.

    The vertices are where the planes of adjacent edges, each moved outwards by
    ``margin_deg`` (``n . v = -sin(margin)``, small circles), meet.  Between two vertices
    the polygon's great-circle edge runs outside the small circle (a cap smaller than a
    hemisphere is convex), so the polygon contains the dilated cell of :func:`plane_distance`.

    Parameters
    ----------
    normals : ndarray, shape (4, 3)
        One cell's :func:`edge_normals`.
    margin_deg : float
        Margin (deg), small against the cell.

    Returns
    -------
    ndarray, shape (4, 2)
        (RA, Dec) of the vertices in degrees, in order around the cell.
    """
    s = np.sin(np.radians(margin_deg))
    out = []
    for i in range(4):  # loop over the four corners
        n1, n2 = normals[i - 1], normals[i]  # corner i joins edges i-1 and i
        c = float(n1 @ n2)
        alpha = -s / (1.0 + c)
        axis = np.cross(n1, n2)
        gamma = np.sqrt(max(1.0 - 2.0 * s * s / (1.0 + c), 0.0)) / np.linalg.norm(axis)
        v1 = alpha * (n1 + n2) + gamma * axis
        v2 = alpha * (n1 + n2) - gamma * axis
        # the right one of the two intersections lies inside the other two (moved) planes
        v = v1 if (normals @ v1).min() > (normals @ v2).min() else v2
        out.append(v)
    v = np.array(out)
    ra = np.degrees(np.arctan2(v[:, 1], v[:, 0])) % 360.0
    dec = np.degrees(np.arcsin(np.clip(v[:, 2], -1, 1)))
    return np.column_stack([ra, dec])


def adaptive_cells(fine_cells, counts, fine_level, max_count, min_level=MIN_LEVEL):
    """Split the sky into q3c cells of at most ``max_count`` rows (a quad tree, coarsest first).

    A cell of level ``min_level`` or finer is kept whole when it holds at most ``max_count``
    rows; otherwise its four children are examined.  Cells of ``fine_level`` are kept
    whatever they hold (a single fine cell is the smallest partition).

    Parameters
    ----------
    fine_cells : array_like of int, shape (n,)
        Distinct cells of ``fine_level`` holding rows (``q3c_ang2ipix >> 2 (30 - fine_level)``).
    counts : array_like of int, shape (n,)
        Rows per fine cell.
    fine_level : int
        Level of ``fine_cells`` (>= ``min_level``).
    max_count : int
        Most rows per partition (> 0).

    Returns
    -------
    cells : ndarray of int64, shape (k,)
    levels : ndarray of int64, shape (k,)
    n : ndarray of int64, shape (k,)
        The partitions (cell number at its level) and their rows; every fine cell lies in
        exactly one partition.  Sorted by position along q3c's curve.
    """
    fine = np.asarray(fine_cells, dtype=np.int64)
    cnt = np.asarray(counts, dtype=np.int64)
    if fine.shape != cnt.shape:
        raise ValueError("fine_cells and counts differ in shape")
    if not min_level <= fine_level <= MAX_LEVEL or max_count < 1:
        raise ValueError(f"need {min_level} <= fine_level <= 30 and max_count >= 1")
    todo = np.ones(fine.size, dtype=bool)
    cells, levels, ns = [], [], []
    for level in range(min_level, fine_level + 1):  # loop over the levels of the tree
        if not todo.any():
            break
        parent = fine[todo] >> (2 * (fine_level - level))
        uniq, inv = np.unique(parent, return_inverse=True)
        tot = np.bincount(inv, weights=cnt[todo]).astype(np.int64)
        leaf = (tot <= max_count) | (level == fine_level)
        cells.append(uniq[leaf])
        levels.append(np.full(int(leaf.sum()), level, dtype=np.int64))
        ns.append(tot[leaf])
        idx = np.flatnonzero(todo)
        todo[idx[leaf[inv]]] = False
    cells, levels, ns = (np.concatenate(x) if x else np.zeros(0, np.int64) for x in (cells, levels, ns))
    lo = cells << (2 * (MAX_LEVEL - levels))
    order = np.argsort(lo, kind="stable")
    return cells[order], levels[order], ns[order]
