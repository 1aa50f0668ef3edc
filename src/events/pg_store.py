"""The PostgreSQL store (coord.events.store): one log on a server that homes on many
machines share. Writes: coord.events.pg_tx; reads: pg_reads; blobs: pg_blobs; schema:
pg_schema. psycopg is imported only when a home names a server.

A write runs fn(tx) in REPEATABLE READ, its writes held until one pipelined round trip with
COMMIT; seq = max(seq) + 1 as the snapshot sees it, so of two appends in flight the primary
key lets one commit and the other runs again: seq is gapless in commit order and every read
a decision took was current at its commit. After a lost attempt, the next one takes the
append lock before its snapshot. Faults and the design: docs/postgres.md.
"""

import logging
import time
from contextlib import contextmanager

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import TransactionStatus

from .errors import Busy, CoordError, NotFound, UsageError
from .failpoints import failpoint
from .pg_reads import DIRTY_POSSIBLE, PgReader
from .pg_schema import LOCK_CLASS, SCHEMA_VERSION, checkout_id, connect
from .pg_tx import PgTx
from .records import AUDIT_DIRTY, FOLD_VERSION
from .store import Store
from .store_url import shown_url

CHANNEL = "coord_events"  # NOTIFY at each commit that appended (payload: the last seq)
# Attempts without the append lock before one takes it first. Measured (docs/postgres.md):
# under 8 saturating writers, waiting at the lock after one lost attempt beats retrying
# optimistically (each lost attempt is a whole rerun of fn on a CPU-bound machine).
OPTIMISTIC = 1
RETRYABLE = (pgerr.SerializationFailure, pgerr.DeadlockDetected)
# Unique keys two writes race for: the seq (every append), an imported id, a request id
# (once: the next attempt's snapshot sees the other's, so a second clash is a real one).
RACED = {"events_pkey": 1000, "events_id_key": 1000, "request_ids_pkey": 1}


# psycopg logs the statements a failed pipeline skipped (a lost race, run again): not news
# for whoever runs the command.
logging.getLogger("psycopg").addHandler(logging.NullHandler())
logging.getLogger("psycopg").propagate = False


class OutcomeUnknown(Busy):
    code = "outcome_unknown"


