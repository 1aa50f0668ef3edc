"""Reading any events file (an audit file, another clone's, stdin) through the codec's one
reader, in bounded memory, and importing the lines the store lacks through the one write
path (set union, in short batches). The home's own audit file is kept by
coord.events.audit.
"""

import time

import blake3
import msgspec

from .codec import decode_body, read_events
from .errors import IntegrityError, UsageError
from .failpoints import failpoint
from .files import open_file_in_home

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
    path, store=None, collect: bool = False, prefix: int | None = None, in_home: bool = True
) -> FileScan:
    """Read and check every line of an events file through the codec's reader, in bounded
    memory: the ids are kept, and, with `collect`, the lines the store (without one, every
    line) lacks. A missing file is an empty one. `prefix`: also digest the
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
        have = store.reader.known_ids([p[2] for p in pending]) if store is not None else set()
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
            if collect or store is not None:
                pending.append((ln.lineno, ln.end, ln.id, ln.env.ts, ln.body if collect else None))
                if len(pending) >= LOOKUP_BATCH:
                    settle()
        settle()
        s.b3 = "b3:" + hasher.hexdigest()
    return s


# --- import ------------------------------------------------------------------------------
def import_bodies(store, items, audit: int, progress=None) -> int:
    """Append checked events not yet stored (set union), in (ts, id) order, in short
    batches. `items`: (ts, id, body) triples from the codec's reader (FileScan.new), or
    (id, body) pairs, which are checked here. Returns how many were new. Batches run
    without after-commit hooks; the caller exports once at the end. (Files of any length
    go through `read_sorted` and `import_sorted` instead, in bounded memory.)"""
    items = list(items)
    checked = all(len(t) == 3 for t in items)
    if not checked:
        items = [(decode_body(b).ts, i, b) for i, b in items]
    items.sort(key=lambda t: (t[0], t[1]))  # most imported events then fold incrementally
    return import_sorted(store, items, audit, checked=checked, progress=progress)[1]


def import_sorted(store, items, audit: int, checked: bool = True, progress=None) -> tuple[int, int]:
    """Append the (ts, id, body) triples of an iterable, in its order, that are not yet
    stored, in short transactions (IMPORT_BATCH events or IMPORT_BATCH_SECONDS): at most
    one batch is held in memory. Returns (items seen, items new)."""
    it = iter(items)
    buf: list = []
    at = seen = added = 0

    def batch(tx):  # from buf[at]; re-runnable: it depends only on `at`
        t0 = time.monotonic()
        n = new = 0
        for _ts, _eid, body in buf[at:]:
            if tx.append(body=body, origin="import", audit=audit, checked=checked) is not None:
                new += 1
            n += 1
            if n >= IMPORT_BATCH or time.monotonic() - t0 > IMPORT_BATCH_SECONDS:
                break
        return n, new

    while True:
        if at >= len(buf):
            buf = [t for _, t in zip(range(IMPORT_BATCH), it, strict=False)]
            at = 0
            seen += len(buf)
            if not buf:
                return seen, added
        n, new = store.transact(batch, hooks=False)
        at += n
        added += new
        failpoint("import-between-batches")
        if progress:
            progress(added)


def read_sorted(path, in_home: bool = False):
    """Every line of an events file checked, in bounded memory: a SortedEvents
    (coord.events.sorting) of the good lines, each id once, in (ts, id) order, for
    `import_sorted`. Bad lines raise IntegrityError (exit 5) naming each with its line
    number (the first MAX_LISTED), so nothing is imported from a bad file."""
    from .sorting import SortedEvents

    out = SortedEvents()
    bad: list = []
    nbad = 0
    try:
        fh = _open_events_file(path, in_home)
    except FileNotFoundError:
        return out
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an events file") from None
    except PermissionError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    try:
        with fh:
            for ln in read_events(fh):
                if ln.bad is not None:
                    nbad += 1
                    if len(bad) < MAX_LISTED:
                        bad.append(BadLine(ln.lineno, ln.bad))
                elif not nbad:
                    out.add(ln.env.ts, ln.id, ln.body)
    except BaseException:
        out.close()
        raise
    if nbad:
        out.close()
        more = f"; and {nbad - MAX_LISTED} more" if nbad > MAX_LISTED else ""
        raise IntegrityError(
            f"{path} has {nbad} bad line(s), nothing imported: " + "; ".join(str(b) for b in bad) + more,
            bad=[{"line": b.lineno, "reason": b.reason} for b in bad],
        )
    return out


def read_checked(path, store=None, in_home: bool = False) -> FileScan:
    """Every line of an events file, checked (coord sync's merged file); bad lines raise
    IntegrityError (exit 5) naming each with its line number, so nothing is imported from
    a bad file. The scan's `new` holds the lines the store lacks, for import_bodies."""
    try:
        s = scan_file(path, store=store, collect=True, in_home=in_home)
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not an events file") from None
    except PermissionError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    if s.bad:
        listed = "; ".join(str(b) for b in s.bad[:MAX_LISTED])
        more = f"; and {len(s.bad) - MAX_LISTED} more" if len(s.bad) > MAX_LISTED else ""
        raise IntegrityError(
            f"{path} has {len(s.bad)} bad line(s), nothing imported: {listed}{more}",
            bad=[{"line": b.lineno, "reason": b.reason} for b in s.bad[:MAX_LISTED]],
        )
    return s
