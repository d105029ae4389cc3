"""The embedded PostgreSQL server: a cluster in a data directory catdb owns.

With no database URL configured, catdb runs its own PostgreSQL cluster from
the system binaries (Debian ``postgresql-15``), listening only on a Unix
socket inside the data directory.  Without system binaries it falls back to
the PostgreSQL 16 binaries bundled in the ``pgserver`` wheel from PyPI
(``pip install 'catdb[pip]'``); those cannot load Debian's q3c, so ``catdb db
init`` then installs catdb's SQL port of q3c (see
:mod:`catdb.db.spatial_backend`).  ``CATDB_EMBEDDED=system|pgserver`` forces
one of the two.  ``initdb`` refuses to run as root, so when
catdb runs as root the server runs as the ``postgres`` system user (or a
``catdb`` system user that catdb creates when ``postgres`` does not exist).

Example
-------
>>> srv = EmbeddedServer("/tmp/mycatdb")          # doctest: +SKIP
>>> srv.start()                                   # initdb on first use
>>> srv.url()
'postgresql://catdb@/catdb?host=/tmp/mycatdb&port=5432'
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import psycopg
from psycopg import sql

from ..errors import CatdbError

#: name of the superuser role and of the database catdb creates
DB_NAME = "catdb"
SUPERUSER = "catdb"
DEFAULT_PORT = 5432
#: longest Unix socket path (``sizeof(sockaddr_un.sun_path) - 1`` on Linux)
SOCKET_PATH_MAX = 107


def check_database_name(name: str) -> str:
    """A database name for the embedded cluster: letters, digits, ``_`` and ``-``, at most 63 bytes.

    Raises
    ------
    catdb.errors.CatdbError
        Any other name.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]{0,62}", name):
        raise CatdbError(f"database name {name!r}: expected letters, digits, '_' or '-' (at most 63, "
                         f"starting with a letter or '_')")
    return name


