"""The audit file .coord/events.jsonl: dirty-tracked export after each commit (the
after-commit hook, `export_after_commit`), the cheap "is it what we last wrote" check, the
full scan that reconciles it with the store, the atomic rewrite, and the read-only check.
Reading any events file and importing it: coord.events.audit_read; the after-commit
hook that calls `export`: coord.events.audit_hook.

The store is the truth. The file is a set of lines (order means nothing after a git
merge). Every write to it happens under an exclusive flock on `audit.lock` beside it (a
separate file, so the lock survives the rename of `export --rewrite`).
"""

import fcntl
import os
from contextlib import contextmanager

import msgspec

from .codec import audit_line, decode_body
from .envelope import event_id
from .errors import IntegrityError
from .failpoints import active, failpoint
from .files import exclusive_flock, open_file_in_home, open_in_home
from .records import AUDIT_DIRTY, AUDIT_WRITTEN

# Lines per write() (and per bookkeeping transaction) when exporting a large backlog.
EXPORT_CHUNK = 5000


# --- the exporter --------------------------------------------------------------------------
class ExportResult(msgspec.Struct):
    written: int = 0  # lines appended to the file
    imported: int = 0  # unknown valid lines found in the file and taken into the store
    restored: int = 0  # known events missing from the file, appended again
    scanned: bool = False  # the cheap check failed and the whole file was read
    refused: str | None = None  # why the file was left alone (its events stay dirty)


