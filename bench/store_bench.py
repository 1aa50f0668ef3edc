"""Issue 19 figures: one append against a raw insert into `(id TEXT UNIQUE, body BLOB)` and
against the eventsourcing library's `Application.save` (and its recorder), WAL pages
written per append, and competing writer processes against raw writers in the same run
(p99 and worst wait, BUSY errors, fairness over a fixed time).

    .venv/bin/python bench/store_bench.py [--appends 3000] [--writers 8] [--seconds 3]

Every figure is a ratio against a baseline measured in the same process (in-process rows,
alternating blocks) or the same run (writers, coord and raw one after the other).
`bench/ab.py` runs these in interleaved rounds against another revision of coord.
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_env, durable_beats, fresh_home, pct  # noqa: E402

KV_SCHEMA = "CREATE TABLE kv(id TEXT UNIQUE, body BLOB)"


def wal_frames(db: Path) -> int:
    """Frames in the WAL file (header 32 bytes, each frame 24 + page size)."""
    wal = Path(str(db) + "-wal")
    if not wal.exists():
        return 0
    with sqlite3.connect(str(db)) as c:
        page = c.execute("PRAGMA page_size").fetchone()[0]
    return max(0, (wal.stat().st_size - 32) // (page + 24))


def _coord(count_pages, beats: str = "NORMAL"):
    """One heartbeat per `lifecycle.act` call (its own transaction), as `coord run` sends;
    `beats`: the heartbeat_synchronous setting (NORMAL, the default, or FULL)."""
    from coord.app import lifecycle
    from coord.app.context import Coord

    home = fresh_home()
    if beats == "FULL":
        durable_beats(home)
    c = Coord(home, actor="bench")
    lifecycle.act(c, "spawn", "w-1")
    lifecycle.act(c, "start", "w-1")
    if count_pages:
        c.store.conn.execute("PRAGMA wal_autocheckpoint = 0")  # so the WAL counts every page

    def append(k):
        for _ in range(k):
            lifecycle.act(c, "heartbeat", "w-1")

    return append, c.close, home / "coord.db"


def _raw_kv(count_pages):
    """The floor the issue names: one INSERT into (id TEXT UNIQUE, body BLOB) per
    BEGIN IMMEDIATE … COMMIT, same pragmas as the store (WAL, synchronous FULL)."""
    db = Path(tempfile.mkdtemp(prefix="coord-kv-")) / "kv.db"
    conn = sqlite3.connect(str(db), isolation_level=None, timeout=10)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(KV_SCHEMA)
    if count_pages:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    i = [0]
    body = b'{"ts":"2026-01-01T00:00:00.000000Z","from":"bench","to":"w-1","type":"worker.heartbeat","payload":{}}'

    def append(k):
        for _ in range(k):
            i[0] += 1
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO kv(id, body) VALUES (?, ?)", (f"b3:{i[0]:064x}", body))
            conn.execute("COMMIT")

    return append, conn.close, db


_PEER_CLASS = []


def _peer_worker_class():
    """The peer's aggregate, defined once (eventsourcing registers each class by topic)."""
    if not _PEER_CLASS:
        from eventsourcing.domain import Aggregate, event

        class Worker(Aggregate):
            @event("Started")
            def __init__(self, name: str):
                self.name = name
                self.beats = 0

            @event("Heartbeat")
            def beat(self, interval: float):
                self.beats += 1

        _PEER_CLASS.append(Worker)
    return _PEER_CLASS[0]


def _peer_app(count_pages, sync: str = "FULL"):
    """The peer: eventsourcing's `Application.save` of an aggregate that records one
    heartbeat event per call (its SQLite persistence module, WAL, synchronous FULL as
    coord's; single-threaded, so its pool hands out one connection, set here)."""
    from eventsourcing.application import Application

    Worker = _peer_worker_class()
    db = Path(tempfile.mkdtemp(prefix="coord-peer-")) / "es.db"
    app = Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db)})
    w = Worker("w-1")
    app.save(w)
    with app.recorder.datastore.get_connection(commit=True) as pooled:
        conn = pooled._sqlite_conn
        conn.execute(f"PRAGMA synchronous = {sync}")
        if count_pages:
            conn.execute("PRAGMA wal_autocheckpoint = 0")

    def append(k):
        for _ in range(k):
            w.beat(interval=60.0)
            app.save(w)

    return append, app.close, db


