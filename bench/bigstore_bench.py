"""Issue 8 figures on one big store: `coord import` of an N-line audit file against raw
`executemany` of the same rows; a rebuild of the worker views against only reading and
decoding the same events; and `status`, `poll`, `search` against `coord log --limit 20`.

The store is built once, by the import being measured: a generated audit file of W
workers (spawn, start, heartbeats from the holder, messages with text to agents, to '*'
and to the worker, and an end that leaves ~40% COMPLETED, ~20% IN_REVIEW, ~10% CANCELED,
~30% WORKING), imported by a real `coord import` process into a fresh home.

    .venv/bin/python bench/bigstore_bench.py [--workers 10000] [--events 1000000] [--runs 9]
"""

import argparse
import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COORD, bench_env, fresh_home, median  # noqa: E402
from messages_bench import WORDS  # noqa: E402

AGENTS = 50
START_US = 1_700_000_000_000_000


def _worker_events(w: int, k: int, rnd: random.Random):
    """k (from, to, type, payload) tuples for worker w, in order."""
    wid, agent = f"w-{w}", f"agent-{w % AGENTS}"
    fate = w % 10
    tail = (
        [
            (agent, wid, "worker.done", {"summary": "done"}),
            ("reviewer", wid, "worker.approved", {}),
            ("reviewer", wid, "worker.merged", {"commit": "0" * 40}),
        ]
        if fate < 4
        else [(agent, wid, "worker.done", {"summary": "ready"})]
        if fate < 6
        else [("human:lead", wid, "worker.canceled", {"reason": "obsolete"})]
        if fate < 7
        else []
    )
    head = [
        ("human:lead", wid, "worker.spawned", {"task": f"task {w}: " + " ".join(rnd.choices(WORDS, k=6))}),
        (agent, wid, "worker.started", {"clone": "bench"}),
    ]
    middle = []
    for i in range(max(0, k - len(head) - len(tail))):
        if i % 2 == 0:
            middle.append((agent, wid, "worker.heartbeat", {"interval": 60}))
        else:
            to = rnd.choice((f"agent-{rnd.randrange(AGENTS)}", f"agent-{rnd.randrange(AGENTS)}", wid, "*"))
            text = " ".join(rnd.choices(WORDS, k=rnd.randint(5, 30)))
            middle.append((agent, to, "msg.note", {"text": text}))
    return (head + middle + tail)[:k]


def generate(path: Path, workers: int, events: int, seed: int = 8) -> int:
    """Write an audit file (valid ids) of about `events` events over `workers` workers;
    returns how many lines were written."""
    from coord.events.codec import audit_line
    from coord.events.envelope import Envelope, canonical, event_id, us_to_ts

    rnd = random.Random(seed)
    per = max(2, events // workers)
    us, n = START_US, 0
    with open(path, "wb") as f:
        buf = []
        for w in range(workers):
            for frm, to, etype, payload in _worker_events(w, per, rnd):
                us += 1
                body = canonical(Envelope(us_to_ts(us), frm, to, etype, payload))
                buf.append(audit_line(event_id(body), body))
                n += 1
            if len(buf) >= 20000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    return n


def raw_rows(path: Path):
    """The rows `coord import` stores, parsed from the file (not timed)."""
    from coord.events.codec import check_line
    from coord.events.envelope import decode

    rows = []
    with open(path, "rb") as f:
        for seq, line in enumerate(f, 1):
            eid, body = check_line(line)
            env = decode(body)
            worker = env.to if env.type.startswith("worker.") else None
            rows.append((seq, eid, env.ts, env.from_, env.to, env.type, worker, body, "import", 1))
    return rows


def import_vs_executemany(path: Path, n: int) -> tuple[dict, Path]:
    """`coord import FILE` as a whole process into a fresh home (check every line, append
    and project in batches, write the audit file) against one raw `executemany` of the same
    rows into the same events table, one transaction, same pragmas. Returns the figures
    and the imported home (the big store for the other rows)."""
    home = fresh_home("coord-bench-big-")
    t = time.perf_counter()
    r = subprocess.run(
        [COORD, "import", str(path), "--json"],
        env=bench_env(COORD_HOME=str(home)),
        capture_output=True,
        text=True,
    )
    coord_s = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"coord import failed: {r.stderr}")
    assert json.loads(r.stdout)["imported"] == n, r.stdout
    rows = raw_rows(path)
    raw_home = fresh_home("coord-bench-raw-")
    conn = sqlite3.connect(str(raw_home / "coord.db"), isolation_level=None)
    conn.execute("PRAGMA synchronous = FULL")
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        'INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin, audit) '
        "VALUES (?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute("COMMIT")
    raw_s = time.perf_counter() - t
    conn.close()
    del rows
    return {
        "events": n,
        "coord_s": coord_s,
        "raw_s": raw_s,
        "coord_per_s": n / coord_s,
        "raw_per_s": n / raw_s,
        "ratio": raw_s / coord_s,
    }, home


