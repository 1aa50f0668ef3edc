"""The store: one SQLite database per home, and the single write path.

Every write is `BEGIN IMMEDIATE` (optionally behind an exclusive flock, which makes
waiting writers queue fairly), assigns `seq` and `ts` inside the transaction, appends the
canonical bytes, and runs the projector on each appended event before COMMIT, so readers
only ever see an event together with the views folded from it.
"""

import errno
import fcntl
import os
import sqlite3
import time
from contextlib import contextmanager

import msgspec

from .codec import decode_body
from .envelope import MAX_US, Envelope, canonical, decode, event_id, now_us, ts_to_us, us_to_ts
from .errors import Busy, CoordError, IntegrityError, UsageError
from .failpoints import failpoint
from .files import check_dir_in_home, check_home_dir, check_regular, open_in_home
from .home import Home
from .shapes import local_problem

# Must equal the number of migrations in schema.py (a test checks it). Kept here so the
# per-action path can tell "current" without importing sqlite_utils.
SCHEMA_VERSION = 5

# events.audit values (see schema 0301): not for the file, dirty, written.
AUDIT_NONE, AUDIT_DIRTY, AUDIT_WRITTEN = 0, 1, 2


class StoredEvent(msgspec.Struct):
    seq: int
    id: str
    body: bytes
    env: Envelope
    origin: str = "local"
    audit: int | None = None  # the events.audit mark given at append (None: not known here)
    stored: int | None = None  # local clock (µs) when this store recorded it (None: not known)


def worker_of(env: Envelope) -> str | None:
    return env.to if env.type.startswith("worker.") else None


def _is_locked(e: sqlite3.OperationalError) -> bool:
    msg = str(e)
    return "locked" in msg or "busy" in msg


class Tx:
    """An open write transaction."""

    def __init__(self, store: "Store"):
        self.store = store
        self.conn = store.conn
        self._seq = None
        self._last_us = None
        self.appended: list[StoredEvent] = []
        self.cache: dict = {}  # projections may keep views here for the transaction's length
        # Callbacks run once each just before COMMIT (e.g. the projector re-folding the
        # workers a batch of imported events touched), keyed so each runs once.
        self.before_commit: dict = {}

    def _horizon(self, now: int) -> int:
        """The latest ts that may set the clock: now + max_clock_skew."""
        return min(now + int(self.store.home.config["max_clock_skew"] * 1_000_000), MAX_US)

    def _load_heads(self):
        # One indexed lookup (events_ts, backwards from the horizon): events dated further
        # ahead than max_clock_skew are stored and folded, but never set the clock.
        seq, ts = self.conn.execute(
            "SELECT (SELECT max(seq) FROM events), "
            "(SELECT ts FROM events WHERE ts <= ? ORDER BY ts DESC LIMIT 1)",
            (us_to_ts(self._horizon(now_us())),),
        ).fetchone()
        self._seq = seq or 0
        try:
            self._last_us = ts_to_us(ts) if ts else 0
        except ValueError:  # a malformed ts stored by an older coord: `verify` reports it
            self._last_us = 0

    def next_ts(self) -> str:
        """max(now, g + 1 µs), g the greatest ts of a stored event (imported ones included)
        no more than max_clock_skew ahead of now (contract: Event envelope)."""
        if self._last_us is None:
            self._load_heads()
        us = max(now_us(), self._last_us + 1)
        if us > MAX_US:
            raise IntegrityError(
                "cannot stamp a new event: its ts would lie past 9999-12-31T23:59:59.999999Z "
                "(an event that late is within max_clock_skew of this clock: lower max_clock_skew)"
            )
        self._last_us = us
        return us_to_ts(us)

    def _next_seq(self) -> int:
        if self._seq is None:
            self._load_heads()
        self._seq += 1
        return self._seq

    def append(
        self,
        env: Envelope | None = None,
        body: bytes | None = None,
        origin: str = "local",
        audit: int | None = None,
        checked: bool = False,
    ) -> StoredEvent | None:
        """The one way an event enters the store. Given bytes (an import), they are kept
        as they are; given an envelope, it is encoded once. Returns None when the id is
        already stored (set union).

        `audit` says whether the event belongs in the audit file, decided now and never
        again: by default a local event is dirty (to be written) unless it is a heartbeat
        and the audit_heartbeats setting is off; an imported event came from some audit
        file, so it is dirty too (our file becomes the union). An import from our own
        audit file passes AUDIT_WRITTEN (it is already there).

        Shape rules (coord.events.shapes) hold for both: a local event that would break one
        is a usage error (exit 2); given bytes are checked whole (exit 5) unless the caller
        read them through the codec already (`checked`)."""
        if body is None:
            body = canonical(env)
            if origin == "local" and len(body) > self.store.home.config["blob_threshold"]:
                # The claim-check for any local event whose caller did not apply it before
                # the transaction (Coord.act and append_raw do, to keep this one short).
                stored = self.store.blobs.claim_check(env.payload, self.store.home.config["blob_threshold"])
                if stored is not env.payload:
                    env = msgspec.structs.replace(env, payload=stored)
                    body = canonical(env)
            if origin == "local":
                why = local_problem(env, body)
                if why is not None:
                    raise UsageError(why)
        elif env is None:
            env = decode(body) if checked else decode_body(body)
        eid = event_id(body)
        if origin != "local" and self.conn.execute("SELECT 1 FROM events WHERE id = ?", (eid,)).fetchone():
            return None
        now = now_us()
        if origin != "local" and self._last_us is not None:
            us = ts_to_us(env.ts)
            if us <= self._horizon(now):
                self._last_us = max(self._last_us, us)
        if audit is None:
            audit = AUDIT_DIRTY
            if (
                origin == "local"
                and env.type == "worker.heartbeat"
                and not self.store.home.config["audit_heartbeats"]
            ):
                audit = AUDIT_NONE
        seq = self._next_seq()
        self.conn.execute(
            'INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin, audit, stored) '
            "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (seq, eid, env.ts, env.from_, env.to, env.type, worker_of(env), body, origin, audit, now),
        )
        ev = StoredEvent(seq, eid, body, env, origin, audit, now)
        self.appended.append(ev)
        if self.store.projector is not None:
            self.store.projector(self, ev)
        return ev