def peer_available() -> str | None:
    try:
        import eventsourcing.application  # noqa: F401
        import eventsourcing.sqlite  # noqa: F401

        return None
    except ImportError as e:
        return str(e)


def _alternate(made: dict, n: int, block: int) -> tuple[dict, dict]:
    """Run every variant's appends in alternating blocks of `block` (so the machine's drift
    hits all alike): wall and CPU seconds spent by each."""
    spent = dict.fromkeys(made, 0.0)
    cpu = dict.fromkeys(made, 0.0)
    done = 0
    while done < n:
        k = min(block, n - done)
        for name, (append, _, _) in made.items():
            t, c = time.perf_counter(), time.process_time()
            append(k)
            spent[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
        done += k
    return spent, cpu


def _made(count_pages: bool) -> dict:
    makers = {"coord": _coord, "coord_full": lambda p: _coord(p, "FULL"), "raw_kv": _raw_kv}
    if peer_available() is None:
        makers["peer_app"] = _peer_app
        makers["peer_normal"] = lambda p: _peer_app(p, "NORMAL")
    return {k: m(count_pages) for k, m in makers.items()}


def _close(made: dict) -> None:
    for _, close, _ in made.values():
        close()


def inprocess(n: int, block: int = 50, page_appends: int = 500) -> dict:
    """Appends per second of each variant, in alternating blocks, every store with SQLite's
    default checkpointing (a WAL that only grows makes every fsync dearer, unequally); then
    WAL frames written per append, counted in a second pass with checkpoints off."""
    made = _made(count_pages=False)
    try:
        spent, cpu = _alternate(made, n, block)
    finally:
        _close(made)
    made = _made(count_pages=True)
    try:
        frames0 = {k: wal_frames(db) for k, (_, _, db) in made.items()}
        _alternate(made, page_appends, block)
        pages = {k: (wal_frames(db) - frames0[k]) / page_appends for k, (_, _, db) in made.items()}
    finally:
        _close(made)
    out = {
        "appends": n,
        "per_s": {k: n / v for k, v in spent.items()},
        "cpu_us": {k: v / n * 1e6 for k, v in cpu.items()},  # this process's CPU per append
        "wal_pages": pages,
    }
    # coord: heartbeats at the default heartbeat_synchronous (NORMAL); coord_full: FULL,
    # as durable as raw_kv and peer_app; peer_normal: the peer at NORMAL (same pragmas as
    # coord's default for heartbeats).
    r, u = out["per_s"], out["cpu_us"]
    out["coord_vs_raw_kv"] = r["coord"] / r["raw_kv"]
    out["coord_full_vs_raw_kv"] = r["coord_full"] / r["raw_kv"]
    out["cpu_coord_full_over_raw_kv"] = u["coord_full"] / u["raw_kv"]
    if "peer_app" in r:
        out["coord_full_vs_peer_app"] = r["coord_full"] / r["peer_app"]
        out["coord_vs_peer_normal"] = r["coord"] / r["peer_normal"]
        out["cpu_coord_full_over_peer_app"] = u["coord_full"] / u["peer_app"]
    return out


# --- competing writers -----------------------------------------------------------------------
# Each writer waits for the `go` file, then appends as fast as it can until `seconds` pass;
# prints its latencies (s) and how many BUSY errors it met.
COORD_WRITER = textwrap.dedent("""
    import json, os, sys, time
    from coord.app import lifecycle
    from coord.app.context import Coord
    from coord.events.errors import Busy
    home, me, seconds, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    lat, busy = [], 0
    with Coord(home, actor=me) as c:
        lifecycle.act(c, "spawn", me); lifecycle.act(c, "start", me)
        open(go + "." + me, "w").close()
        while not os.path.exists(go):
            time.sleep(0.001)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            try:
                lifecycle.act(c, "heartbeat", me)
            except Busy:
                busy += 1
                continue
            lat.append(time.perf_counter() - t)
    print(json.dumps({"lat": lat, "busy": busy}))
""")

RAW_WRITER = textwrap.dedent("""
    import json, os, sqlite3, sys, time
    db, me, seconds, go = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    c = sqlite3.connect(db, isolation_level=None, timeout=10)
    c.execute("PRAGMA busy_timeout = 10000"); c.execute("PRAGMA synchronous = FULL")
    body = b'{"ts":"2026-01-01T00:00:00.000000Z","from":"x","to":"w-1","type":"worker.heartbeat","payload":{}}'
    lat, busy, i = [], 0, 0
    open(go + "." + me, "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        i += 1
        t = time.perf_counter()
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute("INSERT INTO kv(id, body) VALUES (?, ?)", (f"{me}-{i}", body))
            c.execute("COMMIT")
        except sqlite3.OperationalError:
            busy += 1
            if c.in_transaction:
                c.execute("ROLLBACK")
            continue
        lat.append(time.perf_counter() - t)
    print(json.dumps({"lat": lat, "busy": busy}))
""")


def _run_writers(script: str, target: str, k: int, seconds: float) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="coord-writers-"))
    path = tmp / "w.py"
    path.write_text(script)
    go = tmp / "go"
    ps = [
        subprocess.Popen(
            [sys.executable, str(path), target, f"w{i}", str(seconds), str(go)],
            stdout=subprocess.PIPE,
            text=True,
            env=bench_env(),
        )
        for i in range(k)
    ]
    deadline = time.monotonic() + 120
    while not all((tmp / f"go.w{i}").exists() for i in range(k)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in ps), "writers did not start"
        time.sleep(0.01)
    go.touch()
    lats, counts, busy = [], [], 0
    for p in ps:
        out, _ = p.communicate(timeout=seconds + 300)
        r = json.loads(out)
        lats += r["lat"]
        counts.append(len(r["lat"]))
        busy += r["busy"]
    mean = sum(counts) / len(counts)
    return {
        "events_per_s": sum(counts) / seconds,
        "p50_ms": pct(lats, 50) * 1000,
        "p99_ms": pct(lats, 99) * 1000,
        "max_ms": max(lats) * 1000,
        "busy": busy,
        "counts": counts,
        "worst_share": max(abs(c - mean) / mean for c in counts) if mean else 0.0,
    }


