"""TAP_SCHEMA: the metadata of catdb's public tables, as TAP 1.1 section 4 defines it.

``catdb serve`` reads the tables and views the read-only role may select (their
columns, types, comments ``"description [unit]"``, indexes and foreign keys) from
PostgreSQL's catalogue, adds the UCDs of :mod:`catdb.schema.ucd`, and writes the
result into a real PostgreSQL schema ``tap_schema`` (tables ``schemas``,
``tables``, ``columns``, ``keys``, ``key_columns``), re-created in one transaction
at every start so it always describes the database as it is.  ADQL queries on
``TAP_SCHEMA.*`` therefore run through the same translator and the same
read-only path as any other query; ``/tables`` (VOSI) is written from the same
:class:`Metadata`.

Source: IVOA TAP 1.1 (2019-09-27), section 4 (TAP_SCHEMA tables and columns);
VOTable 1.4 section 2.1 (datatypes); DALI 1.1 section 3.3 (xtype ``timestamp``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from psycopg import sql

from ..db.copy import copy_table
from ..schema.tables import column_description, column_unit
from ..schema.ucd import column_ucd
from .adql import adql_name
from .votable import votable_type

SCHEMA = "tap_schema"
#: name of the schema as ADQL queries and TAP_SCHEMA rows spell it
TAP_SCHEMA = "TAP_SCHEMA"

#: columns flagged principal (besides those whose UCD has meta.main)
_PRINCIPAL = {"mjd_mid", "mag_auto", "magerr_auto", "mag", "mag_err", "mean_mag", "band", "filter", "exposure_id",
              "object_id", "track_id", "mag_cal", "magerr_cal", "zp_method", "rate", "status", "zp", "zp_err",
              "catalog", "stage", "kind", "table_name", "column_name", "schema_name", "key_id"}


@dataclass
class ColumnMeta:
    name: str
    description: str | None
    unit: str | None
    ucd: str | None
    datatype: str
    arraysize: str | None
    xtype: str | None
    principal: int
    indexed: int
    std: int
    column_index: int
    pgtype: str = ""


@dataclass
class TableMeta:
    schema: str        # as in TAP_SCHEMA.schemas.schema_name
    name: str          # as in TAP_SCHEMA.tables.table_name (what a query writes)
    type: str          # table or view
    description: str | None
    table_index: int
    columns: list[ColumnMeta] = field(default_factory=list)


@dataclass
class KeyMeta:
    key_id: str
    from_table: str
    target_table: str
    description: str | None
    columns: list[tuple[str, str]]   # (from_column, target_column)


@dataclass
class Metadata:
    """What TAP_SCHEMA and /tables publish."""
    schemas: list[tuple[str, str, int]]      # (name, description, schema_index)
    tables: list[TableMeta]
    keys: list[KeyMeta]

    def table(self, name: str) -> TableMeta | None:
        low = name.lower()
        return next((t for t in self.tables if t.name.lower() == low), None)


# --------------------------------------------------------------------------- the TAP_SCHEMA tables themselves
# (name, PostgreSQL type, description, principal); TAP 1.1 section 4
_TS_TABLES = {
    "schemas": ("Schemas of this TAP service", [
        ("schema_name", "text", "Schema name, as used in queries", 1),
        ("utype", "text", "UType of the schema", 0),
        ("description", "text", "Description of the schema", 1),
        ("schema_index", "integer", "Recommended order of display", 0)]),
    "tables": ("Tables and views of this TAP service", [
        ("schema_name", "text", "Schema the table belongs to", 1),
        ("table_name", "text", "Table name, as used in queries", 1),
        ("table_type", "text", "table or view", 1),
        ("utype", "text", "UType of the table", 0),
        ("description", "text", "Description of the table", 1),
        ("table_index", "integer", "Recommended order of display", 0)]),
    "columns": ("Columns of the tables of this TAP service", [
        ("table_name", "text", "Table the column belongs to", 1),
        ("column_name", "text", "Column name, as used in queries", 1),
        ("utype", "text", "UType of the column", 0),
        ("ucd", "text", "UCD1+ of the column", 1),
        ("unit", "text", "Unit (VOUnit)", 1),
        ("description", "text", "Description of the column", 1),
        ("datatype", "text", "VOTable datatype of the column", 1),
        ("arraysize", "text", "VOTable arraysize ('*' for variable length)", 0),
        ("xtype", "text", "DALI xtype of the values (timestamp, point, ...)", 0),
        ("size", "integer", "Deprecated (TAP 1.0): the arraysize as an integer", 0),
        ("principal", "integer", "1 if the column is of primary interest", 0),
        ("indexed", "integer", "1 if the column is indexed", 0),
        ("std", "integer", "1 if the column is defined by a standard", 0),
        ("column_index", "integer", "Recommended order of display", 0)]),
    "keys": ("Foreign keys between the tables of this TAP service", [
        ("key_id", "text", "Key identifier", 1),
        ("from_table", "text", "Table holding the foreign key", 1),
        ("target_table", "text", "Table the key points to", 1),
        ("utype", "text", "UType of the key", 0),
        ("description", "text", "Description of the key", 0)]),
    "key_columns": ("Columns of the foreign keys of this TAP service", [
        ("key_id", "text", "Key identifier (TAP_SCHEMA.keys.key_id)", 1),
        ("from_column", "text", "Column of from_table", 1),
        ("target_column", "text", "Column of target_table", 1)]),
}
_TS_KEYS = [("tables", "schema_name", "schemas", "schema_name"),
            ("columns", "table_name", "tables", "table_name"),
            ("keys", "from_table", "tables", "table_name"),
            ("keys", "target_table", "tables", "table_name"),
            ("key_columns", "key_id", "keys", "key_id")]


def _tap_schema_meta(start_index: int) -> tuple[list[TableMeta], list[KeyMeta]]:
    tables = []
    for k, (tname, (desc, cols)) in enumerate(_TS_TABLES.items()):
        t = TableMeta(TAP_SCHEMA, f"{TAP_SCHEMA}.{tname}", "table", desc, start_index + k)
        for i, (cname, pgt, cdesc, princ) in enumerate(cols):
            dt, asz, xt = votable_type("int4" if pgt == "integer" else "text")
            t.columns.append(ColumnMeta(adql_name(cname), cdesc, None, None, dt, asz, xt, princ, 0, 1, i + 1,
                                        "int4" if pgt == "integer" else "text"))
        tables.append(t)
    keys = [KeyMeta(f"tap_schema_{a}_{ac}", f"{TAP_SCHEMA}.{a}", f"{TAP_SCHEMA}.{b}", None, [(ac, bc)])
            for a, ac, b, bc in _TS_KEYS]
    return tables, keys


# --------------------------------------------------------------------------- reading the database
_CATALOG_SQL = """
SELECT c.oid, c.relname, c.relkind, obj_description(c.oid, 'pg_class'),
       a.attnum, a.attname,
       CASE WHEN t.typcategory = 'A' THEN '_' || e.typname ELSE t.typname END,
       col_description(c.oid, a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'm', 'p')
  AND c.relname <> 'alembic_version'
  AND (NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader')
       OR has_table_privilege('catdb_reader', c.oid, 'SELECT'))
