"""The SQLite store (coord.events.store), `coord.db`: its writes (SqliteTx: every INSERT,
UPDATE and DELETE) and connection. Reads: sqlite_reads; schema: sqlite_schema.

Every write is `BEGIN IMMEDIATE` (optionally behind an exclusive flock on `write.lock`,
which makes waiting writers queue fairly), assigns `seq` and `ts` inside the transaction,
and runs the projectors before COMMIT, so readers only ever see an event together with
the views folded from it. The flock and BEGIN IMMEDIATE make every read inside a write
current, so a write function never needs a second run. Connections: `isolation_level=
None`, WAL, the `synchronous` and `busy_timeout` settings.
"""

import os
import sqlite3
import time
from contextlib import contextmanager

from msgspec.structs import astuple

from .errors import CoordError, UsageError
from .failpoints import failpoint
from .files import FairLock, exclusive_flock, open_in_home
from .records import BOARD_COLUMNS, EventQuery, StoredEvent, ViewRow, board_values, worker_of
from .sqlite_board import BOARD_COLS
from .sqlite_files import check_home_files, coord_error
from .sqlite_graph import GraphWrites
from .sqlite_notices import SqliteNoticeWrites
from .sqlite_reads import EVENT_COLS, VIEW_COLS, SqliteReader
from .sqlite_rebuild import SqliteRebuildWrites
from .store import Store, WriteTx

# Must equal the number of migrations in sqlite_schema.py (a test checks it). Kept here so
# the per-action path can tell "current" without importing sqlite_utils.
SCHEMA_VERSION = 12
WAIT_POLL = 0.01  # s between looks at PRAGMA data_version while waiting for new events
SEARCH_COLUMNS = "type, text, tokenize = 'unicode61 remove_diacritics 2'"
PUT_VIEW = f"INSERT OR REPLACE INTO workers({VIEW_COLS}, {BOARD_COLS}) VALUES ({','.join('?' * 20)})"
PUT_BOARD = ", ".join(f"{c} = ?" for c in BOARD_COLUMNS)


def _put_view_args(row: ViewRow) -> tuple:
    return astuple(row)[:13] + board_values(row.board)


class _NotBeats(Exception):
    """A `beats` transaction appended something else (SqliteStore.transact)."""


