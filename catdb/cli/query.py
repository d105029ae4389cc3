"""catdb query: one read-only SQL query (or a named saved query) with a statement timeout.

How the query is kept read-only, in order:

1. the connection logs in as the role ``catdb_reader`` (SELECT only) when the server
   lets it (the embedded server does: local ``trust``); otherwise it logs in as the
   configured user and runs ``SET ROLE catdb_reader`` (a superuser login could then
   switch back with ``set_config('role', ...)`` inside the query: give catdb_reader a
   password and put it in ``CATDB_READER_URL`` on such servers);
2. the transaction is read-only (``default_transaction_read_only``) and has a
   statement timeout (``--timeout``, default 300 s);
3. the text is parsed by the server as ONE prepared statement (the extended protocol
   refuses ``;``-separated commands, so nothing can COMMIT and start a writable
   transaction) and must return rows: INSERT/UPDATE/DELETE/DDL/SET/COPY are refused
   before they run;
4. saved-query values are bound by the server, never formatted into the SQL.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import warnings

import click
import numpy as np
import psycopg
from psycopg import sql

from ..db.safety import check_query, reader_connection
from ..errors import CatdbError

FORMATS = ("table", "csv", "tsv", "json", "votable", "fits", "parquet", "ecsv")
#: formats written by catdb.export.formats.export_query (streaming, units carried)
_STREAMED = ("csv", "votable", "fits", "parquet", "ecsv")
#: queries export_query can wrap as a subquery (SHOW / EXPLAIN cannot: they go through query_table)
_WRAPPABLE = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|VALUES|TABLE)\b", re.I)


#: default --max-rows: table output on stdout stops here
MAX_ROWS = 1000
#: rows fetched from the server-side cursor at a time
BLOCK_ROWS = 20_000


class Seconds(click.ParamType):
    """A finite number of seconds > 0 (``--timeout``; ``inf`` and ``nan`` are refused)."""

    name = "seconds"

    def convert(self, value, param, ctx):
        try:
            v = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(v) or v <= 0 or v > 7 * 86400:
            self.fail(f"{value!r}: expected a finite number of seconds > 0 (at most 604800, a week)", param, ctx)
        return v


def _parse_params(pairs):
    out = {}
    for p in pairs:
        if "=" not in p:
            raise CatdbError(f"--param {p!r}: expected KEY=VALUE")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _translate(e, timeout):
    """A psycopg error (or catdb's wrapping of one) as a CatdbError with a clear message."""
    if isinstance(e, psycopg.errors.QueryCanceled) or "statement timeout" in str(e):
        return CatdbError(f"query cancelled after the {timeout:g} s statement timeout (--timeout)")
    if "data-modifying statement" in str(e):  # WITH ... DELETE/INSERT/UPDATE: refused as a subquery/cursor
        return CatdbError("catdb query is read-only: a WITH clause holding INSERT, UPDATE or DELETE is refused")
    if isinstance(e, (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege)):
        return CatdbError(f"catdb query is read-only: {e.diag.message_primary}")
    if isinstance(e, psycopg.errors.SyntaxError):
        return CatdbError(f"query failed: {e.diag.message_primary} (catdb query runs one statement)")
    if isinstance(e, CatdbError):
        msg = str(e)
        if "read-only" in msg or "permission denied" in msg:
            return CatdbError(f"catdb query is read-only: {msg}")
        return e
    return CatdbError(f"query failed: {str(e).strip()}")


@click.command("query", epilog="""\b
Examples:
  catdb query "SELECT id, filter, mjd_mid, fwhm FROM exposure ORDER BY mjd_mid"
  catdb query "SELECT * FROM detection WHERE q3c_radial_query(ra, dec, 124.63, 25.34, 0.01)"
  catdb query -f votable -o dets.vot "SELECT ra, dec, mag_auto FROM detection LIMIT 1000"
  catdb query -f csv "SELECT stage, status, counts FROM stage_run" > runs.csv
  catdb query --list-saved
  catdb query --saved cone --param ra=124.6266 --param dec=25.3429 --param radius_arcsec=3
  catdb query --saved lightcurve --param track_id=503 -o lc.vot
  catdb query --saved calibrated-catalog --param exposure_id=7 -o e7.fits
  catdb query --saved stage-runs --param stage=calibrate""")
@click.argument("sql_text", metavar="[SQL]", required=False)
@click.option("-f", "--format", "fmt", type=click.Choice(FORMATS), default=None,
              help="Output format (default: table on stdout, else from the -o extension: "
                   ".csv .tsv .json .vot/.xml .fits .parquet .ecsv .txt).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option("--timeout", default=300.0, show_default=True, type=Seconds(),
              help="Statement timeout in seconds (a finite number > 0).")
@click.option("--limit", default=None, type=click.IntRange(min=0),
              help="At most this many rows, in every format (applied in the SQL: the query runs as a "
                   "subquery with LIMIT).")
@click.option("--max-rows", default=MAX_ROWS, show_default=True, type=click.IntRange(min=0),
              help="Table output on stdout stops after this many rows and says how to get all of them "
                   "(0: no cap).  Files and -f csv/tsv/json stream every row at constant memory.")
@click.option("--saved", metavar="NAME", help="Run a named saved query (see --list-saved) instead of SQL.")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Parameter of the saved query (repeatable); values are bound, never pasted into SQL.")
@click.option("--list-saved", is_flag=True, help="List the saved queries and their parameters.")
@click.pass_obj
def command(obj, sql_text, fmt, output, timeout, limit, max_rows, saved, params, list_saved):
    """Run ONE SQL query read-only: as role catdb_reader, in a read-only
    transaction, with a statement timeout; or a named saved query (--saved).

    Result columns keep the units and descriptions of the columns they come
    from, so VOTable/FITS/Parquet/ECSV output opens in TOPCAT with units.

    Client memory is bounded: rows come through a server-side cursor in blocks,
    --limit is applied in the SQL, files and CSV/TSV/JSON on stdout are written
    block by block, and table output on stdout stops at --max-rows (default
    1000) with a message saying how to get every row.
    """
    from ..export.saved import list_saved as _list
    from ..export.saved import saved_query

    if list_saved:
        click.echo(_saved_listing(_list()))
        return
    if saved and sql_text:
        raise CatdbError("give either SQL or --saved NAME, not both")
    if params and not saved:
        raise CatdbError("--param is for saved queries (--saved NAME)")
    if not saved and not (sql_text and sql_text.strip()):
        raise CatdbError("give a query (catdb query \"SELECT ...\") or --saved NAME (catdb query --list-saved)")
    if limit is not None and limit < 0:
        raise CatdbError(f"--limit {limit}: expected a number of rows >= 0")
    fmt = _format(fmt, output)
    if saved:
        query, bind, overrides = saved_query(saved, _parse_params(params))
        label = f"catdb query --saved {saved} " + " ".join(f"--param {p}" for p in params)
    else:
        query, bind, overrides = sql_text.strip().rstrip(";").strip(), None, None
        label = query
    conn = reader_connection(obj["url"], timeout)
    try:
        check_query(conn, query, bind)
        try:
            if not isinstance(query, str) or _WRAPPABLE.match(query):
                _stream(conn, query, bind, overrides, label, fmt, output, limit, max_rows, obj)
                return
            from ..export.table import query_table  # SHOW / EXPLAIN: a few rows, not a cursor

            t = query_table(conn, query, bind, single_statement=True)
        except Exception as e:  # noqa: BLE001 - psycopg errors and catdb's wrapping of them
            if isinstance(e, (psycopg.Error, CatdbError)):
                raise _translate(e, timeout) from None
            raise
    finally:
        # never commit: a few functions write even in a read-only transaction
        # (lo_from_bytea, lo_create); rolling back discards what they did
        try:
            conn.rollback()
        except Exception:  # noqa: BLE001 - a dead connection: closing discards the transaction too
            pass
        conn.close()
    _apply_overrides(t, overrides)
    _write(t, fmt, output, limit, obj)


def _bounded(query, n):
    """``SELECT * FROM (query) AS _catdb_query LIMIT n``: the limit applied by the server."""
    q = sql.SQL(query) if isinstance(query, str) else query
    return sql.SQL("SELECT * FROM ({}) AS _catdb_query LIMIT {}").format(q, sql.Literal(int(n)))


def _stream(conn, query, bind, overrides, label, fmt, output, limit, max_rows, obj):
    """Run a SELECT/WITH/VALUES/TABLE query with bounded client memory and write it.

    Files in csv/votable/fits/parquet/ecsv go through :func:`catdb.export.formats.export_query`
    (blocks, units carried); table/tsv/json (and csv on stdout) through a server-side cursor
    :data:`BLOCK_ROWS` rows at a time; table output on stdout stops at ``max_rows``.
    """
    if output is None and fmt in ("fits", "parquet"):
        raise CatdbError(f"{fmt} output is binary: give -o FILE")
    capped = fmt == "table" and output is None and max_rows > 0
    n = limit
    if capped and (n is None or n > max_rows):
        n = max_rows + 1  # one more than shown: tells whether the result has more
    q = _bounded(query, n) if n is not None else query
    if fmt in _STREAMED and (output or fmt in ("votable", "ecsv")):
        if output:
            _export(conn, q, bind, overrides, label, fmt, output, obj)
            return
        from ..export.formats import export_query

        with tempfile.TemporaryDirectory(prefix="catdb-query-") as d:
            path = os.path.join(d, f"out.{'vot' if fmt == 'votable' else fmt}")
            export_query(conn, q, path, fmt, params=bind, overrides=overrides, label=label)
            sys.stdout.flush()
            with open(path, "rb") as f:
                out = getattr(sys.stdout, "buffer", None)
                if out is None:
                    sys.stdout.write(f.read().decode())
                else:
                    shutil.copyfileobj(f, out)
                    out.flush()
        return
    from ..export.table import _comments

    cur = conn.cursor(name="catdb_query")
    cur.execute(q, bind)
    meta = _comments(conn, cur)
    names = _names(cur.description)
    if overrides:
        meta = [(overrides[c][0] or m[0], overrides[c][1] or m[1]) if c in overrides else m
                for c, m in zip(names, meta)]
    if capped:
        rows = cur.fetchmany(n)
        more = len(rows) > max_rows and (limit is None or limit > max_rows)
        t = _table(rows[:max_rows] if more else rows, names, meta)
        _write(t, "table", None, None, {**obj, "quiet": True})
        if more:
            click.echo(f"(showing the first {max_rows} rows: the result has more.  Every row: -o FILE "
                       f"(.csv .fits .parquet .vot ...), -f csv > FILE, or --max-rows 0)", err=True)
        elif not obj.get("quiet"):
            click.echo(f"({len(t)} rows)", err=True)
        return
    fh = open(output, "w") if output else sys.stdout
    try:
        n_rows = _write_blocks(cur, names, meta, fmt, fh)
    finally:
        if output:
            fh.close()
    if output and not obj.get("quiet"):
        click.echo(f"wrote {n_rows} rows, {len(names)} columns to {output} ({fmt})", err=True)


def _names(description):
    """Result column names, duplicates numbered (``id``, ``id_1``) as astropy tables need."""
    from ..export.table import unique_names

    return unique_names(c.name for c in description)


def _table(rows, names, meta):
    """An astropy Table of one block of rows, with units and descriptions."""
    from ..export.table import table_from_rows

    return table_from_rows(rows, names, meta, mask_null_text=True)  # NULL text stays NULL (JSON null)


def _write_blocks(cur, names, meta, fmt, fh) -> int:
    """Write the rows of the server-side cursor ``cur`` to ``fh`` block by block; returns the count."""
    n = 0
    first = True
    if fmt == "json":
        cols = [{"name": c, "unit": m[0], "description": m[1]} for c, m in zip(names, meta)]
        fh.write(json.dumps({"columns": cols})[:-1] + ', "rows": [')
    while True:
        rows = cur.fetchmany(BLOCK_ROWS)
        if not rows and not first:
            break
        t = _table(rows, names, meta)
        if fmt == "json":
            if rows:
                body = _json_rows(t)
                fh.write(("" if first else ",") + body[1:-1])
        elif fmt == "table":
            lines = t.pformat(max_lines=-1, max_width=-1, show_name=first, show_unit=None if first else False)
            if rows or first:
                fh.write("\n".join(lines) + "\n")
        else:  # csv, tsv
            t = _flatten_vectors(t)
            buf = io.StringIO()
            delim = "," if fmt == "csv" else "\t"
            if first:
                t.write(buf, format="ascii.csv" if fmt == "csv" else "ascii.tab")
            elif rows:
                t.write(buf, format="ascii.no_header", delimiter=delim)
            fh.write(buf.getvalue())
        n += len(rows)
        first = False
        if not rows:
            break
    if fmt == "json":
        fh.write(f'], "n_rows": {n}}}\n')
    fh.flush()
    return n


def _json_rows(t) -> str:
    """The rows of ``t`` as a JSON array of objects (NULL/NaN -> null)."""
    text = _to_json(t)
    return text[text.index('"rows": ') + len('"rows": '):-1]


def _export(conn, query, bind, overrides, label, fmt, output, obj):
    """Stream the result to the file ``output`` with catdb.export.formats.export_query
    (bounded memory; units and descriptions carried)."""
    from ..export.formats import export_query

    res = export_query(conn, query, output, fmt, params=bind, overrides=overrides, label=label)
    if not obj.get("quiet"):
        click.echo(f"wrote {res.n_rows} rows, {len(res.columns)} columns to {output} ({fmt})", err=True)


def _format(fmt, output):
    if fmt:
        return fmt
    if not output:
        return "table"
    ext = os.path.splitext(output)[1].lower()
    by_ext = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".json": "json", ".vot": "votable",
              ".xml": "votable", ".votable": "votable", ".fits": "fits", ".fit": "fits", ".fts": "fits",
              ".parquet": "parquet", ".pq": "parquet", ".ecsv": "ecsv", ".txt": "table"}
    if ext not in by_ext:
        raise CatdbError(f"cannot tell the format of {output!r} from its extension; give -f "
                         f"({', '.join(FORMATS)})")
    return by_ext[ext]


