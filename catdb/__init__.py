"""catdb: a PostgreSQL + q3c catalogue database for multi-epoch imaging.

Data flows ingest -> database -> stages -> database -> export.  ``import catdb`` is cheap: the
functions below are imported on first use (PEP 562), so the command line and ``import catdb``
do not pay for astropy, matplotlib or psycopg until they are needed.

The Python API (each the library call behind a ``catdb`` command):

==========================  ===================================================================
:func:`connect`             open a database connection
:func:`ingest_catalogs`     SExtractor catalogues -> exposure + detection rows (``catdb ingest``)
:func:`ingest_images`       FITS images -> exposure rows (``catdb ingest images``)
:func:`run_stage`           run a processing stage with provenance (``catdb stage``)
:func:`query_table`         a query as an astropy Table with units (``catdb query``)
:func:`export`              write an export: table, catalog, tracks-mpc, tracks-ades, lightcurve
:func:`write_report`        the HTML night report (``catdb report``)
:func:`report_data`         the report's content as JSON-serialisable data (``--format json``)
==========================  ===================================================================

Deeper modules: :mod:`catdb.db` (connections, the embedded server, migrations),
:mod:`catdb.schema` (the tables), :mod:`catdb.stages` (processing stages),
:mod:`catdb.export` (formats).
"""
from importlib import import_module

from ._version import __version__

#: public name -> (module, attribute), imported on first access
_API = {
    "ingest_catalogs": ("catdb.ingest.load", "ingest_catalogs"),
    "ingest_images": ("catdb.ingest.load", "ingest_images"),
    "run_stage": ("catdb.stages", "run_stage"),
    "query_table": ("catdb.export.table", "query_table"),
    "export": ("catdb.export", None),  # the package, callable: catdb.export.api.export
    "write_report": ("catdb.export.report", "write_report"),
    "report_data": ("catdb.export.report_data", "report_data"),
}

__all__ = ["__version__", "connect", *_API]


def connect(url: str | None = None, *, autocommit: bool = False, read_only: bool = False,
            statement_timeout_ms: int | None = None, **kw):
    """Open a connection to a catdb database (``catdb.db.engine.connect``).

    Parameters
    ----------
    url : str, optional
        libpq URL (``postgresql://user@host/db``); default ``$CATDB_URL``, else the embedded
        server (started when not running).
    autocommit : bool
        Autocommit mode; default off: a unit of work is one transaction, ``conn.commit()`` ends it.
    read_only : bool
        Transactions are read-only (``default_transaction_read_only``).
    statement_timeout_ms : int, optional
        Server-side statement timeout [ms].
    **kw
        Passed to :func:`psycopg.connect`.

    Returns
    -------
    psycopg.Connection
        With catdb's session settings; usable as a context manager (commits on a clean exit).

    Raises
    ------
    catdb.errors.DatabaseUnavailable
        The server cannot be reached; the message names the URL (password redacted).
    """
    from .db.engine import connect as _connect

    return _connect(url, autocommit=autocommit, read_only=read_only, statement_timeout_ms=statement_timeout_ms,
                    **kw)


def __getattr__(name):
    try:
        module, attr = _API[name]
    except KeyError:
        raise AttributeError(f"module 'catdb' has no attribute {name!r}") from None
    value = import_module(module) if attr is None else getattr(import_module(module), attr)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
