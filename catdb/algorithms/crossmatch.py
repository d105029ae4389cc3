"""Cross-matching of positions on the sphere by a k-d tree on unit vectors.

Used by the ``xmatch`` stage (:mod:`catdb.stages.xmatch`, which fetches the positions from the
database in declination bands and writes the pairs with COPY); pure numpy/scipy.  The unit
vectors come from :func:`catdb.algorithms.sphere.unit_vectors`.  Speed measurements:
``bench/xmatch.py``.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from . import sphere

__all__ = ["kd_tree", "spatial_order", "match_unit_vectors"]


def kd_tree(vectors):
    """k-d tree of unit vectors, built for speed (sliding-midpoint splits, no node shrinking).

    Parameters
    ----------
    vectors : numpy.ndarray, shape (M, 3)

    Returns
    -------
    scipy.spatial.cKDTree
    """
    return cKDTree(vectors, balanced_tree=False, compact_nodes=False)


#: bits per axis of the Morton (Z-order) key of :func:`spatial_order` (cells of 2/2^21 ~ 0.2")
_MORTON_BITS = 21
#: masks spreading 21 bits of an axis to every third bit of a 63-bit key (magic-number interleave)
_MORTON_STEPS = ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                 (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249))


def spatial_order(vectors):
    """Permutation putting unit vectors in Z-order (Morton order of a 3-D grid), i.e. neighbours together.

    Queries of a k-d tree in this order visit the same nodes one after another, which keeps
    them in the CPU caches: at 10^6 random queries against 10^6 points this makes the 1"
    nearest-neighbour query about 4 times faster than in random order.

    Parameters
    ----------
    vectors : numpy.ndarray, shape (N, 3)
        Unit vectors (coordinates in [-1, 1]).

    Returns
    -------
    numpy.ndarray of int64, shape (N,)
        Indices sorting ``vectors`` by their Morton key.
    """
    top = (1 << _MORTON_BITS) - 1
    q = np.clip(((np.asarray(vectors, float) + 1.0) * (0.5 * (top + 1))).astype(np.int64), 0, top).astype(np.uint64)
    for shift, mask in _MORTON_STEPS:  # loop over the 5 interleave steps, on all rows at once
        q = (q | (q << np.uint64(shift))) & np.uint64(mask)
    return np.argsort(q[:, 0] | (q[:, 1] << np.uint64(1)) | (q[:, 2] << np.uint64(2)))


def match_unit_vectors(det, ref, radius_arcsec, mode="nearest", *, tree=None, workers=-1):
    """Pairs (detection, reference) within a radius, by a k-d tree on unit vectors.

    Parameters
    ----------
    det : numpy.ndarray, shape (N, 3)
        Unit vectors of the detections.
    ref : numpy.ndarray, shape (M, 3), or None
        Unit vectors of the counterparts (may be None when ``tree`` is given).
    radius_arcsec : float
        Match radius (arcsec); pairs strictly closer are kept (as ``q3c_join``).
    mode : {'nearest', 'all'}
        Nearest counterpart of each detection, or every counterpart within the radius.
    tree : scipy.spatial.cKDTree, optional
        :func:`kd_tree` of ``ref``, when already built (e.g. to match detections in blocks).
    workers : int
        Threads of the nearest-neighbour query (-1: all cores).

    Returns
    -------
    i, j : numpy.ndarray of int64, shape (K,)
        Indices into ``det`` and ``ref``, sorted by ``i`` then separation.
    rank : numpy.ndarray of int64, shape (K,)
        1 for the nearest counterpart of a detection, 2 for the next, ...

    Notes
    -----
    Chord length 2 sin(theta/2) is monotonic in the angle theta, so the Euclidean nearest
    neighbour on the unit sphere is the angular one (Bentley 1975, CACM 18, 509 for the
    k-d tree; scipy.spatial.cKDTree).
    """
    e = np.zeros(0, np.int64)
    if len(det) == 0 or (tree is None and (ref is None or len(ref) == 0)) or (tree is not None and tree.n == 0):
        return e, e, e
    chord = sphere.chord(radius_arcsec / 3600.0)
    if tree is None:
        tree = kd_tree(ref)
    if mode == "nearest":
        # queried in Z-order (cache locality), answers put back in the order of det
        order = spatial_order(det)
        d, j = np.empty(len(det)), np.empty(len(det), np.int64)
        d[order], j[order] = tree.query(det[order], k=1, distance_upper_bound=chord, workers=workers)
        ok = d < chord
        i = np.flatnonzero(ok).astype(np.int64)
        return i, j[ok].astype(np.int64), np.ones(len(i), np.int64)
    pairs = kd_tree(det).sparse_distance_matrix(tree, chord, output_type="ndarray")
    pairs = pairs[pairs["v"] < chord]
    order = np.lexsort((pairs["v"], pairs["i"]))
    i, j = pairs["i"][order].astype(np.int64), pairs["j"][order].astype(np.int64)
    first = np.r_[True, i[1:] != i[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(i)), 0))
    return i, j, np.arange(len(i)) - start + 1
