"""Helpers shared by the benchmarks: timing, percentiles, a fresh home, the machine."""

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
COORD = str(VENV_BIN / "coord")


def bench_env(**extra):
    """Users' machines keep bytecode: never measure with PYTHONDONTWRITEBYTECODE set."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


def precompile():
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "src")],
        env=bench_env(),
        stdout=subprocess.DEVNULL,
    )


def fresh_home(prefix="coord-bench-") -> Path:
    from coord.app.admin import init

    d = Path(tempfile.mkdtemp(prefix=prefix))
    init(d / ".coord")
    return d / ".coord"


def durable_beats(home: Path) -> Path:
    """Make the home's heartbeats as durable as everything else (heartbeat_synchronous
    FULL), for rows that compare coord with a baseline at `synchronous = FULL`."""
    from coord.events.settings_write import SettingsWriter

    try:
        SettingsWriter(home).set("heartbeat_synchronous", "FULL")
    except Exception:  # a revision before the setting (bench/ab.py): heartbeats were FULL
        pass
    return home


def pct(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100 * (len(v) - 1)))))
    return v[k]


def median(values):
    return statistics.median(values)


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}; "
        f"Python {platform.python_version()}; SQLite {__import__('sqlite3').sqlite_version}"
    )


def timed(fn, *a, **kw):
    t = time.perf_counter()
    r = fn(*a, **kw)
    return time.perf_counter() - t, r
