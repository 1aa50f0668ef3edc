"""Start-up as a user gets it (issue 19): `coord heartbeat` as a process from the wheel
installed in a scratch environment (bytecode compiled at install, no editable finder),
and from this tree's editable install (the README's set-up, bytecode compiled), against
the library floor (a script importing click, msgspec and blake3 that inserts the same row),
all with PYTHONDONTWRITEBYTECODE=1 as set on this machine, alternating run by run. Also an
empty `python -c pass` in each environment: what the editable finder costs every process.

    .venv/bin/python bench/startup_bench.py [--runs 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COORD, ROOT, median, precompile  # noqa: E402
from foundation_bench import FLOOR  # noqa: E402


def user_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # as on this machine: nothing is compiled at run time
    env.update(extra)
    return env


def startup(runs: int) -> dict:
    precompile()  # the README's set-up compiles the tree's bytecode (scripts/setup.sh)
    tmp = Path(tempfile.mkdtemp(prefix="coord-startup-"))
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "wheel_venv.py"), str(tmp / "venv")],
        capture_output=True,
        text=True,
        check=True,
    )
    wheel_py = Path(r.stdout.strip())
    wheel_coord = str(wheel_py.parent / "coord")
    homes = {}
    for name, cmd in (("wheel", wheel_coord), ("editable", COORD)):
        homes[name] = tmp / name / ".coord"
        env = user_env(COORD_HOME=str(homes[name]), COORD_AGENT="bench")
        # heartbeat_synchronous FULL: the floor's insert waits for the disk, so does this
        # heartbeat (the bench measures start-up, not the heartbeat's durability setting).
        for args in (
            ["init"],
            ["config", "heartbeat_synchronous", "FULL"],
            ["spawn", "w-1"],
            ["start", "w-1"],
        ):
            subprocess.run([cmd, *args], env=env, check=True, capture_output=True)
    floor = tmp / "floor.py"
    floor.write_text(FLOOR.format(imports="import click, msgspec, blake3"))
    floor_db = str(homes["editable"].parent / "floor" / ".coord" / "coord.db")
    subprocess.run(
        [COORD, "--home", str(Path(floor_db).parent), "init"], env=user_env(), check=True, capture_output=True
    )
    cmds = {
        "wheel: coord heartbeat": ([wheel_coord, "heartbeat", "w-1"], homes["wheel"]),
        "editable: coord heartbeat": ([COORD, "heartbeat", "w-1"], homes["editable"]),
        "floor: click+msgspec+blake3 + insert": ([sys.executable, str(floor), floor_db], None),
        "wheel env: python -c pass": ([str(wheel_py), "-c", "pass"], None),
        "editable env: python -c pass": ([sys.executable, "-c", "pass"], None),
    }
    times = {k: [] for k in cmds}
    for _ in range(runs):  # alternate, so drift hits all alike
        for k, (cmd, home) in cmds.items():
            env = user_env(COORD_HOME=str(home), COORD_AGENT="bench") if home else user_env()
            t = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
            times[k].append(time.perf_counter() - t)
    med = {k: median(v) * 1000 for k, v in times.items()}
    fl = med["floor: click+msgspec+blake3 + insert"]
    return {
        "runs": runs,
        "median_ms": med,
        "wheel_vs_floor": med["wheel: coord heartbeat"] / fl,
        "editable_vs_floor": med["editable: coord heartbeat"] / fl,
        "finder_ms": med["editable env: python -c pass"] - med["wheel env: python -c pass"],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args(argv)
    print(json.dumps(startup(a.runs), indent=1))


if __name__ == "__main__":
    main()
