"""A git repository of a real size, generated offline from a seed (for the queue and
overlap benchmarks): `files` text files in nested directories, one commit on main, and
helpers that give a worker's branch edits to a few files picked by the same seed.

    .venv/bin/python bench/repo_gen.py /tmp/repo --files 3000 --seed 17
"""

import argparse
import os
import random
import subprocess
from pathlib import Path

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi".split()


def git(cwd, *args) -> str:
    env = {**os.environ, "LC_ALL": "C", "GIT_EDITOR": "true"}
    r = subprocess.run(["git", *args], cwd=str(cwd), capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"git {args} failed: {r.stderr}")
    return r.stdout.strip()


def paths(files: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for i in range(files):
        depth = rnd.randint(1, 3)
        parts = [f"{rnd.choice(WORDS)}{rnd.randint(0, 9)}" for _ in range(depth)]
        out.append("/".join(["src", *parts, f"mod_{i:05d}.py"]))
    return out


def body(path: str, seed: int, lines: int = 40) -> str:
    rnd = random.Random(f"{seed}:{path}")
    return "".join(f"{rnd.choice(WORDS)} = {rnd.randint(0, 10**6)}  # line {n}\n" for n in range(lines))


def make(root: Path, files: int = 3000, seed: int = 17) -> list[str]:
    """A repository at root with `files` files committed on main; returns their paths."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Bench")
    git(root, "config", "user.email", "bench@example.com")
    ps = paths(files, seed)
    for p in ps:
        f = root / p
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(body(p, seed))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"generated: {files} files, seed {seed}")
    return ps


def edit(worktree: Path, all_paths: list[str], rnd: random.Random, n: int, tag: str) -> list[str]:
    """Change line 3 of n files picked by rnd and commit: two workers that pick the same
    file conflict there."""
    picked = rnd.sample(all_paths, n)
    for p in picked:
        f = worktree / p
        lines = f.read_text().splitlines(keepends=True)
        lines[3] = f"changed = {tag!r}\n"
        f.write_text("".join(lines))
    git(worktree, "commit", "-q", "-am", f"{tag}: {n} files")
    return picked


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=17)
    a = ap.parse_args()
    make(a.root, a.files, a.seed)
    print(f"{a.root}: {a.files} files")


if __name__ == "__main__":
    main()
