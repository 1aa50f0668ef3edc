"""The web board's benchmark and screenshot scripts cannot rot: both run whole (small), each
row is printed and each picture written. No timing is asserted. Behind --runslow: each
starts its own chromium and `coord serve` (about 30 s together)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_web_bench_small_prints_every_row(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web_bench.py"), "--small", "--json", str(tmp_path / "w.json")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 2 + 1 + 3, r.stdout  # 1 page; 3 pages (+ all of them); first load ×2, API
    assert (tmp_path / "w.json").exists()


def test_screenshots_are_taken(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "web_screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("board.png", "worker.png", "messages.png", "timeline.png", "stats.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
