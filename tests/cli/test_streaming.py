"""`import` and `replay --from-file` read files of any length in bounded memory: the peak
resident size of a real process does not grow with the number of lines (20k against 70k
here; the 1M-line run is in bench/ and docs/performance.md)."""

import os
import random
import subprocess
import sys
import textwrap

import pytest

from coord.events.codec import audit_line
from coord.events.envelope import Envelope, canonical, event_id, us_to_ts
from helpers import count_events

WORKERS = 200
SMALL, LARGE = 20_000, 70_000
# Peak RSS may grow by this much from SMALL to LARGE lines. Holding the file (what both
# commands did) costs over 1 KiB a line: more than 50 MB for the 50k lines between.
ALLOWED_GROWTH_KB = 16 * 1024

# Runs one coord command as a child and prints the child's peak RSS (KiB).
PEAK = textwrap.dedent("""
    import resource, subprocess, sys
    r = subprocess.run([sys.executable, "-m", "coord", *sys.argv[1:]], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    assert r.returncode == 0, r.stderr
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
""")


def write_history(path, n: int, seed: int = 19) -> None:
    """n audit lines: WORKERS workers spawned and started, then messages with some text
    (the workers' number fixed, so the views' size does not grow with n), with a share of
    duplicate lines and lines out of order, as after git's union merge."""
    rnd = random.Random(seed)
    us = 1_700_000_000_000_000
    lines = []
    for w in range(WORKERS):
        for frm, etype in (("lead", "worker.spawned"), (f"a-{w}", "worker.started")):
            us += 1
            lines.append(canonical(Envelope(us_to_ts(us), frm, f"w-{w}", etype, {})))
    while len(lines) < n:
        us += 1
        text = " ".join(rnd.choices(["parser", "flaky", "merge", "review", "lock", "index"], k=20))
        lines.append(canonical(Envelope(us_to_ts(us), f"a-{us % 50}", "*", "msg.note", {"text": text})))
    out = [audit_line(event_id(b), b) for b in lines]
    for i in range(0, len(out) - 1, 97):  # a few neighbours swapped, a few lines twice
        out[i], out[i + 1] = out[i + 1], out[i]
    out += out[: n // 50]
    with open(path, "wb") as f:
        f.writelines(out)


def peak_kb(tmp_path, *args) -> int:
    script = tmp_path / "peak.py"
    script.write_text(PEAK)
    env = dict(os.environ, COORD_AGENT="t")
    r = subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("streaming")
    out = {}
    for n in (SMALL, LARGE):
        out[n] = d / f"h{n}.jsonl"
        write_history(out[n], n)
    return out


def test_replay_from_file_memory_does_not_grow_with_the_file(tmp_path, files):
    small = peak_kb(tmp_path, "replay", "--from-file", str(files[SMALL]), "--at", "2099-01-01")
    large = peak_kb(tmp_path, "replay", "--from-file", str(files[LARGE]), "--at", "2099-01-01")
    assert large - small < ALLOWED_GROWTH_KB, (small, large)


@pytest.mark.slow  # ~40 s here: 90k events written
def test_import_memory_does_not_grow_with_the_file(tmp_path, files):
    peaks = {}
    for n in (SMALL, LARGE):
        home = tmp_path / f"home{n}" / ".coord"
        for args in (["init"], ["config", "synchronous", "NORMAL"]):  # memory measured, not fsyncs
            subprocess.run(
                [sys.executable, "-m", "coord", "--home", str(home), *args], check=True, capture_output=True
            )
        peaks[n] = peak_kb(tmp_path, "--home", str(home), "import", str(files[n]))
        assert count_events(home) == n  # each distinct line once
    assert peaks[LARGE] - peaks[SMALL] < ALLOWED_GROWTH_KB, peaks
