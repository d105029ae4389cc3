"""catdb query: read-only SQL with a statement timeout."""
from __future__ import annotations

import sys

import click

from ..errors import CatdbError


@click.command("query", epilog="""\b
Examples:
  catdb query "SELECT id, filter, mjd_mid, fwhm FROM exposure ORDER BY mjd_mid"
  catdb query "SELECT * FROM detection WHERE q3c_radial_query(ra, dec, 124.63, 25.34, 0.01)"
  catdb query -f votable -o dets.vot "SELECT ra, dec, mag_auto FROM detection LIMIT 1000"
  catdb query -f csv "SELECT stage, status, counts FROM stage_run" > runs.csv""")
@click.argument("sql_text", metavar="SQL")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "csv", "votable", "fits", "ecsv"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option("--timeout", default=60.0, show_default=True, help="Statement timeout in seconds.")
@click.option("--limit", default=None, type=int, help="Show at most this many rows (format table).")
@click.pass_obj
def command(obj, sql_text, fmt, output, timeout, limit):
    """Run SQL read-only (a read-only transaction with a statement timeout).

    Result columns keep the units and descriptions of the columns they come
    from, so VOTable/FITS output opens in TOPCAT with units.
    """
    import psycopg

    from ..db.engine import connect
    from ..export.table import query_table

    with connect(obj["url"], read_only=True, statement_timeout_ms=int(timeout * 1000)) as conn:
        if conn.execute("SELECT pg_has_role('catdb_reader', 'MEMBER') FROM pg_roles "
                        "WHERE rolname = 'catdb_reader'").fetchone():
            conn.execute("SET ROLE catdb_reader")
        try:
            t = query_table(conn, sql_text, single_statement=True)
        except psycopg.errors.QueryCanceled:
            raise CatdbError(f"query cancelled after the {timeout:g} s statement timeout (--timeout)") from None
        except (psycopg.errors.ReadOnlySqlTransaction, psycopg.errors.InsufficientPrivilege) as e:
            raise CatdbError(f"catdb query is read-only: {e.diag.message_primary}") from None
        except psycopg.errors.SyntaxError as e:
            raise CatdbError(f"query failed: {e.diag.message_primary} (catdb query runs one statement)") from None
        except psycopg.Error as e:
            raise CatdbError(f"query failed: {str(e).strip()}") from None
    if fmt == "table":
        text = "\n".join(t.pformat(max_lines=(limit + 4) if limit else -1, max_width=-1))
        _emit(text + "\n", output)
        if not obj["quiet"]:
            click.echo(f"({len(t)} rows)", err=True)
        return
    if output is None and fmt in ("votable", "fits"):
        if fmt == "fits":
            raise CatdbError("FITS output needs -o FILE")
        t.write(sys.stdout, format="votable")
        return
    kw = {"format": {"csv": "ascii.csv", "ecsv": "ascii.ecsv", "votable": "votable", "fits": "fits"}[fmt]}
    if output:
        t.write(output, overwrite=True, **kw)
    else:
        t.write(sys.stdout, **kw)


def _emit(text, output):
    if output:
        with open(output, "w") as f:
            f.write(text)
    else:
        click.echo(text, nl=False)
