"""A real PostgreSQL server for the tests, started by the test run itself: initdb and pg_ctl
in a temporary directory under /tmp, listening on a Unix socket there and on 127.0.0.1,
trust authentication, a superuser role named after the current OS user. initdb refuses to
run as root, so as root the server runs as the `postgres` user (Debian's package creates
it) in a directory that user owns; the socket directory is world-searchable so that a test
which drops privileges can connect too.

    with PostgresServer() as server:        # ~1 s here: initdb + start
        db = server.create_database()       # db.url: postgresql://root@/coord_1_1?host=/tmp/…&port=N
        server.restart(); server.kill(); server.start()
        server.drop_database(db.name)

tests/conftest.py builds its fixtures on this module: `pg_server` (one per session,
started when a test first asks for it) and `pg_database` / `pg_url` (a fresh database per
test, dropped afterwards)."""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DEBIAN_GLOB = "/usr/lib/postgresql/*/bin"
DIR_PREFIX = "coord-pg-"
# Members of this group role authenticate with a password over TCP (for tests of ~/.pgpass
# and PGPASSWORD); every other role is trusted.
PASSWORD_GROUP = "coord_password_auth"
MISSING = "needs PostgreSQL server binaries (Debian's `postgresql` package; .ci/run installs it)"


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine: a missing component, not a bug."""


class PostgresError(RuntimeError):
    """The server could not be set up, started or stopped; the message carries its log."""


def find_bindir() -> Path | None:
    """The newest PostgreSQL server binaries: $COORD_PG_BINDIR, else Debian's
    /usr/lib/postgresql/N/bin, else the directory of `initdb` on PATH."""
    env = os.environ.get("COORD_PG_BINDIR")
    if env:
        return Path(env) if (Path(env) / "initdb").is_file() else None
    found = [Path(p) for p in glob.glob(DEBIAN_GLOB) if (Path(p) / "initdb").is_file()]
    if found:
        return max(found, key=lambda p: tuple(int(x) for x in re.findall(r"\d+", p.parent.name)))
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class PgDatabase:
    """One database on a server: `url` over the Unix socket, `tcp_url` over 127.0.0.1."""

    name: str
    url: str
    tcp_url: str | None
    server: PostgresServer


class PostgresServer:
    """One throwaway PostgreSQL server. `tcp=False` listens on the Unix socket only;
    `settings` are extra postgresql.conf lines (name -> value), e.g. {"fsync": "on"}."""

    _names = itertools.count(1)

    def __init__(self, *, tcp: bool = True, settings: dict[str, str] | None = None, bindir=None):
        self.bindir = Path(bindir) if bindir else find_bindir()
        if self.bindir is None:
            raise PostgresUnavailable(MISSING)
        self.tcp = tcp
        self.settings = dict(settings or {})
        self.user = pwd.getpwuid(os.geteuid()).pw_name  # the superuser role tests connect as
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.dir: Path | None = None
        self.port: int | None = None
        self.started_in: float | None = None  # seconds from initdb to accepting connections
        self._pid: int | None = None
        self._pid_start: str | None = None

    # ---- where ----
    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.dir

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        return self._pid if self._pid and _alive(self._pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    def url(self, dbname: str = "postgres", *, tcp: bool = False, user: str | None = None) -> str:
        """A libpq URL without a password, over the socket (default) or 127.0.0.1."""
        user = user or self.user
        if tcp:
            if not self.tcp:
                raise ValueError("this server was started with tcp=False")
            return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"
        return f"postgresql://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    # ---- lifecycle ----
    def __enter__(self) -> PostgresServer:
        return self.setup()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def setup(self) -> PostgresServer:
        """initdb in a fresh directory, then start. Idempotent."""
        if self.dir is not None:
            return self
        reap_orphans()
        t0 = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX, dir="/tmp"))
        _LIVE.add(self)
        try:
            (self.dir / "owner").write_text(f"{os.getpid()} {_process_start_time(os.getpid())}\n")
            os.chmod(self.dir, 0o755)  # the socket lives here: reachable by every user
            if self.run_as:
                entry = pwd.getpwnam(self.run_as)
                os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self._initdb()
            self._start_on_a_free_port()
            self._psql(f"CREATE ROLE {PASSWORD_GROUP} NOLOGIN")
        except BaseException:
            self.cleanup()
            raise
        self.started_in = time.monotonic() - t0
        return self

    def start(self, timeout: float = 60) -> None:
        """Start (or start again after stop or kill) on the same port and directory."""
        if self.running:
            return
        if self._pid is not None:
            self.kill()  # the postmaster died under a test: clear its leftovers first
        t = str(int(timeout))
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log_path), "-w", "-t", t, "start")
        self._pid = int((self.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        self._pid_start = _process_start_time(self._pid)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        """A clean shutdown (`fast`: disconnect clients, checkpoint) or `immediate`."""
        if not self.running:
            return
        t = str(int(timeout))
        self._run("pg_ctl", "-D", str(self.datadir), "-m", mode, "-w", "-t", t, "stop")
        # pg_ctl returns once the lock file is gone; no child may still hold shared memory.
        self._wait_dead(_children(self._pid), timeout)
        self._pid = None

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def kill(self, timeout: float = 30) -> None:
        """SIGKILL the postmaster and every process of the server (a crashed server), and
        wait until they are dead, so that start() can run at once (with crash recovery).
        Also clears what is left when a test killed the postmaster by itself."""
        if self._pid is None:
            return
        self._wait_dead(_kill_server(self.datadir), timeout)
        # No process of the server is left, so its lock files are stale. Remove them: the
        # postmaster may not be reaped yet (init takes seconds here), and a zombie, or a
        # new process that got its pid, passes the next postmaster's "is the lock file's
        # owner alive?" test.
        (self.datadir / "postmaster.pid").unlink(missing_ok=True)
        (self.socket_dir / f".s.PGSQL.{self.port}.lock").unlink(missing_ok=True)
        self._pid = None

    def ensure_running(self) -> None:
        """Set up if needed, and start again if a test stopped or killed the server."""
        self.setup()
        if not self.running:
            self.start()

    def cleanup(self) -> None:
        """Stop the server at once and remove its directory. Safe to call twice."""
        if self.dir is None:
            return
        try:
            try:
                self.stop("immediate", timeout=30)
            except Exception:
                pass
            self.kill()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            _LIVE.discard(self)
            self.dir = None
            self._pid = None

    # ---- databases and roles ----
    def create_database(self, name: str | None = None) -> PgDatabase:
        name = name or f"coord_{os.getpid()}_{next(self._names)}"
        _check_identifier(name)
        self._psql(f'CREATE DATABASE "{name}"')
        return PgDatabase(name, self.url(name), self.url(name, tcp=True) if self.tcp else None, self)

    def drop_database(self, name: str) -> None:
        """Drop it even while clients are still connected (they are disconnected)."""
        _check_identifier(name)
        self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def create_role(self, name: str, *, password: str | None = None, superuser: bool = False) -> None:
        """A login role. With a password it must authenticate over TCP (scram-sha-256);
        over the Unix socket every role is trusted."""
        _check_identifier(name)
        self._psql(f'CREATE ROLE "{name}" LOGIN{" SUPERUSER" if superuser else ""}')
        if password is not None:
            quoted = password.replace("'", "''")
            self._psql(f"ALTER ROLE \"{name}\" PASSWORD '{quoted}'")
            self._psql(f'GRANT {PASSWORD_GROUP} TO "{name}"')

    def sql(self, statement: str, dbname: str = "postgres") -> str:
        """Run SQL through psql as the superuser; returns psql's unaligned output."""
        return self._psql(statement, dbname)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, TypeError):
            return "(no server log)"

    # ---- plumbing ----
    def _initdb(self) -> None:
        self._run(
            "initdb",
            *("-D", str(self.datadir), "-U", self.user, "-E", "UTF8"),
            *("--auth=trust", "--no-locale", "--no-sync", "--no-instructions"),
        )
        hba = (
            "local all all trust\n"
            f"host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        (self.datadir / "pg_hba.conf").write_text(hba)  # initdb made it: owner stays

    def _configure(self) -> None:
        conf = {
            "port": str(self.port),
            "listen_addresses": "'127.0.0.1'" if self.tcp else "''",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0777",
            # Small and quick: tests make many tiny databases and transactions.
            "shared_buffers": "16MB",
            # A test can kill the server, not the machine: what a killed server wrote is in
            # the page cache, so fsync only costs time here (bench/ may turn it on).
            "fsync": "off",
            "max_connections": "100",
            "max_wal_size": "256MB",
            "logging_collector": "off",
            "log_min_messages": "warning",
            "lc_messages": "'C'",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
        }
        conf.update(self.settings)
        lines = "".join(f"{k} = {v}\n" for k, v in conf.items())
        (self.datadir / "postgresql.auto.conf").write_text(f"# written by tests/pgserver.py\n{lines}")

    def _start_on_a_free_port(self) -> None:
        for attempt in range(3):
            self.port = free_port()
            self._configure()
            try:
                self.start()
                return
            except PostgresError as e:
                # Another process took the port between free_port() and the bind: again.
                if attempt == 2 or "already in use" not in str(e):
                    raise

    def _psql(self, statement: str, dbname: str = "postgres") -> str:
        cmd = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        cmd += ["-d", self.url(dbname), "-c", statement]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), timeout=120)
        if r.returncode != 0:
            raise PostgresError(f"psql failed ({statement!r}): {r.stderr.strip()}")
        return r.stdout

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.run_as:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, env=_clean_env(), cwd=self.dir, timeout=180)
        if r.returncode != 0:
            raise PostgresError(
                f"{tool} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()}\n"
                f"server log:\n{self.log_tail()}"
            )

    @staticmethod
    def _wait_dead(pids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(_alive(p) for p in pids):
            if time.monotonic() > deadline:
                raise PostgresError(f"server processes still run after {timeout}s: {pids}")
            time.sleep(0.01)


def _check_identifier(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
        raise ValueError(f"not a plain identifier: {name!r}")


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables that would point a tool elsewhere."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.pop("LANG", None)
    env["LC_ALL"] = "C"
    return env


# ---- processes, read from /proc ----
def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: [state, ppid, pgrp, ...]."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _process_start_time(pid: int) -> str | None:
    """Its start time in clock ticks: with the pid, it names one process even after pids
    wrap around."""
    fields = _stat_fields(pid)
    return fields[19] if fields else None


def _alive(pid: int) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _exists(pid: int, start: str | None) -> bool:
    """The same process is still there, zombie or not."""
    return _process_start_time(pid) == start if start else Path(f"/proc/{pid}").exists()


def _children(ppid: int | None) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields and int(fields[1]) == ppid and fields[0] not in ("Z", "X"):
                pids.append(int(entry))
    return pids


def _proc_cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def _server_processes(datadir: Path) -> list[int]:
    """Every live process of one server: postgres runs them all in its data directory (a
    backend's parent changes once the postmaster dies; its working directory does not)."""
    return [
        int(e) for e in os.listdir("/proc") if e.isdigit() and _proc_cwd(int(e)) == datadir and _alive(int(e))
    ]


def _kill_server(datadir: Path) -> list[int]:
    """SIGKILL every process of one server. Each backend is its own session (postgres
    calls setsid), so no process group holds them all: stop them until no new one appears
    (a stopped postmaster forks no more), then kill them all."""
    victims: set[int] = set()
    while new := set(_server_processes(datadir)) - victims:
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        victims |= new
    for pid in victims:
        _signal(pid, signal.SIGKILL)
    return sorted(victims)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:  # gone already, or another user's
        pass


# Every server this process started: stopped at exit even when a test failed or the session
# was interrupted; reap_orphans() in a later run clears those of a process that was killed.
_LIVE: set[PostgresServer] = set()


@atexit.register
def _cleanup_all() -> None:
    for server in list(_LIVE):
        try:
            server.cleanup()
        except Exception:
            pass


def reap_orphans() -> None:
    """Stop and remove the servers of earlier test processes that died without cleaning
    up (SIGKILL skips atexit). A directory whose owner process still runs is left alone."""
    for d in map(Path, glob.glob(f"/tmp/{DIR_PREFIX}*")):
        try:
            pid, start = (d / "owner").read_text().split()
        except (OSError, ValueError):
            continue
        if _process_start_time(int(pid)) == start:
            continue
        PostgresServer._wait_dead(_kill_server(d / "data"), 30)
        shutil.rmtree(d, ignore_errors=True)
