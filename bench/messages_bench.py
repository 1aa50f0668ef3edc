"""Issue 5 figures: latency from a send in one process to `coord poll --wait` returning in
another (p50, p99), and `coord search` on a store of 100,000 events against `coord log
--limit 20` on the same store (median times and their ratio).

    .venv/bin/python bench/messages_bench.py [--rounds 60] [--events 100000] [--runs 15]
"""

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COORD, bench_env, fresh_home, machine, median, pct, precompile  # noqa: E402

WORDS = (
    "parser tokenizer flaky test retry backoff merge rebase conflict review approve "
    "build deploy cache index query latency timeout socket thread lock queue worker agent "
    "schema migration branch commit patch diff lint format coverage fixture mock stub "
    "crash signal memory leak profile benchmark regression bisect release tag"
).split()


def latency(rounds: int) -> dict:
    """Each round: a fresh `coord poll --wait` process blocks; this process (a different
    one) sends through the library; the clock stops when the waiter's line arrives."""
    from coord.app import messages
    from coord.app.context import Coord

    home = fresh_home("coord-bench-msg-")
    env = bench_env(COORD_HOME=str(home))
    out = []
    with Coord(home, actor="sender") as c:
        for i in range(rounds):
            w = subprocess.Popen(
                [COORD, "--as", "waiter", "poll", "--wait", "30", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(0.4)  # start-up done; it is now sleeping between looks
            t0 = time.perf_counter()
            messages.send(c, "waiter", "ping", {"i": i})
            line = w.stdout.readline()
            t1 = time.perf_counter()
            w.wait()
            assert json.loads(line)["payload"] == {"i": i}, line
            out.append(t1 - t0)
    return {
        "rounds": rounds,
        "p50_ms": pct(out, 50) * 1e3,
        "p99_ms": pct(out, 99) * 1e3,
        "max_ms": max(out) * 1e3,
    }


def build_store(n: int, batch: int = 2000) -> Path:
    """n events through the library's append path (projectors included), in batches."""
    from coord.app.context import Coord
    from coord.events.envelope import Envelope

    rnd = random.Random(5)
    home = fresh_home("coord-bench-search-")
    agents = [f"agent-{i}" for i in range(20)]
    t = time.perf_counter()
    with Coord(home) as c:
        done = 0

        def append(tx, start, k):
            for i in range(start, start + k):
                text = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(5, 40)))
                env = Envelope(
                    tx.next_ts(),
                    rnd.choice(agents),
                    rnd.choice(agents + ["*"]),
                    "msg." + rnd.choice(("note", "review_request", "answer", "status")),
                    {"text": text, "n": i},
                )
                tx.append(env)

        while done < n:
            k = min(batch, n - done)
            c.store.transact(lambda tx, start=done, k=k: append(tx, start, k))
            done += k
    return home, time.perf_counter() - t


def search_vs_log(n: int, runs: int) -> dict:
    home, build_s = build_store(n)
    env = bench_env(COORD_HOME=str(home))
    cmds = {
        "search rare": [COORD, "search", "bisect AND regression AND socket", "--limit", "20"],
        "search common": [COORD, "search", "parser", "--limit", "20"],
        "search phrase": [COORD, "search", '"flaky test"', "--limit", "20"],
        "log --limit 20": [COORD, "log", "--limit", "20"],
    }
    for cmd in cmds.values():  # warm caches
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    times = {k: [] for k in cmds}
    for _ in range(runs):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[k].append(time.perf_counter() - t)
    med = {k: median(v) for k, v in times.items()}
    return {
        "events": n,
        "build_s": build_s,
        "runs": runs,
        "median_ms": {k: v * 1e3 for k, v in med.items()},
        "ratio_to_log": {k: med[k] / med["log --limit 20"] for k in med},
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=15)
    a = ap.parse_args()
    precompile()
    res = {"machine": machine(), "latency": latency(a.rounds), "search": search_vs_log(a.events, a.runs)}
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
