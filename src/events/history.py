"""History in (ts, id) order, from either source replay can use: the store (read in short
keyset-paginated transactions, bounded by the seq seen at the start) or an audit file
(checked line by line, no database at all). Points in history (--at/--since/--until) are
keys (ts, id): an event includes itself; a time T covers every event stamped up to T.
"""

import os
import re

from .blobs import BlobStore, readable
from .codec import read_events
from .envelope import decode, parse_time, us_to_ts
from .errors import IntegrityError, NotFound, UnknownEvent, UsageError
from .ids import normalize_event_prefix, one_of
from .records import EventQuery

# An id sorts below "~", so (T, "~") is "after every event stamped T".
AFTER_ALL = "~"


class History:
    """The interface both sources share. `events()` yields (id, Envelope)."""

    def events(self, since=None, until=None, lifecycle_only=False):
        raise NotImplementedError

    def key_of_event(self, prefix: str) -> tuple[str, str]:
        raise NotImplementedError

    def key_of_position(self, n: int) -> tuple[str, str] | None:
        raise NotImplementedError

    def point(self, text: str, end: bool) -> tuple[str, str]:
        """A user-given point: N (the Nth event, 1-based), an event id (b3:…, prefixes
        allowed), or a time (RFC 3339, a date, an age like 10m). `end` says whether a time
        means "after every event at T" (--at/--until) or "before them" (--since)."""
        t = text.strip()
        if re.fullmatch(r"\d+", t):
            if len(t) > 18:
                raise UsageError(f"event number {t[:20]}… is out of range")
            n = int(t)
            if n == 0:
                return ("", "")  # before the first event
            k = self.key_of_position(n)
            if k is None:
                raise NotFound(f"there is no event number {n} (history is shorter)")
            return k
        if t.lower().startswith("b3:"):
            return self.key_of_event(t)
        ts = us_to_ts(parse_time(t))
        return (ts, AFTER_ALL) if end else (ts, "")


class StoreHistory(History):
    def __init__(self, store, batch: int = 20000):
        self.store = store
        self.batch = batch
        self.upto = store.reader.max_seq()

    def events(self, since=None, until=None, lifecycle_only=False):
        last = since_exclusive(since)
        blobs = self.store.blobs
        while True:  # keyset pagination: each page is its own short read transaction
            q = EventQuery(
                upto_seq=self.upto,
                after_key=last,
                upto_key=until,
                lifecycle=lifecycle_only,
                by="ts",
                limit=self.batch,
            )
            with self.store.read() as r:
                rows = r.events(q)
            for row in rows:
                # As the board folds it; a big blob's payload from its head (bounded memory).
                yield row.id, readable(decode(row.body), blobs, summary=True)
            if len(rows) < self.batch:
                return
            last = (rows[-1].ts, rows[-1].id)

    def key_of_event(self, prefix):
        rows = self.store.reader.find_events(normalize_event_prefix(prefix), upto_seq=self.upto)
        return _one([(r.ts, r.id) for r in rows], prefix)

    def key_of_position(self, n):
        row = self.store.reader.nth_event(n, self.upto)
        return (row.ts, row.id) if row else None


class FileHistory(History):
    """An audit file, read through the codec's reader (every line checked with the shape
    rules `import` applies; the first bad line is an IntegrityError naming it), duplicates
    (a set after git merges) dropped, in (ts, id) order. In bounded memory whatever the
    file's length: the lines are sorted into scratch runs (coord.events.sorting), and
    every walk merges them again, decoding each event as it goes."""

    def __init__(self, path):
        from .sorting import SortedEvents

        self.path = str(path)
        try:
            fh = open(path, "rb")
        except FileNotFoundError:
            raise NotFound(f"no such file: {path}") from None
        except IsADirectoryError:
            raise UsageError(f"{path} is a directory, not an audit file") from None
        self.sorted = SortedEvents()
        try:
            with fh:
                for ln in read_events(fh):
                    if ln.bad is not None:
                        raise IntegrityError(f"{path}:{ln.lineno}: {ln.bad}")
                    self.sorted.add(ln.env.ts, ln.id, ln.body)
        except BaseException:
            self.sorted.close()
            raise
        # Claim-checked payloads resolve from the blobs/ beside the file, when there is one
        # (a git checkout of .coord/), as the board folds them; else they stay references.
        blob_dir = os.path.join(os.path.dirname(os.path.abspath(self.path)), "blobs")
        self.blobs = BlobStore(blob_dir) if os.path.isdir(blob_dir) else None

    def close(self) -> None:
        self.sorted.close()

    def spawned(self) -> list[str]:
        """The ids of the workers this history spawns, sorted."""
        return sorted(
            {
                env.to
                for env in (decode(b) for _, _, b in self.sorted.items() if b"worker.spawned" in b)
                if env.type == "worker.spawned"
            }
        )

    def events(self, since=None, until=None, lifecycle_only=False):
        lo = since_exclusive(since)
        for ts, eid, body in self.sorted.items():
            if (ts, eid) <= lo:
                continue
            if until is not None and (ts, eid) > until:
                return
            env = decode(body)
            if lifecycle_only and not env.type.startswith("worker."):
                continue
            yield eid, readable(env, self.blobs, summary=True)

    def key_of_event(self, prefix):
        p = normalize_event_prefix(prefix)
        found = []
        for ts, eid, _ in self.sorted.items():
            if eid.startswith(p):
                found.append((ts, eid))
                if len(found) >= 11:
                    break
        return _one(found, prefix)

    def key_of_position(self, n):
        if n >= 1:
            for i, (ts, eid, _) in enumerate(self.sorted.items(), 1):
                if i == n:
                    return (ts, eid)
        return None


def since_exclusive(since):
    """--since K keeps events with key >= K; pagination wants the last key to skip."""
    if since is None or since == ("", ""):
        return ("", "")
    ts, eid = since
    # The greatest key below (ts, eid): drop one step in the id's last character.
    if eid in ("", AFTER_ALL):
        return (ts, eid) if eid == AFTER_ALL else (_prev_ts(ts), AFTER_ALL)
    return (ts, eid[:-1] + chr(ord(eid[-1]) - 1) + AFTER_ALL)


def _prev_ts(ts: str) -> str:
    from .envelope import ts_to_us

    return us_to_ts(ts_to_us(ts) - 1)


def _one(rows, text):
    """The (ts, id) key of the one event a prefix names."""
    eid = one_of([r[1] for r in rows], text, "event", UnknownEvent, shown=lambda i: i[:15])
    return next((ts, i) for ts, i in rows if i == eid)
