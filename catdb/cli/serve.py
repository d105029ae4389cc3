"""catdb serve: the database as an IVOA TAP 1.1 service (ADQL), for TOPCAT, pyvo and STILTS."""
from __future__ import annotations

import click

from ..errors import CatdbError


@click.command("serve", epilog="""\b
Examples:
  catdb serve                                  # http://127.0.0.1:8080/tap (localhost only)
  catdb serve --reviewer "A. Astronomer"       # + the candidate review page http://127.0.0.1:8080/review
  catdb serve --port 9000 --timeout 600
  catdb serve --host 0.0.0.0 --port 8080       # reachable from other machines: mind your firewall
  CATDB_URL=postgresql://me@host/db catdb serve
\b
Then, in TOPCAT: VO > Table Access Protocol (TAP) Query, TAP URL http://127.0.0.1:8080/tap
In Python:
  import pyvo
  tap = pyvo.dal.TAPService("http://127.0.0.1:8080/tap")
  tap.search("SELECT TOP 10 ra, dec, mag_auto FROM detection WHERE "
             "CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 124.63, 25.34, 0.01)) = 1").to_table()
STILTS:
  stilts tapquery tapurl=http://127.0.0.1:8080/tap adql="SELECT TOP 5 * FROM exposure" out=e.vot
  stilts taplint tapurl=http://127.0.0.1:8080/tap""")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0: a free one, printed at start).")
@click.option("--timeout", default=300.0, show_default=True, type=float,
              help="Statement timeout of a query [s] (sync; also the longest async execution duration).")
@click.option("--maxrec", "default_maxrec", default=100_000, show_default=True, type=click.IntRange(0),
              help="Rows returned when the request gives no MAXREC.")
@click.option("--max-rows", default=1_000_000, show_default=True, type=click.IntRange(1),
              help="Hard limit of MAXREC [rows].")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1),
              help="Async jobs executing at once.")
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1),
              help="HTTP request threads (each sync query holds one).")
@click.option("--retention", default=172_800, show_default=True, type=click.IntRange(60),
              help="Seconds an async job and its result are kept.")
@click.option("--reviewer", metavar="NAME",
              help="Name recorded with the decisions of the /review page (default: the operating-system user).")
@click.option("--no-review", is_flag=True, help="Do not serve the candidate review page (/review).")
@click.pass_obj
def command(obj, host, port, timeout, default_maxrec, max_rows, workers, threads, retention, reviewer, no_review):
    """Serve the database as an IVOA TAP 1.1 service at http://HOST:PORT/tap.

    ADQL 2.0 queries are translated to PostgreSQL + q3c (CONTAINS/CIRCLE ->
    q3c_radial_query, BOX/POLYGON -> q3c_poly_query, DISTANCE -> q3c_dist) and
    run read-only, as `catdb query` runs SQL: role catdb_reader, read-only
    transaction, statement timeout, one statement.  TAP_SCHEMA (written at
    start into the schema tap_schema) describes every table and view with
    units, descriptions and UCDs.  Sync and async (UWS 1.1) queries; VOTable
    results (TABLEDATA, or BINARY2 with RESPONSEFORMAT=votable/b2).

    Also, at http://HOST:PORT/review, the candidate review page: each
    moving-object candidate with its cutouts, blink, motion fit, light curve and
    identification; keys r/a/k mark it real/artefact/known (c: comment).  The
    decisions are written to track_review with the reviewer's name and the time
    (a stage_run 'review' each), with the login of --db (the owner, not
    catdb_reader); catdb export mpc/ades then take the real and known ones.
    A decision must carry the page's per-server token (no other web site can
    post one); keep --host 127.0.0.1 (the default) unless you mean others to review.
    """
    if not timeout > 0:
        raise CatdbError(f"--timeout {timeout}: expected a positive number of seconds")
    try:
        from ..tap import create_server, stop_server
    except ImportError as e:  # pragma: no cover - the serve extra not installed
        raise CatdbError(f"catdb serve needs the 'serve' extra (pip install 'catdb[serve]'): {e}") from None
    try:
        server, app = create_server(obj["url"], host, port, threads=threads, timeout=timeout,
                                    default_maxrec=default_maxrec, max_rows=max_rows, workers=workers,
                                    retention=retention, review=not no_review, reviewer=reviewer)
    except OSError as e:
        raise CatdbError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    n_tables = sum(1 for t in app.meta.tables if t.schema != "TAP_SCHEMA")
    shown = f"[{host}]" if ":" in host else host
    click.echo(f"catdb TAP service: http://{shown}:{server.effective_port}/tap ({n_tables} tables; "
               "Ctrl-C stops)", err=True)
    if app.review is not None:
        click.echo(f"candidate review: http://{shown}:{server.effective_port}/review (decisions recorded as "
                   f"{app.review.reviewer!r})", err=True)
        if host not in ("127.0.0.1", "localhost", "::1"):
            click.echo(f"warning: the review page writes to the database and listens on {host}: anyone who can "
                       "load the page can record decisions (--no-review turns it off)", err=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        stop_server(server, app)
