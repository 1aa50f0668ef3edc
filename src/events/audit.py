"""The audit file .coord/events.jsonl: dirty-tracked export after each commit, the cheap
"is it what we last wrote" check, the full scan that reconciles it with the store, the
atomic rewrite, the read-only check, and reading/checking any events file for import.

The store is the truth. The file is a set of lines (order means nothing after a git
merge). Every write to it happens under an exclusive flock on `audit.lock` beside it (a
separate file, so the lock survives the rename of `export --rewrite`).
"""

import os
import time
from contextlib import contextmanager

import blake3
import msgspec

from .codec import audit_line, decode_body, read_events
from .envelope import event_id
from .errors import IntegrityError, UsageError
from .failpoints import failpoint
from .files import open_file_in_home, open_in_home
from .sqlite_store import AUDIT_DIRTY, AUDIT_NONE, AUDIT_WRITTEN, exclusive_flock

# Lines per write() (and per bookkeeping transaction) when exporting a large backlog.
EXPORT_CHUNK = 5000
# An import batch commits after this many events or this many seconds, whichever first,
# so no write lock is held for more than a fraction of a second.
IMPORT_BATCH = 2000
IMPORT_BATCH_SECONDS = 0.15
MAX_LISTED = 20


# --- reading any events file -------------------------------------------------------------
class BadLine(msgspec.Struct):
    lineno: int
    reason: str

    def __str__(self):
        return f"line {self.lineno}: {self.reason}"


class FileScan(msgspec.Struct):
    # msgspec Structs, not dataclasses: `dataclasses` costs start-up on the per-action path.
    lines: int = 0
    size: int = 0
    b3: str = ""
    bad: list = []  # BadLine, in file order
    ids: dict = {}  # id -> line number of its first occurrence
    new: list = []  # (ts, id, body) of good lines the store lacks (when asked to collect)
    duplicates: int = 0
    last_id: str = ""  # id of the file's last line ("" if none)
    count: int = 0  # good lines (duplicates included) and the sum of their ids: the record
    sum: int = 0
    prefix_count: int = 0  # the same for the lines that end within `prefix` bytes
    prefix_sum: int = 0
    prefix_new: list = []  # (line number, id) of lines within `prefix` that the store lacks
    unknown: int = 0  # distinct good ids the store lacks (when given a store)

    @property
    def ok(self) -> bool:
        return not self.bad


# The record of what this store wrote (meta audit_count/audit_sum): how many good lines lie
# in the first audit_length bytes of the file and the sum of their ids mod 2**256 (an
# order-independent digest: git's union merge may reorder what it keeps).
SUM_MOD = 1 << 256
LOOKUP_BATCH = 500


def id_int(eid: str) -> int:
    return int(eid[3:], 16)


def _open_events_file(path, in_home: bool):
    if in_home:
        return open_file_in_home(path, "rb")
    return open(path, "rb")


