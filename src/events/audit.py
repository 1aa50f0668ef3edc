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

from .envelope import decode
from .errors import IntegrityError, UsageError
from .failpoints import failpoint
from .files import open_file_in_home, open_in_home
from .ids import audit_line, check_line
from .store import AUDIT_DIRTY, AUDIT_NONE, AUDIT_WRITTEN, exclusive_flock

# Lines per write() (and per bookkeeping transaction) when exporting a large backlog.
EXPORT_CHUNK = 5000
# An import batch commits after this many events or this many seconds, whichever first,
# so no write lock is held for more than a fraction of a second.
IMPORT_BATCH = 2000
IMPORT_BATCH_SECONDS = 0.15
READ_CHUNK = 1 << 20
MAX_LISTED = 20


# --- reading any events file -------------------------------------------------------------
class BadLine(msgspec.Struct):
    lineno: int
    reason: str

    def __str__(self):
        return f"line {self.lineno}: {self.reason}"


def iter_lines(f):
    """(lineno, bytes without the newline, complete) for each line of a binary file,
    split on the byte \\n only; the last line is incomplete when the file does not end in
    \\n. Also feeds every byte to `f.hasher` when the reader sets one."""
    buf = b""
    lineno = 0
    hasher = getattr(f, "hasher", None)
    while True:
        chunk = f.read(READ_CHUNK)
        if not chunk:
            break
        if hasher is not None:
            hasher.update(chunk)
        buf += chunk
        parts = buf.split(b"\n")
        buf = parts.pop()
        for line in parts:
            lineno += 1
            yield lineno, line, True
    if buf:
        yield lineno + 1, buf, False


def check_file_line(line: bytes, complete: bool) -> tuple[str, bytes]:
    """check_line, plus the reasons only a file can have."""
    if not complete:
        raise IntegrityError("partial line (no newline at the end of the file)")
    if not line:
        raise IntegrityError("empty line")
    eid, body = check_line(line)
    decode(body)  # a line whose hash matches but which is no event (bad ts, type, JSON) is bad too
    return eid, body


class _Hashing:
    """A binary file whose bytes are also fed to a BLAKE3 hasher as they are read."""

    def __init__(self, f):
        self.f = f
        self.hasher = blake3.blake3()

    def read(self, n):
        return self.f.read(n)


class FileScan(msgspec.Struct):
    # msgspec Structs, not dataclasses: `dataclasses` costs start-up on the per-action path.
    lines: int = 0
    size: int = 0
    b3: str = ""
    bad: list = []  # BadLine, in file order
    ids: dict = {}  # id -> canonical body (first occurrence)
    duplicates: int = 0
    last_id: str = ""  # id of the file's last line ("" if none)

    @property
    def ok(self) -> bool:
        return not self.bad


def scan_file(
    path, keep_bodies: bool = True, stop_at_first_bad: bool = False, in_home: bool = False
) -> FileScan:
    """Read and check every line of an events file. A missing file is an empty one. The
    home's own file (in_home) is never read through a symlink (exit 5)."""
    s = FileScan()
    try:
        fh = open_file_in_home(path) if in_home else open(path, "rb")
    except FileNotFoundError:
        s.b3 = "b3:" + blake3.blake3(b"").hexdigest()
        return s
    with fh:
        r = _Hashing(fh)
        for lineno, line, complete in iter_lines(r):
            s.lines = lineno
            s.size += len(line) + (1 if complete else 0)
            try:
                eid, body = check_file_line(line, complete)
            except IntegrityError as e:
                s.bad.append(BadLine(lineno, e.message))
                s.last_id = ""
                if stop_at_first_bad:
                    break
                continue
            s.last_id = eid
            if eid in s.ids:
                s.duplicates += 1
            else:
                s.ids[eid] = body if keep_bodies else None
        s.b3 = "b3:" + r.hasher.hexdigest()
    return s


def describe_bad(bad: list, what: str) -> str:
    listed = "; ".join(str(b) for b in bad[:MAX_LISTED])
    more = f"; and {len(bad) - MAX_LISTED} more" if len(bad) > MAX_LISTED else ""
    return f"{what}: {listed}{more}"