def read_decode(store) -> int:
    """What a rebuild must at least do: the same keyset-paginated SELECT of the worker
    events and a msgspec decode of each envelope, folding nothing."""
    from rebuild_bench import LIFECYCLE
    from rebuild_bench import read_decode as rd

    return rd(store, LIFECYCLE, True)


def rebuild_vs_read(home: Path, repeat: int = 1) -> dict:
    """The worker-view rebuild (board.rebuild: read, decode, fold, swap the table in)
    against read_decode on the same store, and the search index's rebuild against reading
    and decoding the rows it indexes (bench/rebuild_bench.py); best of `repeat`,
    alternating."""
    from rebuild_bench import INDEXED
    from rebuild_bench import read_decode as rd

    from coord.app.context import Coord
    from coord.projections import board, search

    best_r = best_d = best_s = best_sd = float("inf")
    with Coord(home) as c:
        for _ in range(repeat):
            t = time.perf_counter()
            folded = board.rebuild(c.store)
            best_r = min(best_r, time.perf_counter() - t)
            t = time.perf_counter()
            read = read_decode(c.store)
            best_d = min(best_d, time.perf_counter() - t)
            t = time.perf_counter()
            search.rebuild(c.store)
            best_s = min(best_s, time.perf_counter() - t)
            t = time.perf_counter()
            indexed = rd(c.store, INDEXED, False)
            best_sd = min(best_sd, time.perf_counter() - t)
        assert folded == read, (folded, read)
        total = c.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    t = time.perf_counter()  # the whole command: views and the search index, one process
    subprocess.run([COORD, "rebuild"], env=bench_env(COORD_HOME=str(home)), check=True, capture_output=True)
    full_s = time.perf_counter() - t
    return {
        "events": folded,
        "rebuild_per_s": folded / best_r,
        "read_per_s": read / best_d,
        "ratio": best_d / best_r,
        "search_rows": indexed,
        "search_per_s": indexed / best_s,
        "search_read_per_s": indexed / best_sd,
        "search_ratio": best_sd / best_s,
        "all_events": total,
        "cli_rebuild_s": full_s,
        "cli_rebuild_per_s": total / full_s,
    }


VIEW_COMMANDS = {
    "log": ["log", "--limit", "20"],
    "status": ["status"],
    "status --all": ["status", "--all"],
    "poll": ["--as", "agent-7", "poll", "--peek", "--limit", "20"],
    "search": ["search", "flaky AND regression", "--limit", "20"],
}


def views_vs_log(home: Path, runs: int) -> dict:
    """Each command as a whole `coord` process, alternating, median of `runs`."""
    env = bench_env(COORD_HOME=str(home))
    for args in VIEW_COMMANDS.values():  # warm the page cache; check each works
        subprocess.run([COORD, *args], env=env, check=True, stdout=subprocess.DEVNULL)
    times = {k: [] for k in VIEW_COMMANDS}
    for _ in range(runs):
        for k, args in VIEW_COMMANDS.items():
            t = time.perf_counter()
            subprocess.run([COORD, *args], env=env, check=True, stdout=subprocess.DEVNULL)
            times[k].append(time.perf_counter() - t)
    med = {k: median(v) * 1e3 for k, v in times.items()}
    con = sqlite3.connect(str(home / "coord.db"))
    workers = con.execute("SELECT count(*) FROM workers").fetchone()[0]
    active = con.execute(
        "SELECT count(*) FROM workers WHERE state NOT IN ('COMPLETED', 'CANCELED')"
    ).fetchone()[0]
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    con.close()
    return {
        "runs": runs,
        "median_ms": med,
        "ratio_to_log": {k: med[k] / med["log"] for k in med},
        "workers": workers,
        "shown_by_status": active,
        "events": events,
    }


def big_store(tmp: Path, workers: int, events: int, runs: int, rebuild_repeat: int = 1) -> dict:
    """All the big-store rows, in one run on one store."""
    path = tmp / "bench-events.jsonl"
    t = time.perf_counter()
    n = generate(path, workers, events)
    gen_s = time.perf_counter() - t
    imp, home = import_vs_executemany(path, n)
    imp["generate_s"] = gen_s
    path.unlink()
    return {
        "import": imp,
        "views": views_vs_log(home, runs),
        "rebuild": rebuild_vs_read(home, rebuild_repeat),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--rebuild-repeat", type=int, default=1)
    a = ap.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="coord-bench-") as tmp:
        tempfile.tempdir = tmp  # the homes too, so they are removed at the end
        print(json.dumps(big_store(Path(tmp), a.workers, a.events, a.runs, a.rebuild_repeat), indent=2))


if __name__ == "__main__":
    main()