def scan_file(
    path, conn=None, collect: bool = False, prefix: int | None = None, in_home: bool = True
) -> FileScan:
    """Read and check every line of an events file through the codec's reader, in bounded
    memory: the ids are kept, and, with `collect`, the lines the store (`conn`; without
    one, every line) lacks. A missing file is an empty one. `prefix`: also digest the
    lines that end within that many bytes (the part this store recorded writing)."""
    s = FileScan()
    s.bad, s.ids, s.new, s.prefix_new = [], {}, [], []
    try:
        fh = _open_events_file(path, in_home)
    except FileNotFoundError:
        s.b3 = "b3:" + blake3.blake3(b"").hexdigest()
        return s
    # Good lines seen for the first time, whose presence in the store is looked up in
    # batches: (lineno, end, id, ts, body).
    pending: list = []

    def settle():
        have = _known(conn, [p[2] for p in pending]) if conn is not None else set()
        for lineno, end, eid, ts, body in pending:
            if eid in have:
                continue
            s.unknown += 1
            if collect:
                s.new.append((ts, eid, body))
            if prefix is not None and end <= prefix:
                s.prefix_new.append((lineno, eid))
        pending.clear()

    with fh:
        hasher = blake3.blake3()
        for ln in read_events(fh, hasher):
            s.lines = ln.lineno
            s.size = ln.end
            if ln.bad is not None:
                s.bad.append(BadLine(ln.lineno, ln.bad))
                s.last_id = ""
                continue
            s.last_id = ln.id
            n = id_int(ln.id)
            s.count += 1
            s.sum = (s.sum + n) % SUM_MOD
            if prefix is not None and ln.end <= prefix:
                s.prefix_count += 1
                s.prefix_sum = (s.prefix_sum + n) % SUM_MOD
            if ln.id in s.ids:
                s.duplicates += 1
                continue
            s.ids[ln.id] = ln.lineno
            if collect or conn is not None:
                pending.append((ln.lineno, ln.end, ln.id, ln.env.ts, ln.body if collect else None))
                if len(pending) >= LOOKUP_BATCH:
                    settle()
        settle()
        s.b3 = "b3:" + hasher.hexdigest()
    return s


def _known(conn, ids: list) -> set:
    found = set()
    for i in range(0, len(ids), LOOKUP_BATCH):
        part = ids[i : i + LOOKUP_BATCH]
        found.update(
            r[0]
            for r in conn.execute(f"SELECT id FROM events WHERE id IN ({','.join('?' * len(part))})", part)
        )
    return found


def describe_bad(bad: list, what: str) -> str:
    listed = "; ".join(str(b) for b in bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    return f"{what}: {listed}{more}"


# --- import ------------------------------------------------------------------------------
def import_bodies(store, items, audit: int, progress=None) -> int:
    """Append checked events not yet stored (set union), in (ts, id) order, in short
    batches. `items`: (ts, id, body) triples from the codec's reader (FileScan.new), or
    (id, body) pairs, which are checked here. Returns how many were new. Batches run
    without after-commit hooks; the caller exports once at the end."""
    items = list(items)
    checked = all(len(t) == 3 for t in items)
    if not checked:
        items = [(decode_body(b).ts, i, b) for i, b in items]
    items.sort(key=lambda t: (t[0], t[1]))  # most imported events then fold incrementally
    it = iter(items)
    added = 0
    done = False
    while not done:
        with store.write(hooks=False) as tx:
            t0 = time.monotonic()
            n = 0
            for _ts, _eid, body in it:
                if tx.append(body=body, origin="import", audit=audit, checked=checked) is not None:
                    added += 1
                n += 1
                if n >= IMPORT_BATCH or time.monotonic() - t0 > IMPORT_BATCH_SECONDS:
                    break
            else:
                done = True
        failpoint("import-between-batches")
        if progress:
            progress(added)
    return added


def read_checked(path, conn=None, in_home: bool = False) -> FileScan:
    """Every line of an events file, checked; bad lines raise IntegrityError (exit 5)
    naming each with its line number, so nothing is imported from a bad file. The scan's
    `new` holds the lines the store (`conn`) lacks, ready for import_bodies."""
    try:
        s = scan_file(path, conn=conn, collect=True, in_home=in_home)
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an events file") from None
    except PermissionError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if s.bad:
        raise IntegrityError(
            describe_bad(s.bad, f"{path} has {len(s.bad)} bad line(s), nothing imported"),
            bad=[{"line": b.lineno, "reason": b.reason} for b in s.bad[:MAX_LISTED]],
        )
    return s


# --- the exporter --------------------------------------------------------------------------
class ExportResult(msgspec.Struct):
    written: int = 0  # lines appended to the file
    imported: int = 0  # unknown valid lines found in the file and taken into the store
    restored: int = 0  # known events missing from the file, appended again
    scanned: bool = False  # the cheap check failed and the whole file was read
    refused: str | None = None  # why the file was left alone (its events stay dirty)


def _meta_get(conn, keys):
    q = f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})"
    return dict(conn.execute(q, keys).fetchall())


