"""Issue 19: `ready`, `poll` and `show` flat from 1,000 to 10,000 workers.

For each size a store is made in one transaction by this tree's coord: workers spawned
with priorities 0-4, a third of them waiting for the worker before; a quarter left
ASSIGNED (the ready queue, and those that wait), a quarter WORKING with a heartbeat, a
quarter IN_REVIEW, a quarter COMPLETED; one message from each worker to its agent. The
first 1,000 workers go to 50 agents, the rest to 450 others, so the agent polled
(agent-7) holds 20 workers and has 20 messages at every size: what grows is the store.
(`poll` reads the messages to every worker the agent holds, in any state: its cost grows
with that number, not with the store's.) Then, alternating, median of --runs:

- in process (ms a call, the store open): `ready_items(limit 20)`, the pending messages
  of one agent (limit 20), `show`'s worker_detail;
- as whole processes: `coord ready --limit 20`, `coord poll --peek --limit 20`,
  `coord show w-5`, with `coord log --limit 20` as the baseline.

Prints each figure at both sizes and large/small (flat: ≈ 1.0, the target ≤ ~1.2).

    .venv/bin/python bench/flat_bench.py [--sizes 1000 10000] [--runs 9]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env  # noqa: E402

MAKE = """
import sys
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.envelope import Envelope
p, n = sys.argv[1], int(sys.argv[2])
init(p)
def fill(tx):
    def ev(frm, to, etype, payload):
        tx.append(Envelope(tx.next_ts(), frm, to, etype, payload))
    for i in range(n):
        w = f"w-{i}"
        a = f"agent-{i % 50}" if i < 1000 else f"agent-{50 + i % 450}"
        p = {"task": f"task {i}", "priority": i % 5}
        if i % 3 == 1:
            p["after"] = [f"w-{i - 1}"]
        ev("human:lead", w, "worker.spawned", p)
        ev(w, a, "msg.note", {"text": f"note {i} for {a}"})
        if i % 4 == 0:
            continue
        ev(a, w, "worker.started", {"clone": "bench"})
        ev(a, w, "worker.heartbeat", {"interval": 60})
        if i % 4 >= 2:
            ev(a, w, "worker.done", {"summary": "done"})
        if i % 4 == 3:
            ev("reviewer", w, "worker.approved", {})
            ev("reviewer", w, "worker.merged", {"commit": "0" * 40})
with Coord(p, actor="human:lead") as c:
    c.store.transact(fill, hooks=False)
"""

INPROC = """
import statistics, sys, time
from coord.app.context import Coord
from coord.app import messages
from coord.app.queries import ready_items, worker_detail
from coord.events.envelope import now_us
p, runs = sys.argv[1], int(sys.argv[2])
calls = {
    "ready --limit 20": lambda c: ready_items(c, 20),
    "poll (pending, limit 20)": lambda c: messages.pending(c, "agent-7", (), 20),
    "show w-5": lambda c: worker_detail(c, "w-5", now_us()),
}
out = {k: [] for k in calls}
with Coord(p, actor="agent-7") as c:
    for f in calls.values():
        f(c)
    for _ in range(runs):
        for k, f in calls.items():
            t = time.perf_counter()
            for _ in range(20):
                f(c)
            out[k].append((time.perf_counter() - t) / 20)
for k, v in out.items():
    print(k, statistics.median(v) * 1000)
"""

PROCS = {
    "log --limit 20": ["log", "--limit", "20"],
    "ready --limit 20": ["ready", "--limit", "20"],
    "poll --peek --limit 20": ["--as", "agent-7", "poll", "--peek", "--limit", "20"],
    "show w-5": ["show", "w-5"],
}


def make(home: Path, n: int) -> None:
    subprocess.run([sys.executable, "-c", MAKE, str(home), str(n)], env=bench_env(), check=True)


def inproc(home: Path, runs: int) -> dict:
    r = subprocess.run(
        [sys.executable, "-c", INPROC, str(home), str(runs)],
        env=bench_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in r.stdout.splitlines()}


def procs(homes: dict, runs: int) -> dict:
    times = {(n, k): [] for n in homes for k in PROCS}
    for r in range(runs):
        for n in homes if r % 2 == 0 else list(homes)[::-1]:
            for k, args in PROCS.items():
                t = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "coord", "--home", str(homes[n]), *args],
                    env=bench_env(),
                    stdout=subprocess.DEVNULL,
                    check=True,
                )
                times[(n, k)].append(time.perf_counter() - t)
    return {key: statistics.median(v) * 1000 for key, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    ap.add_argument("--runs", type=int, default=9)
    a = ap.parse_args(argv)
    small, large = a.sizes
    with tempfile.TemporaryDirectory(prefix="coord-flat-") as tmp:
        homes = {n: Path(tmp) / str(n) / ".coord" for n in (small, large)}
        for n, h in homes.items():
            make(h, n)
        ins = {n: [] for n in homes}
        for r in range(3):  # alternating sizes, each a process of `runs` medians
            for n in homes if r % 2 == 0 else list(homes)[::-1]:
                ins[n].append(inproc(homes[n], a.runs))
        inp = {n: {k: statistics.median(d[k] for d in v) for k in v[0]} for n, v in ins.items()}
        pr = procs(homes, a.runs)
    print(f"| figure (median) | {small:,} workers | {large:,} workers | {large:,} / {small:,} |")
    print("|---|---|---|---|")
    for k in inp[small]:
        x, y = inp[small][k], inp[large][k]
        print(f"| in process: {k}, ms a call | {x:.2f} | {y:.2f} | {y / x:.2f}× |")
    for k in PROCS:
        x, y = pr[(small, k)], pr[(large, k)]
        print(f"| process: coord {k}, ms | {x:.0f} | {y:.0f} | {y / x:.2f}× |")


if __name__ == "__main__":
    main()
