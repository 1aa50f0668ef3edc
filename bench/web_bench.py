"""Issue 18 figures for the web board (`coord serve`), each against a baseline in the same run:

1. Commit to page: the time from a commit (a heartbeat with a new note, committed by this
   process: not the server's, not the browser's) to the change applied to an open board
   in headless chromium, p50/p99 over N commits, with 1 page open and with 20 (one event
   stream each; for 20, every (commit, page) pair, and per commit the last of the 20
   pages). Baseline: `coord log -f --json` as a process following the same store, from
   the same commit to its line on the pipe.
2. First load of the board at 1k and 10k workers (a generated store, imported by `coord
   import`), in a fresh tab that already holds its cookie, from navigation start: to the
   first screenful of rows painted, and to every row drawn (all workers are loaded, as
   `status --all` gives them; a row for each unfinished one, as the page shows by
   default) and painted; also GET /api/status?all=1 alone.
   Baseline: `coord --json status --all` as a whole process, alternating with the page.

Clocks: the browser stamps `performance.timeOrigin + performance.now()` when it has
applied an event; the commit is stamped with time.time() when `act()` returns. Both are
this machine's wall clock.

    .venv/bin/python bench/web_bench.py [--commits 50] [--pages 20] [--sizes 1000,10000] [--runs 7]
    .venv/bin/python bench/web_bench.py --small     # seconds: 10 commits, 3 pages, 200 workers
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from common import COORD, bench_env, fresh_home, machine, median, pct  # noqa: E402

from boardserver import BoardServer  # noqa: E402
from browser import Browser  # noqa: E402


def open_board(browser, server, record=False):
    page = browser.new_page()
    page.block_external()
    page.goto(server.url)
    page.wait_for("document.body.getAttribute('data-ready') === 'board'", timeout=120)
    page.wait_for("document.body.getAttribute('data-conn') === 'live'", timeout=60)
    if record:
        page.evaluate("coordDebug.record = true")
    return page


class LogFollower:
    """`coord log -f --json` as a process: when each seq's line arrived on the pipe."""

    def __init__(self, home: Path):
        self.arrived: dict[int, float] = {}
        self.proc = subprocess.Popen(
            [COORD, "--json", "log", "-f", "--limit", "1"],
            env=bench_env(COORD_HOME=str(home)),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            t = time.time()
            self.arrived[json.loads(line)["seq"]] = t

    def listed(self, timeout: float) -> None:
        """Wait for the first line (`--limit 1` lists the last event, then follows): a
        commit made before it would be missed on a busy machine where the process starts
        slowly."""
        deadline = time.monotonic() + timeout
        while not self.arrived:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise SystemExit("coord log -f printed nothing")
            time.sleep(0.02)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)


def latency(home: Path, server: BoardServer, browser, pages: int, commits: int, gap: float) -> dict:
    from coord.app import lifecycle
    from coord.app.context import Coord

    opened = [open_board(browser, server, record=True) for _ in range(pages)]
    follower = LogFollower(home)
    stamps = []
    rnd = random.Random(18)
    with Coord(home, actor="bench") as c:
        follower.listed(timeout=120)  # its listing (the last event) is out: it follows now
        for i in range(commits):
            r = lifecycle.act(c, "heartbeat", "lat-1", {"note": f"beat {pages}-{i}"})
            stamps.append((r.seq, time.time()))
            time.sleep(gap * rnd.uniform(0.5, 1.5))  # out of step with the followers' polls
    last = stamps[-1][0]
    for p in opened:
        p.wait_for(f"coordDebug.applied[{last}] !== undefined", timeout=120)
    deadline = time.monotonic() + 60
    while last not in follower.arrived and time.monotonic() < deadline:
        time.sleep(0.05)
    follower.stop()
    applied = [p.evaluate("coordDebug.applied") for p in opened]
    for p in opened:
        p.close()
    pairs, worst, log = [], [], []
    for seq, t in stamps:
        per_page = [(a[str(seq)] / 1000.0 - t) * 1e3 for a in applied]
        pairs += per_page
        worst.append(max(per_page))
        log.append((follower.arrived[seq] - t) * 1e3)
    return {
        "pages": pages,
        "commits": commits,
        "page_ms": {"p50": pct(pairs, 50), "p99": pct(pairs, 99), "max": max(pairs)},
        "all_pages_ms": {"p50": pct(worst, 50), "p99": pct(worst, 99), "max": max(worst)},
        "log_f_ms": {"p50": pct(log, 50), "p99": pct(log, 99), "max": max(log)},
    }