class AuditTrail:
    """The home's audit file, kept in step with the store."""

    def __init__(self, store, warn=None):
        self.store = store
        self.home = store.home
        self.path = store.home.audit_path
        self.warn = warn or (lambda msg: None)
        self._lock_fd = None

    # --- locking ---------------------------------------------------------------------
    @contextmanager
    def lock(self):
        if self._lock_fd is None:
            self._lock_fd = open_in_home(self.home.path / "audit.lock", os.O_RDWR | os.O_CREAT)
        with exclusive_flock(self._lock_fd, self.home.config["busy_timeout"], "the audit file"):
            yield

    @contextmanager
    def lock_now(self):
        """The lock if it is free at once (yields True), else yields False without it."""
        if self._lock_fd is None:
            self._lock_fd = open_in_home(self.home.path / "audit.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def close(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- what we last wrote ----------------------------------------------------------
    _BOOK = ["audit_length", "audit_last", "audit_count", "audit_sum"]

    def _book(self) -> tuple[int, str, tuple[int, int, int] | None]:
        """One read of the bookkeeping: (length, last id, record)."""
        m = self.store.reader.meta(self._BOOK)
        length = int(m.get("audit_length", 0))
        if "audit_count" in m:
            rec = (length, int(m["audit_count"]), int(m["audit_sum"], 16))
        else:
            rec = (0, 0, 0) if length == 0 else None
        return length, m.get("audit_last", ""), rec

    def recorded(self) -> tuple[int, str]:
        length, last, _ = self._book()
        return length, last

    def record(self) -> tuple[int, int, int] | None:
        """(length, count, sum) of the part of the file this store recorded writing, or
        None when not known (a store from before the record was kept: the next export
        scans the file and starts it)."""
        return self._book()[2]

    def _line_of(self, eid: str) -> bytes | None:
        rows = self.store.reader.find_events(eid, limit=1)
        return audit_line(eid, rows[0].body) if rows and rows[0].id == eid else None

    def is_as_written(self) -> bool:
        """The cheap check: the file has the length we recorded and ends with the line we
        last wrote. Costs a stat and one small read, whatever the size of the log."""
        length, last, rec = self._book()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return length == 0
        if size != length:
            return False
        if length == 0:
            return True
        if rec is None:
            return False  # no record of what we wrote yet: the scan starts one
        line = self._line_of(last) if last else None
        if line is None or len(line) > length:
            return False
        with open_file_in_home(self.path, "rb") as f:
            f.seek(length - len(line))
            return f.read(len(line)) == line and (
                length == len(line) or byte_before(f, length - len(line)) == b"\n"
            )

    # --- export ----------------------------------------------------------------------
    def export(self) -> ExportResult:
        """Write every dirty event as whole lines, after checking the file is what we
        last wrote (else reconcile it first). Never raises for a bad file: it reports
        `refused` and leaves the events dirty."""
        with self.lock():
            return self.export_locked()

    def export_locked(self) -> ExportResult:
        """export(), by a caller that holds the lock (coord sync, a read catching up)."""
        res = ExportResult()
        self._repair_torn_tail()
        if not self.is_as_written():
            res.scanned = True
            if not self._reconcile(res):
                return res
        self.write_dirty(res)
        return res

    def only_local_writes_pending(self) -> bool:
        """Whether the file differs from what we recorded only by lines this store is
        writing right now (another process's export, between its write and its
        bookkeeping): its first recorded bytes as we wrote them, and the rest a prefix of
        our dirty events' lines. Else something else changed it (a pull)."""
        length, last, _ = self._book()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False
        extra = size - length
        if extra <= 0 or extra > self.TORN_TAIL_MAX:
            return False
        line = self._line_of(last) if last else b""
        if line is None or len(line) > length:
            return False
        expected = self._dirty_lines(extra)
        with open_file_in_home(self.path, "rb") as f:
            f.seek(length - len(line))
            return f.read(len(line) + extra) == line + bytes(expected[:extra])

    TORN_TAIL_MAX = 64 << 20

    def _dirty_lines(self, at_least: int) -> bytearray:
        """The dirty events' lines in seq order, as this store is writing them: at least
        `at_least` bytes of them (all, when there are fewer)."""
        out = bytearray()
        after = 0
        while len(out) < at_least:
            rows = self.store.reader.audit_rows(after, dirty_only=True, limit=100)
            if not rows:
                break
            after = rows[-1].seq
            out += self.lines_of(rows, warn=False)[0]
        return out

    def _repair_torn_tail(self) -> bool:
        """A writer killed in the middle of its write() leaves a torn last line. Such a
        tail is recognisable: the bytes past the length we recorded do not end in a
        newline and are a prefix of exactly what we were writing (the dirty events'
        lines, in seq order). Cut it back to the recorded length; the export that follows
        writes those lines whole. Anything else is left to the full scan."""
        length, _ = self.recorded()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return False
        extra = size - length
        if extra <= 0 or extra > self.TORN_TAIL_MAX:
            return False
        with open_file_in_home(self.path, "rb") as f:
            f.seek(length)
            tail = f.read(extra)
            if length and byte_before(f, length) != b"\n":
                return False
        if tail.endswith(b"\n"):
            return False
        expected = self._dirty_lines(extra)
        if not expected.startswith(tail):
            return False
        fd = open_in_home(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, length)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.warn(
            f"{self.path}: removed a torn line left by an interrupted write ({extra} bytes); "
            "its events are written again whole"
        )
        return True

    def lines_of(self, rows, warn: bool = True) -> tuple[bytes, list]:
        """The audit lines of stored rows, and the rows they are. A row
        whose bytes do not hash to its id, or are no event, is never written: a forged or
        damaged row is reported (it stays dirty; `coord verify` names it), not copied
        into the file where every clone would read it."""
        out, good = [], []
        for row in rows:
            eid, body = row.id, row.body
            why = None
            if event_id(body) != eid:
                why = "its stored bytes do not hash to its id"
            else:
                try:
                    decode_body(body)
                except IntegrityError as e:
                    why = e.message
            if why is not None:
                if warn:
                    self.warn(
                        f"event seq {row.seq} ({eid[:15]}) not written to {self.path}: {why} "
                        "(the database was changed behind coord's back; run `coord verify`)"
                    )
                continue
            out.append(audit_line(eid, body))
            good.append(row)
        return b"".join(out), good

    def write_dirty(self, res: ExportResult):
        from .audit_read import SUM_MOD, id_int  # read files only when writing one

        last_seq = 0
        while True:
            rows = self.store.reader.audit_rows(last_seq, dirty_only=True, limit=EXPORT_CHUNK)
            if not rows:
                return
            last_seq = rows[-1].seq
            data, good = self.lines_of(rows)
            if not good:
                continue
            length, _, rec = self._book()
            fd = open_in_home(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                if active("audit-mid-write"):
                    os.write(fd, data[: max(1, len(data) // 2)])
                    failpoint("audit-mid-write")
                write_all(fd, data)
            finally:
                os.close(fd)
            failpoint("audit-after-write")
            kv = dict(audit_length=length + len(data), audit_last=good[-1].id)
            if rec is not None:
                total = (rec[2] + sum(id_int(r.id) for r in good)) % SUM_MOD
                kv.update(audit_count=rec[1] + len(good), audit_sum=f"{total:x}")
            # Bookkeeping that may be lost (durable=False): if this commit is lost, the
            # recorded length is lost with it, the next cheap check fails, and the scan
            # marks these events written without writing them twice.
            self.book_write([r.seq for r in good], [], kv)
            res.written += len(good)

    def book_write(self, written: list, dirty: list, kv: dict) -> None:
        """Mark events written (and others dirty again), and record the file's state."""

        def book(tx):
            tx.set_audit(written, AUDIT_WRITTEN)
            tx.set_audit(dirty, AUDIT_DIRTY)
            tx.set_meta(kv)

        self.store.transact(book, hooks=False, durable=False)

    def prefix_intact(self, s, rec) -> bool:
        """The part of the file this store recorded writing holds exactly the lines it
        recorded (same count and digest): then a line there that the store lacks is an
        event the store lost, not one a pull brought."""
        return rec is not None and rec[0] > 0 and (s.prefix_count, s.prefix_sum) == (rec[1], rec[2])

    def _reconcile(self, res: ExportResult) -> bool:
        """The file is not what we last wrote (a git pull or checkout, an edit, a crash
        between write and bookkeeping). Read it all: refuse it if any line is bad; import
        valid unknown lines; mark dirty events already there as written; mark events
        missing from it dirty again (they are appended by the caller, with a warning)."""
        from .audit_read import import_bodies, scan_file

        rec = self.record()
        s = scan_file(self.path, store=self.store, collect=True, prefix=rec[0] if rec else None)
        if s.bad:
            b = s.bad[0]
            more = f" (and {len(s.bad) - 1} more bad line(s))" if len(s.bad) > 1 else ""
            res.refused = (
                f"{self.path} line {b.lineno}: {b.reason}{more}; not touching the file, "
                f"new events stay in the store until it is fixed (`coord verify`, "
                f"`coord export --rewrite`)"
            )
            self.warn(res.refused)
            return False
        if s.prefix_new and self.prefix_intact(s, rec):
            shown = ", ".join(f"{e[:15]} (line {n})" for n, e in s.prefix_new[:5])
            self.warn(
                f"{len(s.prefix_new)} event(s) this store wrote to {self.path} were missing "
                f"from the store (the database was changed behind coord's back) and are "
                f"restored from the file: {shown}; `coord verify` reports the damage"
            )
        if s.new and getattr(self.store, "shared", False):  # a server's log: commands never import
            self.warn(
                f"{len(s.new)} line(s) of {self.path} are not in the server's log and stay only in "
                f"the file; add them with `coord import {self.path}`"
            )
        elif s.new:
            res.imported = import_bodies(self.store, s.new, AUDIT_WRITTEN)
        s.new = []
        in_file_dirty, missing = [], []
        after = 0
        while marks := self.store.reader.audit_marks(after, EXPORT_CHUNK):
            after = marks[-1][0]
            for seq, eid, audit in marks:
                if eid in s.ids:
                    if audit == AUDIT_DIRTY:
                        in_file_dirty.append(seq)
                elif audit == AUDIT_WRITTEN:
                    missing.append((seq, eid))
        self.book_write(
            in_file_dirty,
            [seq for seq, _ in missing],
            dict(audit_length=s.size, audit_last=s.last_id, audit_count=s.count, audit_sum=f"{s.sum:x}"),
        )
        if missing:
            res.restored = len(missing)
            shown = ", ".join(e for _, e in missing[:5]) + (", …" if len(missing) > 5 else "")
            self.warn(
                f"{len(missing)} event(s) were missing from {self.path} and are appended "
                f"again from the store: {shown}"
            )
        return True

    def record_checked(self, b3: str, size: int):
        """Remember the b3 of a file that checked out clean (bookkeeping only)."""
        self.book_write([], [], dict(audit_checked_b3=b3, audit_checked_length=size))

    def adopt(self):
        """After building the store from this file (init), record it as what we wrote."""
        from .audit_read import scan_file

        s = scan_file(self.path)
        self.book_write(
            [],
            [],
            dict(audit_length=s.size, audit_last=s.last_id, audit_count=s.count, audit_sum=f"{s.sum:x}"),
        )


def byte_before(f, pos: int) -> bytes:
    f.seek(pos - 1)
    return f.read(1)


def write_all(fd: int, data: bytes):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_dir(path):
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
