"""A throwaway catdb server for benchmarks (same code as the test fixture)."""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager


@contextmanager
def bench_server():
    """Yield the URL of a fresh catdb database (at head) on a throwaway embedded server."""
    from catdb.db import migrate
    from catdb.db.server import EmbeddedServer

    base = tempfile.mkdtemp(prefix="catdb-bench-", dir="/tmp")
    os.chmod(base, 0o755)
    srv = EmbeddedServer(os.path.join(base, "pg"), port=5499)
    srv.start()
    try:
        url = srv.url()
        migrate.upgrade(url)
        from catdb.db.engine import engine

        # close the migration's pooled connection: an idle session would count as another client
        # (xmatch's bulk_load=auto then stays off, as it would not from the CLI)
        engine(url).dispose()
        yield url
    finally:
        srv.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