# --- import ------------------------------------------------------------------------------
def import_bodies(store, pairs, audit: int, progress=None) -> int:
    """Append checked (id, canonical body) pairs not yet stored (set union), in (ts, id)
    order, in short batches. Returns how many were new. Batches run without after-commit
    hooks; the caller exports once at the end."""
    it = iter(_sorted_bodies(pairs))
    added = 0
    done = False
    while not done:
        with store.write(hooks=False) as tx:
            t0 = time.monotonic()
            n = 0
            for body in it:
                if tx.append(body=body, origin="import", audit=audit) is not None:
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


def read_checked(path, in_home: bool = False) -> list[tuple[str, bytes]]:
    """Every line of an events file, checked; bad lines raise IntegrityError (exit 5)
    naming each with its line number, so nothing is imported from a bad file."""
    try:
        s = scan_file(path, in_home=in_home)
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an events file") from None
    except PermissionError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if s.bad:
        raise IntegrityError(
            describe_bad(s.bad, f"{path} has {len(s.bad)} bad line(s), nothing imported"),
            bad=[{"line": b.lineno, "reason": b.reason} for b in s.bad[:MAX_LISTED]],
        )
    return list(s.ids.items())


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
    def recorded(self) -> tuple[int, str]:
        m = _meta_get(self.store.conn, ["audit_length", "audit_last"])
        return int(m.get("audit_length", 0)), m.get("audit_last", "")

    def _line_of(self, eid: str) -> bytes | None:
        row = self.store.conn.execute("SELECT body FROM events WHERE id = ?", (eid,)).fetchone()
        return audit_line(eid, row[0]) if row else None

    def is_as_written(self) -> bool:
        """The cheap check: the file has the length we recorded and ends with the line we
        last wrote. Costs a stat and one small read, whatever the size of the log."""
        length, last = self.recorded()
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return length == 0
        if size != length:
            return False
        if length == 0:
            return True
        line = self._line_of(last) if last else None
        if line is None or len(line) > length:
            return False
        with open_file_in_home(self.path) as f:
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
        with open_file_in_home(self.path) as f:
            f.seek(length)
            tail = f.read(extra)
            if length and _byte_before(f, length) != b"\n":
                return False
        if tail.endswith(b"\n"):
            return False
        expected = bytearray()
        for eid, body in self.store.conn.execute("SELECT id, body FROM events WHERE audit = 1 ORDER BY seq"):
            expected += audit_line(eid, body)
            if len(expected) >= extra:
                break
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
            data = b"".join(audit_line(eid, body) for _, eid, body in rows)
            length, _ = self.recorded()
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
                tx.conn.executemany("UPDATE events SET audit = 2 WHERE seq = ?", [(r[0],) for r in rows])
                _meta_set(tx.conn, audit_length=length + len(data), audit_last=rows[-1][1])
            res.written += len(rows)
            last_seq = rows[-1][0]

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

    def _reconcile(self, res: ExportResult) -> bool:
        """The file is not what we last wrote (a git pull or checkout, an edit, a crash
        between write and bookkeeping). Read it all: refuse it if any line is bad; import
        valid unknown lines; mark dirty events already there as written; mark events
        missing from it dirty again (they are appended by the caller, with a warning)."""
        s = scan_file(self.path, in_home=True)
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
        conn = self.store.conn
        # Which of the file's ids does the store know, and how are they marked?
        known: dict[str, int] = {}
        ids = list(s.ids)
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            known.update(
                conn.execute(
                    f"SELECT id, audit FROM events WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchall()
            )
        unknown = [(i, s.ids[i]) for i in ids if i not in known]
        if unknown:
            res.imported = import_bodies(self.store, unknown, AUDIT_WRITTEN)
        in_file_dirty = [i for i, a in known.items() if a == AUDIT_DIRTY]
        missing = [
            (seq, eid)
            for seq, eid in conn.execute("SELECT seq, id FROM events WHERE audit = 2")
            if eid not in s.ids
        ]
        with self._quick_write() as tx:
            tx.conn.executemany("UPDATE events SET audit = 2 WHERE id = ?", [(i,) for i in in_file_dirty])
            tx.conn.executemany("UPDATE events SET audit = 1 WHERE seq = ?", [(seq,) for seq, _ in missing])
            _meta_set(tx.conn, audit_length=s.size, audit_last=s.last_id)
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
        dropped (returned, for the caller to report)."""
        res = ExportResult()
        with self.lock():
            s = scan_file(self.path, in_home=True)
            conn = self.store.conn
            unknown = [
                (i, b)
                for i, b in s.ids.items()
                if conn.execute("SELECT 1 FROM events WHERE id = ?", (i,)).fetchone() is None
            ]
            if unknown:
                res.imported = import_bodies(self.store, unknown, AUDIT_WRITTEN)
            tmp = self.path.with_name(self.path.name + ".tmp")
            hasher = blake3.blake3()
            size = 0
            last = ""
            n = 0
            if os.path.lexists(tmp):
                os.unlink(tmp)  # a leftover (or a link put there): never written through
            fd = open_in_home(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
            try:
                with self.store.read() as c:
                    # Events committed after this snapshot have a higher seq: they stay
                    # dirty below and are written after the rename, still under the lock.
                    upto = c.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    cur = c.execute(
                        "SELECT id, body FROM events WHERE audit != 0 AND seq <= ? ORDER BY seq", (upto,)
                    )
                    while True:
                        rows = cur.fetchmany(EXPORT_CHUNK)
                        if not rows:
                            break
                        data = b"".join(audit_line(eid, body) for eid, body in rows)
                        _write_all(fd, data)
                        hasher.update(data)
                        size += len(data)
                        last = rows[-1][0]
                        n += len(rows)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
            with self._quick_write() as tx:
                tx.conn.execute("UPDATE events SET audit = 2 WHERE audit = 1 AND seq <= ?", (upto,))
                _meta_set(
                    tx.conn,
                    audit_length=size,
                    audit_last=last,
                    audit_checked_b3="b3:" + hasher.hexdigest(),
                    audit_checked_length=size,
                )
            res.written = n
            self._write_dirty(res)  # whatever committed while the file was being rewritten
        return res, s.bad

    # --- read-only check ---------------------------------------------------------------
    def check(self) -> dict:
        """Read everything, change nothing. Problems: each bad line (with its number),
        each event that belongs in the file but is missing from it. Also reports the
        whole file's BLAKE3 and compares it with the one recorded at the last clean
        check or rewrite."""
        s = scan_file(self.path, keep_bodies=False, in_home=True)
        conn = self.store.conn
        missing, dirty = [], []
        for eid, audit in conn.execute("SELECT id, audit FROM events WHERE audit != 0 ORDER BY seq"):
            if eid not in s.ids:
                (dirty if audit == AUDIT_DIRTY else missing).append(eid)
        unknown = 0
        if s.ids:
            ids = list(s.ids)
            for i in range(0, len(ids), 500):
                part = ids[i : i + 500]
                found = conn.execute(
                    f"SELECT count(*) FROM events WHERE id IN ({','.join('?' * len(part))})", part
                ).fetchone()[0]
                unknown += len(part) - found
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
            "unknown": unknown,
            "duplicates": s.duplicates,
            "ok": not (s.bad or missing or dirty),
        }

    def record_checked(self, b3: str, size: int):
        """Remember the b3 of a file that checked out clean (bookkeeping only)."""
        with self._quick_write() as tx:
            _meta_set(tx.conn, audit_checked_b3=b3, audit_checked_length=size)

    def adopt(self):
        """After building the store from this file (init), record it as what we wrote."""
        s = scan_file(self.path, keep_bodies=False, in_home=True)
        with self._quick_write() as tx:
            _meta_set(tx.conn, audit_length=s.size, audit_last=s.last_id)


class _TS(msgspec.Struct):
    ts: str


_ts_dec = msgspec.json.Decoder(_TS)


def _sorted_bodies(pairs):
    """Bodies in (ts, id) order, so most imported events fold incrementally."""
    keyed = sorted((_ts_dec.decode(b).ts, i, b) for i, b in pairs)
    return [b for _, _, b in keyed]


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
