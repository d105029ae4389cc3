"""Export a catdb table as a HATS catalogue collection (HEALPix-partitioned Parquet + margin cache).

HATS (Hierarchical Adaptive Tiling Scheme: the format of the LINCC Frameworks ``hats`` /
``hats-import`` / ``lsdb`` packages used for Rubin, ZTF and Gaia catalogues; "LSDB: Large Survey
DataBase", RNAAS 8, 2024, doi:10.3847/2515-5172/ad4da1, and "Using LSDB to enable large-scale
catalog distribution, cross-matching, and analytics", arXiv:2501.02103) stores a catalogue as one
Parquet file per HEALPix pixel, the pixels chosen adaptively so that no file holds more than
``pixel_threshold`` rows, plus a *margin cache*: for every pixel, the rows of the neighbouring
pixels within ``margin_arcsec`` of its border. LSDB (Dask) cross-matches two HATS catalogues pixel
by pixel, each pixel against the aligned pixel of the other catalogue and its margin, so a
cross-match scales over as many cores and machines as a Dask cluster has (hats-import manual,
"Catalog import" and "Margin cache"; LSDB manual, "Crossmatching").

How the export runs (:func:`export_hats`):

1. **stream** the table (or its rows matching ``where``) from PostgreSQL with
   ``COPY ... TO STDOUT`` into Arrow record batches (:func:`catdb.export.formats.iter_batches`,
   the same reader as ``catdb export``), written one row group per batch into Parquet *chunk*
   files of at most ``chunk_rows`` rows in a temporary directory beside the output: the exporting
   process holds one batch at a time (about 2 x ``block_bytes``), whatever the table size;
2. **import** the chunk files with hats-import's catalogue pipeline
   (:class:`hats_import.ImportArguments` with a pyarrow Parquet reader of ``read_rows`` rows at a
   time) on a Dask ``distributed`` cluster: mapping (a HEALPix histogram at
   ``highest_order``), binning (pixels merged up the tree while they hold at most
   ``pixel_threshold`` rows), splitting and reducing (one Parquet file per pixel, sorted by
   ``_healpix_29``).  A worker holds one chunk read (``read_rows`` rows) while splitting and one
   destination pixel (at most ``pixel_threshold`` rows) while reducing;
3. **margin cache** (:class:`hats_import.margin_cache.MarginCacheArguments`): the rows within
   ``margin_arcsec`` of each pixel's border, a catalogue of their own, declared the collection's
   default margin so ``lsdb.open_catalog(DIR/NAME)`` loads it;
4. the temporary chunk files are removed (also when a step fails).

The output is a HATS *collection* ``DIR/NAME/`` (``collection.properties``) holding the
catalogue ``DIR/NAME/NAME/`` and its margin ``DIR/NAME/NAME_<margin>arcs/``.

Units and descriptions
----------------------
Each column's unit and description come from the database column comment
(``COMMENT ON COLUMN ... 'description [unit]'``, :func:`catdb.schema.tables.column_unit`).
They are written as Parquet **field metadata** ``unit`` and ``description`` (as ``catdb
export -f parquet`` does) into every pixel file and the catalogue's
``dataset/_common_metadata`` / ``dataset/_metadata`` (hats-import's ``use_schema_file``: the
chunk files' schema is imposed on every pixel it writes).  ``pyarrow.parquet.read_schema``
shows them (``schema.field('ra').metadata[b'unit'] == b'deg'``).  ``hats.properties`` carries
the provenance: ``catdb_table``, ``catdb_where``, ``catdb_origin``, ``catdb_query``, ``catdb_version``
and ``obs_title``.

Column types are those of :mod:`catdb.export.formats`: numeric arrays (``mag_aper``, ...)
become ``fixed_size_list`` columns padded with NaN to the longest array, JSON (``extra``,
``mags``) and timestamps become text, NULL stays null.

Rows whose position cannot be placed on the sky (non-finite ``ra``, ``dec`` outside
[-90, 90] deg) stop the export with an error naming their number and the first id: HATS has no
pixel for them and catdb does not drop rows silently; exclude them with ``where``.
"""
from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import psycopg
from psycopg import sql

