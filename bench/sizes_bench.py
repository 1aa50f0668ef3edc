"""Trust-boundary sizes (issue 11): inputs that are legal but big, each measured against a
baseline in the same run.

Usage: .venv/bin/python bench/sizes_bench.py [--repeats N] [--blob-mb M]

- search: `coord search word` on a store whose one event repeats `word` N times (default
  200,000: a 1 MB payload), against the same command on a store whose event of the same
  size holds `word` once. For comparison, FTS5's own snippet() and highlight() (what
  coord's snippet used to be) on N/10 repeats: they are quadratic, so N itself takes
  minutes.
- blobs: `coord log`, `replay`, `timeline` on a store with one message whose payload is an
  M MB blob (default 200), against the same commands on a store with a tiny payload:
  wall time and peak resident memory (the child's ru_maxrss).
"""

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

COORD = [sys.executable, "-m", "coord"]


def run(args, home, stdin=None) -> tuple[float, int, subprocess.CompletedProcess]:
    """(seconds, peak KB, result) of one coord process."""
    wrapper = (
        "import resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
        "dt = time.perf_counter() - t\n"
        "sys.stderr.buffer.write(r.stderr)\n"
        "print(r.returncode, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", wrapper, *COORD, *args],
        env=dict(os.environ, COORD_HOME=str(home)),
        stdin=stdin,
        capture_output=True,
        text=True,
    )
    code, dt, kb = r.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"coord {' '.join(args)} failed: {r.stderr}")
    return float(dt), int(kb), r


def best(args, home, n=3):
    runs = [run(args, home) for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def make_home(d, payload: dict):
    home = os.path.join(d, ".coord")
    subprocess.run([*COORD, "init"], env=dict(os.environ, COORD_HOME=home), check=True, capture_output=True)
    f = os.path.join(d, "p.json")
    with open(f, "w") as out:
        json.dump(payload, out)
    with open(f) as stdin:
        run(["--as", "a", "send", "log", "-", "--to", "b"], home, stdin=stdin)
    os.unlink(f)
    return home


def fts5_old_way(home, words: int) -> tuple[float, float]:
    """FTS5 snippet() and highlight() on a row repeating a word `words` times."""
    con = sqlite3.connect(":memory:")
    con.execute("CREATE VIRTUAL TABLE s USING fts5(type, text, tokenize = 'unicode61 remove_diacritics 2')")
    con.execute("INSERT INTO s VALUES ('msg.log', ?)", (" ".join(["word"] * words),))
    out = []
    for fn in ("snippet(s, -1, '[', ']', '…', 12)", "highlight(s, 1, '[', ']')"):
        t = time.perf_counter()
        con.execute(f"SELECT {fn} FROM s WHERE s MATCH 'word'").fetchall()
        out.append(time.perf_counter() - t)
    return out[0], out[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=200_000)
    ap.add_argument("--blob-mb", type=int, default=200)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        rep = make_home(os.path.join(d, "rep"), {"text": " ".join(["word"] * a.repeats)})
        once = make_home(os.path.join(d, "once"), {"text": "word " + "x" * (5 * a.repeats - 5)})
        t_rep, _ = best(["search", "word"], rep)
        t_once, _ = best(["search", "word"], once)
        rows.append(
            (
                f"`coord search word`, one event repeating it {a.repeats:,} times",
                f"{t_rep * 1000:.0f} ms",
                f"same size, the word once: {t_once * 1000:.0f} ms",
                f"{t_rep / t_once:.2f}×",
            )
        )
        snip, high = fts5_old_way(rep, a.repeats // 10)
        rows.append(
            (
                f"FTS5 snippet() / highlight() (the old way), {a.repeats // 10:,} repeats",
                f"{snip:.2f} s / {high:.2f} s",
                "quadratic: ×10 repeats ≈ ×100 time",
                "–",
            )
        )
        big = make_home(os.path.join(d, "big"), {"text": "z" * (a.blob_mb << 20)})
        tiny = make_home(os.path.join(d, "tiny"), {"text": "z" * 5000})
        for cmd in (["log"], ["replay"], ["timeline"]):
            tb, kb_b = best(cmd, big)
            tt, kb_t = best(cmd, tiny)
            rows.append(
                (
                    f"`coord {cmd[0]}`, one {a.blob_mb} MB blob payload",
                    f"{tb * 1000:.0f} ms, {kb_b / 1024:.0f} MB peak",
                    f"a 5 KB blob: {tt * 1000:.0f} ms, {kb_t / 1024:.0f} MB",
                    f"{tb / tt:.2f}× time, {kb_b / kb_t:.2f}× memory",
                )
            )
    print("| measure | coord | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