ORDER BY c.relname, a.attnum
"""

_INDEX_SQL = """
SELECT i.indrelid, a.attname
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE n.nspname = current_schema()
UNION
SELECT i.indrelid, a.attname
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum > 0
WHERE n.nspname = current_schema() AND i.indexprs IS NOT NULL
  AND pg_get_expr(i.indexprs, i.indrelid) ~ ('\\m' || a.attname || '\\M')
"""

_FK_SQL = """
SELECT con.conname, src.relname, dst.relname, k.ord, sa.attname, da.attname
FROM pg_constraint con
JOIN pg_class src ON src.oid = con.conrelid
JOIN pg_class dst ON dst.oid = con.confrelid
JOIN pg_namespace n ON n.oid = src.relnamespace
CROSS JOIN LATERAL unnest(con.conkey, con.confkey) WITH ORDINALITY AS k(src_att, dst_att, ord)
JOIN pg_attribute sa ON sa.attrelid = con.conrelid AND sa.attnum = k.src_att
JOIN pg_attribute da ON da.attrelid = con.confrelid AND da.attnum = k.dst_att
WHERE con.contype = 'f' AND n.nspname = current_schema()
ORDER BY con.conname, src.relname, k.ord
"""


def read_metadata(conn) -> Metadata:
    """The metadata of the tables and views the read-only role may select, and of TAP_SCHEMA.

    Parameters
    ----------
    conn : psycopg.Connection

    Returns
    -------
    Metadata
    """
    rows = conn.execute(_CATALOG_SQL).fetchall()
    indexed = {}
    for oid, att in conn.execute(_INDEX_SQL).fetchall():
        indexed.setdefault(oid, set()).add(att)
    schema_name = conn.execute("SELECT current_schema()").fetchone()[0]
    tables: dict[int, TableMeta] = {}
    for oid, relname, kind, tdesc, _attnum, attname, typ, com in rows:
        t = tables.get(oid)
        if t is None:
            t = tables[oid] = TableMeta(schema_name, relname, "view" if kind in ("v", "m") else "table",
                                        tdesc, len(tables) + 1)
        ucd = column_ucd(relname, attname)
        dt, asz, xt = votable_type(typ)
        t.columns.append(ColumnMeta(
            name=adql_name(attname), description=column_description(com), unit=column_unit(com), ucd=ucd,
            datatype=dt, arraysize=asz, xtype=xt,
            principal=int(bool(ucd and "meta.main" in ucd) or attname in _PRINCIPAL),
            indexed=int(attname in indexed.get(oid, ())), std=0, column_index=len(t.columns) + 1, pgtype=typ))
    names = {t.name for t in tables.values()}
    keys: dict[str, KeyMeta] = {}
    for conname, src, dst, _ord, scol, dcol in conn.execute(_FK_SQL).fetchall():
        if src not in names or dst not in names:
            continue
        kid = f"{src}.{conname}"
        k = keys.get(kid)
        if k is None:
            k = keys[kid] = KeyMeta(kid, src, dst, f"{src} -> {dst}", [])
        k.columns.append((adql_name(scol), adql_name(dcol)))
    ts_tables, ts_keys = _tap_schema_meta(len(tables) + 1)
    return Metadata(
        schemas=[(schema_name, "catdb: exposures, detections, objects, tracks, calibration and provenance", 1),
                 (TAP_SCHEMA, "TAP service metadata (TAP 1.1 section 4)", 2)],
        tables=list(tables.values()) + ts_tables,
        keys=list(keys.values()) + ts_keys)


# --------------------------------------------------------------------------- writing TAP_SCHEMA
def install(conn, meta: Metadata) -> dict:
    """(Re-)create the PostgreSQL schema ``tap_schema`` from ``meta``, readable by ``catdb_reader``.

    Runs in the caller's transaction (the caller commits): the old schema is dropped
    and the new one filled in one unit of work, so a reader sees either.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection that may create schemas (the database owner's).
    meta : Metadata

    Returns
    -------
    dict
        Rows written per TAP_SCHEMA table.

    Raises
    ------
    psycopg.errors.InsufficientPrivilege
        The login may not create the schema.
    """
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
    conn.execute(sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
        sql.Identifier(SCHEMA), sql.Literal("TAP 1.1 TAP_SCHEMA, written by catdb serve at start")))
    for tname, (desc, cols) in _TS_TABLES.items():
        ident = sql.Identifier(SCHEMA, tname)
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(ident, sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t, _, _ in cols)))
        conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(ident, sql.Literal(desc)))
        for c, _t, cdesc, _p in cols:
            conn.execute(sql.SQL("COMMENT ON COLUMN {}.{} IS {}").format(ident, sql.Identifier(c),
                                                                         sql.Literal(cdesc)))

    def obj(values):
        return np.array(values, dtype=object)

    def ints(values):
        return np.array(values, dtype=np.int64)

    counts = {}
    # copy_table quotes its table name as one identifier: resolve the names in tap_schema
    old_path = conn.execute("SELECT current_setting('search_path')").fetchone()[0]
    conn.execute("SELECT set_config('search_path', 'tap_schema', true)")
    s = meta.schemas
    counts["schemas"] = copy_table(conn, "schemas", {
        "schema_name": obj([x[0] for x in s]), "description": obj([x[1] for x in s]),
        "schema_index": ints([x[2] for x in s])})
    t = meta.tables
    counts["tables"] = copy_table(conn, "tables", {
        "schema_name": obj([x.schema for x in t]), "table_name": obj([x.name for x in t]),
        "table_type": obj([x.type for x in t]), "description": obj([x.description for x in t]),
        "table_index": ints([x.table_index for x in t])})
    cols = [(tm.name, c) for tm in t for c in tm.columns]
    counts["columns"] = copy_table(conn, "columns", {
        "table_name": obj([n for n, _ in cols]), "column_name": obj([c.name for _, c in cols]),
        "ucd": obj([c.ucd for _, c in cols]), "unit": obj([c.unit for _, c in cols]),
        "description": obj([c.description for _, c in cols]), "datatype": obj([c.datatype for _, c in cols]),
        "arraysize": obj([c.arraysize for _, c in cols]), "xtype": obj([c.xtype for _, c in cols]),
        "size": obj([_size(c.arraysize) for _, c in cols]),
        "principal": ints([c.principal for _, c in cols]), "indexed": ints([c.indexed for _, c in cols]),
        "std": ints([c.std for _, c in cols]), "column_index": ints([c.column_index for _, c in cols])})
    k = meta.keys
    counts["keys"] = copy_table(conn, "keys", {
        "key_id": obj([x.key_id for x in k]), "from_table": obj([x.from_table for x in k]),
        "target_table": obj([x.target_table for x in k]), "description": obj([x.description for x in k])})
    kc = [(x.key_id, f, tc) for x in k for f, tc in x.columns]
    counts["key_columns"] = copy_table(conn, "key_columns", {
        "key_id": obj([a for a, _, _ in kc]), "from_column": obj([b for _, b, _ in kc]),
        "target_column": obj([c for _, _, c in kc])})
    conn.execute("SELECT set_config('search_path', %s, true)", (old_path,))
    conn.execute("""
DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'catdb_reader') THEN
    GRANT USAGE ON SCHEMA tap_schema TO catdb_reader;
    GRANT SELECT ON ALL TABLES IN SCHEMA tap_schema TO catdb_reader;
  END IF;
END $$""")
    return counts


def _size(arraysize):
    if arraysize and re.fullmatch(r"\d+", arraysize):
        return int(arraysize)
    return None