def writers(k: int, seconds: float) -> dict:
    """k coord writer processes, then k raw writers into (id, body), for `seconds` each."""
    home = fresh_home()
    coord = _run_writers(COORD_WRITER, str(home), k, seconds)
    db = Path(tempfile.mkdtemp(prefix="coord-kvw-")) / "kv.db"
    with sqlite3.connect(str(db)) as c:
        c.execute("PRAGMA journal_mode = WAL")
        c.execute(KV_SCHEMA)
    raw = _run_writers(RAW_WRITER, str(db), k, seconds)
    return {
        "writers": k,
        "seconds": seconds,
        "coord": coord,
        "raw": raw,
        "p99_ratio": coord["p99_ms"] / raw["p99_ms"],
        "max_ratio": coord["max_ms"] / raw["max_ms"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--appends", type=int, default=3000)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--only", choices=["inprocess", "writers"])
    a = ap.parse_args(argv)
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    with tempfile.TemporaryDirectory(prefix="coord-bench-19-") as scratch:
        tempfile.tempdir = scratch
        out = {}
        if a.only in (None, "inprocess"):
            out["inprocess"] = inprocess(a.appends)
        if a.only in (None, "writers"):
            out["writers"] = writers(a.writers, a.seconds)
        tempfile.tempdir = None
    print(json.dumps(out))


if __name__ == "__main__":
    main()