def big_home(tmp: Path, workers: int) -> Path:
    import bigstore_bench

    path = tmp / f"web-{workers}.jsonl"
    n = bigstore_bench.generate(path, workers, workers * 8)
    home = fresh_home("coord-web-bench-")
    r = subprocess.run(
        [COORD, "--json", "import", str(path)],
        env=bench_env(COORD_HOME=str(home)),
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        raise SystemExit(f"coord import failed: {r.stderr}")
    assert json.loads(r.stdout)["imported"] == n
    path.unlink()
    return home


def first_load(home: Path, browser, runs: int) -> dict:
    server = BoardServer(home).start(timeout=120)
    try:
        signed = open_board(browser, server)  # a context with its cookie
        rows = signed.evaluate("document.querySelectorAll('#board .row').length")
        env = bench_env(COORD_HOME=str(home))
        page_ms, painted_ms, first_ms, api_ms, cli_ms = [], [], [], [], []
        subprocess.run([COORD, "--json", "status", "--all"], env=env, check=True, stdout=subprocess.DEVNULL)
        for _ in range(runs):
            t = time.perf_counter()
            out = subprocess.run(
                [COORD, "--json", "status", "--all"], env=env, check=True, capture_output=True
            )
            cli_ms.append((time.perf_counter() - t) * 1e3)
            every = json.loads(out.stdout)
            assert sum(d["state"] not in ("COMPLETED", "CANCELED") for d in every) == rows
            t = time.perf_counter()
            status, _, body = server.get("/api/status?all=1", token=True)
            api_ms.append((time.perf_counter() - t) * 1e3)
            assert status == 200 and body.startswith(b"[")
            signed.goto(server.base + "/")
            signed.wait_for("coordDebug.paintedAt !== undefined", timeout=120)
            assert signed.evaluate("document.querySelectorAll('#board .row').length") == rows
            page_ms.append(signed.evaluate("coordDebug.readyAt"))
            painted_ms.append(signed.evaluate("coordDebug.paintedAt"))
            first_ms.append(signed.evaluate("coordDebug.firstPaintAt"))
        signed.close()
    finally:
        server.stop()
    return {
        "workers": len(every),
        "rows": rows,
        "runs": runs,
        "first_screen_ms": median(first_ms),
        "page_ready_ms": median(page_ms),
        "page_painted_ms": median(painted_ms),
        "api_ms": median(api_ms),
        "cli_ms": median(cli_ms),
        "ratio_painted_to_cli": median(painted_ms) / median(cli_ms),
        "ratio_first_to_cli": median(first_ms) / median(cli_ms),
        "ratio_api_to_cli": median(api_ms) / median(cli_ms),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--gap", type=float, default=0.2, help="seconds between commits")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    if a.small:
        a.commits, a.pages, a.sizes, a.runs = 10, 3, "200", 2
    out = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="coord-web-bench-") as tmp,
        Browser(width=1280, height=800) as browser,
    ):
        home = fresh_home("coord-web-lat-")
        subprocess.run(
            [COORD, "spawn", "lat-1", "--task", "latency"], env=bench_env(COORD_HOME=str(home)), check=True
        )
        subprocess.run(
            [COORD, "start", "lat-1"], env=bench_env(COORD_HOME=str(home), COORD_AGENT="bench"), check=True
        )
        server = BoardServer(home).start()
        try:
            out["latency"] = (
                []
                if not a.commits
                else [latency(home, server, browser, n, a.commits, a.gap) for n in sorted({1, a.pages})]
            )
        finally:
            server.stop()
        out["first_load"] = [
            first_load(big_home(Path(tmp), int(n)), browser, a.runs) for n in a.sizes.split(",")
        ]
    out["wall_s"] = time.perf_counter() - started
    print(report(out))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))


def report(out: dict) -> str:
    lines = [
        f"- Machine: {out['machine']}",
        f"- Date: {out['date']}; whole run {out['wall_s']:.0f} s",
        "",
        "| measure | web board | baseline (same run) | ratio |",
        "|---|---|---|---|",
    ]
    for r in out["latency"]:
        pg, lg, al = r["page_ms"], r["log_f_ms"], r["all_pages_ms"]
        what = "1 page open" if r["pages"] == 1 else f"{r['pages']} pages open, every (commit, page)"
        lines.append(
            f"| Commit → change on the page, {what}; {r['commits']} commits | p50 {pg['p50']:.0f} ms, p99 {pg['p99']:.0f} ms "
            f"| `coord log -f`: p50 {lg['p50']:.0f} ms, p99 {lg['p99']:.0f} ms | {pg['p50'] / lg['p50']:.2f}× (p50) |"
        )
        if r["pages"] > 1:
            lines.append(
                f"| Commit → change on all {r['pages']} pages (the last of them) | p50 {al['p50']:.0f} ms, "
                f"p99 {al['p99']:.0f} ms | `coord log -f`: p50 {lg['p50']:.0f} ms | {al['p50'] / lg['p50']:.2f}× (p50) |"
            )
    for r in out["first_load"]:
        lines.append(
            f"| First load of the board, {r['workers']:,} workers: the first screen painted (median of {r['runs']}) "
            f"| {r['first_screen_ms']:.0f} ms | `coord --json status --all` process: {r['cli_ms']:.0f} ms "
            f"| {r['ratio_first_to_cli']:.2f}× |"
        )
        lines.append(
            f"| First load of the board, {r['workers']:,} workers: all {r['rows']:,} rows drawn (the unfinished "
            f"ones), painted | {r['page_ready_ms']:.0f} ms, {r['page_painted_ms']:.0f} ms | same process: "
            f"{r['cli_ms']:.0f} ms | {r['ratio_painted_to_cli']:.2f}× |"
        )
        lines.append(
            f"| GET /api/status?all=1 alone, {r['workers']:,} workers | {r['api_ms']:.0f} ms | same process: "
            f"{r['cli_ms']:.0f} ms | {r['ratio_api_to_cli']:.2f}× |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
