"""Export any table, view or query to CSV, VOTable, FITS, Parquet or ECSV, streaming.

The rows are read with ``COPY (query) TO STDOUT (FORMAT csv)`` and parsed by
pyarrow's streaming CSV reader into record batches of bounded size, so memory
stays bounded whatever the number of rows; each batch is written out as it
arrives (a Parquet row group, a block of FITS rows, a block of VOTable
``<TR>`` rows, ...).  Nothing loops over rows in Python.

Each output column carries the unit and description of the database column it
comes from (``COMMENT ON COLUMN ... 'description [unit]'``, see
:mod:`catdb.schema.tables`):

========  ==================================================================
format    where the unit / description go
========  ==================================================================
votable   ``FIELD unit=``, ``ucd=`` (:mod:`catdb.schema.ucd`) and ``<DESCRIPTION>``; time columns
          point (``ref``) at a ``TIMESYS`` (MJD or ISO 8601, UTC) (VOTable 1.4, TABLEDATA)
fits      ``TUNITn`` and ``TCOMMn`` (HEASARC convention) of a BINTABLE
parquet   field metadata ``unit`` and ``description``
ecsv      the ECSV header (``unit``, ``description``)
csv       not carried (plain CSV: one header line with the names, optional)
========  ==================================================================

Type conventions (the same for every format):

* numeric arrays (``mag_aper``, ``flux_aper``) become fixed-length vector
  columns (VOTable ``arraysize``, FITS ``TFORMn = 'nE'``, Parquet
  ``fixed_size_list``) whose length is the longest array in the result;
  shorter or NULL arrays are padded with NaN.  CSV has no vectors: the
  elements become columns ``name_1 ... name_n``;
* ``json``/``jsonb`` become JSON text, other arrays JSON text;
* timestamps, dates and times become ISO-8601 strings
  (``2016-04-28T20:12:51.5+00:00``);
* ``numeric`` becomes float64;
* NULL becomes a masked/empty value: empty field (CSV), ``<TD/>`` (VOTable),
  null (Parquet), NaN (FITS floats), ``TNULLn`` (FITS integers), byte 0
  (FITS logicals), empty string (FITS strings: FITS has no string null).
"""
from __future__ import annotations

import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field

import astropy.units as u
import numpy as np
import psycopg
from astropy.io import fits
from astropy.io.votable import from_table
from astropy.io.votable.exceptions import VOTableSpecWarning
from astropy.io.votable.tree import Info, TimeSys
from astropy.table import Column, MaskedColumn, Table
from astropy.table import meta as table_meta
from psycopg import sql

from ..db.safety import check_query
from ..errors import CatdbError
from ..schema.ucd import result_ucds
from .table import _comments, query_table

FORMATS = ("csv", "votable", "fits", "parquet", "ecsv")
_EXT = {".csv": "csv", ".vot": "votable", ".xml": "votable", ".votable": "votable", ".fits": "fits",
        ".fit": "fits", ".fts": "fits", ".parquet": "parquet", ".pq": "parquet", ".ecsv": "ecsv"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_SQL_START = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|VALUES|TABLE)\b", re.I)

_INT = {"int2": "int16", "int4": "int32", "int8": "int64", "oid": "int64"}
_FLOAT = {"float4": "float32", "float8": "float64", "numeric": "float64"}
_TEXT = {"text", "varchar", "bpchar", "name", "char", "citext", "uuid"}
_TIME = {"timestamp", "timestamptz", "date", "time", "timetz"}


@dataclass
class OutColumn:
    """One column of the export as it will be written.

    Attributes
    ----------
    name : str
        Output column name.
    kind : str
        ``int``, ``float``, ``bool``, ``text`` or ``vector`` (fixed-length numeric array).
    dtype : str
        numpy dtype name of the values (elements, for vectors); ``str`` for text.
    unit, description : str or None
        From the source column's comment (or an override).
    length : int
        Vector length (``vector``) or longest UTF-8 byte length (``text``, FITS only).
    pgtype : str
        PostgreSQL type name of the source column.
    """

    name: str
    kind: str
    dtype: str
    unit: str | None = None
    description: str | None = None
    length: int = 1
    pgtype: str = ""
    #: UCD1+ (:mod:`catdb.schema.ucd`) of the source column, None when catdb has none
    ucd: str | None = None
    #: SQL expression(s) producing the column in the COPY
    exprs: list = field(default_factory=list)


@dataclass
class ExportResult:
    """What :func:`export_query` wrote."""

    path: str
    format: str
    n_rows: int
    columns: list[OutColumn]


# --------------------------------------------------------------------------- query composition
def format_from_path(path, fmt: str | None = None) -> str:
    """The export format: ``fmt`` if given, else from the file extension.

    Raises
    ------
    catdb.errors.CatdbError
        Unknown format, or no format and an extension that does not tell.
    """
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise CatdbError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in _EXT:
        raise CatdbError(f"cannot tell the format of {path!r} from its extension; give -f "
                         f"({', '.join(FORMATS)})")
    return _EXT[ext]