class Store:
    def __init__(self, home: Home, projector=None, after_commit=None):
        self.home = home
        self.projector = projector  # (tx, StoredEvent) -> None, inside the transaction
        self.after_commit = after_commit  # (store, [StoredEvent]) -> None, after COMMIT
        self.conn = None
        self._lock_fd = None
        self._blobs = None

    @property
    def blobs(self):
        # Made once: the projectors ask for it on every append.
        if self._blobs is None:
            from .blobs import BlobStore

            self._blobs = BlobStore(self.home.blobs_path)
        return self._blobs

    # --- connection ------------------------------------------------------------------
    def open(self) -> "Store":
        check_home_files(self.home)
        cfg = self.home.config
        self.home.set_umask()
        try:
            conn = sqlite3.connect(
                str(self.home.db_path),
                isolation_level=None,
                timeout=cfg["busy_timeout"],
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(cfg['busy_timeout'] * 1000)}")
            conn.execute(f"PRAGMA synchronous = {cfg['synchronous']}")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise _translate(e, self.home) from None
        self.conn = conn
        if version < SCHEMA_VERSION:
            self._migrate()
        elif version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.home.db_path} has schema {version}, newer than this coord "
                f"({SCHEMA_VERSION}); upgrade coord"
            )
        return self

    def _migrate(self):
        from . import sqlite_schema as schema

        with self._flock():
            try:
                if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                schema.migrate(self.conn)
            except sqlite3.DatabaseError as e:
                raise _translate(e, self.home) from None

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self.open() if self.conn is None else self

    def __exit__(self, *exc):
        self.close()

    def clone_id(self) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'clone_id'").fetchone()
        return row[0] if row else ""

    # --- locking ---------------------------------------------------------------------
    @contextmanager
    def _flock(self):
        if not self.home.config["write_lock"]:
            yield
            return
        if self._lock_fd is None:
            try:
                self._lock_fd = open_in_home(self.home.path / "write.lock", os.O_RDWR | os.O_CREAT)
            except OSError as e:
                raise _translate(e, self.home) from None
        with exclusive_flock(self._lock_fd, self.home.config["busy_timeout"], "the store"):
            yield

    @contextmanager
    def rebuild_lock(self, timeout: float = 3600.0):
        """Serialises whole rebuilds (views, search index) between processes; appends go
        on meanwhile. Held for as long as a rebuild takes, hence its own lock file."""
        try:
            fd = open_in_home(self.home.path / "rebuild.lock", os.O_RDWR | os.O_CREAT)
        except OSError as e:
            raise _translate(e, self.home) from None
        try:
            with exclusive_flock(fd, timeout, "a rebuild"):
                yield
        finally:
            os.close(fd)

    # --- transactions ----------------------------------------------------------------
    @contextmanager
    def write(self, hooks: bool = True):
        """BEGIN IMMEDIATE … COMMIT. Validation, append and projection happen inside; the
        after-commit hook (the audit file) runs after COMMIT, never before. hooks=False is
        for the audit trail's own bookkeeping and batched imports, which export once at
        the end instead of after every batch."""
        tx = None
        with self._flock():
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise _translate(e, self.home) from None
            try:
                tx = Tx(self)
                yield tx
                for fn in list(tx.before_commit.values()):
                    fn(tx)
                failpoint("before-commit")
                self.conn.execute("COMMIT")
            except BaseException as e:
                self._rollback_quietly()
                if isinstance(e, sqlite3.DatabaseError):
                    raise _translate(e, self.home) from None
                raise
        failpoint("after-commit")
        if hooks and tx.appended and self.after_commit is not None:
            self.after_commit(self, tx.appended)

    @contextmanager
    def read(self):
        """A short consistent snapshot for a reader."""
        try:
            self.conn.execute("BEGIN")
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            self._rollback_quietly()
            raise _translate(e, self.home) from None
        except BaseException:
            self._rollback_quietly()
            raise

    def _rollback_quietly(self):
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass

    # --- reading events --------------------------------------------------------------
    def max_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]