def default_data_dir() -> Path:
    """Data directory used when neither ``--data-dir`` nor ``CATDB_DATA_DIR`` is given.

    ``$XDG_DATA_HOME/catdb/pg`` (``~/.local/share/catdb/pg``).  As root the
    home directory is usually not traversable by the unprivileged server
    user, so root gets ``/var/lib/catdb/pg`` instead.
    """
    env = os.environ.get("CATDB_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    if os.geteuid() == 0:
        return Path("/var/lib/catdb/pg")
    base = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return Path(base) / "catdb" / "pg"


#: environment variable choosing the embedded server's binaries: auto, system or pgserver
EMBEDDED_ENV = "CATDB_EMBEDDED"
BINARY_SOURCES = ("auto", "system", "pgserver")


@dataclass(frozen=True)
class Binaries:
    """A PostgreSQL server installation the embedded server can run.

    Attributes
    ----------
    bindir : Path
        Directory holding ``initdb``, ``pg_ctl`` and ``postgres``.
    source : str
        ``'system'`` (``CATDB_PG_BINDIR``, ``pg_config`` or ``/usr/lib/postgresql``) or
        ``'pgserver'`` (the binaries bundled in the ``pgserver`` wheel).
    """

    bindir: Path
    source: str

    @property
    def major(self) -> int | None:
        """Major version of ``postgres`` (e.g. 15), None when it cannot be run."""
        v = self.version
        try:
            return int(v.split()[-1].split(".")[0]) if v else None
        except ValueError:
            return None

    @property
    def version(self) -> str | None:
        """``postgres --version`` output, e.g. ``'postgres (PostgreSQL) 16.2'``."""
        return _postgres_version(str(self.bindir))

    def describe(self) -> str:
        """One line for ``catdb server status``."""
        what = self.version or "postgres --version failed"
        if self.source == "pgserver":
            try:
                what += f", bundled in pgserver {metadata.version('pgserver')}"
            except Exception:  # noqa: BLE001 (metadata missing: still describe the binaries)
                what += ", bundled in pgserver"
        return f"{self.bindir} ({what})"


_VERSIONS: dict[str, str | None] = {}


def _postgres_version(bindir: str) -> str | None:
    if bindir not in _VERSIONS:
        try:
            out = subprocess.run([str(Path(bindir) / "postgres"), "--version"], capture_output=True,
                                 text=True, check=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = None
        _VERSIONS[bindir] = out
    return _VERSIONS[bindir]


def _usable(d: Path) -> bool:
    return (d / "initdb").exists() and (d / "pg_ctl").exists() and (d / "postgres").exists()


def system_bindirs() -> list[Path]:
    """System PostgreSQL server binary directories, preferred first.

    ``CATDB_PG_BINDIR``, then ``pg_config --bindir``, then ``/usr/lib/postgresql/*/bin``
    (highest version first); only directories holding ``initdb``, ``pg_ctl`` and
    ``postgres``.
    """
    cands = []
    env = os.environ.get("CATDB_PG_BINDIR")
    if env:
        cands.append(Path(env))
    pgc = shutil.which("pg_config")
    if pgc:
        try:
            out = subprocess.run([pgc, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
            cands.append(Path(out))
        except (OSError, subprocess.CalledProcessError):
            pass

    def _ver(p):
        try:
            return int(Path(p).parent.name)
        except ValueError:
            return 0

    cands += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_ver, reverse=True)]
    out: list[Path] = []
    for c in cands:
        if _usable(c) and c.resolve() not in [o.resolve() for o in out]:
            out.append(c)
    return out


def pgserver_bindir() -> Path | None:
    """``pginstall/bin`` of the installed ``pgserver`` package, or None.

    Found with :func:`importlib.util.find_spec` without importing ``pgserver`` (its
    import creates lock files in the user's runtime directory).
    """
    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        d = Path(loc) / "pginstall" / "bin"
        if _usable(d):
            return d
    return None


def _cluster_major(data_dir: Path | None) -> int | None:
    try:
        return int((Path(data_dir) / "PG_VERSION").read_text().strip()) if data_dir else None
    except (OSError, ValueError):
        return None


def find_binaries(prefer: str | None = None, data_dir=None) -> Binaries:
    """Choose the PostgreSQL binaries of the embedded server.

    Parameters
    ----------
    prefer : {'auto', 'system', 'pgserver'}, optional
        Default ``$CATDB_EMBEDDED`` or ``'auto'``: the system installation
        (:func:`system_bindirs`), else the binaries bundled in the ``pgserver`` wheel.
    data_dir : path, optional
        An existing cluster: in ``'auto'`` mode the binaries of its major version
        (``PG_VERSION``) are preferred, so a cluster created from pgserver's PostgreSQL 16
        is not started with a system PostgreSQL 15 installed later.

    Returns
    -------
    Binaries

    Raises
    ------
    catdb.errors.CatdbError
        Unknown ``prefer`` value, or no usable binaries of the requested kind.
    """
    prefer = (prefer or os.environ.get(EMBEDDED_ENV) or "auto").strip().lower()
    if prefer not in BINARY_SOURCES:
        raise CatdbError(f"{EMBEDDED_ENV} must be one of {', '.join(BINARY_SOURCES)}, got {prefer!r}")
    cands = []
    if prefer in ("auto", "system"):
        cands += [Binaries(d, "system") for d in system_bindirs()]
    if prefer in ("auto", "pgserver"):
        d = pgserver_bindir()
        if d is not None:
            cands.append(Binaries(d, "pgserver"))
    if not cands:
        if prefer == "pgserver":
            raise CatdbError(f"{EMBEDDED_ENV}=pgserver but the pgserver package is not installed "
                             "(pip install 'catdb[pip]', or pip install pgserver)")
        raise CatdbError(
            "no PostgreSQL server binaries found (looked for initdb/pg_ctl via CATDB_PG_BINDIR, "
            "pg_config --bindir and /usr/lib/postgresql/*/bin"
            + (", and the pgserver package" if prefer == "auto" else "") +
            "); install Debian's postgresql-15 and postgresql-15-q3c, or pip install 'catdb[pip]' "
            "(PostgreSQL 16 from PyPI, with catdb's SQL port of q3c), or set CATDB_URL to an "
            "existing server")
    major = _cluster_major(data_dir)
    if major is not None:
        for b in cands:
            if b.major == major:
                return b
        have = ", ".join(f"{b.bindir} (PostgreSQL {b.major})" for b in cands)
        raise CatdbError(f"the cluster in {data_dir} was created by PostgreSQL {major}, but the "
                         f"server binaries found are another major version: {have}; install "
                         f"PostgreSQL {major} (or set {EMBEDDED_ENV}) or use another --data-dir")
    return cands[0]


def find_bindir() -> Path:
    """Directory of the PostgreSQL server binaries (``initdb``, ``pg_ctl``, ``postgres``).

    See :func:`find_binaries` (this returns its ``bindir``).

    Raises
    ------
    catdb.errors.CatdbError
        When no PostgreSQL server installation is found.
    """
    return find_binaries().bindir


def _server_user() -> str | None:
    """OS user that runs the server: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "catdb"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "catdb"],
                   check=True, capture_output=True)
    return "catdb"


@dataclass
class ServerStatus:
    """What ``catdb server status`` reports."""

    running: bool
    data_dir: str
    socket_dir: str
    port: int
    initialised: bool
    version: str | None = None
    size_bytes: int | None = None
    q3c_available: bool | None = None
    pid: int | None = None
    binaries: str | None = None
    binaries_source: str | None = None
    spatial_backend: str | None = None


class EmbeddedServer:
    """A PostgreSQL cluster owned by catdb.

    Parameters
    ----------
    data_dir : str or Path, optional
        Cluster directory (default :func:`default_data_dir`).  The Unix socket
        lives in this directory; no TCP port is opened unless ``tcp_port`` is given.
    port : int
        Port number; with no TCP it only names the socket file ``.s.PGSQL.<port>``.
    tcp_port : int, optional
        Also listen on 127.0.0.1 at this port.
    binaries : {'auto', 'system', 'pgserver'}, optional
        Which PostgreSQL binaries run the cluster (default ``$CATDB_EMBEDDED`` or
        ``'auto'``; see :func:`find_binaries`).

    Raises
    ------
    catdb.errors.CatdbError
        No usable PostgreSQL binaries (the message says what to install).
    """

    def __init__(self, data_dir=None, port: int = DEFAULT_PORT, tcp_port: int | None = None,
                 binaries: str | None = None):
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir else default_data_dir()
        self.port = int(port)
        self.tcp_port = tcp_port
        self.binaries = find_binaries(binaries, self.data_dir)
        self.bindir = self.binaries.bindir
        self.user = _server_user()

    # -- helpers ---------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    def _run(self, args, check=True, **kw):
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        if self.user:
            kw["user"] = self.user
            kw["group"] = pwd.getpwnam(self.user).pw_gid
            kw["extra_groups"] = []
            kw.setdefault("cwd", "/")
        return subprocess.run(args, check=check, **kw)

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def url(self, dbname: str = DB_NAME, user: str = SUPERUSER) -> str:
        """libpq URL of this server (Unix socket)."""
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def _check_path_traversable(self):
        if not self.user:
            return
        uid = pwd.getpwnam(self.user).pw_uid
        for anc in reversed(self.data_dir.parents):
            if not anc.exists():
                break
            st = anc.stat()
            if st.st_uid != uid and not (st.st_mode & 0o001):
                raise CatdbError(
                    f"the server runs as OS user {self.user!r} (catdb is running as root) but cannot "
                    f"enter {anc} (mode {oct(st.st_mode & 0o777)}); choose a data directory outside it "
                    f"with --data-dir or CATDB_DATA_DIR (the default for root is /var/lib/catdb/pg)")
        try:
            self._run([str(self.bindir / "postgres"), "--version"])
        except (OSError, subprocess.CalledProcessError) as e:
            raise CatdbError(
                f"the server runs as OS user {self.user!r} (catdb is running as root) but cannot run "
                f"{self.bindir / 'postgres'} ({getattr(e, 'stderr', None) or e}); install catdb and "
                f"pgserver in a virtualenv that user can read (not under a private home "
                f"directory), or install Debian's postgresql-15") from None

    # -- concurrency and checks ----------------------------------------------
    @property
    def lock_file(self) -> Path:
        """``<data dir>.lock`` beside the data directory: held (flock) around initdb and start."""
        return self.data_dir.with_name(self.data_dir.name + ".lock")

    @contextlib.contextmanager
    def _locked(self, timeout: float = 300.0):
        """Exclusive ``flock`` on :attr:`lock_file`: one process at a time initialises or starts
        the cluster; the others wait, then find it initialised and running."""
        try:
            self.data_dir.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        except PermissionError:
            if self.is_initialised() and self.is_running():  # another user's running cluster: nothing to start
                yield
                return
            raise CatdbError(f"cannot create the lock file {self.lock_file} beside the data directory "
                             f"(permission denied); choose a --data-dir in a directory you can write") from None
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise CatdbError(f"another catdb process has held {self.lock_file} for {timeout:.0f} s "
                                         f"(starting the server in {self.data_dir}); try again") from None
                    time.sleep(0.1)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _check_socket_path(self) -> None:
        """The Unix socket path must fit ``sun_path`` (107 bytes on Linux) before initdb runs."""
        sock = str(self.socket_dir / f".s.PGSQL.{self.port}")
        if len(sock.encode()) > SOCKET_PATH_MAX:
            raise CatdbError(
                f"the data directory's path is too long for the server's Unix socket: {sock} is "
                f"{len(sock.encode())} bytes, the limit is {SOCKET_PATH_MAX}; choose a shorter --data-dir "
                f"(or CATDB_DATA_DIR), e.g. {Path.home() / '.local/share/catdb/pg'}")

    def _check_data_dir(self) -> None:
        """Refuse, without touching it, a data directory catdb must not initialise.

        An existing directory that belongs to another user (as root: to neither root nor the
        server's OS user), or that is not empty and holds no cluster (``PG_VERSION``).
        """
        d = self.data_dir
        if not d.exists():
            return
        if not d.is_dir():
            raise CatdbError(f"--data-dir {d} exists and is not a directory")
        st = d.stat()
        me = os.geteuid()
        allowed = {me}
        if self.user:
            allowed.add(pwd.getpwnam(self.user).pw_uid)
        if st.st_uid not in allowed:
            try:
                owner = pwd.getpwuid(st.st_uid).pw_name
            except KeyError:
                owner = str(st.st_uid)
            raise CatdbError(f"--data-dir {d} belongs to user {owner!r}, not to this user"
                             + (f" or the server user {self.user!r}" if self.user else "")
                             + "; catdb leaves it alone: choose a directory of your own")
        if not (d / "PG_VERSION").exists() and any(d.iterdir()):
            raise CatdbError(f"--data-dir {d} is not empty and holds no PostgreSQL cluster (no PG_VERSION); "
                             f"catdb leaves it alone: give an empty or new directory")

    # -- lifecycle ---------------------------------------------------------
    def init(self) -> None:
        """Create the cluster (``initdb``) if not yet there (under the start lock).

        Raises
        ------
        catdb.errors.CatdbError
            The data directory belongs to another user or is a non-empty non-cluster directory,
            its socket path is too long, or initdb failed.
        """
        if self.is_initialised():
            return
        with self._locked():
            self._init_locked()

    def _init_locked(self) -> None:
        if self.is_initialised():
            return
        self._check_socket_path()
        self._check_data_dir()
        self._check_path_traversable()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data_dir, 0o700)
        try:
            self._run([str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                       "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
        except subprocess.CalledProcessError as e:
            raise CatdbError(f"initdb failed in {self.data_dir}:\n{e.stderr or e.stdout}") from None
        conf = self.data_dir / "postgresql.conf"
        with open(conf, "a") as f:
            f.write("\n# --- catdb embedded server ---\n"
                    "listen_addresses = ''\n"
                    f"unix_socket_directories = '{self.socket_dir}'\n"
                    "jit = off\n"
                    "shared_buffers = 256MB\n"
                    "work_mem = 64MB\n"
                    "maintenance_work_mem = 256MB\n"
                    "max_wal_size = 2GB\n"
                    "fsync = on\n"
                    "log_min_messages = warning\n")

    def running_pid(self) -> int | None:
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def is_running(self) -> bool:
        return self.running_pid() is not None and (self.socket_dir / f".s.PGSQL.{self.port}").exists()

    def start(self, timeout: float = 60.0, dbname: str = DB_NAME) -> None:
        """Initialise if needed, start the server and create the database ``dbname``.

        Any number of processes may call this at once on a stopped or new data directory: an
        exclusive lock beside it (:attr:`lock_file`) lets one run initdb and start the server
        while the others wait, then find it running.
        """
        with self._locked():
            self._init_locked()
            self._start_locked(timeout)
        self._ensure_database(dbname)

    def _start_locked(self, timeout: float) -> None:
        if not self.is_running():
            opts = f"-p {self.port}"
            if self.tcp_port:
                opts = f"-p {self.tcp_port} -c listen_addresses=127.0.0.1"
                self.port = self.tcp_port
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                           "-o", opts, "-w", "-t", str(int(timeout)), "start"])
            except subprocess.CalledProcessError as e:
                tail = ""
                try:
                    tail = "\n".join(self.log_file.read_text().splitlines()[-15:])
                except OSError:
                    pass
                raise CatdbError(f"PostgreSQL did not start in {self.data_dir}:\n{e.stderr}\n{tail}") from None

    def _ensure_database(self, dbname: str = DB_NAME) -> None:
        """Create the database ``dbname`` when it is not there (two processes at once: one creates it)."""
        check_database_name(dbname)
        deadline = time.time() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                    have = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
                    if not have:
                        try:
                            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
                        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                            pass  # created by a process racing us
                return
            except psycopg.OperationalError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server; returns False when it was not running."""
        if not self.is_initialised() or self.running_pid() is None:
            return False
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", mode, "-w", "stop"], check=False)
        return True

    def status(self) -> ServerStatus:
        """Report binaries, version, data dir, socket, size, whether q3c is available and
        the spatial backend of the ``catdb`` database (``None`` before ``catdb db init``)."""
        st = ServerStatus(running=self.is_running(), data_dir=str(self.data_dir),
                          socket_dir=str(self.socket_dir), port=self.port,
                          initialised=self.is_initialised(), pid=self.running_pid(),
                          binaries=self.binaries.describe(), binaries_source=self.binaries.source)
        if st.initialised:
            try:
                st.size_bytes = sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())
            except OSError:
                pass
        if st.running:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                st.version = conn.execute("SELECT version()").fetchone()[0]
                st.q3c_available = conn.execute(
                    "SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'q3c'").fetchone()[0]
                if conn.execute("SELECT to_regclass('catdb_info') IS NOT NULL").fetchone()[0]:
                    row = conn.execute(
                        "SELECT value FROM catdb_info WHERE key = 'spatial_backend'").fetchone()
                    st.spatial_backend = row[0] if row else None
        return st
