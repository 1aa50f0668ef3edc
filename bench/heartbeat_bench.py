"""Heartbeats and liveness (issue 4): what a heartbeat costs, and whether piles of them slow
the read commands.

Measures, in one run, against baselines from the same run:
  1. one heartbeat as a whole `coord heartbeat` process (and bare `python -c pass` start-up);
  2. heartbeats from `coord run`'s heartbeat thread (appends/s, its own connection);
  3. `coord status` / `show` / `log --limit` with W workers x B heartbeats each against
     W workers x 1 heartbeat (target: status ratio <= 1.2x), and one worker that beat
     60,000 times (a week at 10 s) against one that beat once.
Big stores are built through the library API (Tx.append, the one write path) in batches.

Usage: .venv/bin/python bench/heartbeat_bench.py [--workers 1000] [--beats 100] [--runs 7]
"""

import argparse
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coord.app import lifecycle
from coord.app.admin import init
from coord.app.context import Coord
from coord.app.heartbeats import HeartbeatThread
from coord.events.envelope import Envelope

ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "COORD_AGENT", "COORD_WORKER")
}


def timed(argv, runs, env=None):
    """Median and min wall time of a command, in ms."""
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ts.append((time.perf_counter() - t0) * 1000)
        if r.returncode != 0:
            raise SystemExit(f"{argv} failed: {r.stderr.decode()}")
    return statistics.median(ts), min(ts)