def _meta_set(conn, **kv):
    conn.executemany(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [(k, str(v)) for k, v in kv.items()]
    )


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

    def close(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- what we last wrote ----------------------------------------------------------
    _BOOK = ["audit_length", "audit_last", "audit_count", "audit_sum"]

    def _book(self) -> tuple[int, str, tuple[int, int, int] | None]:
        """One read of the bookkeeping: (length, last id, record)."""
        m = _meta_get(self.store.conn, self._BOOK)
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
        row = self.store.conn.execute("SELECT body FROM events WHERE id = ?", (eid,)).fetchone()
        return audit_line(eid, row[0]) if row else None

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
                length == len(line) or _byte_before(f, length - len(line)) == b"\n"
            )

    # --- export ----------------------------------------------------------------------
    def export(self) -> ExportResult:
        """Write every dirty event as whole lines, after checking the file is what we
        last wrote (else reconcile it first). Never raises for a bad file: it reports
        `refused` and leaves the events dirty."""
        res = ExportResult()
        with self.lock():
            self._repair_torn_tail()
            if not self.is_as_written():
                res.scanned = True
                if not self._reconcile(res):
                    return res
            self._write_dirty(res)
        return res

    TORN_TAIL_MAX = 64 << 20

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
            if length and _byte_before(f, length) != b"\n":
                return False
        if tail.endswith(b"\n"):
            return False
        expected = bytearray()
        cur = self.store.conn.execute("SELECT seq, id, body FROM events WHERE audit = 1 ORDER BY seq")
        while len(expected) < extra:
            rows = cur.fetchmany(100)
            if not rows:
                break
            expected += self._lines_of(rows, warn=False)[0]
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

    def _lines_of(self, rows, warn: bool = True) -> tuple[bytes, list]:
        """The audit lines of stored (seq, id, body) rows, and the rows they are. A row
        whose bytes do not hash to its id, or are no event, is never written: a forged or
        damaged row is reported (it stays dirty; `coord verify` names it), not copied
        into the file where every clone would read it."""
        out, good = [], []
        for row in rows:
            eid, body = row[1], row[2]
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
                        f"event seq {row[0]} ({eid[:15]}) not written to {self.path}: {why} "
                        "(the database was changed behind coord's back; run `coord verify`)"
                    )
                continue
            out.append(audit_line(eid, body))
            good.append(row)
        return b"".join(out), good

    def _write_dirty(self, res: ExportResult):
        conn = self.store.conn
        last_seq = 0
        while True:
            rows = conn.execute(
                "SELECT seq, id, body FROM events WHERE audit = 1 AND seq > ? ORDER BY seq LIMIT ?",
                (last_seq, EXPORT_CHUNK),
            ).fetchall()
            if not rows:
                return
            last_seq = rows[-1][0]
            data, good = self._lines_of(rows)
            if not good:
                continue
            length, _, rec = self._book()
            fd = open_in_home(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                if "audit-mid-write" in _active_failpoints():
                    os.write(fd, data[: max(1, len(data) // 2)])
                    failpoint("audit-mid-write")
                _write_all(fd, data)
            finally:
                os.close(fd)
            failpoint("audit-after-write")
            # Bookkeeping at synchronous=NORMAL: if this commit is lost, the recorded
            # length is lost with it, the next cheap check fails, and the scan marks these
            # events written without writing them twice.
            with self._quick_write() as tx:
                tx.conn.executemany("UPDATE events SET audit = 2 WHERE seq = ?", [(r[0],) for r in good])
                kv = dict(audit_length=length + len(data), audit_last=good[-1][1])
                if rec is not None:
                    total = (rec[2] + sum(id_int(r[1]) for r in good)) % SUM_MOD
                    kv.update(audit_count=rec[1] + len(good), audit_sum=f"{total:x}")
                _meta_set(tx.conn, **kv)
            res.written += len(good)

    @contextmanager
    def _quick_write(self):
        conn = self.store.conn
        sync = self.home.config["synchronous"]
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            with self.store.write(hooks=False) as tx:
                yield tx
        finally:
            conn.execute(f"PRAGMA synchronous = {sync}")

    def _prefix_intact(self, s: FileScan, rec) -> bool:
        """The part of the file this store recorded writing holds exactly the lines it
        recorded (same count and digest): then a line there that the store lacks is an
        event the store lost, not one a pull brought."""
        return rec is not None and rec[0] > 0 and (s.prefix_count, s.prefix_sum) == (rec[1], rec[2])

    def _reconcile(self, res: ExportResult) -> bool:
        """The file is not what we last wrote (a git pull or checkout, an edit, a crash
        between write and bookkeeping). Read it all: refuse it if any line is bad; import
        valid unknown lines; mark dirty events already there as written; mark events
        missing from it dirty again (they are appended by the caller, with a warning)."""
        rec = self.record()
        conn = self.store.conn
        s = scan_file(self.path, conn=conn, collect=True, prefix=rec[0] if rec else None)
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
        if s.prefix_new and self._prefix_intact(s, rec):
            shown = ", ".join(f"{e[:15]} (line {n})" for n, e in s.prefix_new[:5])
            self.warn(
                f"{len(s.prefix_new)} event(s) this store wrote to {self.path} were missing "
                f"from the store (the database was changed behind coord's back) and are "
                f"restored from the file: {shown}; `coord verify` reports the damage"
            )
        if s.new:
            res.imported = import_bodies(self.store, s.new, AUDIT_WRITTEN)
        s.new = []
        in_file_dirty, missing = [], []
        for seq, eid, audit in conn.execute("SELECT seq, id, audit FROM events WHERE audit != 0"):
            if eid in s.ids:
                if audit == AUDIT_DIRTY:
                    in_file_dirty.append((seq,))
            elif audit == AUDIT_WRITTEN:
                missing.append((seq, eid))
        with self._quick_write() as tx:
            tx.conn.executemany("UPDATE events SET audit = 2 WHERE seq = ?", in_file_dirty)
            tx.conn.executemany("UPDATE events SET audit = 1 WHERE seq = ?", [(seq,) for seq, _ in missing])
            _meta_set(
                tx.conn,
                audit_length=s.size,
                audit_last=s.last_id,
                audit_count=s.count,
                audit_sum=f"{s.sum:x}",
            )
        if missing:
            res.restored = len(missing)
            shown = ", ".join(e for _, e in missing[:5]) + (", …" if len(missing) > 5 else "")
            self.warn(
                f"{len(missing)} event(s) were missing from {self.path} and are appended "
                f"again from the store: {shown}"
            )
        return True

    # --- rewrite ---------------------------------------------------------------------
    def rewrite(self) -> tuple[ExportResult, list]:
        """Regenerate the file from the store: temporary file, fsync, rename. Valid lines
        the store does not know are imported first, so nothing is lost; bad lines are
        dropped (returned, for the caller to report), and so is any stored row that does
        not check out (reported as a warning; it stays dirty)."""
        res = ExportResult()
        with self.lock():
            s = scan_file(self.path, conn=self.store.conn, collect=True)
            if s.new:
                res.imported = import_bodies(self.store, s.new, AUDIT_WRITTEN)
            s.new = []
            tmp = self.path.with_name(self.path.name + ".tmp")
            hasher = blake3.blake3()
            size = count = total = 0
            last = ""
            newly = []  # seqs of dirty events this rewrite writes
            try:
                os.unlink(tmp)  # a leftover of an interrupted rewrite, never followed
            except FileNotFoundError:
                pass
            fd = open_in_home(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                with self.store.read() as c:
                    # Events committed after this snapshot have a higher seq: they stay
                    # dirty below and are written after the rename, still under the lock.
                    upto = c.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    cur = c.execute(
                        "SELECT seq, id, body, audit FROM events WHERE audit != 0 AND seq <= ? ORDER BY seq",
                        (upto,),
                    )
                    while True:
                        rows = cur.fetchmany(EXPORT_CHUNK)
                        if not rows:
                            break
                        data, good = self._lines_of(rows)
                        _write_all(fd, data)
                        hasher.update(data)
                        size += len(data)
                        if good:
                            last = good[-1][1]
                        count += len(good)
                        total = (total + sum(id_int(r[1]) for r in good)) % SUM_MOD
                        newly.extend((r[0],) for r in good if r[3] == AUDIT_DIRTY)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            with self._quick_write() as tx:
                tx.conn.executemany("UPDATE events SET audit = 2 WHERE seq = ?", newly)
                _meta_set(
                    tx.conn,
                    audit_length=size,
                    audit_last=last,
                    audit_count=count,
                    audit_sum=f"{total:x}",
                    audit_checked_b3="b3:" + hasher.hexdigest(),
                    audit_checked_length=size,
                )
            res.written = count
            self._write_dirty(res)  # whatever committed while the file was being rewritten
        return res, s.bad

    # --- read-only check ---------------------------------------------------------------
    def check(self) -> dict:
        """Read everything, change nothing. Problems: each bad line (with its number),
        each event that belongs in the file but is missing from it, and each event this
        store wrote to the file (per its record) that is no longer in the store. Also
        reports the whole file's BLAKE3 and compares it with the one recorded at the last
        clean check or rewrite."""
        conn = self.store.conn
        rec = self.record()
        s = scan_file(self.path, conn=conn, prefix=rec[0] if rec else None)
        missing, dirty = [], []
        for eid, audit in conn.execute("SELECT id, audit FROM events WHERE audit != 0 ORDER BY seq"):
            if eid not in s.ids:
                (dirty if audit == AUDIT_DIRTY else missing).append(eid)
        unknown = s.unknown
        lost = [{"line": n, "id": e} for n, e in s.prefix_new] if self._prefix_intact(s, rec) else []
        m = _meta_get(conn, ["audit_checked_b3", "audit_checked_length"])
        prev = m.get("audit_checked_b3")
        return {
            "path": str(self.path),
            "lines": s.lines,
            "bytes": s.size,
            "b3": s.b3,
            "previous_b3": prev,
            "unchanged": prev == s.b3 if prev else None,
            "bad": [{"line": b.lineno, "reason": b.reason} for b in s.bad],
            "missing": missing,
            "dirty": dirty,
            "lost": lost,
            "unknown": unknown - len(lost),
            "duplicates": s.duplicates,
            "recorded": None if rec is None else {"bytes": rec[0], "lines": rec[1]},
            "ok": not (s.bad or missing or dirty or lost),
        }

    def record_checked(self, b3: str, size: int):
        """Remember the b3 of a file that checked out clean (bookkeeping only)."""
        with self._quick_write() as tx:
            _meta_set(tx.conn, audit_checked_b3=b3, audit_checked_length=size)

    def adopt(self):
        """After building the store from this file (init), record it as what we wrote."""
        s = scan_file(self.path)
        with self._quick_write() as tx:
            _meta_set(
                tx.conn,
                audit_length=s.size,
                audit_last=s.last_id,
                audit_count=s.count,
                audit_sum=f"{s.sum:x}",
            )


def _byte_before(f, pos: int) -> bytes:
    f.seek(pos - 1)
    return f.read(1)


def _write_all(fd: int, data: bytes):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(path):
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


def _active_failpoints():
    from .failpoints import _ACTIVE

    return _ACTIVE


__all__ = [
    "AuditTrail",
    "ExportResult",
    "scan_file",
    "read_checked",
    "import_bodies",
    "AUDIT_NONE",
    "AUDIT_DIRTY",
    "AUDIT_WRITTEN",
]
