"""Stage ``xmatch``: cross-match detections with a reference catalogue or another detection set.

For the detections of the selected exposures (optionally only ``flags <= flags_max`` and
``snr >= snr_min``) it finds the counterparts within ``radius`` arcsec in

* a reference catalogue of ``refcat_source`` (``refcat=gaia-dr2``), optionally with the
  stars moved by their proper motion to each exposure's epoch (``use_pm=true``), or
* another detection set (``refcat="detections:<SQL condition on exposure e>"``): the
  detections of the exposures matching that condition, except the selected exposures
  themselves (no detection is matched to its own exposure),

and writes one ``xmatch`` row per pair: the nearest counterpart only (``mode=nearest``,
``rank`` 1) or every counterpart within the radius (``mode=all``, ``rank`` 1 = nearest).

How (measured in ``bench/xmatch.py``, which prints these phases): the selected detections are
split into declination bands of at most ``band_rows`` rows (edges at dec quantiles); for each
band the counterparts inside the band widened by the radius (and the largest proper-motion
displacement) are fetched (:func:`catdb.db.copy.fetch_arrays`: one row of binary aggregates
read by numpy, no row objects), their k-d tree on unit vectors
(:func:`catdb.algorithms.crossmatch.kd_tree`) is built in a thread while the band's detections
are fetched, and the detections are matched in blocks of ``_BLOCK`` rows
(:func:`~catdb.algorithms.crossmatch.match_unit_vectors`; chord distance 2 sin(theta/2) is
monotonic in the angle, so the nearest neighbour is the angular nearest neighbour and the radius
test is exact).  The queries of a block go to the tree in Z-order
(:func:`~catdb.algorithms.crossmatch.spatial_order`), neighbours one after
another, so the tree's nodes stay in the CPU caches (4x faster than in table order).  Each
block's pairs go to the server as PostgreSQL binary COPY tuples built by numpy
(:func:`xmatch_copy_rows`) through a writer thread, so the server stores one block while the
next is matched.

With ``bulk_load`` (auto: when ``xmatch`` holds at most ``_BULK_RATIO`` rows per detection
matched, no other client session is connected to the database and the run's transaction is the
connection's outermost, so it commits when the stage ends) the table's primary key, foreign keys
and indexes are dropped before the load and re-created after it (PostgreSQL manual 14.4,
"Populating a Database"): one sorted index build and one join checking the keys instead of a
foreign-key query and index insertions per row; this
takes ACCESS EXCLUSIVE locks on ``xmatch``, ``detection`` and ``stage_run`` until the stage
commits (``bulk_load=no`` for concurrent work).  A run whose replaced rows are all the rows of
``xmatch`` (or that finds it empty) empties it with ``TRUNCATE``, and the rows are then written
with ``COPY ... FREEZE``: frozen and all-visible, so the index builds, key checks and ANALYZE
after the load set no hint bits, and the key check can read the fresh indexes alone.  In
``nearest`` mode (at most one row per detection) the row ids are reserved from the identity
sequence once per band (``id`` = first + detection index; ids of unmatched detections stay
unused) instead of one ``nextval`` per row.  The foreign keys are re-added with hash joins off
(see :meth:`Xmatch._restore_constraints`).

Every key and index of ``xmatch`` is kept: the primary key; the foreign key to ``detection``
(``ON DELETE CASCADE``: re-ingesting a catalogue removes its matches) with
``ix_xmatch_detection_id`` for that cascade and for :meth:`Xmatch.replace`; the foreign key
to ``stage_run`` (provenance) with ``ix_xmatch_stage_run_id`` for its cascade.  Measured
alternatives, not taken (they need a migration for ~0.15 s of ~2 s): a BRIN index on
``stage_run_id`` (built in 0.08 s instead of 0.15 s) and a primary key on
``(detection_id, catalog, rank)`` replacing ``id`` and ``ix_xmatch_detection_id`` (one index
build fewer; drops a column users may reference).  ``ANALYZE`` of 4 columns instead of all
saves 0.03-0.04 s but leaves ``sep_arcsec`` without statistics: all are analysed.

Measured end to end (``run_stage``) at 10^6 detections x 10^6 stars, 1", 8x10^5 matches, 2
cores shared with other jobs, before -> after the Z-order queries, ``COPY FREEZE``, reserved
ids and the merge-join key check (``bench/xmatch.py --skip-sql --repeat 3``: best of 3 for every
method, the same bench for both versions, the runs at load <= 2: before 2, after 3):

=======================================  ===============  ===============
phase (wall time on the stage's thread)  before (s)       after (s)
=======================================  ===============  ===============
count + plan, replace (TRUNCATE)         0.08-0.10        0.09-0.11
fetch reference side                     0.33             0.29-0.32
fetch detections (k-d tree build 0.18    0.23-0.26        0.23-0.35
in a thread beside it)
match + COPY (writer thread)             1.04-1.27        0.68-0.79
keys + indexes re-created                0.94-1.08        0.50-0.59
ANALYZE xmatch                           0.09-0.11        0.06-0.07
total (``run_stage``)                    2.74-3.16        1.92-2.24
astropy ``match_to_catalog_sky``         2.32-2.57        2.01-2.21
stage / astropy                          1.18-1.23        0.91-1.09
=======================================  ===============  ===============

At load 3-4 the ratio was 2.99 before (stage 7.05 s) and 0.85 after (2.55 s).  (The earlier
bench timed astropy once against the stage's best and did not vacuum the tables it had just
loaded, so its ratio swung with the load: 0.77 before, stage 6.2 s / astropy 8.0 s, in this
work's first run.)  The q3c ``LATERAL`` join into ``xmatch`` takes 12-14 s,
astropy ``search_around_sky`` 4.6 s; at 10^5 rows the fixed costs (bookkeeping, key rebuild,
ANALYZE, ~0.2 s) make the stage 2.2x astropy.  So on 2 cores the stage, database to database,
is level with astropy's in-memory match (0.9-1.1), not clearly faster.

CPU per run (one settled database, the two versions alternated 4 x 3 times; median, range):
server backend 2.04 s (1.9-2.6) -> 1.50 s (1.4-1.9), client with its threads 1.82 s (1.6-2.4)
-> 1.07 s (0.9-1.5); wall 3.24 s (2.6-4.4) -> 2.49 s (1.9-2.8).  The rest is
serial server work: the two fetches (~0.3 s each), the COPY (0.3 s of server CPU beside the
matching) and the index builds (0.15 s each, mostly the heap scan).  The pairs are the same as
the q3c nearest join's and astropy's (tested); memory is bounded by the band size.  The
reference side is narrowed with q3c cones around the selected exposures
(:func:`catdb.spatial.cone_condition`).

Separations use the haversine-free vector formula atan2(|a x b|, a . b) (accurate at all
angles); ``dra_arcsec = (RA_det - RA_ref) cos(Dec_det)`` (RA difference wrapped to
+-180 deg), ``ddec_arcsec = Dec_det - Dec_ref``.  Proper motion follows q3c's linear
propagation (``q3c_dist_pm``): RA += pmra / cos(Dec) dt, Dec += pmdec dt with pmra =
mu_alpha cos(Dec) in mas/yr and dt = epoch(exposure) - epoch(star) in Julian years;
stars without proper motion or epoch stay at their catalogue position.

Re-running replaces the rows of earlier ``xmatch`` runs for the selected exposures and the
same catalogue name (``'detection'`` for every detection set).

Example::

    catdb stage xmatch --param refcat=gaia-dr2 --param radius=1 --param use_pm=true
    catdb query "SELECT d.mag_auto, r.mags->>'G' AS g, x.sep_arcsec FROM xmatch x
                 JOIN detection d ON d.id = x.detection_id JOIN refcat_source r ON r.id = x.ref_id
                 WHERE x.catalog = 'gaia-dr2'"
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import numpy as np
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from ..algorithms.crossmatch import kd_tree, match_unit_vectors
from ..algorithms.sphere import angular_sep_arcsec, unit_vectors
from ..db.copy import fetch_arrays
from ..errors import CatdbError
from ..spatial import cone_condition
from .base import Param, Stage, StageContext, register

#: reference cones are used to narrow the reference side up to this many exposures
_MAX_CONES = 200
_DET_PREFIX = "detections:"
#: detections matched and written per COPY block
_BLOCK = 200_000
#: bulk_load=auto drops and rebuilds constraints when xmatch holds at most this many rows per matched detection
_BULK_RATIO = 2


#: PostgreSQL binary COPY signature, flags and header-extension length (PostgreSQL manual, COPY, "Binary Format")
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_XMATCH_COLUMNS = (("detection_id", "i8"), ("ref_id", "i8"), ("sep_arcsec", "f8"), ("dra_arcsec", "f8"),
                   ("ddec_arcsec", "f8"), ("rank", "i2"), ("catalog", "text"), ("stage_run_id", "i8"))


def xmatch_copy_columns(with_id: bool = False) -> tuple:
    """(column, binary kind) of the ``xmatch`` rows :func:`xmatch_copy_rows` builds, in COPY order."""
    return ((("id", "i8"),) if with_id else ()) + _XMATCH_COLUMNS


def xmatch_copy_rows(catalog: str, run_id: int, detection_id, ref_id, sep, dra, ddec, rank, row_id=None) -> bytes:
    """Rows of ``xmatch`` in PostgreSQL's binary COPY tuple format, built by numpy (no loop over rows).

    Every tuple is a 16-bit field count, then per field a 32-bit length and the big-endian
    value (PostgreSQL manual, COPY, "Binary Format"); with no NULL and one catalogue name per
    run all tuples have the same layout, so they are one numpy structured array.

    Parameters
    ----------
    catalog : str
        ``xmatch.catalog`` of every row.
    run_id : int
        ``stage_run_id`` of every row.
    detection_id, ref_id : numpy.ndarray of int, shape (K,)
    sep, dra, ddec : numpy.ndarray of float, shape (K,)
        Separation and offsets (arcsec).
    rank : numpy.ndarray of int, shape (K,)
    row_id : numpy.ndarray of int, shape (K,), optional
        ``xmatch.id`` of every row, first (the COPY then names ``id`` first, as
        :func:`xmatch_copy_columns` with ``with_id``); by default the identity column fills it.

    Returns
    -------
    bytes
        The tuples, without the file header and trailer.
    """
    cat = catalog.encode("utf-8")
    columns = xmatch_copy_columns(row_id is not None)
    fields = [("n", ">i2")]
    for k, (_, kind) in enumerate(columns):
        fields += [(f"l{k}", ">i4"), (f"v{k}", f"S{len(cat)}" if kind == "text" else ">" + kind)]
    rec = np.empty(len(detection_id), dtype=np.dtype(fields))
    rec["n"] = len(columns)
    values = ((row_id,) if row_id is not None else ()) + (detection_id, ref_id, sep, dra, ddec, rank, cat, run_id)
    for k, ((_, kind), v) in enumerate(zip(columns, values)):  # loop over the 8 or 9 columns
        rec[f"l{k}"] = len(cat) if kind == "text" else int(kind[1:])
        rec[f"v{k}"] = v
    return rec.tobytes()


@register
class Xmatch(Stage):
    name = "xmatch"
    description = "Cross-match detections with a reference catalogue or another detection set (k-d tree per dec band)"
    params: ClassVar[list[Param]] = [
        Param("refcat", str, None, "Reference catalogue name in refcat_source, or 'detections:<SQL on exposure e>' "
              "for the detections of other exposures"),
        Param("radius", float, 1.0, "Match radius (arcsec)"),
        Param("mode", str, "nearest", "nearest: the nearest counterpart; all: every counterpart within radius",
              choices=("nearest", "all")),
        Param("use_pm", bool, False, "Move reference stars by their proper motion to each exposure's epoch"),
        Param("flags_max", int, None, "Largest SExtractor FLAGS of the detections matched (default: all)"),
        Param("snr_min", float, None, "Smallest SNR of the detections matched (default: all)"),
        Param("band_rows", int, 2_000_000, "Largest number of detections matched at once (dec band size; memory)"),
        Param("bulk_load", str, "auto", "Drop xmatch's foreign keys and secondary indexes during the load and "
              "rebuild them after (locks xmatch, detection, stage_run until commit); auto: when xmatch holds "
              f"at most {_BULK_RATIO} x as many rows as detections are matched, no other session is connected "
              "to the database and the run commits when it ends", choices=("auto", "yes", "no")),
    ]
    outputs: ClassVar[list[str]] = ["xmatch"]
    scope_params = ("refcat",)

    # ------------------------------------------------------------------ parameters
    def _target(self, ctx) -> tuple[str, str | None]:
        """('refcat', name) or ('detection', SQL condition)."""
        p = ctx.params
        ref = p["refcat"]
        if not ref or not str(ref).strip():
            raise CatdbError("parameter refcat: expected a reference catalogue name (refcat_source.catalog) or "
                             "'detections:<SQL condition on exposure e>', got nothing")
        if not p["radius"] > 0 or not np.isfinite(p["radius"]):
            raise CatdbError(f"parameter radius: expected a positive match radius in arcsec, got {p['radius']}")
        if p["band_rows"] < 1:
            raise CatdbError(f"parameter band_rows: expected a positive number of rows, got {p['band_rows']}")
        if ref.startswith(_DET_PREFIX):
            cond = ref[len(_DET_PREFIX):].strip()
            if not cond:
                raise CatdbError("parameter refcat: 'detections:' needs an SQL condition on exposure e, "
                                 "e.g. detections:e.night = '2019-03-25'")
            if p["use_pm"]:
                raise CatdbError("parameter use_pm: proper motions apply to reference catalogues, not to "
                                 f"the detection set {ref!r}")
            return "detection", cond
        if not ctx.execute("SELECT EXISTS (SELECT 1 FROM refcat_source WHERE catalog = %s)", (ref,)).fetchone()[0]:
            cats = [r[0] for r in ctx.execute("SELECT DISTINCT catalog FROM refcat_source ORDER BY 1").fetchall()]
            raise CatdbError(f"parameter refcat: no reference catalogue named {ref!r} in refcat_source; "
                             "catalogues present: "
                             f"{', '.join(cats) or 'none (catdb ingest refcat FILE --catalog NAME)'}"
                             f"; or use 'detections:<SQL on exposure e>'")
        return "refcat", ref

    def _catalog_name(self, ctx) -> str:
        ref = ctx.params["refcat"] or ""
        return "detection" if ref.startswith(_DET_PREFIX) else ref

    # ------------------------------------------------------------------ replace
    def _plan(self, ctx) -> dict:
        """Detection filter, count and load mode of this run (computed once; replace() runs first)."""
        if getattr(self, "_planned", None) is None:
            p = ctx.params
            det_cond, det_bind = self._detection_filter(list(ctx.inputs), p)
            n_det = ctx.execute(sql.SQL("SELECT count(*) FROM detection d WHERE {}").format(det_cond),
                                det_bind).fetchone()[0] if ctx.inputs else 0
            bulk = p["bulk_load"] == "yes"
            if p["bulk_load"] == "auto" and n_det > 0:
                est, own = ctx.execute("SELECT c.reltuples, pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                                       "WHERE c.oid = 'xmatch'::regclass").fetchone()
                if est < 0:  # never analysed
                    est = ctx.execute("SELECT count(*) FROM xmatch").fetchone()[0]
                # nobody to block: the run commits when it ends (its exclusive locks end with it) and no
                # other client session is connected to this database
                ctx.execute("SELECT pg_stat_clear_snapshot()")  # the activity view is snapshotted per transaction
                others = ctx.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                     "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()[0]
                bulk = bool(own) and est <= _BULK_RATIO * n_det and others == 0 and ctx.commits
            self._planned = {"cond": det_cond, "bind": det_bind, "n_det": n_det, "bulk": bulk}
        return self._planned

    def replace(self, ctx: StageContext) -> int:
        """Delete rows of earlier xmatch runs for the selected exposures and the same catalogue.

        In bulk-load mode, when those are all the rows of ``xmatch``, ``TRUNCATE`` it instead
        (the bulk load takes the table's exclusive lock anyway).
        """
        cond = sql.SQL("x.catalog = %(cat)s AND x.stage_run_id IN (SELECT id FROM stage_run WHERE stage = %(st)s "
                       "AND id <> %(run)s) AND x.detection_id IN (SELECT id FROM detection "
                       "WHERE exposure_id = ANY(%(ids)s))")
        bind = {"cat": self._catalog_name(ctx), "st": self.name, "run": ctx.run_id, "ids": list(ctx.inputs)}
        if self._plan(ctx)["bulk"]:
            # earlier runs on a subset of these exposures with the same catalogue lose all their rows;
            # when no other run has rows in xmatch, TRUNCATE instead of deleting row by row
            covered = [r[0] for r in ctx.execute(
                "SELECT id FROM stage_run WHERE stage = %(st)s AND id <> %(run)s AND input_ids <@ %(ids)s::bigint[] "
                "AND CASE WHEN params->>'refcat' LIKE 'detections:%%' THEN 'detection' ELSE params->>'refcat' END "
                "= %(cat)s", bind).fetchall()]
            n_all, n_other = ctx.execute("SELECT count(*), count(*) FILTER (WHERE NOT (stage_run_id = ANY(%s))) "
                                         "FROM xmatch", (covered,)).fetchone()
            if n_other == 0:
                # also when empty: rows COPYed into a table truncated in this transaction can be
                # written frozen (COPY FREEZE), so the index builds and ANALYZE set no hint bits
                ctx.execute("TRUNCATE xmatch")
                self._truncated = True
                return n_all
        return ctx.execute(sql.SQL("DELETE FROM xmatch x WHERE {}").format(cond), bind).rowcount

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        kind, target = self._target(ctx)
        catalog = self._catalog_name(ctx)
        ids = list(ctx.inputs)
        if not ids:
            return {"xmatch": 0, "detections": 0, "matched": 0, "bands": 0}
        plan = self._plan(ctx)
        det_cond, det_bind, n_det = plan["cond"], plan["bind"], plan["n_det"]
        ref_ex = None
        if kind == "detection":
            try:
                with ctx.conn.transaction():
                    ref_ex = [r[0] for r in ctx.execute(
                        sql.SQL("SELECT e.id FROM exposure e WHERE ({}) AND NOT (e.id = ANY(%(sel)s))").format(
                            sql.SQL(target)), {"sel": ids}).fetchall()]
            except psycopg.Error as e:
                raise CatdbError(f"parameter refcat: {target!r} is not a valid SQL condition on exposure e: "
                                 f"{str(e).splitlines()[0]}") from None
            if not ref_ex:
                raise CatdbError(f"parameter refcat: no exposure matches {target!r} apart from the selected "
                                 "ones; the detection set to match against is empty")
        use_pm = p["use_pm"] and kind == "refcat"
        margin_deg = p["radius"] / 3600.0 + (self._pm_margin_deg(ctx, target, ids) if use_pm else 0.0)
        edges = self._band_edges(ctx, det_cond, det_bind, n_det, p["band_rows"])
        epochs = self._epochs(ctx, ids) if use_pm else None
        cone = self._cones(ctx, ids, margin_deg)
        dropped = self._drop_constraints(ctx) if plan["bulk"] and edges else None
        total = matched = 0
        pool = ThreadPoolExecutor(1)
        try:
            for b, (lo, hi) in enumerate(edges):  # loop over dec bands (memory bound), not rows
                last = b == len(edges) - 1
                band = sql.SQL("d.dec >= %(lo)s AND d.dec {} %(hi)s").format(sql.SQL("<=" if last else "<"))
                rlo, rhi = lo - margin_deg, hi + margin_deg
                ref = (self._fetch_refcat(ctx, target, rlo, rhi, cone, use_pm) if kind == "refcat"
                       else self._fetch_detections(ctx, ref_ex, rlo, rhi, cone))
                if len(ref["id"]) == 0:
                    continue
                # the k-d tree of the counterparts is built while the detections are fetched
                tree = None if use_pm else pool.submit(lambda r=ref: kd_tree(unit_vectors(r["ra"], r["dec"])))
                dcols = {"id": "int64", **({"exposure_id": "int64"} if use_pm else {}), "ra": "float64",
                         "dec": "float64"}
                det = fetch_arrays(ctx.conn, sql.SQL("SELECT {} FROM detection d WHERE {} AND {}").format(
                    sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in dcols), det_cond, band),
                    {**det_bind, "lo": lo, "hi": hi}, dcols)
                tree = None if tree is None else tree.result()
                if len(det["id"]) == 0:
                    continue
                n, m = self._match_band(ctx, det, ref, tree, epochs, catalog)
                total, matched = total + n, matched + m
        finally:
            pool.shutdown()
        if dropped:
            self._restore_constraints(ctx, dropped)
        ctx.execute("ANALYZE xmatch")
        return {"xmatch": total, "detections": int(n_det), "matched": matched, "bands": len(edges),
                "catalog": catalog, "bulk_load": bool(dropped)}

    def _match_band(self, ctx, det, ref, tree, epochs, catalog):
        """Match one band and COPY its pairs into xmatch; returns (rows, detections matched).

        Without proper motion the detections are matched in blocks of ``_BLOCK`` rows, each
        block's rows handed to a COPY writer thread (:class:`psycopg.copy.QueuedLibpqWriter`)
        so that the server stores one block while the next is matched.
        """
        p = ctx.params
        dvec = unit_vectors(det["ra"], det["dec"])
        # nearest mode in bulk load: at most one row per detection, so the row ids are reserved
        # from the identity sequence for the whole band at once (xmatch is locked exclusively)
        # and the row of band detection i gets id first + i, instead of one nextval() per row
        first = None
        if p["mode"] == "nearest" and self._plan(ctx)["bulk"] and len(det["id"]):
            first = ctx.execute("SELECT setval(s, nextval(s) + %(n)s - 1) - %(n)s + 1 FROM "
                                "pg_get_serial_sequence('xmatch', 'id') s", {"n": len(det["id"])}).fetchone()[0]
        stmt = sql.SQL("COPY xmatch ({}) FROM STDIN WITH (FORMAT binary{})").format(
            sql.SQL(", ").join(sql.Identifier(c) for c, _ in xmatch_copy_columns(first is not None)),
            sql.SQL(", FREEZE" if getattr(self, "_truncated", False) else ""))
        n = m = 0
        cur = ctx.conn.cursor()
        with cur.copy(stmt, writer=QueuedLibpqWriter(cur)) as cp:
            cp.write(_COPY_HEADER)
            if tree is None:  # proper motion: one match per exposure epoch over the whole band
                i, j, rank, rra, rdec = self._match_pm(det, dvec, ref, epochs, p["radius"], p["mode"])
                blocks = [(i, j, rank, rra, rdec)]
            else:
                blocks = self._blocks(dvec, ref, tree, p["radius"], p["mode"])
            for i, j, rank, rra, rdec in blocks:  # loop over blocks of detections
                if len(i):
                    cp.write(self._rows(det, ref, i, j, rank, rra, rdec, dvec, catalog, ctx.run_id,
                                        None if first is None else first + i))
                    n += len(i)
                    m += int(np.count_nonzero(rank == 1))
            cp.write(_COPY_TRAILER)
        return n, m

    @staticmethod
    def _blocks(dvec, ref, tree, radius, mode):
        for s in range(0, len(dvec), _BLOCK):
            i, j, rank = match_unit_vectors(dvec[s:s + _BLOCK], None, radius, mode, tree=tree)
            yield i + s, j, rank, ref["ra"][j], ref["dec"][j]

    # ------------------------------------------------------------------ bulk load
    def _drop_constraints(self, ctx):
        """Drop xmatch's primary key, foreign keys and indexes; returns their definitions.

        A foreign-key check per COPYed row and the incremental index updates dominate the load
        (PostgreSQL manual 14.4 "Populating a Database": drop indexes and foreign keys, load,
        re-create); re-adding the constraint checks every row in one join.
        """
        # primary key / unique first (re-created first: sorted index builds), then foreign keys
        fks = ctx.execute("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                          "WHERE conrelid = 'xmatch'::regclass AND contype IN ('p', 'u', 'f') "
                          "ORDER BY contype = 'f', conname").fetchall()
        idx = ctx.execute(
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'xmatch'::regclass AND NOT EXISTS "
            "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) ORDER BY 1").fetchall()
        if fks:
            ctx.execute(sql.SQL("ALTER TABLE xmatch {}").format(sql.SQL(", ").join(
                sql.SQL("DROP CONSTRAINT {}").format(sql.Identifier(name)) for name, _ in fks)))
        if idx:
            ctx.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(", ").join(sql.Identifier(n) for n, _ in idx)))
        return {"fks": fks, "indexes": idx}

    def _restore_constraints(self, ctx, dropped):
        """Re-create what :meth:`_drop_constraints` dropped (definitions from pg_get_*def).

        The indexes come first, so that adding a foreign key checks the rows with one merge
        anti-join of two index scans (``ix_xmatch_detection_id`` against ``pk_detection``).
        The planner costs that above a parallel hash of every detection although it is faster:
        measured at 10^6 detections, 8x10^5 rows, the ``detection_id`` check 0.28 s against
        0.45-0.52 s (0.37 s against 0.47 s with the visibility map of ``detection`` cleared),
        the whole ``ALTER TABLE`` (primary key + both foreign keys) 0.3 s against 0.7 s, so
        hash joins are switched off for that statement.  The check is the same query either
        way (PostgreSQL's RI_Initial_Check), only its join differs.
        """
        for _, ddl in dropped["indexes"]:  # loop over the few indexes
            ctx.execute(sql.SQL(ddl))
        if dropped["fks"]:  # one ALTER TABLE: the constraints are added (and checked) in one pass
            old = ctx.execute("SELECT current_setting('enable_hashjoin')").fetchone()[0]
            ctx.execute("SELECT set_config('enable_hashjoin', 'off', true)")
            ctx.execute(sql.SQL("ALTER TABLE xmatch {}").format(sql.SQL(", ").join(
                sql.SQL("ADD CONSTRAINT {} {}").format(sql.Identifier(name), sql.SQL(ddl))
                for name, ddl in dropped["fks"])))
            ctx.execute("SELECT set_config('enable_hashjoin', %s, true)", (old,))

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _detection_filter(ids, params):
        """SQL condition on ``detection d``: selected exposures, FLAGS and SNR cuts."""
        conds = [sql.SQL("d.exposure_id = ANY(%(ids)s)")]
        bind = {"ids": ids}
        if params["flags_max"] is not None:
            conds.append(sql.SQL("d.flags <= %(fmax)s"))
            bind["fmax"] = params["flags_max"]
        if params["snr_min"] is not None:
            conds.append(sql.SQL("d.snr >= %(snr)s"))
            bind["snr"] = params["snr_min"]
        return sql.SQL(" AND ").join(conds), bind

    def _band_edges(self, ctx, det_cond, bind, n_det, band_rows):
        """Declination band edges (deg) holding at most ``band_rows`` detections each."""
        if n_det == 0:
            return []
        nb = max(1, int(np.ceil(n_det / band_rows)))
        if nb == 1:
            return [(-90.0, 90.0)]
        qs = [k / nb for k in range(nb + 1)]
        vals = ctx.execute(sql.SQL("SELECT percentile_disc(%(qs)s::float8[]) WITHIN GROUP (ORDER BY d.dec) "
                                   "FROM detection d WHERE {}").format(det_cond), {**bind, "qs": qs}).fetchone()[0]
        e = np.unique(np.asarray(vals, float))
        if len(e) == 1:
            return [(float(e[0]), float(e[0]))]
        return list(zip(e[:-1].tolist(), e[1:].tolist()))

    def _epochs(self, ctx, ids):
        rows = ctx.execute("SELECT id, 2000.0 + (mjd_mid - 51544.5) / 365.25 FROM exposure WHERE id = ANY(%s)",
                           (ids,)).fetchall()
        missing = [r[0] for r in rows if r[1] is None]
        if missing:
            raise CatdbError(f"parameter use_pm: exposures {missing[:10]} have no mjd_mid (epoch unknown); "
                             "ingest their times or run without use_pm")
        return dict(rows)

    def _pm_margin_deg(self, ctx, refcat, ids):
        """Largest proper-motion displacement (deg) between the catalogue and the exposures."""
        row = ctx.execute(
            "SELECT max(sqrt(coalesce(pmra, 0)^2 + coalesce(pmdec, 0)^2)), min(epoch), max(epoch) "
            "FROM refcat_source WHERE catalog = %s", (refcat,)).fetchone()
        erow = ctx.execute("SELECT min(mjd_mid), max(mjd_mid) FROM exposure WHERE id = ANY(%s)", (ids,)).fetchone()
        if row[0] is None or row[1] is None or erow[0] is None:
            return 0.0
        ep = [2000.0 + (m - 51544.5) / 365.25 for m in erow]
        dt = max(abs(ep[1] - row[1]), abs(ep[0] - row[2]))
        return float(row[0]) * dt / 3.6e6 * 1.01

    def _cones(self, ctx, ids, margin_deg):
        """OR of q3c cones around the selected exposures (None: no narrowing)."""
        rows = ctx.execute("SELECT ra_center, dec_center, radius FROM exposure WHERE id = ANY(%s) ORDER BY id",
                           (ids,)).fetchall()
        if len(rows) > _MAX_CONES or any(None in r for r in rows):
            return None
        frags = [cone_condition("r.ra", "r.dec", ra, dec, rad + margin_deg, prefix=f"c{k}")
                 for k, (ra, dec, rad) in enumerate(rows)]  # loop over exposures
        bind = {}
        for f in frags:
            bind.update(f.params)
        return sql.SQL("({})").format(sql.SQL(" OR ").join(f.sql for f in frags)), bind

    @staticmethod
    def _with_cone(base, bind, cone):
        if cone is None:
            return base, bind
        return sql.SQL("{} AND {}").format(base, cone[0]), {**bind, **cone[1]}

    def _fetch_refcat(self, ctx, refcat, lo, hi, cone, use_pm):
        q, b = self._with_cone(sql.SQL("r.catalog = %(refcat)s AND r.dec >= %(lo)s AND r.dec <= %(hi)s"),
                               {"refcat": refcat, "lo": lo, "hi": hi}, cone)
        cols = ("id", "ra", "dec") + (("pmra", "pmdec", "epoch") if use_pm else ())
        return fetch_arrays(ctx.conn, sql.SQL("SELECT {} FROM refcat_source r WHERE {}").format(
            sql.SQL(", ").join(sql.SQL("r.{}").format(sql.Identifier(c)) for c in cols), q), b,
            {c: "int64" if c == "id" else "float64" for c in cols})

    def _fetch_detections(self, ctx, ref_ex, lo, hi, cone):
        q, b = self._with_cone(sql.SQL("r.exposure_id = ANY(%(rex)s) AND r.dec >= %(lo)s AND r.dec <= %(hi)s"),
                               {"rex": ref_ex, "lo": lo, "hi": hi}, cone)
        return fetch_arrays(ctx.conn, sql.SQL("SELECT r.id, r.ra, r.dec FROM detection r WHERE {}").format(q), b,
                            {"id": "int64", "ra": "float64", "dec": "float64"})

    def _match_pm(self, det, dvec, ref, epochs, radius, mode):
        """Match exposure by exposure with the stars moved to that exposure's epoch."""
        ii, jj, rr, ras, decs = [], [], [], [], []
        has_pm = np.isfinite(ref["pmra"]) & np.isfinite(ref["pmdec"]) & np.isfinite(ref["epoch"])
        pmra = np.where(has_pm, ref["pmra"], 0.0)
        pmdec = np.where(has_pm, ref["pmdec"], 0.0)
        ep0 = np.where(has_pm, ref["epoch"], 0.0)
        cosd = np.cos(np.radians(ref["dec"]))
        for eid in np.unique(det["exposure_id"]):  # loop over exposures (one epoch each)
            sel = np.flatnonzero(det["exposure_id"] == eid)
            dt = np.where(has_pm, epochs[int(eid)] - ep0, 0.0)
            ra = ref["ra"] + pmra * dt / cosd / 3.6e6
            dec = ref["dec"] + pmdec * dt / 3.6e6
            i, j, rank = match_unit_vectors(dvec[sel], unit_vectors(ra, dec), radius, mode)
            ii.append(sel[i]), jj.append(j), rr.append(rank), ras.append(ra[j]), decs.append(dec[j])
        i = np.concatenate(ii)
        order = np.argsort(i, kind="stable")
        return (i[order], np.concatenate(jj)[order], np.concatenate(rr)[order], np.concatenate(ras)[order],
                np.concatenate(decs)[order])

    @staticmethod
    def _rows(det, ref, i, j, rank, rra, rdec, dvec, catalog, run_id, row_id=None) -> bytes:
        sep = angular_sep_arcsec(dvec[i], unit_vectors(rra, rdec))
        dra = (det["ra"][i] - rra + 180.0) % 360.0 - 180.0
        dra = dra * np.cos(np.radians(det["dec"][i])) * 3600.0
        ddec = (det["dec"][i] - rdec) * 3600.0
        return xmatch_copy_rows(catalog, run_id, det["id"][i], ref["id"][j], sep, dra, ddec, rank, row_id)
