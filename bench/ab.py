"""Before/after in one run: the issue-19 figures (bench/store_bench.py) for this tree and for
another revision of coord (default `main`), in interleaved rounds (base, head, head, base,
…) so the machine's drift hits both alike; prints the median of each ratio per revision.

    .venv/bin/python bench/ab.py [--base main] [--rounds 5] [--appends 1000] [--seconds 3]
    .venv/bin/python bench/ab.py --board 10000 [--rounds 7]   # status --all / log --limit 20

The other revision is exported with `git archive` into a scratch directory and put first
on PYTHONPATH as the package `coord`; the bench code itself is this tree's.
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
from common import ROOT, bench_env  # noqa: E402

# (label, path into store_bench's JSON)
FIGURES = [
    (
        "append: coord (heartbeat_synchronous default) / raw (id, body) insert, rate",
        ("inprocess", "coord_vs_raw_kv"),
    ),
    ("append: coord, heartbeats FULL / raw (id, body) insert, rate", ("inprocess", "coord_full_vs_raw_kv")),
    (
        "append: coord / eventsourcing Application.save, both FULL, rate",
        ("inprocess", "coord_full_vs_peer_app"),
    ),
    ("append: coord / Application.save, heartbeats NORMAL both, rate", ("inprocess", "coord_vs_peer_normal")),
    ("append: CPU per append, coord (FULL) over raw (id, body)", ("inprocess", "cpu_coord_full_over_raw_kv")),
    (
        "append: CPU per append, coord over Application.save (FULL)",
        ("inprocess", "cpu_coord_full_over_peer_app"),
    ),
    ("append: WAL pages per append (coord)", ("inprocess", "wal_pages", "coord_full")),
    ("append: WAL pages per append (raw (id, body))", ("inprocess", "wal_pages", "raw_kv")),
    ("writers: p99 coord / p99 raw", ("writers", "p99_ratio")),
    ("writers: worst wait coord / raw", ("writers", "max_ratio")),
    ("writers: BUSY errors (coord)", ("writers", "coord", "busy")),
    ("writers: worst writer's distance from the mean count (coord)", ("writers", "coord", "worst_share")),
    ("writers: worst writer's distance from the mean count (raw)", ("writers", "raw", "worst_share")),
]


def tree_of(ref: str, scratch: Path) -> Path:
    """A directory holding `coord` -> that revision's src/."""
    out = scratch / "base"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    pkg = scratch / "base-pkg"
    pkg.mkdir()
    (pkg / "coord").symlink_to(out / "src")
    return pkg


def head_tree(scratch: Path) -> Path:
    pkg = scratch / "head-pkg"
    pkg.mkdir()
    (pkg / "coord").symlink_to(ROOT / "src")
    return pkg


def run_once(pkg: Path, args: list[str]) -> dict:
    env = bench_env(PYTHONPATH=str(pkg))
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "store_bench.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout)


def board_store(path: Path, workers: int, pkg: Path | None = None) -> Path:
    """A home with `workers` workers (spawned, started, one heartbeat; every other one
    handed in), made in one transaction by the coord of `pkg` (default this tree's): each
    revision reads a store of its own schema."""
    code = (
        "import sys\n"
        "from coord.app.admin import init\n"
        "from coord.app.context import Coord\n"
        "from coord.events.envelope import Envelope\n"
        "p, n = sys.argv[1], int(sys.argv[2])\n"
        "init(p)\n"
        "def fill(tx):\n"
        "    for i in range(n):\n"
        "        w, a = f'w-{i}', f'agent-{i % 50}'\n"
        "        tx.append(Envelope(tx.next_ts(), 'human:lead', w, 'worker.spawned', {'task': f'task {i}'}))\n"
        "        tx.append(Envelope(tx.next_ts(), a, w, 'worker.started', {'clone': 'x'}))\n"
        "        tx.append(Envelope(tx.next_ts(), a, w, 'worker.heartbeat', {'interval': 60}))\n"
        "        if i % 2:\n"
        "            tx.append(Envelope(tx.next_ts(), a, w, 'worker.done', {'summary': 'done'}))\n"
        "with Coord(p, actor='human:lead') as c:\n"
        "    c.store.transact(fill, hooks=False)\n"
    )
    env = bench_env(PYTHONPATH=str(pkg)) if pkg is not None else bench_env()
    subprocess.run([sys.executable, "-c", code, str(path), str(workers)], env=env, check=True)
    return path