from .._version import __version__
from ..errors import CatdbError
from .formats import _empty_batch, assemble, compose_source, describe, iter_batches

#: ``--table`` value -> (database table, HATS catalogue type)
TABLES = {
    "detection": ("detection", "source"),
    "object": ("object", "object"),
    "forced_source": ("forced_source", "source"),
    "refcat": ("refcat_source", "object"),
}

_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass
class HatsResult:
    """What :func:`export_hats` wrote.

    Attributes
    ----------
    collection_path : str
        The HATS collection directory ``DIR/NAME``; ``lsdb.open_catalog`` on it opens the
        catalogue with its margin cache.
    catalog_path, margin_path : str
        The catalogue and its margin cache (``margin_path`` None when ``margin_arcsec`` is 0).
    n_rows : int
        Rows exported.
    n_partitions : int
        HEALPix pixels (Parquet files) of the catalogue.
    max_order : int
        Highest HEALPix order of its pixels.
    n_margin_rows : int
        Rows in the margin cache.
    n_chunks : int
        Temporary Parquet chunk files the rows were streamed into (removed).
    margin_arcsec : float
        Margin threshold [arcsec] as hats-import recorded it.
    columns : list of catdb.export.formats.OutColumn
        The columns written (units, descriptions).
    seconds : dict
        Wall time [s] of the phases ``stream``, ``import`` (catalogue + margin) and ``total``.
    peak_rss_mb : dict
        High-water mark of this process's resident memory [MiB] (``VmHWM``, so including what the
        process held before the export) at the end of ``stream`` and at the
        end (``total``; hats-import's client side, and with the default client the in-process Dask
        scheduler; the workers are other processes).
    """

    collection_path: str
    catalog_path: str
    margin_path: str | None
    n_rows: int
    n_partitions: int
    max_order: int
    n_margin_rows: int
    margin_arcsec: float
    n_chunks: int = 0
    columns: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)
    peak_rss_mb: dict = field(default_factory=dict)