class SqliteTx(GraphWrites, SqliteNoticeWrites, SqliteRebuildWrites, SqliteReader, WriteTx):
    """An open write transaction (inside BEGIN IMMEDIATE)."""

    view_cols, put_view_sql = f"{VIEW_COLS}, {BOARD_COLS}", PUT_VIEW  # (SqliteRebuildWrites)
    view_args = staticmethod(_put_view_args)

    def __init__(self, store):  # a SqliteStore
        SqliteReader.__init__(self, store.conn, store.translate)
        WriteTx.__init__(self, store)

    def _x(self, sql: str, args=()) -> None:
        self.conn.execute(sql, args)

    def _heads(self, horizon_ts):
        # One indexed lookup (events_ts, backwards from the horizon).
        return self._one(
            "SELECT (SELECT max(seq) FROM events), "
            "(SELECT ts FROM events WHERE ts <= ? ORDER BY ts DESC LIMIT 1)",
            (horizon_ts,),
        )

    def _has_id(self, eid):
        return self._one("SELECT 1 FROM events WHERE id = ?", (eid,)) is not None

    def _insert(self, ev: StoredEvent) -> None:
        e = ev.env
        self._x(
            f"INSERT INTO events({EVENT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (
                ev.seq,
                ev.id,
                e.ts,
                e.from_,
                e.to,
                e.type,
                worker_of(e),
                ev.body,
                ev.origin,
                ev.audit,
                ev.stored,
            ),
        )

    # --- views ---------------------------------------------------------------------------
    def put_view(self, row: ViewRow) -> None:
        self._x(PUT_VIEW, _put_view_args(row))

    def put_view_blob(self, worker, view, board=None) -> None:
        # Only the bytes change (and the board's columns, which no index holds): no index
        # maintenance, unlike a REPLACE.
        if board is None:
            self._x("UPDATE workers SET view = ? WHERE worker = ?", (view, worker))
        else:
            self._x(
                f"UPDATE workers SET view = ?, {PUT_BOARD} WHERE worker = ?",
                (view, *board_values(board), worker),
            )

    def put_board(self, worker, board) -> None:
        self._x(f"UPDATE workers SET {PUT_BOARD} WHERE worker = ?", (*board_values(board), worker))

    def delete_view(self, worker) -> None:
        self._x("DELETE FROM workers WHERE worker = ?", (worker,))
        self._x("DELETE FROM deps WHERE worker = ?", (worker,))

    def set_position(self, name, seq) -> None:
        # An UPDATE of the one column writes one page; a REPLACE also rewrote the primary
        # key's index (a page more in every append's commit).
        cur = self.conn.execute("UPDATE projection_state SET last_seq = ? WHERE name = ?", (seq, name))
        if cur.rowcount == 0:
            self._x("INSERT INTO projection_state(name, last_seq) VALUES (?, ?)", (name, seq))

    # --- request ids and bookkeeping ----------------------------------------------------
    def remember_request(self, actor, key, result) -> None:
        self._x("INSERT INTO request_ids(actor, key, result) VALUES (?,?,?)", (actor, key, result))

    def replace_request(self, actor, key, result) -> None:
        self._x("UPDATE request_ids SET result = ? WHERE actor = ? AND key = ?", (result, actor, key))

    def set_meta(self, values: dict) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [(k, str(v)) for k, v in values.items()]
        )

    def delete_meta(self, key) -> None:
        self._x("DELETE FROM meta WHERE key = ?", (key,))

    def set_audit(self, seqs, mark) -> None:
        self.conn.executemany("UPDATE events SET audit = ? WHERE seq = ?", [(mark, s) for s in seqs])

    # --- inboxes: the acknowledged ids, and a watermark per (agent, address) -------------
    def record_acks(self, agent, ids) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO acks(agent, id) VALUES (?, ?)", [(agent, i) for i in ids]
        )
        for address in self._addresses_of(ids):  # move each watermark over what is contiguous
            cur = self.cursors(agent).get(address, 0)
            new = self._watermark(agent, address, cur)
            if new > cur:
                self._x(
                    "INSERT INTO cursors(agent, address, seq) VALUES (?,?,?) "
                    "ON CONFLICT(agent, address) DO UPDATE SET seq = max(seq, excluded.seq)",
                    (agent, address, new),
                )

    def reset_acks(self) -> None:
        self._x("DELETE FROM acks")
        self._x("DELETE FROM cursors")

    # --- search (FTS5, rowid = events.seq) -----------------------------------------------
    def index_text(self, seq, etype, text) -> None:
        self._x("INSERT INTO search(rowid, type, text) VALUES (?,?,?)", (seq, etype, text))

    def search_shadow_reset(self) -> None:
        self._x("DROP TABLE IF EXISTS search_new")
        self._x(f"CREATE VIRTUAL TABLE search_new USING fts5({SEARCH_COLUMNS})")

    def search_shadow_add(self, rows) -> None:
        self.conn.executemany("INSERT INTO search_new(rowid, type, text) VALUES (?,?,?)", rows)

    def search_shadow_swap(self) -> None:
        self._x("DROP TABLE search")
        self._x("ALTER TABLE search_new RENAME TO search")


