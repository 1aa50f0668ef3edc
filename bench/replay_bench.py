"""Replay bench: `coord replay --at` against a full `coord rebuild` on the same store, as a
ratio measured in one run (issue 7). The store is built through the library's one write
path (Tx.append, projector included), in batches of 10,000 events per transaction.

Usage: .venv/bin/python bench/replay_bench.py [--events N] [--home DIR]
Default N = 1,000,000. Each worker: spawn, start, heartbeats, done, approve, merge, and
one message; so ~85% of events are lifecycle events the board folds.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_WORKER_BEATS = 40


def build(home: Path, n: int) -> int:
    from coord.app.admin import init
    from coord.app.context import Coord
    from coord.events.envelope import Envelope

    init(home)
    made = 0
    w = 0
    t = time.perf_counter()

    def steps_of(w):
        wid = f"w-{w}"
        agent = f"agent-{w % 50}"
        seq = (
            [
                ("human:lead", "worker.spawned", {"task": f"task {w}"}),
                (agent, "worker.started", {"clone": "bench"}),
            ]
            + [(agent, "worker.heartbeat", {"interval": 60})] * PER_WORKER_BEATS
            + [
                (agent, "worker.done", {"summary": "ok"}),
                ("reviewer", "msg.review", None),
                ("reviewer", "worker.approved", {}),
                ("reviewer", "worker.merged", {}),
            ]
        )
        return [("*" if p is None else wid, actor, etype, p or {"w": wid}) for actor, etype, p in seq]

    def append(tx, part):
        for to, actor, etype, payload in part:
            tx.append(Envelope(tx.next_ts(), actor, to, etype, payload))

    with Coord(home) as c:
        while made < n:
            part = []
            while len(part) < 10_000 and made + len(part) < n:
                part += steps_of(w)
                w += 1
            c.store.transact(lambda tx, part=part: append(tx, part))
            made += len(part)
            print(f"\r  built {made}/{n} events ({time.perf_counter() - t:.0f}s)", end="", file=sys.stderr)
    print(file=sys.stderr)
    return made


def timed(args, env) -> float:
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "coord", *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"coord {' '.join(args)} failed: {r.stderr}")
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--home", help="reuse/keep the store here (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    tmp = None
    if a.home:
        home = Path(a.home)
    else:
        tmp = tempfile.TemporaryDirectory()
        home = Path(tmp.name) / ".coord"
    if not (home / "coord.db").exists():
        t = time.perf_counter()
        made = build(home, a.events)
        print(f"built {made} events in {time.perf_counter() - t:.1f}s")
    env = dict(os.environ, COORD_HOME=str(home))
    import sqlite3

    con = sqlite3.connect(str(home / "coord.db"))
    total = con.execute("SELECT count(*) FROM events").fetchone()[0]
    mid = con.execute("SELECT ts FROM events ORDER BY ts, id LIMIT 1 OFFSET ?", (total // 2,)).fetchone()[0]
    con.close()
    rows = []
    for name, args in (
        ("rebuild", ["rebuild"]),
        ("replay --at END", ["replay", "--at", str(total)]),
        ("replay --at MIDDLE", ["replay", "--at", mid]),
        ("replay --at END --json", ["replay", "--at", str(total), "--json"]),
    ):
        best = min(timed(args, env) for _ in range(a.repeat))
        rows.append((name, best))
    base = rows[0][1]
    print(f"\nstore: {total} events\n")
    print(f"{'command':<26} {'best of ' + str(a.repeat):>10} {'vs rebuild':>11}")
    for name, s in rows:
        print(f"{name:<26} {s:>9.2f}s {s / base:>10.2f}x")


if __name__ == "__main__":
    main()
