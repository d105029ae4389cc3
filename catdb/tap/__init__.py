"""catdb's IVOA TAP 1.1 service (``catdb serve``): ADQL translated to PostgreSQL + q3c.

:func:`prepare` writes TAP_SCHEMA and returns the metadata; :func:`create_server`
returns a waitress server running :class:`~catdb.tap.service.TapService`; :func:`stop_server`
stops it and joins every thread it started.
"""
from __future__ import annotations

import logging

import psycopg

from ..db.engine import connect
from ..errors import CatdbError
from ..review import default_reviewer
from .review import ReviewApp
from .service import TapService
from .tap_schema import install, read_metadata

log = logging.getLogger(__name__)


def prepare(url):
    """Read the published tables' metadata and (re-)write the ``tap_schema`` schema.

    Parameters
    ----------
    url : str or None
        Database URL; the login must be able to create a schema (the database owner),
        unless ``tap_schema`` exists already (it is then used as it is, with a warning).

    Returns
    -------
    catdb.tap.tap_schema.Metadata

    Raises
    ------
    catdb.errors.CatdbError
        The database is not a catdb database, or TAP_SCHEMA can be neither written nor found.
    """
    conn = connect(url)
    try:
        meta = read_metadata(conn)
        if not any(t.name == "exposure" for t in meta.tables):
            raise CatdbError("the database has no catdb tables readable by catdb_reader (exposure, detection, "
                             "...): run `catdb db init` first")
        try:
            counts = install(conn, meta)
            conn.commit()
            log.info("TAP_SCHEMA written: %s", counts)
        except psycopg.errors.InsufficientPrivilege as e:
            conn.rollback()
            if conn.execute("SELECT to_regclass('tap_schema.columns')").fetchone()[0] is None:
                raise CatdbError(f"cannot create schema tap_schema ({e.diag.message_primary}): start catdb serve "
                                 "once as the database owner") from None
            log.warning("cannot rewrite tap_schema (%s): serving the existing one", e.diag.message_primary)
    finally:
        conn.close()
    return meta


def create_server(url, host: str = "127.0.0.1", port: int = 8080, *, threads: int = 4, review: bool = True,
                  reviewer: str | None = None, **service_kw):
    """A waitress server for the TAP service (``server.run()`` serves; ``server.close()`` stops).

    Parameters
    ----------
    url : str or None
        Database URL.
    host, port :
        Where to listen; port 0 picks a free port (``server.effective_port``).
    threads : int
        Request threads (each /sync query runs in one).
    review : bool
        Also serve the candidate review page at ``/review`` (:mod:`catdb.tap.review`): it writes
        decisions with the login of ``url``.
    reviewer : str, optional
        Name recorded with the decisions; default the operating-system user.
    **service_kw
        Passed to :class:`~catdb.tap.service.TapService` (timeout, default_maxrec, max_rows, workers, retention).

    Returns
    -------
    (waitress server, TapService)
    """
    from waitress import create_server as _create

    meta = prepare(url)
    rev = None
    if review:
        loopback = host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
        rev = ReviewApp(url, reviewer or default_reviewer(),
                        allowed_hosts={host, "127.0.0.1", "localhost", "::1"} if loopback else None)
    app = TapService(url, meta, review=rev, **service_kw)
    server = _create(app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True,
                     ident="catdb-tap")
    return server, app


def stop_server(server, app, thread=None, timeout: float = 10.0) -> None:
    """Stop a server of :func:`create_server` and join the threads it started.

    ``server.close()`` alone closes the listening socket only: waitress's request threads and
    the socket loop (kept alive by open keep-alive connections) would run on while the
    interpreter finalises.  Here the async jobs are aborted and their threads joined, the
    request threads finish their request and are joined, then every socket is closed in the
    loop's own thread, which then returns from ``server.run()``.

    Parameters
    ----------
    server, app :
        As returned by :func:`create_server`.
    thread : threading.Thread, optional
        The thread running ``server.run()``, when it runs in one; joined.
    timeout : float
        Seconds to wait for the request threads, and for ``thread`` [s].
    """
    from waitress import wasyncore  # the serve extra, as in create_server

    app.jobs.shutdown()
    server.task_dispatcher.shutdown(timeout=timeout)
    sockets = server._map  # noqa: SLF001 - waitress's socket map (the listener, the trigger, the channels)
    if thread is not None and thread.is_alive():
        # the loop thread closes them (closing a socket another thread polls is a race); with the map
        # empty, wasyncore.loop returns
        server.trigger.pull_trigger(lambda: wasyncore.close_all(sockets))
        thread.join(timeout)
    else:
        wasyncore.close_all(sockets)