def compare(argv1, argv2, runs):
    """Interleaved runs of two commands (so drift on a shared machine hits both alike):
    (median1, median2, min1, min2) in ms."""
    t1, t2 = [], []
    for _ in range(runs):
        for argv, ts in ((argv1, t1), (argv2, t2)):
            t0 = time.perf_counter()
            r = subprocess.run(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ts.append((time.perf_counter() - t0) * 1000)
            if r.returncode != 0:
                raise SystemExit(f"{argv} failed: {r.stderr.decode()}")
    return statistics.median(t1), statistics.median(t2), min(t1), min(t2)


def coord(home, *args):
    return [sys.executable, "-m", "coord", "--home", str(home), *args]


def build(path: Path, workers: int, beats: int, extra_beats: int = 0, batch: int = 2000) -> Path:
    """W started workers, each with `beats` heartbeats interleaved round-robin (as they would
    arrive), plus optionally one worker 'week' with `extra_beats` heartbeats."""
    home, _ = init(path / ".coord")
    t0 = time.perf_counter()
    with Coord(home, actor="bench") as c:
        clone = c.clone_id
        names = [f"w-{i:05d}" for i in range(workers)]

        def events():
            for w in names:
                yield Envelope("", "lead", w, "worker.spawned", {"task": f"task {w}"})
                yield Envelope("", "agent-" + w, w, "worker.started", {"clone": clone})
            for r in range(beats):
                for w in names:
                    yield Envelope(
                        "", "agent-" + w, w, "worker.heartbeat", {"interval": 10.0, "idle_s": float(r % 7)}
                    )
            if extra_beats:
                yield Envelope("", "lead", "week", "worker.spawned", {"task": "a week of beats"})
                yield Envelope("", "agent-week", "week", "worker.started", {"clone": clone})
                for _ in range(extra_beats):
                    yield Envelope(
                        "", "agent-week", "week", "worker.heartbeat", {"interval": 10.0, "idle_s": 1.0}
                    )

        todo = list(events())
        n = 0

        def append(tx, part):
            for e in part:
                tx.append(Envelope(tx.next_ts(), e.from_, e.to, e.type, e.payload))

        for i in range(0, len(todo), batch):
            c.store.transact(lambda tx, part=todo[i : i + batch]: append(tx, part))
            n += len(todo[i : i + batch])
    print(f"  built {path.name}: {n} events in {time.perf_counter() - t0:.1f}s", flush=True)
    return home.path


def thread_rate(home: Path, seconds: float) -> float:
    """Appends/s from the real HeartbeatThread beating back to back."""
    with Coord(home, actor="hb") as c:
        lifecycle.act(c, "spawn", "hb", {})
        lifecycle.act(c, "start", "hb", {})
        inbox, outbox = queue.Queue(), queue.Queue()
        t = HeartbeatThread(lambda: c.twin("hb"), "hb", 1e-9, time.monotonic(), inbox, outbox)
        t0 = time.perf_counter()
        t.start()
        time.sleep(seconds)
        inbox.put(("stop", None))
        t.join()
        took = time.perf_counter() - t0
        assert outbox.empty(), outbox.get()
        return t.beats / took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--beats", type=int, default=100)
    ap.add_argument("--week", type=int, default=60000, help="heartbeats of the one long-lived worker")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(__file__).parents[1] / "src")],
        env=ENV,
        check=False,
        stdout=subprocess.DEVNULL,
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("1. one heartbeat as a whole process")
        small = build(tmp / "small", 1, 1)
        py_ms, _ = timed([sys.executable, "-c", "pass"], a.runs)
        hb_ms, hb_min = timed(
            coord(small, "--as", "agent-w-00000", "heartbeat", "w-00000", "--note", "x"), a.runs * 3
        )
        print(f"  python -c pass          {py_ms:7.1f} ms")
        print(
            f"  coord heartbeat         {hb_ms:7.1f} ms  (min {hb_min:.1f})  = {1000 / hb_ms:6.1f} appends/s"
        )
        print("2. heartbeats from the heartbeat thread (own connection, synchronous=FULL)")
        rate = thread_rate(small, 3.0)
        print(
            f"  HeartbeatThread         {1000 / rate:7.2f} ms  = {rate:6.0f} appends/s  "
            f"({rate / (1000 / hb_ms):.0f}x the process)"
        )

        print(f"3. reads with {a.workers} workers x {a.beats} heartbeats vs x 1")
        one = build(tmp / "one", a.workers, 1)
        many = build(tmp / "many", a.workers, a.beats)
        week = build(tmp / "week", a.workers, 1, extra_beats=a.week)
        mid = f"w-{a.workers // 2:05d}"
        rows = [
            ("status", ("status",)),
            ("status --json", ("--json", "status")),
            ("status --stale", ("status", "--stale")),
            (f"show {mid}", ("show", mid)),
            ("log --limit 20", ("log", "--limit", "20")),
            (f"log --worker {mid} --limit 20", ("log", "--worker", mid, "--limit", "20")),
        ]
        head = f"  {'command':<32} {'base ms':>8} {'piled ms':>9} {'ratio':>6} {'min ratio':>9}"
        print(head + f"   (base: x1, piled: x{a.beats})")
        for name, args in rows:
            m1, m2, n1, n2 = compare(coord(one, *args), coord(many, *args), a.runs)
            print(f"  {name:<32} {m1:8.1f} {m2:9.1f} {m2 / m1:5.2f}x {n2 / n1:8.2f}x")
        print(f"4. one worker with {a.week} heartbeats (a week at 10 s) among {a.workers} with 1")
        print(head + "   (base: a worker with 1 beat, piled: 'week')")
        for name, args, args_base in [
            ("show week vs show w-00000", ("show", "week"), ("show", "w-00000")),
            ("status week vs status w-00000", ("status", "week"), ("status", "w-00000")),
            (
                "log --worker week --limit 20",
                ("log", "--worker", "week", "--limit", "20"),
                ("log", "--worker", "w-00000", "--limit", "20"),
            ),
        ]:
            m1, m2, n1, n2 = compare(coord(week, *args_base), coord(week, *args), a.runs)
            print(f"  {name:<32} {m1:8.1f} {m2:9.1f} {m2 / m1:5.2f}x {n2 / n1:8.2f}x")
        print("5. show's history query in-process (no start-up): with and without the partial index")
        history_query(week)


def history_query(home: Path, reps: int = 20):
    """The query `show` runs, timed on a worker with 1 beat and on 'week'; then again after
    dropping migration 0004's partial index (what it saves)."""
    import sqlite3

    from coord.app.queries import HISTORY_SHOWN
    from coord.events.records import EventQuery
    from coord.events.sqlite_reads import event_query_sql

    con = sqlite3.connect(str(home / "coord.db"))
    try:
        for label in ("partial index", "index dropped"):
            for w in ("w-00000", "week"):
                sql, args = event_query_sql(
                    EventQuery(worker=w, heartbeats=False, by="ts", last=True, limit=HISTORY_SHOWN)
                )
                t0 = time.perf_counter()
                for _ in range(reps):
                    con.execute(sql, args).fetchall()
                print(f"  {label:<14} history of {w:<8} {(time.perf_counter() - t0) / reps * 1000:8.3f} ms")
            con.execute("DROP INDEX IF EXISTS events_worker_transitions")
    finally:
        con.close()


if __name__ == "__main__":
    main()
