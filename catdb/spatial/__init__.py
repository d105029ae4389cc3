"""Spatial SQL for catdb: q3c, or catdb's SQL port of q3c where the extension is missing.

Public API (see :mod:`catdb.spatial.sql`): :func:`install`, :func:`backend`,
:func:`ipix_index`, :func:`cone`, :func:`ellipse`, :func:`polygon` (and their
``*_condition`` fragments), :func:`pair_join`, :func:`nearest_join`, :func:`pm_join`.

The SQL port (``catdb/sql/q3c_compat.sql``) defines q3c 2.0's functions with the same
names, argument order and results: ``q3c_ang2ipix`` (identical values), ``q3c_dist``,
``q3c_sindist``, ``q3c_dist_pm``, ``q3c_sindist_pm``, ``q3c_radial_query``,
``q3c_join``, ``q3c_join_pm``, ``q3c_ellipse_query``, ``q3c_ellipse_join``,
``q3c_in_ellipse``, ``q3c_poly_query``, ``q3c_in_poly`` (array and polygon forms),
``q3c_version`` and the pre-filter iterators.  Known differences from the C extension:

* The pixel ranges of the pre-filter (``q3c_radial_query_it``, ``q3c_nearby_it`` ...) are a
  different conservative cover, so those helper functions return other numbers; queries
  return the same rows because the ranges are ANDed with the same exact test.
* ``q3c_version()`` returns ``text`` ``'2.0.0-catdb-sql'`` (the extension: cstring ``2.0.0``).
* Not ported: ``q3c_ipix2ang``, ``q3c_pixarea``, ``q3c_ipixcenter``, the selectivity
  operator ``==<<>>==`` (its NULL effect in the join wrappers is kept).
* Speed: ``q3c_ang2ipix`` is PL/pgSQL (~7 us per call: index builds ~4x slower); each
  outer row of a join computes its cover in PL/pgSQL (~1 ms).  Cones are within ~2x.
* Rows with |dec| > 90 or arithmetic overflow (|ra| ~ 1e308) are outside q3c's domain;
  results there are not guaranteed identical.
"""
from catdb.spatial.sql import (  # noqa: F401
    Fragment, backend, compat_script, cone, cone_condition, ellipse, ellipse_condition,
    install, ipix_index, nearest_join, pair_join, pm_join, polygon, polygon_condition,
)

__all__ = [
    "Fragment", "backend", "compat_script", "cone", "cone_condition", "ellipse",
    "ellipse_condition", "install", "ipix_index", "nearest_join", "pair_join", "pm_join",
    "polygon", "polygon_condition",
]
