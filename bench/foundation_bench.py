"""Issue 2 figures: CLI start-up against two floors, in-process append against raw
sqlite3, and 8 competing writer processes.

    .venv/bin/python bench/foundation_bench.py [--runs 30] [--appends 2000] [--per-writer 200]
"""

import argparse
import json
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COORD, bench_env, durable_beats, fresh_home, machine, median, pct, precompile  # noqa: E402

# The floors do what `coord heartbeat` does to the database (one row, same pragmas, one
# BEGIN IMMEDIATE transaction) and nothing else.
FLOOR = textwrap.dedent("""
    import sqlite3, sys, time, os
    {imports}
    db = sys.argv[1]
    c = sqlite3.connect(db, isolation_level=None, timeout=10)
    c.execute("PRAGMA busy_timeout = 10000"); c.execute("PRAGMA synchronous = FULL")
    c.execute("BEGIN IMMEDIATE")
    seq = c.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    body = ('{{"ts":"%d","from":"a","to":"w-1","type":"worker.heartbeat","payload":{{}}}}' % time.time_ns()).encode()
    c.execute('INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin) VALUES (?,?,?,?,?,?,?,?,?)',
              (seq, "b3:%d-%d" % (os.getpid(), seq), str(time.time_ns()), "a", "w-1", "worker.heartbeat", "w-1", body, "local"))
    c.execute("COMMIT")
""")


def startup(runs: int) -> dict:
    precompile()
    tmp = Path(tempfile.mkdtemp(prefix="coord-floor-"))
    libs = tmp / "libs.py"
    libs.write_text(FLOOR.format(imports="import click, msgspec, blake3"))
    stdlib = tmp / "stdlib.py"
    stdlib.write_text(FLOOR.format(imports=""))
    home = durable_beats(fresh_home())  # the floors commit at FULL: so does this heartbeat
    floor_home = fresh_home()
    env = bench_env(COORD_HOME=str(home), COORD_AGENT="bench")
    subprocess.run([COORD, "spawn", "w-1"], env=env, check=True, capture_output=True)
    subprocess.run([COORD, "start", "w-1"], env=env, check=True, capture_output=True)
    for f in (libs, stdlib):  # warm the bytecode caches of the floors too
        subprocess.run([sys.executable, str(f), str(floor_home / "coord.db")], env=env, check=True)
    cmds = {
        "coord heartbeat": [COORD, "heartbeat", "w-1"],
        "floor: click+msgspec+blake3 + insert": [sys.executable, str(libs), str(floor_home / "coord.db")],
        "floor: stdlib + insert": [sys.executable, str(stdlib), str(floor_home / "coord.db")],
    }
    times = {k: [] for k in cmds}
    for _ in range(runs):  # alternate, so drift hits all three alike
        for k, cmd in cmds.items():
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[k].append(time.perf_counter() - t)
    med = {k: median(v) * 1000 for k, v in times.items()}
    c = med["coord heartbeat"]
    return {
        "median_ms": med,
        "ratio_vs_libs_floor": c / med["floor: click+msgspec+blake3 + insert"],
        "ratio_vs_stdlib_floor": c / med["floor: stdlib + insert"],
        "libs_floor_vs_stdlib_floor": med["floor: click+msgspec+blake3 + insert"]
        / med["floor: stdlib + insert"],
    }


RAW_INSERT = (
    'INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin) VALUES (?,?,?,?,?,?,?,?,?)'
)


def _coord_appender(n_hint: int):
    """One heartbeat per call through the library API (one transaction each)."""
    from coord.app import lifecycle
    from coord.app.context import Coord

    c = Coord(durable_beats(fresh_home()), actor="bench")  # FULL, as the raw insert
    lifecycle.act(c, "spawn", "w-1")
    lifecycle.act(c, "start", "w-1")

    def append(k):
        for _ in range(k):
            lifecycle.act(c, "heartbeat", "w-1")

    return append, c.close


def _raw_appender(n_hint: int):
    """The floor: one single-row INSERT per BEGIN IMMEDIATE … COMMIT into the same events
    table (same schema and indexes), with the same pragmas as the store."""
    conn = sqlite3.connect(str(fresh_home() / "coord.db"), isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    seq = [0]

    def append(k):
        for _ in range(k):
            seq[0] += 1
            i = seq[0]
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                RAW_INSERT,
                (i, f"b3:{i}", f"{i:020d}", "bench", "w-1", "worker.heartbeat", "w-1", b"{}", "local"),
            )
            conn.execute("COMMIT")

    return append, conn.close


def _peer_appender(n_hint: int):
    """The peer: the eventsourcing library's SQLite application recorder, one event per
    insert_events call (its own transaction), WAL mode like ours."""
    from uuid import uuid4

    from eventsourcing.persistence import StoredEvent
    from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

    path = Path(tempfile.mkdtemp(prefix="coord-peer-")) / "es.db"
    ds = SQLiteDatastore(str(path), originator_id_type="text")
    rec = SQLiteApplicationRecorder(ds)
    rec.create_table()
    oid = str(uuid4())
    version = [0]

    def append(k):
        for _ in range(k):
            version[0] += 1
            rec.insert_events([StoredEvent(oid, version[0], "bench:Heartbeat", b'{"interval":60}')])

    return append, ds.close


def peer_available() -> str | None:
    """None if the eventsourcing library can be imported, else why not."""
    try:
        import eventsourcing.sqlite  # noqa: F401

        return None
    except ImportError as e:
        return str(e)


