"""Events in (ts, id) order, each id once, in bounded memory: an external merge sort for
files of any length (`import`, `init` from a checked-out audit file, `replay --from-file`).

Items are (ts, id, body) triples. Up to CHUNK are held at once; a full chunk is sorted and
written to a scratch file of its own (a run, private to this user, removed when closed);
reading merges the runs. The same id has the same bytes and so the same ts, so duplicates
(a file after git's union merge) are neighbours in the merged order and dropped there.
"""

import heapq
import tempfile

# Lines held in memory at once (about 15-25 MB for audit lines of a few hundred bytes).
CHUNK = 20_000


class SortedEvents:
    """Add triples with `add`, then iterate (as often as needed) with `items()`; `close()`
    removes the runs (also on `with`)."""

    def __init__(self, chunk: int = CHUNK):
        self.chunk = chunk
        self.pending: list = []
        self.runs: list = []  # NamedTemporaryFile, each sorted
        self.added = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def add(self, ts: str, eid: str, body: bytes) -> None:
        self.pending.append((ts, eid, body))
        self.added += 1
        if len(self.pending) >= self.chunk:
            self._spill()

    def _spill(self) -> None:
        self.pending.sort()
        f = tempfile.NamedTemporaryFile(prefix="coord-sort-", suffix=".run")  # mode 0600
        # ts and id hold no tab and a body no newline (each was one checked line).
        f.writelines(b"%s\t%s\t%s\n" % (ts.encode(), eid.encode(), body) for ts, eid, body in self.pending)
        f.flush()
        self.runs.append(f)
        self.pending = []

    def items(self):
        """(ts, id, body) in (ts, id) order, each id once."""
        if not self.runs:
            self.pending.sort()
            merged = iter(self.pending)
            files = []
        else:
            if self.pending:
                self._spill()
            files = [open(r.name, "rb") for r in self.runs]  # each walk its own offsets
            merged = heapq.merge(*(_read_run(f) for f in files))
        try:
            last = None
            for item in merged:
                if item[1] != last:
                    last = item[1]
                    yield item
        finally:
            for f in files:
                f.close()

    def close(self) -> None:
        for r in self.runs:
            r.close()
        self.runs = []
        self.pending = []


def _read_run(f):
    for line in f:
        ts, eid, body = line[:-1].split(b"\t", 2)
        yield ts.decode(), eid.decode(), body
