"""Query results and errors as VOTable documents (TAP 1.1 section 5, DALI 1.1 section 4.4).

Results are read from PostgreSQL with :func:`catdb.export.formats.describe` /
:func:`~catdb.export.formats.iter_batches` (``COPY`` into Arrow batches: no Python
loop over rows) and written with ``astropy.io.votable`` in TABLEDATA (default) or
BINARY2 serialisation.  Each FIELD carries the datatype TAP_SCHEMA declares for its
source column (:func:`votable_type`, one mapping for both), the unit and
description from the column comment, the UCD of :mod:`catdb.schema.ucd`, and the
DALI xtype (``timestamp``; ``point``/``circle``/``polygon`` for ADQL geometry in a
select list).

A truncated result (more rows than MAXREC) has ``<INFO name="QUERY_STATUS"
value="OK"/>`` before its TABLE and ``<INFO name="QUERY_STATUS" value="OVERFLOW"/>``
after it (DALI 1.1 section 4.4.1); an error document has one RESOURCE with
``<INFO name="QUERY_STATUS" value="ERROR">message</INFO>`` and no table.
"""
from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from astropy.io.votable.tree import Field, Info, Resource, TableElement, VOTableFile

#: warnings.catch_warnings() swaps the process-wide filter list: not thread-safe, and the service builds
#: VOTables in several request threads at once
_WARNINGS_LOCK = threading.Lock()

_VOTABLE_NS = "http://www.ivoa.net/xml/VOTable/v1.3"

#: PostgreSQL type name -> VOTable datatype (scalars)
_SCALAR = {"bool": "boolean", "int2": "short", "int4": "int", "int8": "long", "oid": "long",
           "float4": "float", "float8": "double", "numeric": "double"}
#: PostgreSQL array type name -> VOTable element datatype (catdb.export.formats reads int arrays as floats)
_ARRAY = {"_float4": "float", "_int2": "float", "_float8": "double", "_int4": "double", "_int8": "double",
          "_numeric": "double"}
_TIME = {"timestamp", "timestamptz", "date"}


def votable_type(pgtype: str) -> tuple[str, str | None, str | None]:
    """(datatype, arraysize, xtype) of a PostgreSQL type as the TAP service writes it.

    Parameters
    ----------
    pgtype : str
        ``pg_type.typname``; arrays as ``_`` + element type name (``_float4``).

    Returns
    -------
    tuple
        VOTable ``datatype``, ``arraysize`` (``'*'`` for variable-length strings and
        arrays; None for scalars), DALI ``xtype`` (``timestamp`` for dates and times).
        Text is ``unicodeChar`` (VOTable ``char`` is ASCII only; headers and names
        need not be); types without a VOTable counterpart (json, uuid, text arrays,
        intervals, ...) are written as their text too.
    """
    if pgtype in _SCALAR:
        return _SCALAR[pgtype], None, None
    if pgtype in _ARRAY:
        return _ARRAY[pgtype], "*", None
    if pgtype in _TIME:
        return "char", "*", "timestamp"
    return "unicodeChar", "*", None


@dataclass
class ResultField:
    name: str
    datatype: str
    arraysize: str | None
    xtype: str | None
    unit: str | None
    ucd: str | None
    description: str | None


def write_result(fields: list[ResultField], columns: list, overflow: bool, serialization: str = "tabledata",
                 infos: dict | None = None) -> bytes:
    """A results VOTable.

    Parameters
    ----------
    fields : list of ResultField
    columns : list of numpy arrays
        One per field: 1-D (masked where NULL) for scalars and strings, 2-D ``(n_rows, k)``
        for arrays (NaN where NULL).
    overflow : bool
        The result was cut at MAXREC: add the OVERFLOW INFO after the TABLE.
    serialization : str
        ``tabledata`` or ``binary2``.
    infos : dict, optional
        More INFO name -> value pairs for the RESOURCE (e.g. the query).

    Returns
    -------
    bytes
        The VOTable document (UTF-8).
    """
    vot = VOTableFile(version="1.4")
    res = Resource()
    res.type = "results"
    vot.resources.append(res)
    res.infos.append(Info(name="QUERY_STATUS", value="OK"))
    for k, v in (infos or {}).items():
        res.infos.append(Info(name=k, value=str(v)))
    tab = TableElement(vot)
    res.tables.append(tab)
    n = len(columns[0]) if columns else 0
    names = _unique([f.name for f in fields])
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f, name, col in zip(fields, names, columns):
            arraysize = f.arraysize
            if col.ndim == 2:  # arrays: fixed length (the longest in the result, NaN-padded)
                arraysize = str(col.shape[1])
            fld = Field(vot, name=name, datatype=f.datatype, arraysize=arraysize, ucd=f.ucd, xtype=f.xtype)
            if f.unit:  # verbatim: astropy would rewrite the VOUnit "pix" as "pixel"
                fld._unit = _Verbatim(f.unit)
            if f.description:
                fld.description = f.description
            tab.fields.append(fld)
        tab.create_arrays(n)
        for _f, name, col in zip(fields, names, columns):
            if col.ndim == 2:
                tab.array[name] = col
                continue
            data = np.ma.getdata(col)
            mask = np.ma.getmaskarray(col)
            tab.array[name] = data
            tab.array.mask[name] = mask
        buf = io.BytesIO()
        # astropy's pure-Python TABLEDATA writer, not its C one: astropy.io.votable.tablewriter.write_tabledata
        # (astropy <= 8.0.2 at least; astropy issue #20419, fix proposed in PR #20428) NUL-terminates its row
        # buffer one byte past the end when a row's XML is exactly a power of two long (256, 512, ...
        # bytes); in pymalloc's 256/512-byte blocks that byte is the first of the next object, and the
        # service crashed later anywhere (gc, numpy, psycopg).  Same bytes out, about the same speed.
        vot.to_xml(buf, tabledata_format=serialization, _debug_python_based_parser=True)
    text = buf.getvalue()
    if overflow:
        k = text.rfind(b"</TABLE>")
        text = text[:k + 8] + b'\n   <INFO name="QUERY_STATUS" value="OVERFLOW"/>' + text[k + 8:]
    return text


def error_document(message: str) -> bytes:
    """A VOTable error document: ``QUERY_STATUS`` = ``ERROR`` with ``message`` (DALI 1.1 section 4.4.1)."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<VOTABLE version="1.4" xmlns="{_VOTABLE_NS}" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            ' <RESOURCE type="results">\n'
            f'  <INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>\n'
            ' </RESOURCE>\n</VOTABLE>\n').encode()


class _Verbatim(str):
    """A unit string astropy writes as it is (``to_string`` of a parsed unit may respell it)."""

    def to_string(self, *args, **kwargs):
        return str(self)


def _unique(names):
    seen, out = {}, []
    for nm in names:
        if nm in seen:
            seen[nm] += 1
            out.append(f"{nm}_{seen[nm]}")
        else:
            seen[nm] = 0
            out.append(nm)
    return out


__all__ = ["votable_type", "ResultField", "write_result", "error_document", "quoteattr"]
