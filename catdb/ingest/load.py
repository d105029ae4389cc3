"""Loading parsed inputs into the database: one transaction per file, COPY for rows.

Each public function takes an open psycopg connection (not in autocommit),
records one ``stage_run`` (stage ``ingest-catalog``, ``ingest-image`` or
``ingest-refcat``) for the call, and loads each file in its own transaction:
a bad file raises :class:`~catdb.errors.InputError` naming it, and nothing of
it is written (files before it stay loaded).

One file, one exposure: identity is the content.  A file whose SHA-256 is
already in the database (catalogue or image, under any path) is not loaded
again: it is "unchanged" (``same content as exposure N, PATH``); the stored
path follows a moved file (the stored one no longer exists, or
``relocate=True``).  A path already ingested with a different SHA-256 is an
error unless ``replace=True``, which deletes the old exposure (and everything
derived from it) in the same transaction as the new load.  Concurrent loads of
the same content (or path) take turns on row locks of ``ingest_lock``.
"""
from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing as mp
import os
import pickle
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from astropy.io import fits
from psycopg import sql
from psycopg.conninfo import make_conninfo
from tqdm import tqdm

from ..algorithms.astrometry import has_celestial_wcs
from ..db.copy import copy_encoded, copy_table, encode_rows, json_text, table_types
from ..db.engine import connect
from ..db.provenance import fail_run, finish_run, start_run
from ..db.bulk import detach_indexes, end_bulk, restore_indexes
from ..errors import CatdbError, InputError
from ..schema import exposure
from ..wcsutil import wcs_from_header
from .headers import (
    check_obscode,
    detect_instrument,
    exposure_metadata,
    inherit_header,
    inherits_wcs,
    load_keymap,
    read_header,
    read_image_headers,
    sha256_file,
)
from .refcat import read_refcat
from .sextractor import _RADEC, detection_columns, read_catalog, read_catalogs

log = logging.getLogger("catdb.ingest")


@dataclass
class IngestResult:
    """What one file contributed."""

    path: str
    status: str  # loaded, unchanged, replaced, skipped, failed
    exposure_ids: list = field(default_factory=list)
    n_rows: int = 0
    notes: list = field(default_factory=list)
    error: str | None = None  # one-line message when status is 'failed' (on_error='collect')
    #: why a file was not loaded again, e.g. ``same content as exposure 12, /data/a.fits``
    detail: str | None = None


ON_ERROR = ("raise", "collect")


def _check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")


def _check_jobs(jobs) -> int:
    if isinstance(jobs, bool) or int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs!r}")
    return int(jobs)


def _one_line(exc: BaseException, path) -> CatdbError:
    """The error of one file as a one-line :class:`CatdbError` that names the file.

    Messages from deeper layers (astropy, ERFA) can span lines; the CLI prints one line per
    failed file, so whitespace runs are collapsed.  Non-catdb exceptions (astropy or numpy
    failures on a malformed file) become an :class:`InputError` with their type named.
    """
    path = str(path)
    if isinstance(exc, InputError):
        msg = " ".join(exc.message.split())
        if exc.path is None:
            return InputError(msg, path=path, row=exc.row, keyword=exc.keyword)
        if msg == exc.message:
            return exc
        return InputError(msg, path=exc.path, row=exc.row, keyword=exc.keyword)
    text = " ".join(str(exc).split())
    if isinstance(exc, CatdbError):
        if path in text and text == str(exc):
            return exc
        try:
            return type(exc)(text if path in text else f"{path}: {text}")
        except TypeError:  # a subclass with another signature
            return InputError(text if path in text else f"{path}: {text}")
    return InputError(f"cannot ingest ({type(exc).__name__}: {text})", path=path)


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def _load_files(conn, paths, on_error, one, what, progress, *, jobs=1, task=None):
    """Call ``one(path)`` for each path in its own transaction; collect or raise failures.

    Returns the results, one per path in order.  In ``raise`` mode the first failure is
    re-raised (one line, naming the file) after its transaction was rolled back.  With
    ``jobs > 1`` the files are loaded by :func:`_load_parallel` (``task``: the worker-side
    ``(kind, kwargs)`` of ``one``).
    """
    if jobs > 1 and len(paths) > 1:
        return _load_parallel(conn, paths, on_error, task, what, progress, jobs)
    results = []
    for path in _progress(paths, what, progress):
        res, err = _load_one(conn, path, one)
        if err is not None:
            if on_error == "raise":
                raise err[0] from err[1]
            results.append(IngestResult(path=path, status="failed", error=str(err[0])))
            continue
        results.append(res)
    return results


def _load_one(conn, path, one):
    """``one(path)`` in its own transaction: (result, None) or (None, (one-line error, cause)).

    Connection errors are raised (never collected).
    """
    try:
        with conn.transaction():
            return one(path), None
    except Exception as e:
        if _is_connection_error(e):
            raise
        err = _one_line(e, path)
        log.info("%s", err)
        return None, (err, None if (err is e or isinstance(e, CatdbError)) else e)


# --------------------------------------------------------------------------- parallel loading
#: the worker process's connection (one per process, opened by :func:`_worker_init`)
_WORKER = {}


def _conninfo(conn) -> str:
    """A connection string to the database of ``conn`` (with its password), for worker processes."""
    pw = conn.info.password
    return make_conninfo(conn.info.dsn, **({"password": pw} if pw else {}))


class _Orphaned(BaseException):
    """Raised in a worker whose parent ``catdb`` process is gone: roll back, commit nothing, exit."""


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``).

    The worker's parent is the multiprocessing fork server, which exits when the ``catdb``
    process that started it dies (kill -9 included: its end of the fork server's pipe closes),
    so a worker never outlives the command.  Elsewhere :func:`_parent_alive` alone guards the
    commits.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1  # linux/prctl.h
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl: the parent check before each commit remains
        pass


def _parent_alive() -> bool:
    """True while the ``catdb`` process that started this worker runs (not a zombie) and the
    worker was not re-parented (its fork server exited)."""
    if os.getppid() != _WORKER.get("ppid", os.getppid()):
        return False
    pid = _WORKER.get("parent")
    if pid is None:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True


def _worker_init(conninfo: str, parent_pid: int | None = None) -> None:
    """Worker start: die with the parent, leave Ctrl-C to the parent, open the connection.

    SIGINT is ignored here: the parent receives it, stops handing out files and terminates
    the workers (their open transactions are rolled back by the server), see
    :func:`_load_parallel`.
    """
    _WORKER["ppid"] = os.getppid()
    _WORKER["parent"] = parent_pid
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not _parent_alive():  # the parent died before prctl took effect
        os._exit(1)
    _WORKER["conn"] = connect(conninfo)
    _watch_parent()


#: seconds between two checks of the parent by a worker's watchdog thread
_WATCH_INTERVAL = 0.5


def _watch_parent() -> None:
    """Exit this worker (``os._exit``: its open transaction, if any, is rolled back by the server) when
    the ``catdb`` process that started it is gone.

    A worker waiting for its next file blocks on the executor's call queue, and neither of the
    other guards fires: with the forkserver start method the worker holds both ends of that
    queue's pipe (no EOF when the parent dies) and the write end of the fork server's "alive"
    pipe (so the fork server, the worker's real parent, lives on and ``PR_SET_PDEATHSIG`` never
    fires).  Measured: a ``catdb ingest -j 2`` killed while one worker had finished its files and
    the other was still loading left the idle worker and its database session for good
    (``tests/test_faults.py``).  A daemon thread checking :func:`_parent_alive` twice a second
    ends it.
    """
    def watch():
        while True:
            time.sleep(_WATCH_INTERVAL)
            if not _parent_alive():
                os._exit(1)

    threading.Thread(target=watch, name="catdb-parent-watch", daemon=True).start()


def _worker_group(kind: str, items, kwargs: dict):
    """Load files in a worker process, in order, each in its own transaction.

    ``items`` is a list of ``(index, path)`` sharing one database key (the same file named
    twice is loaded once, then found unchanged, as in a serial run).  Returns
    ``[(index, result or None, error or None)]``; an error is the one-line exception
    (picklable) of a failed file.
    """
    conn = _WORKER["conn"]
    fn = {"catalog": _ingest_one_catalog, "image": _ingest_one_image}[kind]

    def guarded(p):
        res = fn(conn, p, **kwargs)
        if not _parent_alive():  # just before the commit: an orphan never commits
            raise _Orphaned()
        return res

    out = []
    for i, path in items:
        if not _parent_alive():
            os._exit(1)
        try:
            res, err = _load_one(conn, path, guarded)
        except _Orphaned:  # the file's transaction was rolled back
            os._exit(1)
        if err is not None:
            e = err[0]
            try:
                pickle.loads(pickle.dumps(e))
            except Exception:
                e = InputError(str(e))
            out.append((i, None, e))
        else:
            out.append((i, res, None))
    return out


def _mp_context():
    # forkserver: workers do not inherit the parent's open libpq connection (fork would share its
    # socket) and start fast from a server process that has imported astropy and catdb once
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["catdb.ingest.load", "catdb.ingest.sextractor", "catdb.ingest.headers",
                                "catdb.db.copy", "psycopg", "pyarrow", "astropy.wcs"])
    return ctx