class SqliteStore(Store):
    imports_pulled_lines = True  # the audit file is this store's own: a pull is read back

    def __init__(self, home, projectors=(), after_commit=()):
        super().__init__(home, projectors, after_commit)
        self.conn = None
        self._lock = None
        self._blobs = None
        self._reader = None
        self._seen_version = None
        self._level = None  # the synchronous pragma the connection is at

    @property
    def blobs(self):
        # Made once: the projectors ask for it on every append.
        if self._blobs is None:
            from .blobs import BlobStore

            self._blobs = BlobStore(self.home.blobs_path)
        return self._blobs

    def translate(self, e: Exception) -> CoordError:
        return coord_error(e, self.home)

    # --- connection ------------------------------------------------------------------
    def open(self) -> "SqliteStore":
        if self.conn is not None:
            return self
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
            self._level = cfg["synchronous"]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise coord_error(e, self.home) from None
        self.conn = conn
        self._reader = SqliteReader(conn, self.translate)
        if version < SCHEMA_VERSION:
            self._migrate()
        elif version > SCHEMA_VERSION:
            raise UsageError(
                f"{self.home.db_path} has schema {version}, newer than this coord "
                f"({SCHEMA_VERSION}); upgrade coord"
            )
        return self

    def _migrate(self):
        from . import sqlite_schema

        with self._flock():
            try:
                if self.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    self.conn.execute("PRAGMA journal_mode = WAL")
                has = self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone()
                before = self._reader.max_seq() if has else 0
                sqlite_schema.migrate(self.conn, self.home.config)
                added = self._reader.events(EventQuery(after_seq=before))
            except sqlite3.DatabaseError as e:
                raise coord_error(e, self.home) from None
        self.migrated = True  # the projections check their flags (views_refold, …)
        if added:  # a migration appended events (0010: acknowledgements): to the audit file
            stored = [StoredEvent(r.seq, r.id, r.body, r.env, r.origin, r.audit, r.stored) for r in added]
            for hook in self.after_commit:
                hook(self, stored)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def clone_id(self) -> str:
        return self.reader.meta(["clone_id"]).get("clone_id", "")

    # --- locking ---------------------------------------------------------------------
    @contextmanager
    def _flock(self):
        if not self.home.config["write_lock"]:
            yield
            return
        if self._lock is None:

            def open_file(path):
                try:
                    return open_in_home(path, os.O_RDWR | os.O_CREAT)
                except OSError as e:
                    raise coord_error(e, self.home) from None

            self._lock = FairLock(
                open_file, self.home.path / "write.queue", self.home.path / "write.lock", "the store"
            )
        with self._lock.held(self.home.config["busy_timeout"]):
            yield

    @contextmanager
    def rebuild_lock(self, timeout: float = 3600.0):
        try:
            fd = open_in_home(self.home.path / "rebuild.lock", os.O_RDWR | os.O_CREAT)
        except OSError as e:
            raise coord_error(e, self.home) from None
        try:
            with exclusive_flock(fd, timeout, "a rebuild"):
                yield
        finally:
            os.close(fd)

    # --- transactions ----------------------------------------------------------------
    def transact(self, fn, hooks: bool = True, durable: bool = True, beats: bool = False):
        # SQLite fixes a commit's durability before BEGIN (the pragma cannot change inside
        # a transaction): a `beats` transaction that appended anything but heartbeats kept
        # out of the audit file is rolled back and run again at the store's level.
        cfg = self.home.config
        level = "NORMAL" if not durable else cfg["heartbeat_synchronous"] if beats else cfg["synchronous"]
        with self._flock():
            if level != self._level:  # a connection that only beats keeps its level
                self.conn.execute(f"PRAGMA synchronous = {level}")
                self._level = level
            try:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as e:
                    raise coord_error(e, self.home) from None
                try:
                    tx = SqliteTx(self)
                    result = fn(tx)
                    for cb in list(tx.before_commit.values()):
                        cb(tx)
                    if beats and level != cfg["synchronous"] and tx.appended and not tx.beats_only():
                        raise _NotBeats
                    if hooks and tx.appended:  # inside the transaction: no read tx after it
                        pending = tx.export_pending()
                    failpoint("before-commit")
                    self.conn.execute("COMMIT")
                except _NotBeats:
                    self._rollback_quietly()
                    beats = None
                except BaseException as e:
                    self._rollback_quietly()
                    if isinstance(e, sqlite3.DatabaseError):
                        raise coord_error(e, self.home) from None
                    raise
            except BaseException:
                self._level = None  # unknown: set again before the next transaction
                raise
        if beats is None:
            return self.transact(fn, hooks, durable)
        failpoint("after-commit")
        if hooks and tx.appended:
            self.export_pending = pending
            for hook in self.after_commit:
                hook(self, tx.appended)
        return result

    @contextmanager
    def read(self):
        try:
            self.conn.execute("BEGIN")
            yield self._reader
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            self._rollback_quietly()
            raise coord_error(e, self.home) from None
        except BaseException:
            self._rollback_quietly()
            raise

    @property
    def reader(self) -> SqliteReader:
        return self._reader

    def _rollback_quietly(self):
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        except sqlite3.DatabaseError:
            pass

    def wait_for_new(self, after_seq: int, timeout: float) -> bool:
        """Sleeps between looks at PRAGMA data_version, which changes when another
        connection commits: waiting costs no transaction and next to no CPU."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = self.conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.DatabaseError as e:
                raise coord_error(e, self.home) from None
            if v != self._seen_version:
                self._seen_version = v
                if self._reader.max_seq() > after_seq:
                    return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(WAIT_POLL, left))

    # --- whole-database operations -------------------------------------------------------
    def backup(self, dest: str) -> int:
        """VACUUM INTO dest: one read snapshot, so a consistent copy while others write."""
        try:
            self.conn.execute("VACUUM INTO ?", (str(dest),))
            check = sqlite3.connect(str(dest))
            try:
                return check.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                check.close()
        except sqlite3.DatabaseError as e:
            raise CoordError(str(e)) from None

    def integrity_check(self) -> list[str]:
        with self.read():
            return [r[0] for r in self.conn.execute("PRAGMA integrity_check(20)")]
