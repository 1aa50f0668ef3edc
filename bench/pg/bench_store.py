"""coord's PostgreSQL store against its baselines, side by side in one run, on one real
server started here (fsync on, the Unix socket). Figures: docs/postgres.md.

    .venv/bin/python bench/pg/bench_store.py             # 5,000 appends, 8 writers x 10 s
    .venv/bin/python bench/pg/bench_store.py --quick     # a smoke run (seconds)
    .venv/bin/python bench/pg/bench_store.py --json out.json

1. One process, one event per transaction (`Coord.act('heartbeat')`), in alternating blocks
   of 50 so drift of the machine hits every variant alike: coord on PostgreSQL, coord on
   SQLite, a raw single-row INSERT on the same server, the `eventsourcing` library's
   PostgreSQL recorder (`insert_events` of one event, if installed: pip install
   eventsourcing), a raw SQLite insert.
2. 8 writer processes for N seconds, heartbeats each on its own worker: coord on
   PostgreSQL (4 on each of two homes sharing the server), coord on SQLite (one home), raw
   SQLite inserts with SQLite's busy handler. Throughput, p50/p99/max of one append, errors.
3. Wake-up of a waiter in another home after a send (`wait_for_new`: LISTEN/NOTIFY on
   PostgreSQL, data_version polling on SQLite), the append included: p50/p99.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

from common import bench_env, machine, pct  # noqa: E402

from pgserver import PostgresServer  # noqa: E402


def home(url: str | None) -> Path:
    from coord.app.admin import init
    from coord.app.fleet import join

    d = Path(tempfile.mkdtemp(prefix="coord-pgbench-")) / ".coord"
    if url:
        join(url, d)
    else:
        init(d)
    return d


def coord_appender(h: Path, actor="bench"):
    from coord.app import lifecycle
    from coord.app.context import Coord

    c = Coord(h, actor=actor)
    w = f"w-{actor}-{os.getpid()}"
    lifecycle.act(c, "spawn", w)
    lifecycle.act(c, "start", w)

    def append(k):
        for _ in range(k):
            lifecycle.act(c, "heartbeat", w)

    return append, c.close


def pg_raw(url):
    import psycopg

    conn = psycopg.connect(url, autocommit=True)
    conn.execute("CREATE TABLE IF NOT EXISTS raw (id text PRIMARY KEY, body bytea)")
    n = [0]

    def append(k):
        for _ in range(k):
            n[0] += 1
            conn.execute("INSERT INTO raw (id, body) VALUES (%s, %s)", (f"b3:{n[0]:064x}", b'{"n":1}'))

    return append, conn.close


def es_pg(server):
    from uuid import uuid4

    from eventsourcing.persistence import StoredEvent
    from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

    db = server.create_database()
    ds = PostgresDatastore(
        db.name, str(server.socket_dir), server.port, server.user, "", originator_id_type="text"
    )
    rec = PostgresApplicationRecorder(ds)
    rec.create_table()
    oid, v = str(uuid4()), [0]

    def append(k):
        for _ in range(k):
            v[0] += 1
            rec.insert_events([StoredEvent(oid, v[0], "bench:Heartbeat", b'{"n":1}')])

    return append, ds.close


def sqlite_raw(path: Path):
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=60)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE IF NOT EXISTS raw (id TEXT, body BLOB)")
    n = [0]

    def append(k):
        for _ in range(k):
            n[0] += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO raw (id, body) VALUES (?, ?)", (f"{os.getpid()}-{n[0]}", b'{"n":1}'))
            conn.execute("COMMIT")

    return append, conn.close


def one_process(server, n: int, block: int = 50) -> dict:
    pg_url = server.create_database().url
    makers = {
        "coord_pg": lambda: coord_appender(home(pg_url)),
        "coord_sqlite": lambda: coord_appender(home(None)),
        "pg_raw": lambda: pg_raw(server.create_database().url),
        "sqlite_raw": lambda: sqlite_raw(Path(tempfile.mkdtemp()) / "raw.db"),
    }
    try:
        import eventsourcing.postgres  # noqa: F401

        makers["es_pg"] = lambda: es_pg(server)
    except ImportError:
        pass
    apps = {k: m() for k, m in makers.items()}
    spent = dict.fromkeys(apps, 0.0)
    done = 0
    try:
        while done < n:
            k = min(block, n - done)
            for name, (append, _) in apps.items():
                t = time.perf_counter()
                append(k)
                spent[name] += time.perf_counter() - t
            done += k
    finally:
        for _, close in apps.values():
            close()
    return {"appends": n, "per_s": {k: round(n / v) for k, v in spent.items()}}


WRITER = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, sys.argv[4])
    from bench_store import coord_appender, sqlite_raw
    from pathlib import Path
    kind, target, seconds, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[5]
    append, close = sqlite_raw(Path(target)) if kind == "raw" else coord_appender(Path(target), f"p{os.getpid()}")
    lat, errors = [], 0
    open(go + "." + str(os.getpid()), "w").close()  # connected, waiting
    while not os.path.exists(go):
        time.sleep(0.001)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t = time.perf_counter()
        try:
            append(1)
            lat.append(time.perf_counter() - t)
        except Exception:
            errors += 1
    close()
    print(json.dumps({"lat": lat, "errors": errors}))
""")