def _load_parallel(conn, paths, on_error, task, what, progress, jobs):
    """Load files with ``jobs`` worker processes, each with its own connection.

    One transaction per file as in a serial run; results in the order of ``paths``.  Files
    that resolve to the same database key (the same file named twice) go to the same worker in
    order, so the statuses are those of a serial run.  Two processes (or workers) loading the same
    file (or two copies of it) at once take turns on row locks of ``ingest_lock`` (see :func:`_claim`).  In
    ``raise`` mode the first failure in ``paths`` order is raised once the files in flight are
    done (files queued behind it are not started; files already committed stay loaded).
    """
    kind, kwargs = task
    groups: dict[str, list] = {}
    for i, p in enumerate(paths):
        groups.setdefault(_group_key(kind, p, kwargs), []).append((i, p))
    results: list = [None] * len(paths)
    errors: dict[int, BaseException] = {}
    bar = _bar(len(paths), what, progress)
    n_workers = min(jobs, len(groups))
    # not a `with` block: its exit waits for every queued file, even on Ctrl-C
    ex = ProcessPoolExecutor(max_workers=n_workers, mp_context=_mp_context(), initializer=_worker_init,
                             initargs=(_conninfo(conn), os.getpid()))
    try:
        pending = {ex.submit(_worker_group, kind, items, kwargs) for items in groups.values()}
        stop = False
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                for i, res, err in fut.result():  # a connection error is raised here
                    if err is not None:
                        errors[i] = err
                        results[i] = IngestResult(path=paths[i], status="failed", error=str(err))
                        stop = stop or on_error == "raise"
                    else:
                        results[i] = res
                    if bar is not None:
                        bar.update(1)
            if stop:
                for fut in pending:
                    fut.cancel()
                pending = {f for f in pending if not f.cancelled()}
    except BaseException:  # Ctrl-C, or a connection error: no worker goes on loading after us
        _terminate_workers(ex)
        raise
    else:
        ex.shutdown(wait=True)
    finally:
        if bar is not None:
            bar.close()
    if on_error == "raise" and errors:
        raise errors[min(errors)]
    return results