def compose_source(conn, source: str, *, where: str | None = None,
                   columns: list[str] | None = None) -> sql.Composable:
    """The SELECT for ``source`` (a table or view name, or a query), narrowed by ``where``/``columns``.

    Parameters
    ----------
    conn : psycopg.Connection
    source : str
        ``detection``, ``public.exposure``, a view name, or a query starting with
        SELECT / WITH / VALUES / TABLE.
    where : str, optional
        SQL condition on the source's columns (applied outside the query).
    columns : list of str, optional
        Output columns (names of the source's columns), in order.

    Returns
    -------
    psycopg.sql.Composable

    Raises
    ------
    catdb.errors.CatdbError
        No such table/view, or ``source`` is neither a name nor a query.
    """
    source = source.strip().rstrip(";").strip()
    if _IDENT.match(source):
        if conn.execute("SELECT to_regclass(%s)", (source,)).fetchone()[0] is None:
            raise CatdbError(f"no table or view named {source!r} (give a table/view name or a SELECT query)")
        inner = sql.SQL("SELECT * FROM {}").format(sql.Identifier(*source.split(".")))
    elif _SQL_START.match(source):
        inner = sql.SQL(source)
    else:
        raise CatdbError(f"{source[:60]!r} is neither a table/view name nor a query "
                         "(SELECT, WITH, VALUES or TABLE ...)")
    if not where and not columns:
        return inner
    cols = sql.SQL("*") if not columns else sql.SQL(", ").join(sql.Identifier("_q", c) for c in columns)
    q = sql.SQL("SELECT {} FROM ({}) AS _q").format(cols, inner)
    if where:
        q = q + sql.SQL(" WHERE ({})").format(sql.SQL(where))
    return q


@dataclass
class Described:
    """The output columns of a query and the query with positional column names ``c0, c1, ...``."""

    columns: list[OutColumn]
    query: sql.Composable


def describe(conn, query, params=None, *, overrides: dict | None = None,
             text_lengths: bool = False) -> Described:
    """Output columns of ``query``: names, types, units and descriptions, vector lengths.

    Runs the query once with ``LIMIT 0`` (for the column origins, hence the
    comments) and, when it has numeric array columns (or ``text_lengths``),
    once more for ``max(cardinality(...))`` / ``max(octet_length(...))``.

    Parameters
    ----------
    overrides : dict, optional
        ``name -> (unit, description)`` for computed columns (no source comment).
    text_lengths : bool
        Also measure the longest text value (needed for FITS ``nA`` columns).

    Raises
    ------
    catdb.errors.CatdbError
        The query fails (the server's message is included).
    """
    try:
        cur = conn.execute(sql.SQL("SELECT * FROM ({}) AS _src LIMIT 0").format(query), params)
    except psycopg.Error as e:
        raise CatdbError(f"export query failed: {str(e).strip()}") from None
    meta = _comments(conn, cur)
    ucds = result_ucds(conn, cur, by_name=set(overrides or ()))
    oids = [c.type_code for c in cur.description]
    types = dict(conn.execute(
        "SELECT t.oid, CASE WHEN t.typcategory = 'A' THEN '_' || e.typname ELSE t.typname END "
        "FROM pg_type t LEFT JOIN pg_type e ON e.oid = t.typelem WHERE t.oid = ANY(%s)",
        (list(set(oids)),)).fetchall())
    out, seen = [], {}
    for i, c in enumerate(cur.description):
        name = c.name
        if name in seen:  # duplicate names (e.g. two tables' id): make them unique
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        unit, desc = meta[i]
        if overrides and c.name in overrides:
            unit, desc = overrides[c.name]
        t = types.get(c.type_code, "text")
        col = OutColumn(name=name, kind="text", dtype="str", unit=unit, description=desc, pgtype=t, ucd=ucds[i])
        if t in _INT:
            col.kind, col.dtype = "int", _INT[t]
        elif t in _FLOAT:
            col.kind, col.dtype = "float", _FLOAT[t]
        elif t == "bool":
            col.kind, col.dtype = "bool", "bool"
        elif t.startswith("_") and (t[1:] in _INT or t[1:] in _FLOAT):
            col.kind = "vector"
            col.dtype = "float32" if t[1:] in ("float4", "int2") else "float64"
        out.append(col)
    # positional column names c0, c1, ...: duplicate or odd names need no quoting games
    wrapped = sql.SQL("SELECT * FROM ({}) AS _src0({})").format(
        query, sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(out)))) if out else query
    for i, col in enumerate(out):
        col._ref = sql.SQL("_src.{}").format(sql.Identifier(f"c{i}"))
    _measure(conn, wrapped, params, out, text_lengths)
    for col in out:
        ref = col._ref
        if col.kind in ("int", "bool", "text") and col.pgtype in _TEXT | set(_INT) | {"bool"}:
            col.exprs = [ref]
        elif col.kind == "float":
            col.exprs = [sql.SQL("{}::double precision").format(ref) if col.pgtype == "numeric" else ref]
        elif col.kind == "vector":
            col.exprs = [sql.SQL("{}[{}]").format(ref, sql.Literal(k + 1)) for k in range(col.length)]
        elif col.pgtype in ("json", "jsonb"):
            col.exprs = [sql.SQL("{}::text").format(ref)]
        elif col.pgtype in _TIME:
            col.exprs = [sql.SQL("to_json({}) #>> '{{}}'").format(ref)]
        elif col.pgtype.startswith("_"):
            col.exprs = [sql.SQL("array_to_json({})::text").format(ref)]
        else:
            col.exprs = [sql.SQL("{}::text").format(ref)]
    return Described(out, wrapped)


