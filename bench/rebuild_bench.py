"""Issue 19's rebuild target: a rebuild at ≥ 50% of the rate of a bare read + decode of
the same rows, on a store shaped like real use (bench/realstore.py: mostly lifecycle
events and messages), for the worker views and for the search index, each against its
own baseline:

- views: `board.rebuild(store)` (read, decode, fold, swap in the views, notices and
  dependencies) against reading the same lifecycle rows with the same keyset-paginated
  SELECT and decoding each envelope (msgspec), folding nothing;
- search: `search.rebuild(store)` (read, decode, extract the text, fill a fresh FTS5
  index and swap it in) against reading the rows it indexes (every non-heartbeat event)
  and decoding each envelope;
- whole: `admin.rebuild` (what `coord rebuild` runs: the integrity check of every event,
  views, search index, acknowledgements) against one read + decode of every row.

Each pair runs alternating in one process, `--repeat` times; the best of each is kept.
With `--ab REV` the same figures for another revision (default `main`) and this tree,
in interleaved processes on the same store (each revision's `coord` package first on
PYTHONPATH, as bench/ab.py does), median of the rounds:

    .venv/bin/python bench/rebuild_bench.py [--workers 2000] [--events 100000] [--repeat 3]
    .venv/bin/python bench/rebuild_bench.py --ab main --rounds 3
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realstore  # noqa: E402
from common import COORD, bench_env, fresh_home  # noqa: E402

PAGE = 20000
HEARTBEAT = "worker.heartbeat"


def build(tmp: Path, workers: int, events: int) -> tuple[Path, int]:
    """A home holding a realistic store, imported by a real `coord import` process."""
    path = tmp / "real-events.jsonl"
    n = realstore.generate(path, workers, events)
    home = fresh_home("coord-bench-rebuild-")
    subprocess.run(
        [COORD, "import", str(path)], env=bench_env(COORD_HOME=str(home)), check=True, capture_output=True
    )
    path.unlink()
    return home, n


def read_decode(store, where: str, keyset: bool) -> int:
    """Read the rows `where` selects in pages of PAGE (in (ts, id) order by keyset, or by
    seq) in short read transactions, decoding each envelope; returns the number read."""
    from coord.events.envelope import decode

    upto, total = store.reader.max_seq(), 0
    last: tuple = ("", "") if keyset else (0,)
    while True:
        if keyset:
            sql = (
                f"SELECT ts, id, body FROM events WHERE seq <= ? AND (ts, id) > (?, ?) AND {where} "
                "ORDER BY ts, id LIMIT ?"
            )
        else:
            sql = f"SELECT seq, body FROM events WHERE seq <= ? AND seq > ? AND {where} ORDER BY seq LIMIT ?"
        with store.read():
            rows = store.conn.execute(sql, (upto, *last, PAGE)).fetchall()
        if not rows:
            return total
        for r in rows:
            decode(r[-1])
        total += len(rows)
        last = (rows[-1][0], rows[-1][1]) if keyset else (rows[-1][0],)


LIFECYCLE = "worker IS NOT NULL"
INDEXED = f"type != '{HEARTBEAT}'"


def fts_floor(store) -> int:
    """The least a search rebuild writes: the rows the index holds (text already
    extracted), inserted into a fresh FTS5 table of the same definition in one
    transaction, then dropped (not timed). Returns the rows inserted."""
    from coord.events.sqlite_store import SEARCH_COLUMNS

    conn = store.conn
    rows = conn.execute("SELECT rowid, type, text FROM search").fetchall()
    conn.execute("DROP TABLE IF EXISTS bench_fts")
    conn.execute(f"CREATE VIRTUAL TABLE bench_fts USING fts5({SEARCH_COLUMNS})")
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO bench_fts(rowid, type, text) VALUES (?,?,?)", rows)
    conn.execute("COMMIT")
    fts_floor.seconds = time.perf_counter() - t
    conn.execute("DROP TABLE bench_fts")
    return len(rows)


def _fts_floor_timed(store) -> float:
    fts_floor(store)
    return fts_floor.seconds


def _pair(label, work, base, repeat, out):
    best_w = best_b = float("inf")
    nw = nb = 0
    for _ in range(repeat):
        t = time.perf_counter()
        nw = work()
        best_w = min(best_w, time.perf_counter() - t)
        t = time.perf_counter()
        nb = base()
        best_b = min(best_b, time.perf_counter() - t)
    out[label] = {"s": best_w, "base_s": best_b, "rows": nb, "ratio": best_b / best_w, "done": nw}


def measure(home: Path, repeat: int) -> dict:
    """Every pair on one store, in this process (the `coord` package on sys.path)."""
    from coord.app import admin
    from coord.app.context import Coord
    from coord.projections import board, inbox, search

    out: dict = {}
    with Coord(home) as c:
        s = c.store
        _pair("views", lambda: board.rebuild(s), lambda: read_decode(s, LIFECYCLE, True), repeat, out)
        _pair("search", lambda: search.rebuild(s), lambda: read_decode(s, INDEXED, False), repeat, out)
        # The floor of the search row: FTS5's own insert of the finished rows, same baseline.
        floor = min(_fts_floor_timed(s) for _ in range(repeat))
        out["search"]["fts_floor_s"] = floor
        out["search"]["fts_floor_ratio"] = out["search"]["base_s"] / floor
        _pair(
            "acks",
            lambda: inbox.rebuild(s),
            lambda: read_decode(s, "type = 'inbox.acked'", False),
            repeat,
            out,
        )
        _pair("whole", lambda: admin.rebuild(c), lambda: read_decode(s, "1", False), repeat, out)
        out["events"] = s.reader.max_seq()
        counts = s.conn.execute(
            "SELECT sum(worker IS NOT NULL), sum(type = ?), sum(type LIKE 'msg.%'), sum(type = 'inbox.acked'), "
            "(SELECT count(*) FROM workers) FROM events",
            (HEARTBEAT,),
        ).fetchone()
        out["shape"] = dict(
            zip(("lifecycle", "heartbeats", "messages", "acks", "workers"), counts, strict=True)
        )
    return out


def cli_rebuild(home: Path, pythonpath: str | None = None) -> float:
    """Seconds of one `coord rebuild` process."""
    env = bench_env(COORD_HOME=str(home), **({"PYTHONPATH": pythonpath} if pythonpath else {}))
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coord", "rebuild"], env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def ab(home: Path, base: str, rounds: int, repeat: int, tmp: Path) -> dict:
    """This tree against `base`, interleaved processes on the same store."""
    from ab import head_tree, tree_of

    trees = {"base": str(tree_of(base, tmp)), "head": str(head_tree(tmp))}
    runs: dict = {"base": [], "head": []}
    for r in range(rounds):
        for which in ("base", "head") if r % 2 == 0 else ("head", "base"):
            print(f"  round {r + 1}/{rounds}: {which}", file=sys.stderr, flush=True)
            got = subprocess.run(
                [sys.executable, __file__, "--home", str(home), "--repeat", str(repeat)],
                env=bench_env(PYTHONPATH=trees[which]),
                capture_output=True,
                text=True,
                check=True,
            )
            res = json.loads(got.stdout)
            res["cli_s"] = cli_rebuild(home, trees[which])
            runs[which].append(res)
    return runs


def summary(runs: list[dict]) -> dict:
    med = statistics.median
    out = {k: med(r[k]["ratio"] for r in runs) for k in ("views", "search", "acks", "whole")}
    out.update({f"{k}_s": med(r[k]["s"] for r in runs) for k in ("views", "search", "acks", "whole")})
    out["search_fts_floor"] = med(r["search"]["fts_floor_ratio"] for r in runs)
    out["cli_s"] = med(r["cli_s"] for r in runs if "cli_s" in r) if any("cli_s" in r for r in runs) else None
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2000)
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ab", metavar="REV", help="also measure this revision, interleaved")
    ap.add_argument("--home", type=Path, help="measure this home only (used by --ab)")
    a = ap.parse_args(argv)
    if a.home:
        print(json.dumps(measure(a.home, a.repeat)))
        return
    with tempfile.TemporaryDirectory(prefix="coord-bench-rebuild-") as tmp:
        tempfile.tempdir = tmp
        home, n = build(Path(tmp), a.workers, a.events)
        if a.ab:
            runs = ab(home, a.ab, a.rounds, a.repeat, Path(tmp))
            res = {"lines": n, "shape": runs["head"][0]["shape"], a.ab: summary(runs["base"])}
            res["this tree"] = summary(runs["head"])
        else:
            res = measure(home, a.repeat)
            res["cli_s"] = cli_rebuild(home)
        print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