def _apply_overrides(t, overrides):
    if not overrides:
        return
    import astropy.units as u

    for name, (unit, desc) in overrides.items():
        if name in t.colnames:
            if unit:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", u.UnitsWarning)
                    t[name].unit = u.Unit(unit, parse_strict="silent")
            if desc:
                t[name].description = desc


def _write(t, fmt, output, limit, obj):
    if fmt == "table":
        lines = t.pformat(max_lines=(limit + 4) if limit is not None else -1, max_width=-1)
        text = "\n".join(lines) + "\n"
        if output:
            with open(output, "w") as f:
                f.write(text)
        elif sys.stdout.isatty() and len(lines) + 2 > _terminal_rows():
            click.echo_via_pager(text)
        else:
            click.echo(text, nl=False)
        if not obj.get("quiet"):
            click.echo(f"({len(t)} rows)", err=True)
        return
    if fmt == "json":
        text = _to_json(t)
        if output:
            with open(output, "w") as f:
                f.write(text)
        else:
            click.echo(text)
        return
    if output is None and fmt in ("fits", "parquet"):
        raise CatdbError(f"{fmt} output is binary: give -o FILE")
    if fmt in ("csv", "tsv"):
        t = _flatten_vectors(t)
    kw = {"csv": "ascii.csv", "tsv": "ascii.tab", "ecsv": "ascii.ecsv", "votable": "votable",
          "fits": "fits", "parquet": "parquet"}[fmt]
    if output:
        t.write(output, format=kw, overwrite=True)
    else:
        t.write(sys.stdout, format=kw)