def _maxrss_mb():
    """Peak resident set size of this process [MiB]: ``VmHWM`` of /proc/self/status on Linux.

    (``getrusage`` ``ru_maxrss`` is not used where /proc exists: Linux keeps it across ``execve``,
    so a command started by a large process would report its parent's peak.)
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1 << 20) if sys.platform == "darwin" else r / 1024  # bytes on macOS, KiB elsewhere


log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- 1. stream to chunk files
def _position_check(batch, cols, table):
    """Raise when a batch holds rows HATS cannot place (non-finite ra, |dec| > 90 or NULL)."""
    import pyarrow.compute as pc

    names = [c.name for c in cols]
    ra = batch.column(names.index("ra"))
    dec = batch.column(names.index("dec"))
    ra_v = ra.to_numpy(zero_copy_only=False).astype(float)
    dec_v = dec.to_numpy(zero_copy_only=False).astype(float)
    bad = (~np.isfinite(ra_v)) | (~np.isfinite(dec_v)) | (np.abs(dec_v) > 90)
    bad |= pc.or_(pc.is_null(ra), pc.is_null(dec)).to_numpy(zero_copy_only=False)
    if bad.any():
        first = ""
        if "id" in names:
            first = f" (first: id {batch.column(names.index('id'))[int(np.argmax(bad))].as_py()})"
        raise CatdbError(f"{table}: {int(bad.sum())} rows of a block have no valid sky position{first}: "
                         "ra must be finite and dec within [-90, 90] deg to be placed in a HEALPix pixel; "
                         "exclude them with --where")


def stream_to_chunks(conn, query, chunk_dir, *, table: str = "", chunk_rows: int = 1_000_000,
                     block_bytes: int = 8 << 20, params=None, overrides: dict | None = None):
    """Stream ``query`` into Parquet chunk files of at most ``chunk_rows`` rows, at constant memory.

    Parameters
    ----------
    conn : psycopg.Connection
    query : psycopg.sql.Composable
        One SELECT with ``ra`` and ``dec`` columns [deg].
    chunk_dir : str
        Existing directory for the chunk files ``chunk_00000.parquet``, ... and the schema file
        ``schema.parquet`` (no rows; the field metadata carries units and descriptions).
    table : str
        Name used in error messages.
    chunk_rows : int
        Rows per chunk file (batches are sliced at the boundary).
    block_bytes : int
        COPY CSV bytes parsed per Arrow batch (:func:`catdb.export.formats.iter_batches`).
    overrides : dict, optional
        ``column -> (unit, description)`` for computed columns (see :func:`catdb.export.formats.describe`).

    Returns
    -------
    n_rows : int
    files : list of str
        The chunk files, in order.
    schema_file : str
    columns : list of OutColumn

    Raises
    ------
    catdb.errors.CatdbError
        The query fails, has no ``ra``/``dec`` column, or a row has no valid position.
    """
    import pyarrow.parquet as pq

    described = describe(conn, query, params, overrides=overrides)
    cols = described.columns
    names = [c.name for c in cols]
    for need in ("ra", "dec"):
        if need not in names:
            raise CatdbError(f"{table or 'the query'} has no column {need!r}: a HATS catalogue needs ra and dec "
                             "[deg]")
    bad_kind = [c.name for c in cols if c.name in ("ra", "dec") and c.kind != "float"]
    if bad_kind:
        raise CatdbError(f"{table}: columns {bad_kind} are not floating point (degrees expected)")
    empty = assemble(_empty_batch(cols), cols)
    schema = empty.schema
    schema_file = os.path.join(chunk_dir, "schema.parquet")
    pq.write_table(empty.schema.empty_table(), schema_file)
    files, writer, in_file, n = [], None, 0, 0
    try:
        for raw in iter_batches(conn, described, params, block_bytes=block_bytes):
            batch = assemble(raw, cols)
            _position_check(batch, cols, table)
            start = 0
            while start < len(batch):  # fill the open chunk file up to chunk_rows (zero-copy slices)
                if writer is None:
                    files.append(os.path.join(chunk_dir, f"chunk_{len(files):05d}.parquet"))
                    writer = pq.ParquetWriter(files[-1], schema)
                part = batch.slice(start, chunk_rows - in_file)
                writer.write_batch(part)
                start += len(part)
                in_file += len(part)
                n += len(part)
                if in_file >= chunk_rows:
                    writer.close()
                    writer, in_file = None, 0
    except psycopg.Error as e:
        raise CatdbError(f"export query failed: {str(e).strip()}") from None
    finally:
        if writer is not None:
            writer.close()
    return n, files, schema_file, cols


# --------------------------------------------------------------------------- 2-3. hats-import
def _client(n_workers, threads_per_worker, local_dir, memory_limit):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                           local_directory=local_dir, dashboard_address=None, memory_limit=memory_limit,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def export_hats(conn, out_dir, table: str, *, where: str | None = None, name: str | None = None,
                origin: str | None = None,
                pixel_threshold: int = 1_000_000, highest_order: int = 10, margin_arcsec: float = 5.0,
                chunk_rows: int = 1_000_000, read_rows: int = 250_000, block_bytes: int = 8 << 20,
                client=None, n_workers: int = 2, threads_per_worker: int = 1,
                memory_limit: str | None = "auto", overwrite: bool = False,
                progress: bool = False) -> HatsResult:
    """Write a catdb table as a HATS catalogue collection with a margin cache.

    Parameters
    ----------
    conn : psycopg.Connection
        Read access is enough; the rows are read in the connection's current transaction.
    out_dir : str or os.PathLike
        Directory that receives the collection ``out_dir/NAME`` (created if missing).
    table : {'detection', 'object', 'forced_source', 'refcat'}
        ``refcat`` is ``refcat_source`` (every reference catalogue unless ``where`` says
        ``catalog = '...'``).
    where : str, optional
        SQL condition on the table's columns narrowing the rows.
    name : str, optional
        Catalogue name (letters, digits, ``._-``); default the ``table`` value.
    origin : str, optional
        Adds a first column ``origin`` with this text on every row: the database (server, night,
        field) the rows come from.  catdb ids are per database, so catalogues exported from several
        servers and combined (``lsdb`` ``Catalog.concat``) are keyed by ``(origin, id)``.
    pixel_threshold : int
        Largest number of rows in one HEALPix pixel (Parquet file); a reducing worker holds
        one such pixel in memory.
    highest_order : int
        Deepest HEALPix order a pixel may have (order 10: 3.4 arcmin pixels; hats-import's default).
    margin_arcsec : float
        Margin cache width [arcsec]: at least the largest cross-match radius to be run against
        this catalogue (LSDB matches each pixel's rows with the other catalogue's pixel plus its
        margin).  0: no margin cache.
    chunk_rows : int
        Rows per temporary Parquet chunk file (the unit of work of hats-import's mapping and
        splitting tasks).
    read_rows : int
        Rows a hats-import worker reads from a chunk file at a time.
    block_bytes : int
        COPY bytes per Arrow batch while streaming from the database.
    client : dask.distributed.Client, optional
        Run on this cluster (e.g. ``Client("tcp://scheduler:8786")``; the workers must see
        ``out_dir`` at the same path).  Default: a ``LocalCluster`` of ``n_workers`` worker
        processes with ``threads_per_worker`` threads, closed at the end.
    memory_limit : str or None
        Per-worker memory limit of the LocalCluster (Dask's syntax; ``auto`` = the machine's memory
        divided among the workers).
    overwrite : bool
        Replace an existing ``out_dir/NAME``.
    progress : bool
        Show hats-import's progress bars.

    Returns
    -------
    HatsResult

    Raises
    ------
    catdb.errors.CatdbError
        Unknown table, bad name, output exists, no rows, a row without a valid position, the query
        fails, or hats-import fails (its message included).  Nothing is left at ``out_dir/NAME``
        and the temporary files are removed.
    """
    if table not in TABLES:
        raise CatdbError(f"unknown table {table!r} for a HATS export; expected one of {', '.join(TABLES)}")
    db_table, cat_type = TABLES[table]
    name = name or table
    if not _NAME.match(name):
        raise CatdbError(f"catalogue name {name!r}: only letters, digits, '.', '_' and '-' are allowed")
    for k, v in (("pixel_threshold", pixel_threshold), ("chunk_rows", chunk_rows), ("read_rows", read_rows)):
        if not isinstance(v, int) or v < 1:
            raise CatdbError(f"{k} must be a positive integer, got {v!r}")
    if not 0 <= highest_order <= 19:
        raise CatdbError(f"highest_order must be within 0..19, got {highest_order}")
    if margin_arcsec < 0:
        raise CatdbError(f"margin_arcsec must be >= 0, got {margin_arcsec}")
    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    coll_path = os.path.join(out_dir, name)
    if os.path.exists(coll_path):
        if not overwrite:
            raise CatdbError(f"{coll_path} exists; give --overwrite to replace it")
        shutil.rmtree(coll_path)

    query = compose_source(conn, db_table, where=where)
    overrides = None
    if origin is not None:
        if not origin.strip():
            raise CatdbError("origin must be a non-empty label (server, night or field the rows come from)")
        query = sql.SQL("SELECT {}::text AS origin, _t.* FROM ({}) AS _t").format(sql.Literal(origin), query)
        overrides = {"origin": (None, "catdb database the row comes from (export hats --origin); ids are unique "
                                      "within one origin")}
    t0 = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix=f".catdb-hats-{name}-", dir=out_dir)
    own = None
    try:
        chunk_dir = os.path.join(tmp, "chunks")
        os.makedirs(chunk_dir)
        n, files, schema_file, cols = stream_to_chunks(conn, query, chunk_dir, table=table,
                                                        chunk_rows=chunk_rows, block_bytes=block_bytes,
                                                        overrides=overrides)
        t1 = time.perf_counter()
        rss_stream = _maxrss_mb()
        log.info("%s: streamed %d rows into %d chunk files in %.1f s (peak RSS %.0f MiB)", table, n, len(files),
                 t1 - t0, rss_stream)
        if n == 0:
            raise CatdbError(f"{table}: no rows to export" + (f" matching {where!r}" if where else ""))
        props = {"obs_title": f"catdb {db_table}", "catdb_table": db_table, "catdb_version": __version__,
                 "catdb_query": query.as_string(conn).replace("\n", " ")}
        if where:
            props["catdb_where"] = where.replace("\n", " ")
        if origin is not None:
            props["catdb_origin"] = origin
        if client is None:
            client, own = _client(n_workers, threads_per_worker, os.path.join(tmp, "dask"), memory_limit)
        margin_path = _run_import(client, coll_path=coll_path, out_dir=out_dir, name=name, files=files,
                                  schema_file=schema_file, cat_type=cat_type, n_rows=n, tmp=tmp,
                                  pixel_threshold=pixel_threshold, highest_order=highest_order,
                                  margin_arcsec=margin_arcsec, read_rows=read_rows, props=props,
                                  progress=progress, sort_id=any(c.name == "id" for c in cols))
    except BaseException:
        shutil.rmtree(coll_path, ignore_errors=True)
        raise
    finally:
        if own is not None:
            client.close()
            own.close()
        shutil.rmtree(tmp, ignore_errors=True)
    t2 = time.perf_counter()
    res = _result(coll_path, name, margin_path, n, cols, {"stream": t1 - t0, "import": t2 - t1, "total": t2 - t0})
    res.n_chunks = len(files)
    res.peak_rss_mb = {"stream": rss_stream, "total": _maxrss_mb()}
    log.info("%s: hats-import (catalogue + margin) in %.1f s; peak RSS of this process %.0f MiB", table, t2 - t1,
             res.peak_rss_mb["total"])
    return res


def _run_import(client, *, coll_path, out_dir, name, files, schema_file, cat_type, n_rows, tmp,
                pixel_threshold, highest_order, margin_arcsec, read_rows, props, progress, sort_id):
    """hats-import's collection pipeline (catalogue + margin) on ``client``; returns the margin path."""
    from hats_import import CollectionArguments, pipeline_with_client
    from hats_import.catalog.file_readers import ParquetPyarrowReader

    try:
        args = CollectionArguments(output_path=out_dir, output_artifact_name=name, tmp_dir=tmp, resume=False,
                                   progress_bar=progress, addl_hats_properties=props)
        args.catalog(input_file_list=files, file_reader=ParquetPyarrowReader(chunksize=read_rows),
                     catalog_type=cat_type, ra_column="ra", dec_column="dec",
                     pixel_threshold=pixel_threshold, highest_healpix_order=highest_order,
                     use_schema_file=schema_file, expected_total_rows=n_rows,
                     sort_columns="id" if sort_id else None)
        margin_path = None
        if margin_arcsec > 0:
            args.add_margin(margin_threshold=float(margin_arcsec), is_default=True)
            margin_path = os.path.join(coll_path, args.margin_paths[0])
        pipeline_with_client(args, client)
    except CatdbError:
        raise
    except Exception as e:  # hats-import / dask errors: say which step, keep the message
        raise CatdbError(f"hats-import failed for {name!r}: {type(e).__name__}: {e}") from e
    return margin_path


def _result(coll_path, name, margin_path, n, cols, seconds) -> HatsResult:
    import hats

    cat = hats.read_hats(os.path.join(coll_path, name))
    pixels = cat.get_healpix_pixels()
    n_margin, thr = 0, 0.0
    if margin_path:
        with warnings.catch_warnings():  # a margin has no partition_info.csv: hats lists its files
            warnings.simplefilter("ignore", UserWarning)
            m = hats.read_hats(margin_path)
        n_margin = int(m.catalog_info.total_rows or 0)
        thr = float(m.catalog_info.margin_threshold)
    if int(cat.catalog_info.total_rows) != n:  # hats-import checks it too (expected_total_rows)
        raise CatdbError(f"{coll_path}: {cat.catalog_info.total_rows} rows written, {n} streamed")
    return HatsResult(collection_path=coll_path, catalog_path=str(cat.catalog_path), margin_path=margin_path,
                      n_rows=n, n_partitions=len(pixels), max_order=max(p.order for p in pixels),
                      n_margin_rows=n_margin, margin_arcsec=thr, columns=cols, seconds=seconds)
