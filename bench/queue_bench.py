"""Checks, the merge queue and overlap (issue 17), on a generated repository of a real
size (bench/repo_gen.py: a few thousand files, from a seed). Measures, against baselines
from the same run:
  1. `coord overlap` over W live workers (W·(W-1)/2 pairs plus each against its base),
     cold, against the same number of bare `git merge-tree --write-tree` processes;
  2. the rerun after one head moved (the cache answers the other pairs), against half a
     heartbeat interval (the issue's bound), and a rerun with nothing moved;
  3. `coord queue --once` per merge (no required check, then one trivial check run in the
     scratch worktree), against a bare `git merge --no-ff` per branch in a copy.

Usage: .venv/bin/python bench/queue_bench.py [--files 3000] [--workers 20] [--merges 8]
"""

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from repo_gen import edit, git, make  # noqa: E402

ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "COORD_AGENT", "COORD_WORKER")
}


def coord(root, *args, check=True):
    r = subprocess.run(
        [sys.executable, "-m", "coord", *args], cwd=str(root), env=ENV, capture_output=True, text=True
    )
    if check and r.returncode != 0:
        raise SystemExit(f"coord {args} failed: {r.stderr}")
    return r


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def setup(root: Path, files: int, workers: int, seed: int, per_worker: int = 5, approve: bool = False):
    """A repository with a home and `workers` live workers, each with a commit editing
    per_worker files (picked by the seed: some pairs overlap)."""
    ps = make(root, files, seed)
    coord(root, "init")
    git(root, "add", ".coord")
    git(root, "commit", "-q", "-m", "coord home")
    rnd = random.Random(seed)
    names = [f"w{i:02d}" for i in range(workers)]
    for w in names:
        coord(root, "spawn", w)
        coord(root, "--as", f"ag-{w}", "start", w)
        edit(root / ".coord" / "worktrees" / w, ps, rnd, per_worker, w)
        if approve:
            coord(root, "--as", f"ag-{w}", "done", w, "--no-rebase")
            coord(root, "--as", "rev", "approve", w)
    return ps, names


def bench_overlap(tmp: Path, files: int, workers: int, seed: int) -> dict:
    root = tmp / "overlap"
    ps, names = setup(root, files, workers, seed)
    cache = root / ".git" / "coord-overlap.json"
    cold, r = timed(lambda: coord(root, "overlap", "--json"))
    import json

    res = json.loads(r.stdout)
    tips = [git(root, "rev-parse", f"coord/{w}") for w in names]
    main = git(root, "rev-parse", "main")
    pairs = [(a, b) for i, a in enumerate(tips) for b in tips[i + 1 :]] + [(t, main) for t in tips]

    def bare():
        for a, b in pairs:
            subprocess.run(
                ["git", "merge-tree", "--write-tree", "--name-only", a, b], cwd=root, capture_output=True
            )

    bare_s, _ = timed(bare)
    same, _ = timed(lambda: coord(root, "overlap", "--json"))
    edit(root / ".coord" / "worktrees" / names[0], ps, random.Random(seed + 1), 2, "moved")
    moved, r2 = timed(lambda: coord(root, "overlap", "--json"))
    res2 = json.loads(r2.stdout)
    cache.unlink()
    cold2, _ = timed(lambda: coord(root, "overlap", "--json"))
    return {
        "workers": workers,
        "files": files,
        "checked": res["checked"],
        "conflicting_pairs": len(res["pairs"]),
        "cold_s": min(cold, cold2),
        "bare_s": bare_s,
        "same_s": same,
        "moved_s": moved,
        "moved_merged": res2["checked"] - res2["cached"],
    }


def bench_queue(tmp: Path, files: int, merges: int, seed: int) -> dict:
    out = {}
    for label, checks in (("none", False), ("true", True)):
        root = tmp / f"queue-{label}"
        _ps, names = setup(root, files, merges, seed + 7, per_worker=3, approve=True)
        base = tmp / f"bare-{label}"  # the same repository, workers and worktrees (same seed)
        setup(base, files, merges, seed + 7, per_worker=3, approve=True)
        if checks:
            coord(root, "config", "check.smoke", "true")
            coord(root, "config", "required_checks", "smoke")
        t_queue, r = timed(lambda root=root: coord(root, "--as", "merger", "queue", "--once", check=False))
        merged = r.stdout.count("merged")

        def bare(names=names, base=base):
            # the same end state by hand: the branch merged, the worker's worktree removed
            for w in names:
                for args in (
                    ["merge", "--no-ff", "--no-edit", "-q", f"coord/{w}"],
                    ["worktree", "remove", "--force", str(base / ".coord" / "worktrees" / w)],
                ):
                    subprocess.run(["git", *args], cwd=base, capture_output=True, env=ENV)

        t_bare, _ = timed(bare)
        out[label] = {"merged": merged, "queue_s": t_queue, "bare_s": t_bare, "n": len(names)}
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--workers", type=int, default=20)
    ap.add_argument("--merges", type=int, default=8)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--only", choices=("overlap", "queue"), help="Run one half.")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="coord-queue-bench-"))
    try:
        o = bench_overlap(tmp, a.files, a.workers, a.seed) if a.only != "queue" else None
        q = bench_queue(tmp, a.files, a.merges, a.seed) if a.only != "overlap" else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    half = 10.0 / 2
    print("| measure | coord | baseline (same run) | ratio |\n|---|---|---|---|")
    if o:
        report_overlap(o, half)
    if q:
        report_queue(q)


def report_overlap(o, half):
    print(
        f"| `coord overlap`, {o['workers']} live workers, {o['files']} files, cold ({o['checked']} merges, "
        f"{o['conflicting_pairs']} conflicting pairs) | {o['cold_s']:.2f} s | {o['checked']} bare `git merge-tree` "
        f"processes: {o['bare_s']:.2f} s | {o['cold_s'] / o['bare_s']:.2f}× |"
    )
    print(
        f"| `coord overlap` rerun after one head moved ({o['moved_merged']} merges computed, the rest cached) "
        f"| {o['moved_s']:.2f} s | half the default heartbeat interval: {half:.1f} s | {o['moved_s'] / half:.2f}× (bound ≤ 1) |"
    )
    print(
        f"| `coord overlap` rerun, nothing moved | {o['same_s']:.2f} s | cold run: {o['cold_s']:.2f} s | {o['same_s'] / o['cold_s']:.2f}× |"
    )


def report_queue(q):
    for label, what in (
        ("none", "no required check"),
        ("true", "one required check (`true`) in a scratch worktree"),
    ):
        d = q[label]
        per_q, per_b = d["queue_s"] / d["n"], d["bare_s"] / d["n"]
        print(
            f"| `coord queue --once`, {d['n']} approved workers, {what} ({d['merged']} merged) | {per_q * 1000:.0f} ms "
            f"per merge | by hand, `git merge --no-ff` + `git worktree remove`: {per_b * 1000:.0f} ms | {per_q / per_b:.1f}× |"
        )


if __name__ == "__main__":
    main()