def inprocess(n: int, peer: bool = False, block: int = 50) -> dict:
    """Appends per second of each variant, run in alternating blocks of `block` appends so
    that drift of the machine (other jobs, fsync latency) hits all of them alike."""
    makers = {"api": _coord_appender, "raw": _raw_appender}
    if peer:
        makers["peer"] = _peer_appender
    appenders = {k: m(n) for k, m in makers.items()}
    spent = dict.fromkeys(makers, 0.0)
    done = 0
    try:
        while done < n:
            k = min(block, n - done)
            for name, (append, _) in appenders.items():
                t = time.perf_counter()
                append(k)
                spent[name] += time.perf_counter() - t
            done += k
    finally:
        for _, close in appenders.values():
            close()
    out = {f"{k}_appends_per_s": n / v for k, v in spent.items()}
    out["appends"] = n
    out["ratio"] = out["api_appends_per_s"] / out["raw_appends_per_s"]
    if peer:
        out["peer_vs_raw"] = out["peer_appends_per_s"] / out["raw_appends_per_s"]
        out["api_vs_peer"] = out["api_appends_per_s"] / out["peer_appends_per_s"]
    return out


WRITER = textwrap.dedent("""
    import sys, time, json
    from coord.app.context import Coord
    from coord.app import lifecycle
    home, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lat = []
    with Coord(home, actor=me) as c:
        lifecycle.act(c, "spawn", me); lifecycle.act(c, "start", me)
        for i in range(n):
            t = time.perf_counter(); lifecycle.act(c, "heartbeat", me); lat.append(time.perf_counter() - t)
    print(json.dumps(lat))
""")


def writers(k: int, per: int) -> dict:
    home = fresh_home()
    script = Path(tempfile.mkdtemp()) / "w.py"
    script.write_text(WRITER)
    t = time.perf_counter()
    ps = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), f"w{i}", str(per)],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_env(),
        )
        for i in range(k)
    ]
    lats = []
    for p in ps:
        out, _ = p.communicate()
        lats += json.loads(out)
    wall = time.perf_counter() - t
    con = sqlite3.connect(str(home / "coord.db"))
    seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == k * (per + 2)
    return {
        "writers": k,
        "events_per_s": k * per / wall,
        "p50_ms": pct(lats, 50) * 1000,
        "p99_ms": pct(lats, 99) * 1000,
        "max_ms": max(lats) * 1000,
    }


def duplicate_claims(conn) -> tuple[int, int]:
    """(workers started more than once without a release in between, starts seen), read
    from the log itself in (ts, id) order."""
    held, dups, starts = {}, set(), 0
    for wid, etype in conn.execute(
        "SELECT worker, type FROM events WHERE worker IS NOT NULL "
        "AND type IN ('worker.started', 'worker.released') ORDER BY ts, id"
    ):
        if etype == "worker.started":
            starts += 1
            if held.get(wid):
                dups.add(wid)
            held[wid] = True
        else:
            held[wid] = False
    return len(dups), starts


def claim_race(racers: int = 8, workers: int = 3, rounds: int = 5) -> dict:
    """Each round: spawn `workers` fresh workers, then `racers` real `coord start --next`
    processes at once (more racers than workers). Every worker must be claimed exactly
    once; the losers must exit 4 (nothing to claim)."""
    from coord.app import lifecycle
    from coord.app.context import Coord

    home = fresh_home("coord-bench-race-")
    env = bench_env(COORD_HOME=str(home))
    wins = losses = other = 0
    t = time.perf_counter()
    with Coord(home, actor="human:lead") as c:
        for r in range(rounds):
            for j in range(workers):
                lifecycle.act(c, "spawn", f"r{r}-{j}")
            ps = [
                subprocess.Popen(
                    [COORD, "--as", f"racer-{i}", "start", "--next", "--json"],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(racers)
            ]
            for p in ps:
                rc = p.wait()
                wins += rc == 0
                losses += rc == 4
                other += rc not in (0, 4)
        wall = time.perf_counter() - t
        dups, starts = duplicate_claims(c.store.conn)
        unclaimed = c.store.conn.execute("SELECT count(*) FROM workers WHERE state = 'ASSIGNED'").fetchone()[
            0
        ]
    return {
        "racers": racers,
        "workers_per_round": workers,
        "rounds": rounds,
        "claims": wins,
        "nothing_to_claim": losses,
        "other_exits": other,
        "starts": starts,
        "duplicate_claims": dups,
        "unclaimed": unclaimed,
        "wall_s": wall,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--per-writer", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {
        "machine": machine(),
        "startup": startup(a.runs),
        "inprocess": inprocess(a.appends),
        "writers8": writers(8, a.per_writer),
    }
    if a.json:
        print(json.dumps(res, indent=2))
        return
    s, i, w = res["startup"], res["inprocess"], res["writers8"]
    print(f"machine: {res['machine']}")
    for k, v in s["median_ms"].items():
        print(f"  {k:<40} {v:7.1f} ms (median of {a.runs})")
    print(f"  coord heartbeat / libs floor            {s['ratio_vs_libs_floor']:.2f}x  (target <= 1.15)")
    print(f"  coord heartbeat / stdlib floor          {s['ratio_vs_stdlib_floor']:.2f}x")
    print(f"  libs floor / stdlib floor               {s['libs_floor_vs_stdlib_floor']:.2f}x")
    print(
        f"  in-process appends {i['api_appends_per_s']:.0f}/s vs raw inserts {i['raw_appends_per_s']:.0f}/s"
        f" = {i['ratio'] * 100:.0f}% (target >= 80%)"
    )
    print(
        f"  8 writers: {w['events_per_s']:.0f} events/s; append p50 {w['p50_ms']:.1f} ms, "
        f"p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