class PgStore(Store):
    shared = True  # other machines append too: each checkout's audit file catches up (Coord.close)

    def __init__(self, home, projectors=(), after_commit=(), url: str | None = None):
        super().__init__(home, projectors, after_commit)
        self.url = url or home.store_url
        self.conn = None
        self._blobs = None
        self._reader = PgReader(self)
        self.checkout = ""
        self.skew_us = 0
        self._offset = 0  # server clock - this clock, µs, measured at connect
        self._backend = None
        self._log_id = ""
        self.migrated = False

    @property
    def busy(self) -> float:
        return float(self.home.config["busy_timeout"])

    @property
    def blobs(self):
        if self._blobs is None:
            from .pg_blobs import PgBlobStore

            self._blobs = PgBlobStore(self)
        return self._blobs

    def server_now(self) -> int:
        from .envelope import now_us

        return now_us() + self._offset

    # --- connection ------------------------------------------------------------------
    def open(self) -> "PgStore":
        if self.conn is None:
            self.home.set_umask()
            self.checkout = checkout_id(self.home)
            self._connect(time.monotonic() + self.busy)
        return self

    def _connect(self, deadline: float) -> None:
        from .envelope import now_us

        delay, last = 0.02, None
        while True:
            try:
                conn = connect(self.url, max(deadline - time.monotonic(), 0.5))
                try:
                    hello = conn.execute(HELLO).fetchone()
                except pgerr.UndefinedTable:
                    conn.close()
                    raise NotFound(
                        f"no coord log on {shown_url(self.url)}: run `coord init --store URL`"
                    ) from None
                break
            except psycopg.OperationalError as e:
                last = e
            if time.monotonic() + delay >= deadline:
                raise Busy(
                    f"the server {shown_url(self.url)} could not be reached within busy_timeout "
                    f"({_line(last)}); nothing was recorded; safe to retry"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        pid, start, schema, fold, skew, log_id, server_us, refold = hello
        if schema == "2" and SCHEMA_VERSION == 3:  # a log made before the board's columns
            from .pg_board import upgrade

            schema, refold = str(SCHEMA_VERSION), upgrade(conn, LOCK_CLASS)
        if schema != str(SCHEMA_VERSION) or fold != str(FOLD_VERSION):
            conn.close()
            raise UsageError(
                f"the server's log has coord schema {schema} and fold version {fold}; this coord has "
                f"schema {SCHEMA_VERSION} and fold version {FOLD_VERSION}"
            )
        self.conn, self._backend = conn, (pid, start)
        self.skew_us, self._log_id = int(skew), log_id
        self._offset = server_us - now_us()
        # Views folded by an older coord (a home moved here by `coord migrate` with the flag
        # set), or stored without the board's columns: coord.app.context folds them again or
        # fills the columns (projections.board.ensure_views_current).
        self.migrated = refold

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def clone_id(self) -> str:
        # One log, one clone: every machine's holders are local (no REMOTE).
        return self._log_id

    def run(self, sql, args=(), fetch=False):
        """One statement on the connection, its errors as the contract's."""
        try:
            cur = self.conn.execute(sql, args)
            return cur.fetchall() if fetch else None
        except RETRYABLE + (pgerr.UniqueViolation,):
            raise  # transact runs the attempt again (or says what it was)
        except psycopg.Error as e:
            raise self._translate(e) from None

    def pipeline(self, writes, commit: bool = False, read=None):
        """Send writes (then a read, then COMMIT) in one round trip; the read's rows."""
        with self.conn.pipeline():
            for sql, args, many in writes:
                if many:
                    self.conn.cursor().executemany(sql, args)
                else:
                    self.conn.execute(sql, args)
            cur = self.conn.execute(*read) if read is not None else None
            if commit:
                self.conn.execute("COMMIT")
        return cur.fetchall() if cur is not None else None

    def _translate(self, e) -> CoordError:
        if isinstance(e, pgerr.LockNotAvailable | pgerr.QueryCanceled):
            return Busy("the store stayed locked past the busy timeout; nothing was recorded; safe to retry")
        if (
            self.conn is None
            or self.conn.broken
            or self.conn.closed
            or isinstance(e, psycopg.OperationalError)
        ):
            return Busy(
                f"the server {shown_url(self.url)} could not be reached ({_line(e)}); nothing was "
                "recorded; safe to retry"
            )
        return CoordError(f"database error: {_line(e)}")

    def _lost(self) -> bool:
        return self.conn is None or self.conn.broken or self.conn.closed

    def _rollback(self) -> None:
        try:
            if self.conn is not None and not self.conn.broken:
                if self.conn.info.transaction_status != TransactionStatus.IDLE:
                    self.conn.execute("ROLLBACK")
        except psycopg.Error:
            pass

    # --- transactions ----------------------------------------------------------------
    def transact(self, fn, hooks: bool = True, durable: bool = True, beats: bool = False):
        deadline = time.monotonic() + self.busy
        attempt, clashes = 0, {}
        while True:
            attempt += 1
            locked = attempt > OPTIMISTIC
            tx = PgTx(self, lock_ms=max(1, int((deadline - time.monotonic()) * 1000)) if locked else None)
            try:
                if self._lost():
                    self._connect(deadline)
                result = fn(tx)  # BEGIN goes with its first read (or with COMMIT)
                for cb in list(tx.before_commit.values()):
                    cb(tx)
                failpoint("before-commit")
                light = not durable or (
                    beats and self.home.config["heartbeat_synchronous"] == "NORMAL" and tx.beats_only()
                )
                if self._commit(tx, locked, not light, deadline, hooks):
                    break
            except RETRYABLE + (pgerr.UniqueViolation,) as e:
                self._rollback()
                if isinstance(e, pgerr.UniqueViolation):
                    name = e.diag.constraint_name
                    clashes[name] = clashes.get(name, 0) + 1
                    if clashes[name] > RACED.get(name, 0):
                        raise self._translate(e) from None
            except OutcomeUnknown:
                raise
            except (Busy, psycopg.OperationalError) as e:
                # The connection went before COMMIT was sent (writes wait until then):
                # nothing was recorded, so the attempt runs again on a new connection.
                self._rollback()
                if not self._lost() or time.monotonic() >= deadline:
                    raise (self._translate(e) if isinstance(e, psycopg.Error) else e) from None
                time.sleep(0.05)
            except psycopg.Error as e:
                self._rollback()
                raise self._translate(e) from None
            except BaseException:
                self._rollback()
                raise
            if time.monotonic() >= deadline:
                raise Busy(
                    f"the log kept changing under this command for busy_timeout ({attempt} attempts); "
                    "nothing was recorded; safe to retry"
                )
        failpoint("after-commit")
        if hooks and tx.appended:
            self.export_pending = tx.pending
            for hook in self.after_commit:
                hook(self, tx.appended)
        return result

    def _commit(self, tx: PgTx, locked: bool, durable: bool, deadline: float, hooks: bool) -> bool:
        """The held writes and COMMIT in one round trip. True when committed; False when
        the connection broke and the events are known not to be stored (run again). With
        hooks, whether anything waits for the audit file goes in the same round trip
        (`tx.pending`, Store.export_pending; a dirty event appended answers it at once)."""
        writes = tx.opening()
        if not durable:
            writes.append(("SET LOCAL synchronous_commit = off", (), False))
        if tx.appended and not locked:  # wait for a locked attempt that holds the append lock
            writes.append(("SELECT pg_advisory_xact_lock_shared(%s, 1)", (LOCK_CLASS,), False))
        writes += tx.writes
        if tx.appended:
            writes.append(("SELECT pg_notify(%s, %s)", (CHANNEL, str(tx.appended[-1].seq)), False))
        ask = hooks and tx.appended and not any(e.audit == AUDIT_DIRTY for e in tx.appended)
        read = (DIRTY_POSSIBLE, {"co": self.checkout}) if ask else None
        try:
            rows = self.pipeline(writes, commit=True, read=read)
            tx.pending = rows[0][0] if ask else True
            return True
        except psycopg.OperationalError:
            if not (self.conn.broken or self.conn.closed):
                raise
            return self._learn(tx, deadline)

    def _learn(self, tx: PgTx, deadline: float) -> bool:
        """The connection broke during COMMIT: end the old backend (its transaction is then
        final) and look the events up; outcome unknown if the server stays away."""
        ids = [e.id for e in tx.appended]
        backend = self._backend
        try:
            self.conn.close()
            self._connect(deadline)
            self.conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE pid = %s "
                "AND backend_start = %s",
                backend,
            )
            found = self.conn.execute(
                "SELECT count(*) FROM coord.events WHERE id = ANY(%s)", (ids,)
            ).fetchone()
        except (CoordError, psycopg.Error) as e:
            raise OutcomeUnknown(
                f"the connection to the server broke during the commit and could not be restored "
                f"({_line(e)}); outcome unknown: look for event {ids[-1] if ids else '(none)'} "
                "(a retry with --request-id is safe)"
            ) from None
        return bool(ids) and found[0] == len(ids)

    @contextmanager
    def read(self):
        try:
            self.run("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield self._reader
            self.run("COMMIT")
        except BaseException:
            self._rollback()
            raise

    @property
    def reader(self) -> PgReader:
        return self._reader

    def wait_for_new(self, after_seq: int, timeout: float) -> bool:
        """LISTEN first, then read the table (the truth), then wait for a NOTIFY: a commit
        between the read and the wait is never missed."""
        deadline = time.monotonic() + timeout
        self.run(f"LISTEN {CHANNEL}")
        try:
            while True:
                if self._reader.max_seq() > after_seq:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    for _ in self.conn.notifies(timeout=left, stop_after=1):
                        pass
                except psycopg.Error as e:
                    raise self._translate(e) from None
        finally:
            if self.conn is not None and not self.conn.broken:
                self.run(f"UNLISTEN {CHANNEL}")

    @contextmanager
    def rebuild_lock(self, timeout: float = 3600.0):
        self.run("SELECT set_config('lock_timeout', %s, false)", (str(int(timeout * 1000)),))
        try:
            self.run("SELECT pg_advisory_lock(%s, 3)", (LOCK_CLASS,))
        finally:
            self.run("SELECT set_config('lock_timeout', %s, false)", (str(int(self.busy * 1000)),))
        try:
            yield
        finally:
            self.run("SELECT pg_advisory_unlock(%s, 3)", (LOCK_CLASS,))

    # --- whole-log operations ----------------------------------------------------------
    def backup(self, dest: str) -> int:
        """A tar of events.jsonl and blobs/ from one snapshot (coord.events.pg_blobs)."""
        from .pg_blobs import backup_tar

        return backup_tar(self, dest)

    def integrity_check(self) -> list[str]:
        rows = self.run(
            "SELECT count(*) FILTER (WHERE seq <> rn) FROM (SELECT seq, row_number() OVER (ORDER BY seq) AS rn "
            "FROM coord.events) x",
            fetch=True,
        )
        return ["ok"] if rows[0][0] == 0 else [f"seq has {rows[0][0]} event(s) out of place"]


HELLO = (
    "SELECT pg_backend_pid(), (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()), "
    "(SELECT value FROM coord.meta WHERE key = 'schema_version'), "
    "(SELECT value FROM coord.meta WHERE key = 'fold_version'), "
    "(SELECT value FROM coord.meta WHERE key = 'max_clock_skew_us'), "
    "(SELECT value FROM coord.meta WHERE key = 'log_id'), coord.now_us(), "
    "EXISTS (SELECT 1 FROM coord.meta WHERE key IN ('views_refold', 'board_columns'))"
)


def _line(e) -> str:
    return " ".join(str(e).split()) if e is not None else "unknown error"