def _measure(conn, wrapped, params, cols, text_lengths):
    """Vector lengths (max cardinality) and, for FITS, longest text in bytes: one pass."""
    aggs, targets = [], []
    for c in cols:
        if c.kind == "vector":
            aggs.append(sql.SQL("max(cardinality({}))").format(c._ref))
            targets.append(c)
        elif c.kind == "text" and text_lengths:
            if c.pgtype in _TIME:
                expr = sql.SQL("to_json({}) #>> '{{}}'").format(c._ref)
            elif c.pgtype in _TEXT:
                expr = c._ref
            else:
                expr = sql.SQL("{}::text").format(c._ref)
            aggs.append(sql.SQL("max(octet_length({}))").format(expr))
            targets.append(c)
    if not aggs:
        return
    row = conn.execute(sql.SQL("SELECT {} FROM ({}) AS _src").format(sql.SQL(", ").join(aggs), wrapped),
                       params).fetchone()
    for c, v in zip(targets, row):
        c.length = max(1, int(v or 0))


# --------------------------------------------------------------------------- streaming read
def _arrow_types(cols):
    import pyarrow as pa

    types, names = {}, []
    for i, c in enumerate(cols):
        if c.kind == "vector":
            for k in range(c.length):
                names.append(f"c{i}_{k}")
                types[names[-1]] = pa.float64() if c.dtype == "float64" else pa.float32()
        else:
            names.append(f"c{i}")
            types[names[-1]] = {"int": getattr(pa, c.dtype, pa.int64)() if c.kind == "int" else None,
                                "float": pa.float64() if c.dtype == "float64" else pa.float32(),
                                "bool": pa.bool_(), "text": pa.string()}[c.kind]
    return names, types


def iter_batches(conn, described: Described, params=None, *, block_bytes: int = 8 << 20):
    """Stream the rows of the described query as pyarrow RecordBatches.

    The ``COPY ... TO STDOUT (FORMAT csv)`` rows are read in the calling thread and parsed by
    pyarrow from memory, about ``block_bytes`` of whole rows at a time (in copy-out mode the
    server sends CopyData messages "always one per row": PostgreSQL manual, Frontend/Backend
    Protocol, COPY Operations; psycopg's ``Copy`` yields one message per item).  pyarrow is
    never handed a Python file object: its streaming CSV reader reads such a file from its own
    I/O threads, which would then drive the psycopg connection outside
    the caller's control (still reading when an error makes the caller close it) and drop the
    last reference to the file in a thread of theirs, even while the interpreter finalises.

    Parameters
    ----------
    described : Described
        From :func:`describe`.
    block_bytes : int
        CSV bytes parsed per batch (bounds the memory: about twice this per batch).

    Yields
    ------
    pyarrow.RecordBatch
        Columns ``c0``, ``c1``, ... (vectors as ``c<i>_<k>``) typed as :class:`OutColumn` says.
    """
    cols = described.columns
    names, types = _arrow_types(cols)
    exprs = [e for c in cols for e in c.exprs]
    q = sql.SQL("COPY (SELECT {} FROM ({}) AS _src) TO STDOUT WITH (FORMAT csv)").format(
        sql.SQL(", ").join(exprs), described.query)
    has_text = any(c.kind == "text" for c in cols)
    buf = bytearray()
    with conn.cursor() as cur, cur.copy(q, params) as cp:
        for row in cp:
            buf += row
            if len(buf) >= block_bytes:
                yield from _parse_csv(buf, names, types, has_text, block_bytes)
                buf = bytearray()
    if buf:
        yield from _parse_csv(buf, names, types, has_text, block_bytes)


