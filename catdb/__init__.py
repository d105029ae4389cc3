"""catdb: a PostgreSQL + q3c catalogue database for multi-epoch imaging.

Data flows ingest -> database -> stages -> database -> export.  ``import catdb`` is cheap: the
functions below are imported on first use (PEP 562), so the command line and ``import catdb``
do not pay for astropy, matplotlib or psycopg until they are needed.

The Python API (each the library call behind a ``catdb`` command):

==========================  ===================================================================
:func:`connect`             open a database connection (``catdb.db.engine.connect``)
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
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("catdb")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"

#: public name -> (module, attribute), imported on first access
_API = {
    "connect": ("catdb.db.engine", "connect"),
    "ingest_catalogs": ("catdb.ingest.load", "ingest_catalogs"),
    "ingest_images": ("catdb.ingest.load", "ingest_images"),
    "run_stage": ("catdb.stages", "run_stage"),
    "query_table": ("catdb.export.table", "query_table"),
    "export": ("catdb.export", None),  # the package, callable: catdb.export.api.export
    "write_report": ("catdb.export.report", "write_report"),
    "report_data": ("catdb.export.report_data", "report_data"),
}

__all__ = ["__version__", *_API]


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