def writers(targets: list, kind: str, seconds: float, go: Path) -> dict:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, kind, str(t), str(seconds), str(HERE), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_env(),
        )
        for t in targets
    ]
    while sum(1 for p in procs if Path(f"{go}.{p.pid}").exists()) < len(procs):
        assert all(p.poll() is None for p in procs), "a writer died"
        time.sleep(0.01)
    go.touch()  # every writer connected: released at one instant
    res = [json.loads(p.communicate(timeout=seconds + 120)[0]) for p in procs]
    go.unlink()
    lat = [x for r in res for x in r["lat"]]
    counts = [len(r["lat"]) for r in res]
    return {
        "per_s": round(len(lat) / seconds),
        "p50_ms": round(pct(lat, 50) * 1000, 2),
        "p99_ms": round(pct(lat, 99) * 1000, 2),
        "max_ms": round(max(lat) * 1000, 1),
        "errors": sum(r["errors"] for r in res),
        "share": [round(c / (sum(counts) / len(counts)), 2) for c in (min(counts), max(counts))],
    }


def eight_writers(server, seconds: float) -> dict:
    url = server.create_database().url
    a, b = home(url), home(url)
    s = home(None)
    raw = Path(tempfile.mkdtemp()) / "raw.db"
    sqlite_raw(raw)[1]()
    out = {}
    for name, targets, kind in (
        ("coord_pg_two_homes", [a] * 4 + [b] * 4, "coord"),
        ("coord_sqlite", [s] * 8, "coord"),
        ("sqlite_raw_busy_handler", [raw] * 8, "raw"),
    ):
        out[name] = writers(targets, kind, seconds, Path(tempfile.mkdtemp()) / "go")
    return out


def wake_up(server, n: int) -> dict:
    from coord.app.context import Coord
    from coord.app.messages import send

    out = {}
    url = server.create_database().url
    sqlite_home = home(None)
    for name, sender_home, waiter_home in (
        ("pg_listen_notify", home(url), home(url)),  # two homes on one server
        ("sqlite_polling", sqlite_home, sqlite_home),
    ):
        lat = []
        with Coord(sender_home, actor="s") as s, Coord(waiter_home, actor="w") as w:
            for _ in range(n):
                top = w.store.reader.max_seq()
                woke = {}

                def wait(top=top, woke=woke):
                    w.store.wait_for_new(top, 10)
                    woke["t"] = time.perf_counter()

                t = threading.Thread(target=wait)
                t.start()
                time.sleep(0.02)  # the waiter is waiting
                t0 = time.perf_counter()
                send(s, "w", "ping", {}, actor="s")
                t.join()
                lat.append(woke["t"] - t0)
        out[name] = {"p50_ms": round(pct(lat, 50) * 1000, 2), "p99_ms": round(pct(lat, 99) * 1000, 2)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    n, seconds, wakes = (200, 2.0, 20) if a.quick else (5000, 10.0, 100)
    with PostgresServer(settings={"fsync": "on"}) as server:
        res = {
            "machine": machine(),
            "load": os.getloadavg(),
            "server": server.sql("SHOW server_version").strip(),
            "one_process": one_process(server, n),
            "eight_writers": eight_writers(server, seconds),
            "wake_up": wake_up(server, wakes),
        }
    w = res["eight_writers"]
    r1 = res["one_process"]["per_s"]
    res["ratios"] = {
        "one_process_pg_over_sqlite": round(r1["coord_pg"] / r1["coord_sqlite"], 2),
        "one_process_pg_over_eventsourcing": round(r1["coord_pg"] / r1["es_pg"], 2)
        if "es_pg" in r1
        else None,
        "eight_writers_pg_over_sqlite": round(
            w["coord_pg_two_homes"]["per_s"] / w["coord_sqlite"]["per_s"], 2
        ),
        "worst_wait_pg_over_raw_sqlite": round(
            w["coord_pg_two_homes"]["max_ms"] / w["sqlite_raw_busy_handler"]["max_ms"], 3
        ),
        "wake_p50_pg_over_sqlite": round(
            res["wake_up"]["pg_listen_notify"]["p50_ms"] / res["wake_up"]["sqlite_polling"]["p50_ms"], 2
        ),
    }
    text = json.dumps(res, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text)


if __name__ == "__main__":
    main()