def _terminate_workers(ex) -> None:
    """Cancel the queued files and SIGTERM the workers of ``ex`` (the server rolls back their open
    transactions); waits for them to exit."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    ex.shutdown(wait=False, cancel_futures=True)
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(10)


def _group_key(kind, path, kwargs) -> str:
    """The database key a file is stored under (``exposure.path``)."""
    if kind == "catalog" and kwargs.get("image"):
        return _resolve(kwargs["image"])
    return _resolve(path)


def _claim(conn, keys) -> None:
    """Row-lock the ingest keys of one file (``ingest_lock``) until the transaction ends.

    Two transactions ingesting the same content (the same file, a copy under another path,
    two workers or two ``catdb ingest`` processes) take turns: the second sees the first's
    committed rows and finds the file unchanged, rather than loading it again or failing on the
    unique constraint ``uq_exposure_path_hdu``.  All keys of a transaction are locked in one
    statement in sorted order, so two ingests never wait on each other in a cycle.  A row lock
    needs INSERT/UPDATE on ``ingest_lock``, which the read-only role ``catdb_reader`` lacks
    (any role can take an advisory lock: a reader could stall every ingest).

    Parameters
    ----------
    conn : psycopg.Connection
        Inside the file's transaction.
    keys : iterable of str
        ``sha256:<hex>`` of the file's content, ``path:<database key>``.
    """
    conn.execute("INSERT INTO ingest_lock AS l (key) SELECT k FROM unnest(%s::text[]) AS k ORDER BY k "
                 "ON CONFLICT (key) DO UPDATE SET locked_at = now()", (sorted(set(keys)),))


def _file_counts(paths, results, t0) -> dict:
    failed = [r for r in results if r.status == "failed"]
    return {"files": len(paths),
            "loaded": sum(r.status in ("loaded", "replaced") for r in results),
            "unchanged": sum(r.status == "unchanged" for r in results),
            "failed": len(failed),
            "failed_files": [{"path": r.path, "error": r.error} for r in failed],
            "exposure": sum(len(r.exposure_ids) for r in results if r.status in ("loaded", "replaced")),
            "seconds": round(time.perf_counter() - t0, 3)}


def _finish(conn, run_id, paths, results, counts):
    exp_ids = [e for r in results for e in r.exposure_ids]
    status, error = "ok", None
    if paths and counts["failed"] == len(paths):
        status = "failed"
        error = f"all {len(paths)} files failed; first: {results[0].error}"
    finish_run(conn, run_id, inputs=exp_ids, counts=counts, status=status, error=error)


_EXPOSURE_JSON = {"corners"}


def insert_exposure(conn, row: dict, run_id: int) -> int:
    """INSERT one exposure row (dict keyed by exposure columns); returns its id."""
    cols = [k for k in row if k in exposure.c and k != "id"]
    vals = [row[k] for k in cols]
    q = sql.SQL("INSERT INTO exposure ({c}, stage_run_id) VALUES ({v}, %s) RETURNING id").format(
        c=sql.SQL(", ").join(map(sql.Identifier, cols)), v=sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    return conn.execute(q, [*vals, run_id]).fetchone()[0]


def _existing(conn, path: str, hdu: int, column: str = "path"):
    return conn.execute(
        sql.SQL("SELECT id, sha256, catalog_sha256 FROM exposure WHERE {c} = %s AND hdu = %s").format(
            c=sql.Identifier(column)), (path, hdu)).fetchone()


def _same_content(conn, sha: str, sha_col: int, hdu: int | None):
    """The exposure holding this content already (lowest id), or None.

    ``sha_col`` 1: ``exposure.sha256`` (an image, matched HDU by HDU); 2: ``catalog_sha256`` (a
    catalogue; ``hdu`` None for a one-catalogue file, whose exposure may sit at the image's HDU).
    Returns ``(id, path, catalog_path)``.
    """
    col = "sha256" if sha_col == 1 else "catalog_sha256"
    q = f"SELECT id, path, catalog_path FROM exposure WHERE {col} = %s"
    args = [sha]
    if hdu is not None:
        q += " AND hdu = %s"
        args.append(hdu)
    return conn.execute(q + " ORDER BY id LIMIT 1", args).fetchone()


def _unchanged_or_replace(conn, key: str, hdu: int, sha: str, sha_col: int, replace: bool, path,
                          res: IngestResult, *, content_hdu: int | None = None, relocate: bool = False) -> bool:
    """True when this content (or this key with this content) is already ingested: nothing to do.

    Identity is the content: an exposure whose image (``sha_col`` 1) or catalogue (2) SHA-256
    equals ``sha`` (any path; HDU ``content_hdu``) means the file is already loaded, and it is
    reported ``unchanged`` with ``same content as exposure N, PATH``.  The stored path is re-pointed
    to this file when ``relocate`` is given or the stored file no longer exists (a moved file);
    otherwise (a copy) it is left.  Then, under the same ``key``/``hdu`` with another SHA-256: an
    error unless ``replace``, which deletes the old exposure (and everything derived from it: its
    detections through the statement trigger on ``exposure``, the rest by foreign-key cascades) in
    the caller's transaction.  The caller holds the locks of :func:`_claim`.
    """
    same = _same_content(conn, sha, sha_col, content_hdu)
    if same is not None:
        eid, old_path, old_cat = same
        res.status = "unchanged"
        res.exposure_ids.append(eid)
        stored = old_cat if sha_col == 2 else old_path
        new = _resolve(path)
        if stored == new:
            return True
        gone = stored is not None and not os.path.exists(stored)
        moved = (relocate or gone) and (sha_col == 2 or _existing(conn, key, hdu) is None)
        if moved:
            if sha_col == 1:
                conn.execute("UPDATE exposure SET path = %s WHERE id = %s", (new, eid))
            else:  # a catalogue ingested on its own is keyed by its own path: re-key it when free
                conn.execute("UPDATE exposure SET catalog_path = %s, path = CASE WHEN path = %s AND NOT EXISTS "
                             "(SELECT 1 FROM exposure x WHERE x.path = %s AND x.hdu = exposure.hdu) THEN %s "
                             "ELSE path END WHERE id = %s", (new, stored, new, new, eid))
            res.detail = (f"same content as exposure {eid}, moved from {stored}"
                          + (" (no longer there)" if gone else "") + ": path updated")
        else:
            res.detail = f"same content as exposure {eid}, {stored}"
        return True
    old = _existing(conn, key, hdu)
    if old is None:
        return False
    if old[sha_col] == sha:  # (an exposure without a stored checksum cannot match above)
        res.status = "unchanged"
        res.exposure_ids.append(old[0])
        return True
    if not replace:
        raise InputError(f"already ingested as exposure {old[0]} with different content "
                         f"(use --replace to replace it)", path=path)
    conn.execute("DELETE FROM exposure WHERE id = %s", (old[0],))
    res.status = "replaced"
    return False


def _resolve(path) -> str:
    return str(Path(path).expanduser().resolve())


# --------------------------------------------------------------------------- catalogues
def load_detections(conn, exposure_id: int, cat, wcs=None, run_id: int | None = None,
                    pixscale: float | None = None, extra=None) -> tuple[int, dict]:
    """COPY the detections of one parsed SExtractor catalogue into ``detection``.

    ``detection`` has no per-row foreign keys (docs/schema.md, "Ingest at the COPY limit"): the
    caller guarantees that ``exposure_id`` exists in its transaction (an exposure row it inserted,
    or one it locked ``FOR KEY SHARE``, as :func:`attach_catalog` does).

    Parameters
    ----------
    conn : psycopg.Connection
    exposure_id : int
    cat : catdb.ingest.sextractor.SExCatalog
    wcs : astropy.wcs.WCS, optional
        Used when the catalogue has no ALPHA/DELTA columns.
    run_id : int
        stage_run of the ingest.
    extra : None, 'all' or sequence of str
        Catalogue columns without a ``detection`` column to keep in the ``extra`` jsonb (see
        :func:`select_extra`); default none: parsing jsonb is most of the server's COPY cost.

    Returns
    -------
    n : int
        Rows loaded.
    source : dict
        Detection column -> SExtractor column (or rule) it came from.

    Raises
    ------
    catdb.errors.InputError
        No usable position (no ALPHA/DELTA and no WCS), or NUMBER missing.
    """
    cols, ex, source = _detection_copy_columns(cat, wcs, pixscale, extra)
    return _copy_detections(conn, exposure_id, cols, ex, run_id), source


def _detection_copy_columns(cat, wcs, pixscale, extra):
    """The columns :func:`load_detections` sends: (columns, extra columns, source); no database work."""
    cols, unmapped, source = detection_arrays(cat, wcs=wcs, pixscale=pixscale)
    ex = select_extra(unmapped, extra, cat.path)
    # a column the catalogue lacks (all NaN: NULL) is left out of the COPY: the rows are the same
    # (no detection column but flags has a non-NULL default, and flags is never NaN), the stream shorter
    cols = {k: v for k, v in cols.items()
            if not (np.asarray(v).dtype.kind == "f" and np.asarray(v).ndim == 1 and len(v)
                    and not np.isfinite(v).any())}
    return cols, ex, source


def _encode_detections(cols, ex, run_id, types):
    """The binary COPY rows of :func:`_copy_detections`, ``exposure_id`` first and left to fill in."""
    n = len(cols["number"])
    c = {"exposure_id": np.zeros(n, dtype=np.int64), **cols}
    if ex:
        c["extra"] = json_text(ex, n)
    c["stage_run_id"] = np.full(n, run_id, dtype=np.int64) if run_id is not None else np.full(n, None, dtype=object)
    return encode_rows(c, types)


def _copy_detections(conn, exposure_id, cols, ex, run_id) -> int:
    return copy_table(conn, "detection", cols, constants={"exposure_id": exposure_id, "stage_run_id": run_id},
                      json_column="extra" if ex else None, json_values=ex, binary=True)


def check_extra(extra):
    """Normalise the ``extra`` option: None (no column), ``'all'`` or a tuple of column names.

    Parameters
    ----------
    extra : None, bool, str or sequence of str
        ``None``/``False``/``''``/``'none'``: none; ``True``/``'all'``: every column without a home;
        a comma-separated string or a sequence: those SExtractor column names.

    Raises
    ------
    ValueError
        Not one of these.
    """
    if extra is None or extra is False:
        return None
    if extra is True:
        return "all"
    if isinstance(extra, str):
        low = extra.strip().lower()
        if low in ("", "none"):
            return None
        if low == "all":
            return "all"
        extra = extra.split(",")
    try:
        names = tuple(str(x).strip() for x in extra if str(x).strip())
    except TypeError:
        raise ValueError(f"extra must be None, 'all' or column names, got {extra!r}") from None
    return names or None


def select_extra(unmapped: dict, extra, path=None) -> dict:
    """The catalogue columns to store in ``detection.extra``.

    Parameters
    ----------
    unmapped : dict of str -> numpy.ndarray
        Columns without a ``detection`` column (:func:`detection_arrays`), SExtractor names.
    extra : None, 'all' or sequence of str
        As :func:`check_extra` takes it.
    path : str, optional
        The catalogue (for the message).

    Returns
    -------
    dict of str -> numpy.ndarray
        Empty by default (``extra`` NULL on every row).

    Raises
    ------
    catdb.errors.InputError
        A named column is not among the catalogue's columns without a home (it is missing, or it
        has a ``detection`` column already).
    """
    extra = check_extra(extra)
    if extra is None:
        return {}
    if extra == "all":
        return dict(unmapped)
    missing = [k for k in extra if k not in unmapped]
    if missing:
        raise InputError(f"extra column(s) {', '.join(missing)} not in the catalogue's columns without a "
                         f"detection column: expected some of {', '.join(sorted(unmapped)) or '(none)'}",
                         path=path, keyword=missing[0])
    return {k: unmapped[k] for k in extra}


def detection_arrays(cat, wcs=None, pixscale: float | None = None) -> tuple[dict, dict, dict]:
    """The ``detection`` columns of one parsed SExtractor catalogue, checked, as :func:`load_detections` writes them.

    Returns
    -------
    cols : dict of str -> ndarray, each of shape (n,) or (n, k) for aperture arrays
        Detection columns (FLAGS < 0 read as 0, IMAFLAGS < 0 as NULL; aperture arrays without
        any finite value left out).
    extra : dict of str -> ndarray, shape (n,)
        Unmapped catalogue columns (the ``extra`` jsonb column).
    source : dict
        Detection column -> SExtractor column (or rule) it came from.

    Raises
    ------
    catdb.errors.InputError
        As :func:`check_detections`.
    """
    dc = detection_columns(cat, wcs=wcs, pixscale=pixscale)
    cols = dict(dc.columns)
    check_detections(cols, dc.source, cat.path)
    _fill_instrumental_mags(cols, dc.source)
    cols["flags"] = np.where(np.asarray(cols["flags"]) < 0, 0, cols["flags"]).astype(np.int64)
    if "imaflags" in cols:
        im = np.asarray(cols["imaflags"]).astype(np.float64)
        cols["imaflags"] = np.where(im < 0, np.nan, im)
    # aperture arrays: drop when entirely missing
    for k in ("flux_aper", "fluxerr_aper", "mag_aper", "magerr_aper"):
        a = np.asarray(cols.get(k))
        if a is None or a.size == 0 or not np.isfinite(a).any():
            cols.pop(k, None)
    extra = {k: np.asarray(v) for k, v in dc.extra.items() if np.asarray(v).ndim == 1}
    return cols, extra, dc.source


def check_detections(cols: dict, source: dict, path) -> None:
    """Refuse detections that cannot go into the database as they are.

    Vectorised checks over the whole catalogue; the first offending row is named
    (1-based, as in the file).

    Parameters
    ----------
    cols : dict of str -> numpy.ndarray
        Detection columns (``number``, ``ra``, ``dec`` at least), shape (N,).
    source : dict
        Detection column -> catalogue column it came from (for the message).
    path : str
        The catalogue file.

    Raises
    ------
    catdb.errors.InputError
        A non-finite RA/Dec (no position: neither ALPHA/DELTA nor X/Y with a WCS),
        RA outside [0, 360) deg or Dec outside [-90, +90] deg (ICRS, SExtractor manual
        "Astrometry and WORLD coordinates"), or a NUMBER that is not unique (SExtractor's
        running object number identifies a source within its catalogue).
    """
    ra = np.asarray(cols["ra"], dtype=float)
    dec = np.asarray(cols["dec"], dtype=float)
    ra_col, dec_col = source.get("ra") or "ALPHA_J2000", source.get("dec") or "DELTA_J2000"
    finite = np.isfinite(ra) & np.isfinite(dec)
    if not finite.all():
        bad = int(np.flatnonzero(~finite)[0])
        if not np.isfinite(ra).any():
            raise InputError("no sky position: need ALPHA(WIN)_J2000/DELTA(WIN)_J2000 or X/Y_IMAGE with an "
                             "image WCS", path=path, row=bad + 1, keyword=ra_col)
        raise InputError(f"non-finite position (RA {ra[bad]}, Dec {dec[bad]}): expected finite degrees",
                         path=path, row=bad + 1, keyword=ra_col if not np.isfinite(ra[bad]) else dec_col)
    bad_ra = (ra < 0) | (ra >= 360)
    if bad_ra.any():
        i = int(np.flatnonzero(bad_ra)[0])
        raise InputError(f"RA {ra[i]!r} deg out of range: expected 0 <= RA < 360", path=path, row=i + 1,
                         keyword=ra_col)
    bad_dec = np.abs(dec) > 90
    if bad_dec.any():
        i = int(np.flatnonzero(bad_dec)[0])
        raise InputError(f"Dec {dec[i]!r} deg out of range: expected -90 <= Dec <= +90", path=path, row=i + 1,
                         keyword=dec_col)
    num = np.asarray(cols["number"])
    if num.size > 1:
        order = np.argsort(num, kind="stable")
        dup = num[order[1:]] == num[order[:-1]]
        if dup.any():
            later = order[1:][dup]
            i = int(later.min())
            first = int(np.flatnonzero(num == num[i])[0])
            raise InputError(f"duplicate NUMBER {int(num[i])} (also row {first + 1}): expected one running "
                             f"number per source", path=path, row=i + 1, keyword="NUMBER")


def _fill_instrumental_mags(cols: dict, source: dict) -> None:
    """MAG_x = -2.5 log10(FLUX_x) (SExtractor's default MAG_ZEROPOINT 0) where a catalogue has flux only.

    MAGERR_x = 1.0857 FLUXERR_x / FLUX_x (SExtractor manual, section "Photometry").  Non-positive
    fluxes give NULL magnitudes, as SExtractor's 99.0 would be meaningless in SQL.
    """
    for kind in ("auto", "iso", "psf", "aper"):
        mag, flux = cols.get(f"mag_{kind}"), cols.get(f"flux_{kind}")
        if flux is None:
            continue
        flux = np.asarray(flux, dtype=float)
        if flux.size == 0 or not np.isfinite(flux).any():
            continue
        if mag is not None and np.isfinite(np.asarray(mag, dtype=float)).any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(flux > 0, -2.5 * np.log10(flux), np.nan)
            ferr = np.asarray(cols.get(f"fluxerr_{kind}", np.full_like(flux, np.nan)), dtype=float)
            e = np.where(flux > 0, 2.5 / np.log(10) * ferr / flux, np.nan)
        cols[f"mag_{kind}"], cols[f"magerr_{kind}"] = m, e
        source[f"mag_{kind}"] = f"-2.5 log10(FLUX_{kind.upper()}) (zeropoint 0)"


def ingest_catalogs(conn, paths, *, instrument: str | None = None, image: str | None = None,
                    replace: bool = False, progress: bool = False,
                    on_error: str = "raise", image_hdu: int | None = None, jobs: int = 1,
                    obscode: str | None = None, relocate: bool = False, extra=None,
                    bulk: bool | None = None) -> list[IngestResult]:
    """Ingest SExtractor catalogues (FITS_LDAC, FITS_1.0, ASCII_HEAD): exposure + detection rows.

    Parameters
    ----------
    conn : psycopg.Connection
    paths : sequence of path
    instrument : str, optional
        Keyword map name or TOML path (default: auto-detected from the header).
    image : path, optional
        The image the catalogue was extracted from (one catalogue only): its
        header is used when the catalogue carries none (ASCII_HEAD).
    replace : bool
        Replace a catalogue already ingested whose content changed.
    relocate : bool
        Identity is the content: a file whose SHA-256 is already in the database (any path) is
        not loaded again but reported ``unchanged`` (``IngestResult.detail``: ``same content as
        exposure N, PATH``).  The stored path is re-pointed to the new one when the stored file no
        longer exists (a moved file), or always with ``relocate``; a copy beside it is left.
    progress : bool
        tqdm progress bar over the files.
    image_hdu : int, optional
        0-based HDU of ``image`` the catalogue was extracted from (default: the first HDU
        holding an image, HDU 1 of a ``.fits.fz``).
    on_error : {'raise', 'collect'}
        ``'raise'`` (default): the first bad file raises, files before it stay loaded.
        ``'collect'``: a bad file is rolled back and reported as a result with status
        ``'failed'`` and a one-line ``error``; the other files are loaded.  The run's
        ``stage_run.counts`` holds ``files``, ``loaded``, ``unchanged``, ``failed``,
        ``failed_files`` (path + error), ``exposure``, ``detection``, ``seconds``; its status
        is ``failed`` only when every file failed.
    jobs : int
        Files loaded at a time, each by its own worker process with its own connection (default
        1: in this process, on ``conn``).  Same transactions (one per file), results, counts and
        single ``stage_run`` as a serial run; the same file named twice is loaded once.  With
        ``on_error='raise'`` the first failure (in ``paths`` order) is raised once the files in
        flight are done; files after it may already be loaded (each is committed on its own).
    obscode : str, optional
        MPC observatory code of every exposure (``--obscode``), winning over header and keymap;
        without it the code is read from the header/keymap or left NULL.
    extra : None, 'all' or sequence of str
        Catalogue columns without a ``detection`` column kept in ``detection.extra`` (jsonb, by
        SExtractor name): ``'all'``, or the names given (``--extra``).  Default none (``extra``
        NULL): the jsonb costs the server more than every other column together (docs/schema.md).
    bulk : bool or None
        Bulk mode (:mod:`catdb.db.bulk`): drop the secondary indexes of ``detection`` (``(exposure_id,
        number)``, q3c) for the load and rebuild them once at the end, still one transaction per
        file; readers meanwhile get the same rows by sequential scans.  None (default): when
        :func:`bulk_decision` finds the load large next to the table and nobody else connected.
        Indexes a killed bulk load left detached are rebuilt when the next ingest starts (or ends,
        for a bulk one).  ``stage_run.counts`` has ``bulk`` and ``indexes_rebuilt``.

    Returns
    -------
    list of IngestResult
        One per path, in order.

    Raises
    ------
    catdb.errors.InputError
        (``on_error='raise'``) the first bad file, one line naming it and the row, column or
        keyword at fault: not FITS / truncated, no sky position (no ALPHA/DELTA and no WCS),
        RA/Dec non-finite or out of range, duplicate NUMBER, required header keyword missing
        (keymap ``required``), unparsable time card.
    ValueError
        ``on_error`` not one of ``'raise'``, ``'collect'``, ``jobs`` < 1, or a bad ``extra``.
    psycopg.OperationalError
        The database connection failed (never collected).
    """
    _check_on_error(on_error)
    jobs = _check_jobs(jobs)
    extra = check_extra(extra)
    paths = [str(p) for p in paths]
    t0 = time.perf_counter()
    if obscode is not None:
        obscode = check_obscode(obscode)
    run_id = start_run(conn, "ingest-catalog", {"paths": paths, "instrument": instrument, "image": image,
                                               "image_hdu": image_hdu, "replace": replace, "obscode": obscode,
                                               "relocate": relocate,
                                               "extra": list(extra) if isinstance(extra, tuple) else extra})
    kwargs = {"run_id": run_id, "instrument": instrument, "image": image, "replace": replace,
              "image_hdu": image_hdu, "obscode": obscode, "relocate": relocate, "extra": extra}

    ahead = None
    if jobs == 1 and len(paths) > 1:  # serial: read ahead (workers, or a single file, read inline)
        with conn.transaction():
            types = table_types(conn, "detection")
        ahead = _ReadAhead(paths, lambda p: _prepare_catalog(p, **kwargs, types=types))

    def one(path):
        return _ingest_one_catalog(conn, path, **kwargs, prepared=ahead.get(path) if ahead else None,
                                   before_copy=ahead.advance if ahead else None)

    detached = None
    try:
        with conn.transaction():
            before = _estimated_rows(conn, "detection")
            use_bulk = bulk_decision(conn, paths, bulk, replace)
        if use_bulk:
            detached = detach_indexes(conn, "detection", run_id)
        else:  # indexes a killed bulk load left detached (none while another bulk load runs)
            restore_indexes(conn, "detection")
        switch = sys.getswitchinterval()
        if ahead is not None:  # see _ReadAhead: the COPY thread gets the GIL back sooner
            sys.setswitchinterval(min(switch, _SWITCH_INTERVAL))
        try:
            results = _load_files(conn, paths, on_error, one, "catalogues", progress, jobs=jobs,
                                  task=("catalog", kwargs))
        finally:
            if ahead is not None:
                ahead.close()
                sys.setswitchinterval(switch)
        rebuilt = []
        if detached is not None:
            rebuilt, detached = end_bulk(conn, "detection"), None
        n_total = sum(r.n_rows for r in results)
        with conn.transaction():
            if n_total and (before is None or n_total >= ANALYZE_FRACTION * before):
                analyze_detection(conn)
            counts = _file_counts(paths, results, t0)
            counts["detection"] = n_total
            counts["bulk"] = use_bulk
            counts["indexes_rebuilt"] = rebuilt
            _finish(conn, run_id, paths, results, counts)
    except BaseException as e:  # KeyboardInterrupt too: the run says it was interrupted
        if detached is not None and not conn.closed:
            try:  # rebuild now what can be; else the next ingest does (detached_index)
                conn.rollback()
                end_bulk(conn, "detection")
            except Exception:  # noqa: BLE001 - the original error is the one to report
                log.warning("indexes of detection left detached after an interrupted bulk load: the next "
                            "catdb ingest re-creates them (or catdb db restore-indexes)")
        fail_run(conn, run_id, e)
        raise
    return results


#: auto bulk mode (:func:`bulk_decision`): the files hold at least this many bytes ...
BULK_MIN_BYTES = 8 << 20
#: ... and at least this fraction of the bytes of the ``detection`` table (heap)
BULK_FRACTION = 0.5


def bulk_decision(conn, paths, bulk, replace) -> bool:
    """Whether to load with the secondary indexes of ``detection`` detached (:mod:`catdb.db.bulk`).

    ``bulk`` True or False decides.  None (auto): yes when the catalogue files hold at least
    :data:`BULK_MIN_BYTES` and at least :data:`BULK_FRACTION` of the bytes of ``detection``'s
    heap (a rebuild reads the whole table: it pays off when the load is large next to it,
    docs/schema.md), the load replaces nothing (deleting a replaced exposure's detections needs
    the ``exposure_id`` index), this role owns ``detection`` (DROP/CREATE INDEX need it), and no
    other client session is connected to the database (nobody's cone search turns into a scan
    of the table).
    """
    if bulk is not None:
        return bool(bulk)
    if replace:
        return False
    size = sum(os.path.getsize(p) for p in paths if os.path.isfile(p))
    if size < BULK_MIN_BYTES:
        return False
    table, own = conn.execute("SELECT pg_relation_size(c.oid), pg_has_role(c.relowner, 'USAGE') FROM pg_class c "
                              "WHERE c.oid = 'detection'::regclass").fetchone()
    if not own or size < BULK_FRACTION * table:
        return False
    conn.execute("SELECT pg_stat_clear_snapshot()")  # the activity view is snapshotted per transaction
    others = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                          "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()[0]
    return others == 0


#: the columns ``ingest_catalogs`` analyses when it ends: what catdb's stages filter and join on
#: (``grep 'd\.'`` in catdb/stages); autovacuum analyses every column later (docs/schema.md)
ANALYZE_COLUMNS = ("id", "exposure_id", "number", "ra", "dec", "flags", "imaflags", "snr", "mag_auto", "fwhm",
                   "fwhm_image", "elongation", "class_star", "spread_model", "stage_run_id")


#: statistics target of that ANALYZE: a sample of 300 x 30 = 9,000 rows (PostgreSQL's default target 100 samples
#: 30,000), histograms and most-common-value lists of 30 entries; autovacuum's ANALYZE uses the full target
ANALYZE_TARGET = 30


def analyze_detection(conn) -> None:
    """``ANALYZE detection (ANALYZE_COLUMNS)``: fresh row counts and the statistics the stages plan with.

    A provisional sample (:data:`ANALYZE_TARGET`) of the columns catdb's stages filter and join on.
    A column list leaves the table's count of changed rows as it was, so autovacuum's own
    ANALYZE of every column (and of the q3c index expression) still follows the load, in the
    background (docs/schema.md, "Ingest at the COPY limit").
    """
    old = conn.execute("SELECT current_setting('default_statistics_target')").fetchone()[0]
    conn.execute("SELECT set_config('default_statistics_target', %s, true)", (str(ANALYZE_TARGET),))
    conn.execute(sql.SQL("ANALYZE detection ({})").format(sql.SQL(", ").join(map(sql.Identifier, ANALYZE_COLUMNS))))
    conn.execute("SELECT set_config('default_statistics_target', %s, true)", (old,))


#: ``ingest_catalogs`` runs ``ANALYZE detection`` when it added at least this fraction of the rows the table
#: had (autovacuum's default ``autovacuum_analyze_scale_factor``): a small load into a large table leaves
#: the statistics as good as they were, and autovacuum analyses the table later
ANALYZE_FRACTION = 0.1


def _estimated_rows(conn, table: str) -> float | None:
    """The planner's row count of ``table`` (``pg_class.reltuples``); None when never analysed."""
    r = conn.execute("SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (table,)).fetchone()
    return None if r is None or r[0] is None or r[0] < 0 else float(r[0])


def _ingest_one_catalog(conn, path, *, run_id, instrument=None, image=None, replace=False, image_hdu=None,
                        obscode=None, relocate=False, extra=None, prepared=None, before_copy=None):
    """Load one catalogue file (every image extension of it) in the caller's transaction.

    ``prepared``: the file's :func:`_prepare_catalog` result when it was read ahead (serial
    loading reads the next file while this one is written); read here otherwise.
    ``before_copy``: called before the first COPY (the read-ahead of the next file starts there,
    so that it runs beside the COPY rather than beside this file's short statements).
    """
    if prepared is None:
        prepared = _prepare_catalog(path, instrument=instrument, image=image, image_hdu=image_hdu,
                                    obscode=obscode, extra=extra)
    prep = prepared
    res = IngestResult(path=path, status="loaded")
    _claim(conn, [f"sha256:{prep.cat_sha}", f"path:{prep.key}"])
    for i, (kind, hdu, part) in enumerate(prep.parts):
        if kind == "no header":
            raise part
        if _unchanged_or_replace(conn, prep.key, hdu, prep.cat_sha, 2, replace, path, res,
                                 content_hdu=None if len(prep.parts) == 1 else i, relocate=relocate):
            continue
        if kind == "error":  # found while reading ahead; raised where a file read here would raise it
            raise part
        row, cols, ex, source, encoded = part
        # the exposure row is inserted in this transaction: exposure_id is checked once per file
        eid = insert_exposure(conn, row, run_id)
        if before_copy is not None:
            before_copy()
        if encoded is not None:  # encoded while reading ahead: exposure_id goes in now
            n = copy_encoded(conn, "detection", encoded, eid)
        else:
            n = _copy_detections(conn, eid, cols, ex, run_id)
        res.exposure_ids.append(eid)
        res.n_rows += n
        res.notes.append(f"positions from {source.get('ra')}")
    return res


@dataclass
class _PreparedCatalog:
    """What :func:`_prepare_catalog` read from one catalogue file, before any database work."""

    path: str
    cat_sha: str
    key: str
    #: per catalogue: ``("ok", hdu, (exposure row, columns, extra columns, source, encoded rows or None))``, or
    #: ``("error", hdu, exception)`` / ``("no header", None, exception)`` to raise when it is reached
    parts: list


def _prepare_catalog(path, *, instrument=None, image=None, image_hdu=None, obscode=None, extra=None,
                     run_id=None, types=None, **_ignored) -> _PreparedCatalog:
    """The database-free part of loading a catalogue file: read, checksum, metadata, detection columns.

    Runs in a thread beside the database work of the previous file in a serial load; with
    ``types`` (``catdb.db.copy.table_types`` of ``detection``) the rows are binary-encoded here too
    (:func:`catdb.db.copy.encode_rows`, ``exposure_id`` filled in when they are sent).  An error of
    one catalogue's metadata or columns is kept in ``parts`` and raised by
    :func:`_ingest_one_catalog` only where a load without reading ahead raises it (after the
    unchanged-content check: a file already ingested is reported unchanged, as before).

    Raises
    ------
    catdb.errors.InputError
        No such file; not a readable catalogue (:func:`catdb.ingest.sextractor.read_catalogs`);
        an unreadable ``image``.
    """
    if not os.path.exists(path):
        raise InputError("no such file", path=path)
    cats = read_catalogs(path)
    cat_sha = sha256_file(path)
    img_header = img_hdu = None
    if image:
        img_header, img_hdu = read_header(image, image_hdu)
    key = _resolve(image) if image else _resolve(path)
    parts = []
    for i, cat in enumerate(cats):
        header = cat.header if len(cat.header) else img_header
        if header is None or not len(header):
            parts.append(("no header", None, InputError(
                f"{cat.format} catalogue carries no image header: give the image with --image", path=path)))
            continue
        hdu = (img_hdu if image else i) if len(cats) == 1 or not image else i
        try:
            km = load_keymap(instrument) if instrument else load_keymap(detect_instrument(header))
            wcs_err = None
            try:  # built once, for the footprint and the positions
                wcs = wcs_from_header(header, path=path)
            except CatdbError:
                wcs = None
            except Exception as e:  # noqa: BLE001 - raised below, where it was raised before
                wcs, wcs_err = None, e
            row = exposure_metadata(header, km, path=image or path, hdu=hdu, sha256=None if image else cat_sha,
                                    obscode=obscode, wcs=wcs)
            row["path"] = key
            row["catalog_path"] = _resolve(path)
            row["catalog_sha256"] = cat_sha
            if not image:
                row["sha256"] = None  # the image itself was not read
            if wcs_err is not None:
                raise wcs_err
            if wcs is None:
                sky = catalog_sky_columns(cat)
                if sky is None:
                    raise InputError("no sky position: the catalogue's image header has no celestial WCS and its sky "
                                     "columns (ALPHA_J2000/DELTA_J2000...) are missing or degenerate (all equal, or "
                                     "equal to X/Y_IMAGE: SExtractor ran without a WCS), so every RA/Dec would be "
                                     "invented; nothing written. Get a solution first: ingest the image (catdb ingest "
                                     "image), plate-solve it (catdb stage solve, README 'Astrometry'), then catdb "
                                     "stage extract; or solve the catalogue with SCAMP and give the image header "
                                     "with --image", path=path, keyword="CTYPE1")
                row["wcs_status"] = "header"
                row["wcs_source"] = (f"catalogue sky columns {sky[0]}/{sky[1]} (the catalogue producer's WCS; "
                                     "no WCS cards in the catalogue header)")
            cols, ex, source = _detection_copy_columns(cat, wcs, row.get("pixscale"), extra)
            encoded = None if types is None else _encode_detections(cols, ex, run_id, types)
            parts.append(("ok", hdu, (row, cols, ex, source, encoded)))
        except Exception as e:  # noqa: BLE001 - raised by _ingest_one_catalog at the same point as before
            parts.append(("error", hdu, e))
    return _PreparedCatalog(path=str(path), cat_sha=cat_sha, key=key, parts=parts)


#: GIL switch interval (s) while a serial ingest reads ahead (Python's default is 0.005)
_SWITCH_INTERVAL = 0.001


class _ReadAhead:
    """Serial loading: prepare the next file (:func:`_prepare_catalog`) in a thread while this one is written.

    The database work of a file (its transaction: locks, checks, INSERT, COPY) waits on the
    server, releasing the GIL; reading, parsing and encoding the next FITS file then runs beside
    it, so a serial load takes about the longer of the two per file rather than their sum.  Files
    are handed out in ``paths`` order, one ahead.  Each time the database thread wakes (a reply, a
    128 kB piece of the COPY sent) it waits for the GIL held by the reading thread, up to the
    interpreter's switch interval; :func:`ingest_catalogs` lowers it to ``_SWITCH_INTERVAL`` for
    the load (and restores it).
    """

    def __init__(self, paths, prepare):
        self.paths, self.prepare = list(paths), prepare
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catdb-read-ahead")
        self.futures: dict = {}
        self.next = 0
        self._submit(0)

    def _submit(self, i):
        if i < len(self.paths):
            self.futures[i] = self.pool.submit(self.prepare, self.paths[i])

    def get(self, path):
        """The prepared file ``path`` (the next in order); raises its preparation's error.

        The file after it is prepared from :meth:`advance` (called before this file's COPY), or
        from the next ``get`` when this file had none.
        """
        i = self.next
        if i >= len(self.paths) or self.paths[i] != path:  # not the expected file: read it here
            return self.prepare(path)
        self.next += 1
        if i not in self.futures:
            self._submit(i)
        return self.futures.pop(i).result()

    def advance(self):
        """Start preparing the file after the one last handed out (once)."""
        if self.next not in self.futures:
            self._submit(self.next)

    def close(self):
        for f in self.futures.values():
            f.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)


def catalog_sky_columns(cat) -> tuple[str, str] | None:
    """The sky-position columns of a catalogue when they hold real positions, else None.

    SExtractor run on an image without a WCS writes ``ALPHA_J2000 = DELTA_J2000 = 0`` (or the
    pixel coordinates) for every source: such columns are degenerate, not positions.

    Parameters
    ----------
    cat : catdb.ingest.sextractor.SExCatalog

    Returns
    -------
    (str, str) or None
        The RA and Dec column names, or None when absent, all equal, not finite, or equal to the
        pixel position columns.
    """
    t = cat.table
    for ca, cd in _RADEC:
        if ca in t.colnames and cd in t.colnames:
            ra = np.asarray(t[ca], dtype=float)
            dec = np.asarray(t[cd], dtype=float)
            fin = np.isfinite(ra) & np.isfinite(dec)
            if not fin.any() or len(ra) == 0:
                return None
            if len(ra) > 1 and np.ptp(ra[fin]) == 0 and np.ptp(dec[fin]) == 0:
                return None
            for cx, cy in (("XWIN_IMAGE", "YWIN_IMAGE"), ("X_IMAGE", "Y_IMAGE")):
                if cx in t.colnames and cy in t.colnames and \
                        np.allclose(ra, np.asarray(t[cx], float)) and np.allclose(dec, np.asarray(t[cy], float)):
                    return None
            return ca, cd
    return None


def attach_catalog(conn, exposure_id: int, catalog_path, run_id: int, replace: bool = True, extra=None,
                   catalog=None, sha256: str | None = None) -> int:
    """Load the detections of a catalogue extracted from an exposure already in the database.

    Used by ``catdb extract`` / the ``extract`` stage: positions from the
    catalogue's ALPHA/DELTA (SExtractor used the image WCS), or from X/Y with
    the exposure's stored WCS.  Earlier detections of the exposure are deleted
    first when ``replace``.  Runs in the caller's transaction, which locks the exposure row
    ``FOR KEY SHARE`` (the check a foreign key made per row, once): it cannot be deleted before
    the detections commit.  ``extra``: as :func:`load_detections`.  ``catalog``: the
    :class:`~catdb.ingest.sextractor.SExCatalog` of ``catalog_path`` when the caller has read it
    already (the ``extract`` stage reads it in its SExtractor worker); ``sha256``: the file's
    digest when known.

    Returns
    -------
    int
        Rows loaded.

    Raises
    ------
    catdb.errors.InputError
        No exposure ``exposure_id``; degenerate sky columns; an ``extra`` column not in the catalogue.
    """
    cat = read_catalog(catalog_path) if catalog is None else catalog
    found = conn.execute("SELECT wcs_header, pixscale FROM exposure WHERE id = %s FOR KEY SHARE",
                         (exposure_id,)).fetchone()
    if found is None:
        raise InputError(f"no exposure {exposure_id} to attach the catalogue to", path=catalog_path)
    wcs_text, pixscale = found
    wcs = None
    if wcs_text:
        try:
            wcs = wcs_from_header(fits.Header.fromstring(wcs_text, sep="\n"))
        except CatdbError:
            wcs = None
    if any(a in cat.table.colnames and d in cat.table.colnames for a, d in _RADEC) \
            and catalog_sky_columns(cat) is None:
        raise InputError(f"the catalogue's sky columns are degenerate (all equal, or equal to X/Y_IMAGE: "
                         f"SExtractor ran without a WCS); exposure {exposure_id}'s detections would get invented "
                         f"RA/Dec: extract with the exposure's WCS (catdb stage extract)", path=catalog_path,
                         keyword="ALPHA_J2000")
    if replace:
        conn.execute("DELETE FROM detection WHERE exposure_id = %s", (exposure_id,))
    n, _ = load_detections(conn, exposure_id, cat, wcs=wcs, run_id=run_id, pixscale=pixscale, extra=extra)
    conn.execute("UPDATE exposure SET catalog_path = %s, catalog_sha256 = %s WHERE id = %s",
                 (_resolve(catalog_path), sha256 or sha256_file(catalog_path), exposure_id))
    return n


# --------------------------------------------------------------------------- images
def ingest_images(conn, paths, *, instrument: str | None = None, hdu: int | None = None,
                  image_type: str | None = None, replace: bool = False,
                  progress: bool = False, on_error: str = "raise", jobs: int = 1,
                  obscode: str | None = None, relocate: bool = False) -> list[IngestResult]:
    """Ingest exposures from FITS images (science or calibration; MEF: one exposure per image HDU).

    Parameters
    ----------
    conn : psycopg.Connection
    paths : sequence of path
        ``.fits``, ``.fit``, ``.fits.fz`` (tile-compressed) files.
    instrument : str, optional
        Keyword map name or TOML path (default: auto-detected).
    hdu : int, optional
        Only this HDU (0-based).
    image_type : str, optional
        Override the header's IMAGETYP (science, bias, flat, dark).
    replace : bool
        Replace an image already ingested whose content changed.
    relocate : bool
        A file whose content is already in the database under another path (see
        :func:`ingest_catalogs`): re-point the stored exposure to this path.
    progress : bool
        tqdm progress bar over the files.
    on_error : {'raise', 'collect'}
        As in :func:`ingest_catalogs`: ``'collect'`` reports a bad file as a result with
        status ``'failed'`` and loads the others; counts in ``stage_run.counts``.
    jobs : int
        Files loaded at a time by worker processes, as in :func:`ingest_catalogs`.
    obscode : str, optional
        MPC observatory code of every exposure, as in :func:`ingest_catalogs`.

    Returns
    -------
    list of IngestResult
        One per path; ``n_rows`` is the number of exposures the file added.

    Raises
    ------
    catdb.errors.InputError
        (``on_error='raise'``) the first bad file (named, with the keyword at fault); earlier
        files stay loaded.
    ValueError
        Bad ``on_error``.
    """
    _check_on_error(on_error)
    jobs = _check_jobs(jobs)
    paths = [str(p) for p in paths]
    t0 = time.perf_counter()
    if obscode is not None:
        obscode = check_obscode(obscode)
    run_id = start_run(conn, "ingest-image", {"paths": paths, "instrument": instrument, "hdu": hdu,
                                             "image_type": image_type, "replace": replace, "obscode": obscode,
                                             "relocate": relocate})
    kwargs = {"run_id": run_id, "instrument": instrument, "hdu": hdu, "image_type": image_type, "replace": replace,
              "obscode": obscode, "relocate": relocate}

    def one(path):
        return _ingest_one_image(conn, path, **kwargs)

    try:
        results = _load_files(conn, paths, on_error, one, "images", progress, jobs=jobs, task=("image", kwargs))
        with conn.transaction():
            counts = _file_counts(paths, results, t0)
            _finish(conn, run_id, paths, results, counts)
    except BaseException as e:  # KeyboardInterrupt too: the run says it was interrupted
        fail_run(conn, run_id, e)
        raise
    return results


def _ingest_one_image(conn, path, *, run_id, instrument=None, hdu=None, image_type=None, replace=False,
                      obscode=None, relocate=False):
    """Load the exposures of one image file (one per image HDU) in the caller's transaction."""
    if not os.path.exists(path):
        raise InputError("no such file", path=path)
    sha = sha256_file(path)
    res = IngestResult(path=path, status="loaded")
    primary, images = read_image_headers(path, hdu)  # one pass over the file
    key = _resolve(path)
    _claim(conn, [f"sha256:{sha}", f"path:{key}"])
    for h_read, header in images:
        own_wcs = inherits_wcs(header, len(images))
        if images[0][0] > 0 and len(images) > 1:  # MEF of extensions: the primary holds the shared cards
            header = inherit_header(primary, header, wcs=own_wcs)  # not its WCS: that places one image only
        if _unchanged_or_replace(conn, key, h_read, sha, 1, replace, path, res, content_hdu=h_read,
                                 relocate=relocate):
            continue
        km = load_keymap(instrument) if instrument else load_keymap(detect_instrument(header))
        # errors name the extension of a multi-image file (FITS extended filename syntax: file.fits[2])
        where = f"{path}[{h_read}]" if len(images) > 1 else path
        row = exposure_metadata(header, km, path=where, hdu=h_read, sha256=sha, obscode=obscode)
        if row["wcs_status"] == "none" and h_read > 0 and not own_wcs and has_celestial_wcs(primary):
            row["wcs_source"] = (f"no celestial WCS in extension {h_read}; the primary header's WCS is not used: "
                                 f"it places one image, the file has {len(images)} image extensions")
        row["path"] = key
        row["sha256"] = sha
        if image_type:
            row["image_type"] = image_type
        eid = insert_exposure(conn, row, run_id)
        res.exposure_ids.append(eid)
        res.n_rows += 1
    return res


# --------------------------------------------------------------------------- reference catalogues
def ingest_refcat(conn, path, *, catalog: str | None = None, band: str | None = None,
                  epoch: float | None = None, replace: bool = True, columns: dict | None = None) -> IngestResult:
    """Ingest a reference catalogue file into ``refcat_source`` (one transaction).

    Rows of the same ``catalog`` name loaded earlier from the same file are
    replaced.  See :func:`catdb.ingest.refcat.read_refcat` for the formats and
    ``columns`` (the column map of ``catdb refcat import``).

    Returns
    -------
    IngestResult
        ``n_rows`` stars loaded.
    """
    path = str(path)
    if not os.path.exists(path):
        raise InputError("no such file", path=path)
    sha = sha256_file(path)
    data = read_refcat(path, catalog=catalog, band=band, epoch=epoch, columns=columns)
    name = str(np.asarray(data["catalog"])[0]) if len(data["ra"]) else (catalog or Path(path).stem)
    params = {"path": _resolve(path), "catalog": name, "band": band, "epoch": epoch, "sha256": sha}
    if columns:
        params["columns"] = columns
    with conn.transaction():
        same = conn.execute(
            "SELECT r.id, (SELECT count(*) FROM refcat_source s WHERE s.stage_run_id = r.id) FROM stage_run r "
            "WHERE r.stage = 'ingest-refcat' AND r.status = 'ok' AND r.params = %s::jsonb ORDER BY r.id DESC LIMIT 1",
            (json.dumps(params),)).fetchone()
    if same and same[1] == len(data["ra"]):
        return IngestResult(path=path, status="unchanged", n_rows=0, notes=[f"catalog {name} already loaded "
                                                                             f"(run {same[0]})"])
    run_id = start_run(conn, "ingest-refcat", params)
    try:
        with conn.transaction():
            deleted = 0
            if replace:
                deleted = conn.execute(
                    "DELETE FROM refcat_source WHERE catalog = %s AND stage_run_id IN (SELECT id FROM stage_run "
                    "WHERE stage = 'ingest-refcat' AND params->>'path' = %s)", (name, _resolve(path))).rowcount
            mags = data.get("mags") or {}
            errs = data.get("mag_errs") or {}
            cols = {k: np.asarray(data[k]) for k in ("source_id", "ra", "dec", "epoch", "pmra", "pmdec",
                                                     "parallax", "ra_err", "dec_err") if k in data}
            n = len(cols["ra"])
            cols["mags"] = _json_dicts(mags, n)
            cols["mag_errs"] = _json_dicts(errs, n)
            n = copy_table(conn, "refcat_source", cols, constants={"catalog": name, "stage_run_id": run_id})
            conn.execute("ANALYZE refcat_source")  # fresh statistics: q3c joins plan well only with them
            finish_run(conn, run_id, counts={"refcat_source": n, "replaced_rows": deleted})
    except BaseException as e:  # KeyboardInterrupt too: the run says it was interrupted
        fail_run(conn, run_id, e)
        raise
    return IngestResult(path=path, status="loaded", n_rows=n, notes=[f"catalog {name}, bands {sorted(mags)}"])


def _json_dicts(values: dict, n: int) -> np.ndarray:
    if not values:
        return np.full(n, None, dtype=object)
    return json_text({k: np.asarray(v, dtype=float) for k, v in values.items()}, n)


def _progress(items, what, enabled):
    if not enabled or len(items) < 2:
        return items
    return tqdm(items, desc=f"ingest {what}", unit="file")


def _bar(n, what, enabled):
    """The same tqdm bar as :func:`_progress`, updated by hand (parallel loading); None when off."""
    if not enabled or n < 2:
        return None
    return tqdm(total=n, desc=f"ingest {what}", unit="file")