def _parse_csv(data, names, types, has_text, block_bytes):
    """RecordBatches of whole CSV rows in memory (``COPY`` FORMAT csv: empty = NULL, ``t``/``f``)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        pa.py_buffer(bytes(data)),
        read_options=pacsv.ReadOptions(column_names=names, block_size=max(block_bytes, 1 << 16)),
        parse_options=pacsv.ParseOptions(newlines_in_values=has_text),
        convert_options=pacsv.ConvertOptions(
            column_types=types, true_values=["t"], false_values=["f"], null_values=[""],
            strings_can_be_null=True, quoted_strings_can_be_null=False))
    yield from table.to_batches()


def assemble(batch, cols):
    """A batch with columns named as the output, vectors as ``fixed_size_list`` arrays."""
    import pyarrow as pa

    arrays, fields = [], []
    for i, c in enumerate(cols):
        meta = {}
        if c.unit:
            meta[b"unit"] = c.unit.encode()
        if c.description:
            meta[b"description"] = c.description.encode()
        if c.kind == "vector":
            dt = np.dtype(c.dtype)
            parts = [batch.column(f"c{i}_{k}").to_numpy(zero_copy_only=False).astype(dt, copy=False)
                     for k in range(c.length)]
            flat = np.column_stack(parts).ravel() if parts else np.empty(0, dt)
            arr = pa.FixedSizeListArray.from_arrays(pa.array(flat), c.length)
        else:
            arr = batch.column(f"c{i}")
        arrays.append(arr)
        fields.append(pa.field(c.name, arr.type, metadata=meta or None))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


# --------------------------------------------------------------------------- writers
def _astropy_table(batch, cols):
    """astropy Table (masked where NULL) with units and descriptions from an assembled batch."""
    t = Table()
    for c in cols:
        arr = batch.column(c.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", u.UnitsWarning)
            unit = u.Unit(c.unit, parse_strict="silent") if c.unit else None
        if c.kind == "vector":
            vals = arr.values.to_numpy(zero_copy_only=False).reshape(len(arr), c.length)
            t[c.name] = Column(vals, unit=unit, description=c.description)
            continue
        mask = arr.is_null().to_numpy(zero_copy_only=False)
        if c.kind == "text":
            vals = arr.fill_null("").to_numpy(zero_copy_only=False).astype(str)
        elif c.kind == "bool":
            vals = arr.fill_null(False).to_numpy(zero_copy_only=False)
        elif c.kind == "int":
            vals = arr.fill_null(0).to_numpy(zero_copy_only=False)
        else:
            vals = arr.to_numpy(zero_copy_only=False)
        t[c.name] = MaskedColumn(vals, mask=mask, unit=unit, description=c.description)
    return t


class _Writer:
    def __init__(self, path, cols, info):
        self.path, self.cols, self.info = path, cols, info

    def write(self, batch):  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self, n_rows):  # pragma: no cover - abstract
        raise NotImplementedError


class _ParquetWriter(_Writer):
    def __init__(self, path, cols, info, empty):
        super().__init__(path, cols, info)
        import pyarrow.parquet as pq

        md = {b"catdb.query": info.encode()}
        try:  # astropy's own header, so Table.read(parquet) restores units and descriptions
            yaml_lines = table_meta.get_yaml_from_table(_astropy_table(empty, cols))
            md[b"table_meta_yaml"] = "\n".join(yaml_lines).encode()
        except Exception:  # noqa: BLE001 - the file stays valid Parquet without it
            pass
        schema = empty.schema.with_metadata(md)
        self.w = pq.ParquetWriter(path, schema)

    def write(self, batch):
        self.w.write_batch(batch)  # one row group per batch

    def close(self, n_rows):
        self.w.close()


class _CsvWriter(_Writer):
    def __init__(self, path, cols, info, empty, header=True):
        super().__init__(path, cols, info)
        import pyarrow.csv as pacsv

        self.schema = self._flat(empty).schema
        self.w = pacsv.CSVWriter(path, self.schema, write_options=pacsv.WriteOptions(
            include_header=header, quoting_style="needed"))

    def _flat(self, batch):
        import pyarrow as pa

        arrays, names = [], []
        for c in self.cols:
            arr = batch.column(c.name)
            if c.kind == "vector":
                vals = arr.values.to_numpy(zero_copy_only=False).reshape(len(arr), c.length)
                for k in range(c.length):
                    v = vals[:, k]
                    arrays.append(pa.array(v, mask=~np.isfinite(v)))
                    names.append(f"{c.name}_{k + 1}")
            else:
                arrays.append(arr)
                names.append(c.name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def write(self, batch):
        self.w.write_batch(self._flat(batch))

    def close(self, n_rows):
        self.w.close()


def _concat(strings) -> bytes:
    """The values of a pyarrow string array (no nulls) concatenated: its data buffer, no copy per row."""
    import pyarrow as pa

    strings = pa.concat_arrays([strings]) if strings.offset else strings
    if len(strings) == 0:
        return b""
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[:len(strings) + 1]
    return strings.buffers()[2].to_pybytes()[offsets[0]:offsets[-1]]


def _float_text(arr, nan="NaN", pinf="+Inf", ninf="-Inf"):
    import pyarrow as pa
    import pyarrow.compute as pc

    s = pc.cast(arr, pa.string())
    if pa.types.is_floating(arr.type):
        s = pc.if_else(pc.is_nan(arr), nan, s)
        s = pc.if_else(pc.is_inf(arr), pc.if_else(pc.greater(arr, 0), pinf, ninf), s)
    return s


def _cells(batch, cols, style):
    """Per output column, a string array of rendered cells (``votable``: ``<TD>..</TD>``; ``ecsv``)."""
    import pyarrow.compute as pc

    out = []
    for c in cols:
        arr = batch.column(c.name)
        if c.kind == "vector":
            parts = [_float_text(pc.list_element(arr, k)) for k in range(c.length)]
            if style == "votable":
                s = pc.binary_join_element_wise(*parts, " ")
            else:
                s = pc.binary_join_element_wise("[", pc.binary_join_element_wise(*parts, ","), "]", "")
        elif c.kind == "bool":
            s = pc.if_else(arr, "T", "F") if style == "votable" else pc.if_else(arr, "True", "False")
        elif c.kind in ("int", "float"):
            s = _float_text(arr)
        else:
            s = arr
            if style == "votable":
                for ch, ent in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
                    s = pc.replace_substring(s, ch, ent)
            else:
                s = pc.replace_substring(pc.replace_substring(s, '"', '""'), "\n", "\\n")
                s = pc.binary_join_element_wise('"', s, '"', "")
        if style == "votable":
            s = pc.binary_join_element_wise("<TD>", s, "</TD>", "")
            s = pc.fill_null(s, "<TD/>") if c.kind != "vector" else s
        else:
            s = pc.fill_null(s, '""')
        out.append(s)
    return out


class _SplicedWriter(_Writer):
    """Header and footer from astropy (an empty table), rows rendered with pyarrow compute."""

    def __init__(self, path, cols, info, empty):
        super().__init__(path, cols, info)
        self.f = open(path, "wb")
        head, self.footer = self._frame(empty)
        self.f.write(head)

    def close(self, n_rows):
        self.f.write(self.footer)
        self.f.close()


class _VOTableWriter(_SplicedWriter):
    def _frame(self, empty):
        t = _astropy_table(empty, self.cols)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VOTableSpecWarning)  # units outside VOUnits are kept as written
            vot = from_table(t)
            tab = vot.resources[0].tables[0]
            tab.description = "catdb export; units and descriptions from the database column comments"
            vot.resources[0].infos.append(Info(name="QUERY", value=self.info[:2000]))
            for f, c in zip(tab.fields, self.cols):
                if c.kind == "text":
                    f.datatype, f.arraysize = "unicodeChar", "*"
                elif c.kind == "bool":
                    f.datatype = "boolean"
                if c.ucd:
                    f.ucd = c.ucd
            _time_systems(vot, tab, self.cols)
            buf = io.BytesIO()
            vot.to_xml(buf, tabledata_format="tabledata")
        xml = buf.getvalue()
        if b"<TABLEDATA>" not in xml:  # astropy writes no DATA for an empty table
            k = xml.rindex(b"</TABLE>")
            xml = xml[:k] + b"<DATA>\n<TABLEDATA>\n</TABLEDATA>\n</DATA>\n" + xml[k:]
        a = xml.index(b"<TABLEDATA>") + len(b"<TABLEDATA>")
        b = xml.rindex(b"</TABLEDATA>")
        return xml[:a] + b"\n", xml[b:]

    def write(self, batch):
        import pyarrow.compute as pc

        if len(batch):
            rows = pc.binary_join_element_wise("<TR>", *_cells(batch, self.cols, "votable"), "</TR>\n", "")
            self.f.write(_concat(rows))


#: VOTable 1.4 TIMESYS of catdb's times (IVOA VOTable 1.4, section 4.7; TIMESYS attributes as in
#: the FITS time paper, Rots et al. 2015, A&A 574, A36): MJD numbers (``mjd_*``, days, UTC;
#: MJD = JD - 2400000.5) and ISO 8601 timestamps (UTC), both as seen at the observatory
TIMESYS_MJD = {"ID": "catdb_mjd_utc", "timeorigin": "MJD-origin", "timescale": "UTC", "refposition": "TOPOCENTER"}
TIMESYS_ISO = {"ID": "catdb_iso_utc", "timescale": "UTC", "refposition": "TOPOCENTER"}


def time_kind(col) -> str | None:
    """``'mjd'`` for an MJD column (float, unit d, named ``mjd*`` or with a ``time.*`` epoch UCD),
    ``'iso'`` for a timestamp column (written as ISO 8601 UTC), else None."""
    if col.pgtype in ("timestamptz", "timestamp", "date"):
        return "iso"
    if col.kind == "float" and (col.unit or "").strip() == "d" and (
            col.name.lower().startswith("mjd") or (col.ucd or "").split(";")[0] in ("time.epoch", "time.start",
                                                                                   "time.end")):
        return "mjd"
    return None


def _time_systems(vot, tab, cols):
    """Add the TIMESYS elements the time columns of ``cols`` need and point their FIELDs at them."""
    kinds = [time_kind(c) for c in cols]
    made = {}
    for f, kind in zip(tab.fields, kinds):
        if kind is None:
            continue
        if kind not in made:
            spec = TIMESYS_MJD if kind == "mjd" else TIMESYS_ISO
            ts = TimeSys(**spec)
            vot.resources[0].time_systems.append(ts)
            made[kind] = spec["ID"]
        f.ref = made[kind]
        if kind == "iso":
            f.xtype = "timestamp"


class _EcsvWriter(_SplicedWriter):
    def _frame(self, empty):
        t = _astropy_table(empty, self.cols)
        t.meta["catdb_query"] = self.info
        buf = io.StringIO()
        t.write(buf, format="ascii.ecsv")
        return buf.getvalue().encode(), b""

    def write(self, batch):
        import pyarrow.compute as pc

        if len(batch):
            rows = pc.binary_join_element_wise(*_cells(batch, self.cols, "ecsv"), " ")
            self.f.write(_concat(pc.binary_join_element_wise(rows, "\n", "")))


_FITS_FMT = {"int16": ("I", ">i2", -32768), "int32": ("J", ">i4", -2 ** 31), "int64": ("K", ">i8", -2 ** 63),
             "float32": ("E", ">f4", None), "float64": ("D", ">f8", None)}


class _FitsWriter(_Writer):
    """A BINTABLE written block by block; NAXIS2 is patched when the row count is known."""

    def __init__(self, path, cols, info, empty):
        super().__init__(path, cols, info)
        fcols, dtype = [], []
        for i, c in enumerate(cols):
            kw = {"name": c.name, "unit": c.unit}
            if c.kind == "vector":
                code, np_t, _ = _FITS_FMT[c.dtype]
                kw["format"] = f"{c.length}{code}"
                dtype.append((f"f{i}", np_t, (c.length,)))
            elif c.kind in ("int", "float"):
                code, np_t, null = _FITS_FMT[c.dtype]
                kw["format"] = code
                if null is not None:
                    kw["null"] = null
                dtype.append((f"f{i}", np_t))
            elif c.kind == "bool":
                kw["format"] = "L"
                dtype.append((f"f{i}", "S1"))
            else:
                kw["format"] = f"{c.length}A"
                dtype.append((f"f{i}", f"S{c.length}"))
            fcols.append(fits.Column(**kw))
        self.dtype = np.dtype(dtype)
        hdu = fits.BinTableHDU.from_columns(fcols, nrows=0, name="CATDB")
        h = hdu.header
        for i, c in enumerate(cols, start=1):
            if c.description:
                h.set(f"TCOMM{i}", c.description, after=f"TFORM{i}" if f"TUNIT{i}" not in h else f"TUNIT{i}")
        h["ORIGIN"] = "catdb"
        h["CATDBQRY"] = self.info
        if h["NAXIS1"] != self.dtype.itemsize:  # pragma: no cover - consistency guard
            raise CatdbError(f"FITS row layout mismatch ({h['NAXIS1']} != {self.dtype.itemsize})")
        self.h = h
        prim = fits.PrimaryHDU().header.tostring().encode("ascii")
        text = h.tostring()
        self.naxis2_offset = len(prim) + [k for k in h.keys()].index("NAXIS2") * 80
        self.f = open(path, "wb")
        self.f.write(prim)
        self.f.write(text.encode("ascii"))
        self.nbytes = 0

    def write(self, batch):
        n = len(batch)
        rec = np.zeros(n, dtype=self.dtype)
        for i, c in enumerate(self.cols):
            arr = batch.column(c.name)
            key = f"f{i}"
            if c.kind == "vector":
                rec[key] = arr.values.to_numpy(zero_copy_only=False).reshape(n, c.length)
            elif c.kind == "float":
                rec[key] = arr.to_numpy(zero_copy_only=False)  # NULL -> NaN
            elif c.kind == "int":
                rec[key] = arr.fill_null(_FITS_FMT[c.dtype][2]).to_numpy(zero_copy_only=False)
            elif c.kind == "bool":
                v = arr.fill_null(False).to_numpy(zero_copy_only=False)
                nul = arr.is_null().to_numpy(zero_copy_only=False)
                rec[key] = np.where(nul, b"\x00", np.where(v, b"T", b"F"))
            else:
                vals = arr.fill_null("").to_numpy(zero_copy_only=False).astype(str)
                rec[key] = np.char.encode(vals, "utf-8") if len(vals) else vals
        data = rec.tobytes()
        self.f.write(data)
        self.nbytes += len(data)

    def close(self, n_rows):
        pad = (-self.nbytes) % 2880
        self.f.write(b"\x00" * pad)
        self.f.seek(self.naxis2_offset)
        self.f.write(fits.Card("NAXIS2", n_rows, "number of rows").image.encode("ascii"))
        self.f.close()


# --------------------------------------------------------------------------- the export
def export_query(conn, query, path, fmt: str | None = None, *, params=None, overrides: dict | None = None,
                 header: bool = True, block_bytes: int = 8 << 20, label: str | None = None) -> ExportResult:
    """Stream the result of ``query`` to ``path`` in one of :data:`FORMATS`.

    Parameters
    ----------
    conn : psycopg.Connection
        Any connection; the export runs in its current transaction (read-only is fine).
    query : str or psycopg.sql.Composable
        One SELECT (see :func:`compose_source` for tables/views).
    path : str or os.PathLike
        Output file (overwritten).
    fmt : {'csv', 'votable', 'fits', 'parquet', 'ecsv'}, optional
        Default: from the extension of ``path``.
    params : dict or sequence, optional
        Values bound to placeholders in ``query``.
    overrides : dict, optional
        ``column -> (unit, description)`` for computed columns.
    header : bool
        CSV only: write the line of column names.
    block_bytes : int
        Size of the CSV blocks read from the server (a batch / row group / block of rows).
    label : str, optional
        Text recorded as the query in the file's metadata (default: the query text).

    Returns
    -------
    ExportResult

    Raises
    ------
    catdb.errors.CatdbError
        Unknown format, or the query fails (nothing is left at ``path``).
    """

    fmt = format_from_path(path, fmt)
    if isinstance(query, str):
        query = sql.SQL(query.strip().rstrip(";"))
    info = label or query.as_string(conn)
    check_query(conn, query, params)  # one statement returning rows: refuses "...; COMMIT; ..."
    described = describe(conn, query, params, overrides=overrides, text_lengths=(fmt == "fits"))
    cols = described.columns
    if not cols:
        raise CatdbError("the query returns no columns")
    empty = assemble(_empty_batch(cols), cols)
    path = str(path)
    writer = {"parquet": lambda: _ParquetWriter(path, cols, info, empty),
              "csv": lambda: _CsvWriter(path, cols, info, empty, header=header),
              "votable": lambda: _VOTableWriter(path, cols, info, empty),
              "ecsv": lambda: _EcsvWriter(path, cols, info, empty),
              "fits": lambda: _FitsWriter(path, cols, info, empty)}[fmt]()
    n = 0
    try:
        for batch in iter_batches(conn, described, params, block_bytes=block_bytes):
            writer.write(assemble(batch, cols))
            n += len(batch)
        writer.close(n)
    except psycopg.Error as e:
        _abandon(writer, path)
        raise CatdbError(f"export query failed: {str(e).strip()}") from None
    except BaseException:
        _abandon(writer, path)
        raise
    return ExportResult(path=path, format=fmt, n_rows=n, columns=cols)


def _abandon(writer, path):
    for attr in ("f", "w"):
        obj = getattr(writer, attr, None)
        try:
            obj.close()
        except Exception:  # noqa: BLE001
            pass
    if os.path.exists(path):
        os.remove(path)


def _empty_batch(cols):
    import pyarrow as pa

    names, types = _arrow_types(cols)
    return pa.RecordBatch.from_arrays([pa.array([], type=types[n]) for n in names], names=names)


def export_table(conn, source: str, path, fmt: str | None = None, *, where: str | None = None,
           columns: list[str] | None = None, header: bool = True, block_bytes: int = 8 << 20) -> ExportResult:
    """Export a table, view or query (``catdb export SOURCE``).

    Parameters
    ----------
    source : str
        Table or view name, or a SELECT query.
    where : str, optional
        SQL condition on the source's columns.
    columns : list of str, optional
        Columns to write, in order.
    (others as :func:`export_query`)

    Returns
    -------
    ExportResult

    Raises
    ------
    catdb.errors.CatdbError
        Unknown table, bad query or format.
    """
    q = compose_source(conn, source, where=where, columns=columns)
    return export_query(conn, q, path, fmt, header=header, block_bytes=block_bytes)


#: the calibrated catalogue: one row per detection
CATALOG_SQL = """
SELECT d.id AS detection_id, d.exposure_id, d.number, d.ra, d.dec, d.ra_err, d.dec_err,
       e.mjd_mid, e.band, e.filter,
       d.mag_auto, d.magerr_auto,
       d.mag_auto + z.zp AS mag_cal,
       CASE WHEN d.mag_auto IS NOT NULL AND z.zp IS NOT NULL
            THEN sqrt(d.magerr_auto::double precision ^ 2 + z.zp_err ^ 2) END AS magerr_cal,
       z.band AS cal_band, z.zp, z.zp_err, z.method AS zp_method,
       d.fwhm, d.elongation, d.class_star, d.snr, d.flags,
       dob.object_id