def _flatten_vectors(t):
    """Vector columns (mag_aper, ...) as columns name_1 ... name_n (CSV/TSV have no vectors)."""
    from astropy.table import Table

    if all(t[c].ndim == 1 for c in t.colnames):
        return t
    out = Table()
    for c in t.colnames:  # a loop over columns
        col = t[c]
        if col.ndim == 1:
            out[c] = col
            continue
        for k in range(col.shape[1]):
            out[f"{c}_{k + 1}"] = col[:, k]
            out[f"{c}_{k + 1}"].unit, out[f"{c}_{k + 1}"].description = col.unit, col.description
    return out


def _terminal_rows() -> int:
    return shutil.get_terminal_size((80, 24)).lines


def _to_json(t) -> str:
    """``{"columns": [{name, unit, description}], "rows": [{name: value}]}``; NULL/NaN -> null."""
    cols = [{"name": c, "unit": str(t[c].unit) if t[c].unit is not None else None,
             "description": t[c].description} for c in t.colnames]
    if len(t) == 0:
        rows = "[]"
    else:
        df = t.to_pandas() if all(t[c].ndim == 1 for c in t.colnames) else None
        if df is None:  # vector columns: pandas cannot hold them; lists per cell
            def cells(col):
                a = np.ma.asarray(col)
                if a.dtype.kind == "f":
                    return np.ma.filled(a, np.nan).tolist()
                out = np.asarray(a.data).astype(object)  # masked ints/strings -> None
                out[np.ma.getmaskarray(a)] = None
                return out.tolist()

            data = {c: cells(t[c]) for c in t.colnames}
            import pandas as pd

            df = pd.DataFrame({c: list(v) for c, v in data.items()})
        rows = df.to_json(orient="records", double_precision=15)
    head = json.dumps({"columns": cols, "n_rows": len(t)})
    return head[:-1] + ', "rows": ' + rows + "}"


def _saved_listing(queries) -> str:
    out = []
    for q in queries:
        out.append(f"{q.name}: {q.description}")
        for p in q.params:
            req = "required" if p.required else (f"default {p.default}" if p.default is not None else "optional")
            ch = f"; one of {', '.join(p.choices)}" if p.choices else ""
            out.append(f"    {p.name} ({p.type}, {req}{ch}): {p.help}")
        if q.example:
            out.append(f"    e.g. {q.example}")
    return "\n".join(out)
