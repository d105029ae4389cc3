"""catdb: a PostgreSQL + q3c catalogue database for multi-epoch imaging.

Data flows ingest -> database -> stages -> database -> export.  The public
Python API mirrors the ``catdb`` command line: see :mod:`catdb.db` for
connections and the embedded server, :mod:`catdb.schema` for the tables,
:mod:`catdb.stages` for processing stages.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("catdb")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"

__all__ = ["__version__"]
