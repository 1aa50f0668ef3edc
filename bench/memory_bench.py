"""Issue 19: peak memory of `coord import` and `coord replay --from-file` against the
length of the file. A generated audit file (bench/bigstore_bench.py's generator: workers
going spawn → start → heartbeats and messages → an end) of each size is imported into a
fresh home by a real process, and replayed (`--at` a time after the last event: every
line read, checked, sorted and folded); the peak resident size of each process is read
from getrusage. Memory that does not grow with the file is what streaming means.

    .venv/bin/python bench/memory_bench.py [--lines 100000 1000000] [--workers 10000]

With PYTHONPATH pointing at another revision's package, the same figures for that one.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bigstore_bench  # noqa: E402
from common import bench_env  # noqa: E402

PEAK = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)\n"
    "assert r.returncode == 0, r.stderr\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, time.perf_counter() - t)\n"
)


def peak(args: list[str], env: dict) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one coord process."""
    r = subprocess.run(
        [sys.executable, "-c", PEAK, sys.executable, "-m", "coord", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    kb, secs = r.stdout.split()
    return int(kb) / 1024, float(secs)


def measure(lines: int, workers: int, tmp: Path) -> dict:
    f = tmp / f"audit-{lines}.jsonl"
    n = bigstore_bench.generate(f, min(workers, max(1, lines // 20)), lines)
    home = tmp / f"home-{lines}" / ".coord"
    env = bench_env(COORD_AGENT="bench")
    subprocess.run(
        [sys.executable, "-m", "coord", "--home", str(home), "init"], env=env, check=True, capture_output=True
    )
    imp_mb, imp_s = peak(["--home", str(home), "import", str(f)], env)
    rep_mb, rep_s = peak(["replay", "--from-file", str(f), "--at", "2999-01-01"], env)
    f.unlink()
    return {"lines": n, "import_mb": imp_mb, "import_s": imp_s, "replay_mb": rep_mb, "replay_s": rep_s}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--workers", type=int, default=10_000)
    a = ap.parse_args(argv)
    t = time.perf_counter()
    out = []
    with tempfile.TemporaryDirectory(prefix="coord-mem-") as tmp:
        for n in a.lines:
            out.append(measure(n, a.workers, Path(tmp)))
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"runs": out, "wall_s": time.perf_counter() - t, "self_mb": _self_mb()}))


def _self_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    main()
