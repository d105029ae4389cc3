"""Geometry on the celestial sphere: unit vectors, directions, separations, chords.

The one home of these formulas in catdb (they were written out in several modules before).
Positions are ICRS right ascension and declination in degrees; vectors are Cartesian
``(x, y, z)`` with ``x`` towards (RA 0, Dec 0) and ``z`` towards the north pole.

* Separations of two positions use the Vincenty formula of
  :func:`astropy.coordinates.angular_separation` (accurate from 0 to 180 deg; the haversine
  formula loses precision near 180 deg); of two unit vectors, the equivalent
  ``atan2(|a x b|, a . b)``.
* k-d trees on unit vectors search by chord length ``2 sin(theta / 2)``, which is monotonic in
  the angle ``theta``: :func:`chord` and :func:`chord_to_arcsec` convert between the two.
"""
from __future__ import annotations

import numpy as np
from astropy.coordinates import angular_separation

__all__ = ["unit_vectors", "radec", "group_mean_direction", "separation_deg", "angular_sep_arcsec", "chord",
           "chord_to_arcsec"]


def unit_vectors(ra_deg, dec_deg):
    """Unit vectors of positions on the sphere.

    Parameters
    ----------
    ra_deg, dec_deg : array_like, shape (...)
        Right ascension and declination (deg); broadcast together.

    Returns
    -------
    numpy.ndarray, shape (..., 3)
        ``(cos dec cos ra, cos dec sin ra, sin dec)``; shape (N, 3) for 1-D input.
    """
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cd = np.cos(dec)
    return np.stack([cd * np.cos(ra), cd * np.sin(ra), np.sin(dec)], axis=-1)


def radec(vectors):
    """Right ascension and declination of vectors (not necessarily of unit length).

    Parameters
    ----------
    vectors : array_like, shape (..., 3)

    Returns
    -------
    ra, dec : numpy.ndarray, shape (...)
        Degrees, ``0 <= ra < 360``; ``dec = atan2(z, hypot(x, y))`` (exact near the poles).
        NaN-free for the zero vector (ra 0, dec 0), which has no direction: callers check the norm.
    """
    v = np.asarray(vectors, dtype=float)
    x, y, z = v[..., 0], v[..., 1], v[..., 2]
    return np.mod(np.degrees(np.arctan2(y, x)), 360.0), np.degrees(np.arctan2(z, np.hypot(x, y)))


def group_mean_direction(ra_deg, dec_deg, group, n_groups=None):
    """Mean direction of the positions of each group (normalised sum of their unit vectors).

    Parameters
    ----------
    ra_deg, dec_deg : array_like, shape (N,)
        Positions (deg).
    group : array_like of int, shape (N,)
        Group index (0..n_groups-1) of every position.
    n_groups : int, optional
        Number of groups (default ``max(group) + 1``).

    Returns
    -------
    ra, dec : numpy.ndarray, shape (n_groups,)
        Degrees; (0, 0) for a group without members.

    Notes
    -----
    The mean of unit vectors (Fisher, Lewis & Embleton 1987, "Statistical analysis of spherical
    data", sect. 3.2.1) has no wrap-around problem at RA 0/360 nor at the poles.
    """
    g = np.asarray(group, dtype=np.int64)
    n = int(g.max()) + 1 if n_groups is None else int(n_groups)
    v = unit_vectors(np.asarray(ra_deg, dtype=float), np.asarray(dec_deg, dtype=float))
    return radec(np.column_stack([np.bincount(g, v[:, k], n) for k in range(3)]))


def separation_deg(ra1, dec1, ra2, dec2):
    """Great-circle separation of positions (deg); broadcasts.

    Vincenty formula, :func:`astropy.coordinates.angular_separation` (exact at all separations).

    Parameters
    ----------
    ra1, dec1, ra2, dec2 : array_like
        Degrees.

    Returns
    -------
    numpy.ndarray or float
        Separation (deg), 0 to 180.
    """
    return np.degrees(angular_separation(np.radians(ra1), np.radians(dec1), np.radians(ra2), np.radians(dec2)))


def angular_sep_arcsec(a, b):
    """Angle between unit vectors, atan2(|a x b|, a . b), accurate from 0 to 180 deg.

    Parameters
    ----------
    a, b : numpy.ndarray, shape (N, 3)

    Returns
    -------
    numpy.ndarray, shape (N,)
        Separation (arcsec).
    """
    cr = np.linalg.norm(np.cross(a, b), axis=1)
    return np.degrees(np.arctan2(cr, np.einsum("ij,ij->i", a, b))) * 3600.0


def chord(radius_deg):
    """Chord length ``2 sin(theta / 2)`` on the unit sphere of an angle ``theta`` (deg; at most 180)."""
    return 2.0 * np.sin(np.radians(np.minimum(radius_deg, 180.0)) / 2.0)


def chord_to_arcsec(d):
    """Angle (arcsec) of a chord length ``d`` on the unit sphere, ``2 arcsin(d / 2)`` (``d`` clipped to 0..2)."""
    return np.degrees(2.0 * np.arcsin(np.clip(np.asarray(d, dtype=float) / 2.0, 0.0, 1.0))) * 3600.0
