"""Audit trail benchmark (issue 3).

1. Export of 1,000 new events onto a log of N events, against the same export onto an
   empty log: the ratio (target ≤ 1.5×; the export must cost in proportion to the new
   events, not the log).
2. `coord import` (building a store from an N-line events.jsonl, as `coord init` in a
   fresh clone does) and `coord verify` rates, in events/s, on N events.

The N-event log is generated in bulk with valid hashes (workers going spawn → start →
done → approve → merge), not with N CLI calls.

    .venv/bin/python bench/audit_bench.py            # N = 1,000,000
    .venv/bin/python bench/audit_bench.py --n 200000
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from coord.app.admin import init
from coord.app.context import Coord
from coord.app.verification import verify
from coord.events.audit_read import import_bodies, read_checked
from coord.events.codec import audit_line
from coord.events.envelope import Envelope, canonical, event_id, us_to_ts
from coord.events.records import AUDIT_WRITTEN

STEPS = [
    ("worker.spawned", "human:bench", lambda w: {"task": f"task {w}"}),
    ("worker.started", "agent-{a}", lambda w: {"clone": "bench"}),
    ("worker.done", "agent-{a}", lambda w: {"summary": "done"}),
    ("worker.approved", "reviewer", lambda w: {}),
    ("worker.merged", "reviewer", lambda w: {"commit": "0" * 40}),
]


def generate(path: Path, n: int, start_us: int) -> int:
    """Write an n-line events.jsonl with valid ids; returns the last ts used."""
    us = start_us
    with open(path, "wb") as f:
        buf = []
        for i in range(n):
            w, step = divmod(i, len(STEPS))
            etype, frm, payload = STEPS[step]
            us += 1
            env = Envelope(us_to_ts(us), frm.format(a=w % 8), f"w{w}", etype, payload(w))
            body = canonical(env)
            buf.append(audit_line(event_id(body), body))
            if len(buf) >= 10000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    return us


def add_dirty(c: Coord, k: int, tag: str):
    """Commit k new events without exporting them (they are dirty)."""

    def append(tx):
        for i in range(k):
            tx.append(Envelope(tx.next_ts(), "human:bench", f"{tag}-{i}", "worker.spawned", {"task": "new"}))

    c.store.transact(append, hooks=False)


def time_export(c: Coord, k: int, rounds: int, tag: str) -> float:
    times = []
    for r in range(rounds):
        add_dirty(c, k, f"{tag}{r}")
        t0 = time.perf_counter()
        res = c.audit.export()
        times.append(time.perf_counter() - t0)
        assert res.written == k and not res.scanned, res
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000, help="events in the big log")
    ap.add_argument("--new", type=int, default=1000, help="new events per export")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="coord-audit-bench-") as tmp:
        tmp = Path(tmp)
        big = tmp / "big" / ".coord"
        big.mkdir(parents=True)
        t0 = time.perf_counter()
        generate(big / "events.jsonl", args.n, 1_700_000_000_000_000)
        gen_s = time.perf_counter() - t0
        size = (big / "events.jsonl").stat().st_size
        print(f"generated {args.n:,} events ({size / 1e6:.0f} MB) in {gen_s:.1f}s")

        # import: check every line, then append in batches (what `coord init` does here)
        t0 = time.perf_counter()
        pairs = read_checked(big / "events.jsonl").new
        check_s = time.perf_counter() - t0
        home, _ = init(big.parent / ".coord-store")  # an empty home, then import into it
        c = Coord(home)
        c.home.audit_path.write_bytes((big / "events.jsonl").read_bytes())
        t1 = time.perf_counter()
        added = import_bodies(c.store, pairs, AUDIT_WRITTEN)
        c.audit.adopt()
        import_s = time.perf_counter() - t1
        del pairs
        assert added == args.n
        total_import = check_s + import_s
        print(
            f"import: {args.n:,} events in {total_import:.1f}s = {args.n / total_import:,.0f} events/s "
            f"(line checks {check_s:.1f}s, appends+folds {import_s:.1f}s)"
        )

        t0 = time.perf_counter()
        rep = verify(c)
        verify_s = time.perf_counter() - t0
        assert rep.ok, rep.problems[:3]
        print(f"verify: {args.n:,} events in {verify_s:.1f}s = {args.n / verify_s:,.0f} events/s")

        empty, _ = init(tmp / "empty" / ".coord")
        e = Coord(empty)
        t_big = time_export(c, args.new, args.rounds, "big")
        t_empty = time_export(e, args.new, args.rounds, "empty")
        print(
            f"export of {args.new:,} new events: onto {args.n:,} events {t_big * 1000:.1f} ms, "
            f"onto an empty log {t_empty * 1000:.1f} ms, ratio {t_big / t_empty:.2f}x (target <= 1.5x)"
        )
        assert verify(e).ok and verify(c, checks=None).ok
        c.close()
        e.close()


if __name__ == "__main__":
    main()
