"""catdb.export: query results as files (CSV, VOTable, FITS, Parquet, ECSV, MPC, ADES, ALCDEF, HATS)
and the night report.

The package itself is callable: ``catdb.export(conn, kind, path, **options)`` is
:func:`catdb.export.api.export` (one export function; ``catdb.export`` is both this package and
that function, because ``import catdb.export.<module>`` binds the package to the name).
"""
import sys as _sys
import types as _types

from .api import export as _export  # light: imports catdb.errors only


class _CallableModule(_types.ModuleType):
    def __call__(self, conn, kind, path, **options):
        return _export(conn, kind, path, **options)

    __call__.__doc__ = _export.__doc__


_sys.modules[__name__].__class__ = _CallableModule
