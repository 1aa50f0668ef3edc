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
from common import COORD, bench_env, fresh_home, machine, median, pct, precompile  # noqa: E402

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
    home = fresh_home()
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
    return {"median_ms": med,
            "ratio_vs_libs_floor": c / med["floor: click+msgspec+blake3 + insert"],
            "ratio_vs_stdlib_floor": c / med["floor: stdlib + insert"],
            "libs_floor_vs_stdlib_floor": med["floor: click+msgspec+blake3 + insert"] / med["floor: stdlib + insert"]}


def inprocess(n: int) -> dict:
    from coord.api import Coord
    home = fresh_home()
    raw_home = fresh_home()
    with Coord(home, actor="bench") as c:
        c.act("spawn", "w-1")
        c.act("start", "w-1")
        t = time.perf_counter()
        for i in range(n):
            c.act("heartbeat", "w-1")
        api = n / (time.perf_counter() - t)
    conn = sqlite3.connect(str(raw_home / "coord.db"), isolation_level=None, timeout=10)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    t = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute('INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin) VALUES (?,?,?,?,?,?,?,?,?)',
                     (i + 1, f"b3:{i}", f"{i:020d}", "bench", "w-1", "worker.heartbeat", "w-1", b"{}", "local"))
        conn.execute("COMMIT")
    raw = n / (time.perf_counter() - t)
    return {"api_appends_per_s": api, "raw_inserts_per_s": raw, "ratio": api / raw}


WRITER = textwrap.dedent("""
    import sys, time, json
    from coord.api import Coord
    home, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    lat = []
    with Coord(home, actor=me) as c:
        c.act("spawn", me); c.act("start", me)
        for i in range(n):
            t = time.perf_counter(); c.act("heartbeat", me); lat.append(time.perf_counter() - t)
    print(json.dumps(lat))
""")


def writers(k: int, per: int) -> dict:
    home = fresh_home()
    script = Path(tempfile.mkdtemp()) / "w.py"
    script.write_text(WRITER)
    t = time.perf_counter()
    ps = [subprocess.Popen([sys.executable, str(script), str(home), f"w{i}", str(per)],
                           stdout=subprocess.PIPE, text=True, env=bench_env()) for i in range(k)]
    lats = []
    for p in ps:
        out, _ = p.communicate()
        lats += json.loads(out)
    wall = time.perf_counter() - t
    con = sqlite3.connect(str(home / "coord.db"))
    seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == k * (per + 2)
    return {"writers": k, "events_per_s": k * per / wall, "p50_ms": pct(lats, 50) * 1000,
            "p99_ms": pct(lats, 99) * 1000, "max_ms": max(lats) * 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--appends", type=int, default=2000)
    ap.add_argument("--per-writer", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = {"machine": machine(), "startup": startup(a.runs), "inprocess": inprocess(a.appends),
           "writers8": writers(8, a.per_writer)}
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
    print(f"  in-process appends {i['api_appends_per_s']:.0f}/s vs raw inserts {i['raw_inserts_per_s']:.0f}/s"
          f" = {i['ratio'] * 100:.0f}% (target >= 80%)")
    print(f"  8 writers: {w['events_per_s']:.0f} events/s; append p50 {w['p50_ms']:.1f} ms, "
          f"p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.1f} ms")


if __name__ == "__main__":
    main()
