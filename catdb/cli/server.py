"""catdb server start|stop|status: the embedded PostgreSQL cluster."""
from __future__ import annotations

import click

from ..db.server import EmbeddedServer


def _human(n):
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1024:
            return f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"


@click.group("server", epilog="""\b
Examples:
  catdb server start
  catdb --data-dir /data/catdb server status
  catdb server stop
  CATDB_EMBEDDED=pgserver catdb server start   # PostgreSQL 16 from PyPI (pip install 'catdb[pip]')

\b
Binaries: the system PostgreSQL (Debian postgresql-15 with q3c) when installed, else the
PostgreSQL bundled in the pgserver wheel (catdb's SQL port of q3c is then the spatial backend).""")
def command():
    """The embedded PostgreSQL server (used when no --db / CATDB_URL is set)."""


@command.command()
@click.option("--tcp-port", type=int, help="Also listen on 127.0.0.1 at this port (default: Unix socket only).")
def start(tcp_port):
    """Start the server (initialising the data directory on first use)."""
    srv = EmbeddedServer(tcp_port=tcp_port)
    was = srv.is_running()
    srv.start()
    click.echo(f"{'already running' if was else 'started'}: {srv.url()}")


@command.command()
def stop():
    """Stop the server (data are kept)."""
    srv = EmbeddedServer()
    click.echo("stopped" if srv.stop() else f"not running ({srv.data_dir})")


@command.command()
def status():
    """Print binaries, version, data directory, socket, size and the spatial backend."""
    srv = EmbeddedServer()
    st = srv.status()
    click.echo(f"running:     {f'yes (pid {st.pid})' if st.running else 'no'}")
    click.echo(f"data dir:    {st.data_dir}{'' if st.initialised else ' (not initialised)'}")
    click.echo(f"socket:      {st.socket_dir}/.s.PGSQL.{st.port}")
    click.echo(f"url:         {srv.url()}")
    click.echo(f"size:        {_human(st.size_bytes)}")
    click.echo(f"binaries:    {st.binaries_source}: {st.binaries} (server user: {srv.user or 'self'})")
    if st.running:
        click.echo(f"version:     {st.version}")
        click.echo(f"q3c:         {'available' if st.q3c_available else 'not available (SQL backend will be used)'}")
        if st.spatial_backend:
            what = {"q3c": "the q3c C extension", "sql": "catdb's SQL port of q3c"}.get(st.spatial_backend, "")
            click.echo(f"spatial:     {st.spatial_backend} ({what})")
        else:
            click.echo(f"spatial:     none yet (catdb db init installs "
                       f"{'q3c' if st.q3c_available else 'the SQL port of q3c'})")