FROM detection d
JOIN exposure e ON e.id = d.exposure_id
LEFT JOIN (SELECT DISTINCT ON (exposure_id) exposure_id, band, zp, zp_err, method
           FROM zeropoint WHERE ok {zpband}
           ORDER BY exposure_id, stage_run_id DESC, id DESC) z ON z.exposure_id = d.exposure_id
LEFT JOIN detection_object dob ON dob.detection_id = d.id
{where}
"""

CATALOG_UNITS = {
    "detection_id": (None, "Detection id (detection.id)"),
    "mag_cal": ("mag", "Calibrated magnitude MAG_AUTO + zeropoint, on the scale zp_method says (arbitrary for "
                       "relative, ensemble); NULL without an ok zeropoint"),
    "magerr_cal": ("mag", "Error of mag_cal: MAGERR_AUTO and the zeropoint error in quadrature; NULL when mag_cal is "
                          "NULL or the zeropoint error is not known (zp_err NULL)"),
    "cal_band": (None, "Band of mag_cal (the zeropoint's reference band)"),
    "zp_method": (None, "Method of the zeropoint: pp or regression = absolute, fitted to a reference catalogue; "
                        "relative or ensemble = relative to a reference exposure given zp = zp_ref (calibrate "
                        "parameter, default 0), so mag_cal is on an arbitrary scale, not an absolute magnitude; "
                        "NULL without a zeropoint"),
}


def catalog_query(where: str | None = None, zp_band: str | None = None) -> tuple[sql.Composable, dict]:
    """The calibrated-catalogue query (``catdb export catalog``) and its bound values.

    Detections joined to their exposure, the latest ``ok`` zeropoint of the exposure
    (of ``zp_band`` if given) and the object they are linked to:
    ``mag_cal = mag_auto + zp`` (the zeropoint convention of :mod:`catdb.schema.tables`),
    ``magerr_cal = hypot(magerr_auto, zp_err)``, NULL when ``mag_cal`` is NULL (no zeropoint, or no
    ``mag_auto``) or when the zeropoint error is not known (``zp_err`` NULL), and ``zp_method``, the
    zeropoint's method: ``pp``/``regression`` give absolute magnitudes, ``relative``/``ensemble`` a
    scale anchored at ``zp_ref`` on a reference exposure (``calibrate`` stage), not absolute.

    Parameters
    ----------
    where : str, optional
        SQL condition on detection (alias ``d``), exposure (``e``) or zeropoint (``z``).
    zp_band : str, optional
        Use only zeropoints of this band.
    """
    zpband = sql.SQL("AND band = %(zp_band)s") if zp_band else sql.SQL("")
    w = sql.SQL("WHERE ({})").format(sql.SQL(where)) if where else sql.SQL("")
    q = sql.SQL(CATALOG_SQL).format(zpband=zpband, where=w)
    return q, ({"zp_band": zp_band} if zp_band else None)


def export_catalog(conn, path, fmt: str | None = None, *, where: str | None = None, zp_band: str | None = None,
                   header: bool = True, block_bytes: int = 8 << 20) -> ExportResult:
    """Export the calibrated catalogue (see :func:`catalog_query`) to ``path``."""
    q, params = catalog_query(where, zp_band)
    return export_query(conn, q, path, fmt, params=params, overrides=CATALOG_UNITS, header=header,
                        block_bytes=block_bytes, label="catdb export catalog" + (f" --where {where}" if where else ""))


def ledger_table(conn, run_id: int | None = None, set_name: str | None = None):
    """The ledger of a stage run (or of the latest ok run of a veto survivor set) as an astropy Table.

    Parameters
    ----------
    run_id : int, optional
        stage_run id.
    set_name : str, optional
        Survivor set name: the run of the ``veto`` stage that wrote the current set.

    Returns
    -------
    astropy.table.Table
        ``stage_run_id, stage, step, filter, n_in, n_rejected, n_kept, rejected_pct, params``
        ordered by step; ``rejected_pct`` = 100 n_rejected / n_in (%, NULL when n_in = 0);
        ``params`` the JSON text of the step's parameters (for the veto stage always with the
        keys ``veto``, ``arg``, ``n_untested``, ``note``, then the step's thresholds).

    Raises
    ------
    catdb.errors.CatdbError
        Neither or both of ``run_id``/``set_name``, or no such run / set.
    """
    if (run_id is None) == (set_name is None):
        raise CatdbError("give a stage run id or a survivor set name (--set), not both")
    if set_name is not None:
        # the run whose ledger rows still exist (re-running a set deletes the earlier ledger); its
        # status may read 'replaced' when a run for ANOTHER set covered the same exposures
        row = conn.execute("SELECT r.id FROM stage_run r WHERE r.stage = 'veto' AND r.status IN ('ok', 'replaced') "
                           "AND r.params->>'set' = %s AND EXISTS (SELECT 1 FROM ledger l WHERE l.stage_run_id = r.id) "
                           "ORDER BY r.id DESC LIMIT 1", (set_name,)).fetchone()
        if row is None:
            raise CatdbError(f"no ok run of stage veto wrote survivor set {set_name!r}")
        run_id = row[0]
    elif conn.execute("SELECT 1 FROM stage_run WHERE id = %s", (run_id,)).fetchone() is None:
        raise CatdbError(f"no stage run {run_id}")
    t = query_table(conn, "SELECT l.stage_run_id, r.stage, l.step, l.filter, l.n_in, l.n_rejected, l.n_kept, "
                          "round(100.0 * l.n_rejected / nullif(l.n_in, 0), 4)::double precision AS rejected_pct, "
                          "l.params FROM ledger l JOIN stage_run r ON r.id = l.stage_run_id "
                          "WHERE l.stage_run_id = %s ORDER BY l.step", (run_id,))
    if "rejected_pct" in t.colnames:
        t["rejected_pct"].unit = "%"
        t["rejected_pct"].description = "Rejected fraction of the step's input, 100 n_rejected / n_in"
    return t


#: columns of every ledger export (CSV and JSON), in order
LEDGER_COLUMNS = ("stage_run_id", "stage", "step", "filter", "n_in", "n_rejected", "n_kept", "rejected_pct",
                  "params")


def write_ledger(table, path, fmt: str | None = None) -> str:
    """Write a :func:`ledger_table` as CSV or JSON, with the same columns (:data:`LEDGER_COLUMNS`).

    JSON is a list of one object per step, ``params`` as a JSON object (CSV: its JSON text);
    a missing ``rejected_pct`` (n_in = 0) is ``null`` / empty.

    Parameters
    ----------
    table : astropy.table.Table
    path : str or os.PathLike
    fmt : {'csv', 'json'}, optional
        Default from the suffix (``.json``), else CSV.

    Returns
    -------
    str
        The format written.
    """
    fmt = (fmt or ("json" if str(path).lower().endswith(".json") else "csv")).lower()
    if fmt not in ("csv", "json"):
        raise CatdbError(f"ledger format {fmt!r}: expected csv or json")
    t = table[list(LEDGER_COLUMNS)]
    if fmt == "csv":
        t.write(str(path), format="ascii.csv", overwrite=True)
        return fmt

    def val(c, v):
        if np.ma.is_masked(v):
            return None
        if c == "params":
            return json.loads(v) if isinstance(v, str) else v
        if isinstance(v, np.generic):
            v = v.item()
        return None if isinstance(v, float) and not np.isfinite(v) else v

    rows = [{c: val(c, r[c]) for c in LEDGER_COLUMNS} for r in t]
    with open(path, "w") as f:
        json.dump(rows, f, indent=1)
        f.write("\n")
    return fmt