def board_round(pkg: Path, home: Path) -> dict:
    """One `coord status --all` and one `coord log --limit 20` process (seconds)."""
    out = {}
    for name, args in (("status_all", ["status", "--all"]), ("log", ["log", "--limit", "20"])):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "coord", "--home", str(home), *args],
            env=bench_env(PYTHONPATH=str(pkg)),
            stdout=subprocess.DEVNULL,
            check=True,
        )
        out[name] = time.perf_counter() - t
    return out


def dig(d, path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="main")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--appends", type=int, default=1000)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--only", choices=["inprocess", "writers"])
    ap.add_argument("--json", type=Path, help="also write every round's figures here")
    ap.add_argument(
        "--board", type=int, metavar="N", help="instead: status --all / log --limit 20 at N workers"
    )
    a = ap.parse_args(argv)
    if a.board:
        return board_main(a)
    args = ["--appends", str(a.appends), "--writers", str(a.writers), "--seconds", str(a.seconds)]
    if a.only:
        args += ["--only", a.only]
    runs = {"base": [], "head": []}
    with tempfile.TemporaryDirectory(prefix="coord-ab-") as tmp:
        trees = {"base": tree_of(a.base, Path(tmp)), "head": head_tree(Path(tmp))}
        for r in range(a.rounds):
            order = ["base", "head"] if r % 2 == 0 else ["head", "base"]
            for which in order:
                print(f"  round {r + 1}/{a.rounds}: {which}", file=sys.stderr, flush=True)
                runs[which].append(run_once(trees[which], args))
    print(f"| figure (median of {a.rounds} interleaved rounds) | {a.base} | this tree |")
    print("|---|---|---|")
    for label, path in FIGURES:
        cells = []
        for which in ("base", "head"):
            vals = [v for v in (dig(x, path) for x in runs[which]) if v is not None]
            cells.append(f"{statistics.median(vals):.2f}" if vals else "–")
        if cells != ["–", "–"]:
            print(f"| {label} | {cells[0]} | {cells[1]} |")
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))


def board_main(a) -> None:
    """`status --all` over `log --limit 20`, processes, interleaved by revision and round
    (each revision on a store it made: same workers, its own schema)."""
    times = {"base": {"status_all": [], "log": []}, "head": {"status_all": [], "log": []}}
    with tempfile.TemporaryDirectory(prefix="coord-ab-") as tmp:
        trees = {"base": tree_of(a.base, Path(tmp)), "head": head_tree(Path(tmp))}
        homes = {w: board_store(Path(tmp) / f"board-{w}" / ".coord", a.board, trees[w]) for w in trees}
        for r in range(a.rounds):
            for which in ["base", "head"] if r % 2 == 0 else ["head", "base"]:
                for k, v in board_round(trees[which], homes[which]).items():
                    times[which][k].append(v)
    print(f"| `status --all` at {a.board:,} workers (median of {a.rounds}) | {a.base} | this tree |")
    print("|---|---|---|")
    med = {w: {k: statistics.median(v) * 1000 for k, v in t.items()} for w, t in times.items()}
    print(f"| status --all, ms | {med['base']['status_all']:.0f} | {med['head']['status_all']:.0f} |")
    print(f"| log --limit 20, ms | {med['base']['log']:.0f} | {med['head']['log']:.0f} |")
    ratio = {w: m["status_all"] / m["log"] for w, m in med.items()}
    print(f"| ratio | {ratio['base']:.2f}× | {ratio['head']:.2f}× |")


if __name__ == "__main__":
    main()