@contextmanager
def exclusive_flock(fd: int, timeout: float, what: str):
    """An exclusive flock on fd, waited for at most `timeout` seconds (then Busy, exit 7).
    Polls with a short, growing sleep: a blocking flock could not honour the timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy(f"{what} stayed locked past the busy timeout; safe to retry") from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.005)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def check_home_files(home: Home) -> None:
    """Before SQLite opens anything: the home is a real directory and the database and its
    -wal and -shm are regular files, never symlinks SQLite would follow (exit 5)."""
    check_home_dir(home.path)
    for suffix in ("", "-wal", "-shm"):
        check_regular(f"{home.db_path}{suffix}")
    # The audit file, the lock files and the directories beside them too, so a command
    # refuses before it appends anything rather than after (when the audit file could
    # only be a warning).
    for name in ("events.jsonl", "write.lock", "audit.lock", "rebuild.lock"):
        check_regular(home.path / name)
    for d in (home.blobs_path, home.path / "worktrees"):
        check_dir_in_home(d)


def row_to_event(row) -> StoredEvent:
    """(seq, id, body, origin) -> StoredEvent"""
    return StoredEvent(row[0], row[1], row[2], decode(row[2]), row[3])


def _translate(e: Exception, home: Home) -> CoordError:
    if isinstance(e, sqlite3.OperationalError) and _is_locked(e):
        return Busy("the store stayed locked past the busy timeout; safe to retry")
    if isinstance(e, (PermissionError,)) or (
        isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS)
    ):
        return CoordError(f"cannot write to {home.path}: {e.strerror}")
    msg = str(e)
    if "disk is full" in msg or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG)):
        return CoordError(
            f"no space left for {home.path} (disk full or file size limit); nothing was recorded"
        )
    if "disk I/O error" in msg:
        return CoordError(
            f"I/O error writing {home.db_path} (disk full, a file-size limit, or a "
            "failing disk); nothing was recorded"
        )
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
        return CoordError(f"cannot write to {home.db_path}: {msg}")
    if "malformed" in msg or "not a database" in msg:
        return IntegrityError(
            f"{home.db_path} is damaged ({msg}); restore a backup or rebuild from events.jsonl"
        )
    if isinstance(e, OSError):
        return CoordError(f"{home.path}: {e}")
    return CoordError(f"database error: {msg}")
