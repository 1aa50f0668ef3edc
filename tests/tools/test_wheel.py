"""coord as a user installs it: the wheel built from this tree, installed into a scratch
environment (no editable finder), holds every package under src/ (each room, and any room
added later: setup.py finds them), and its `coord` command works there."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def rooms() -> list[str]:
    """Every package of the source tree, as installed names."""
    out = ["coord"]
    for d in sorted((ROOT / "src").rglob("__init__.py")):
        rel = d.parent.relative_to(ROOT / "src")
        if rel.parts:
            out.append("coord." + ".".join(rel.parts))
    return out


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    d = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "wheel_venv.py"), str(d / "venv")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    return Path(r.stdout.strip()).parent


def test_the_installed_wheel_imports_every_package_from_itself(venv, tmp_path):
    names = rooms()
    assert {"coord.app", "coord.cli", "coord.events", "coord.projections"} <= set(names)
    code = (
        "import importlib, json, sys\n"
        "print(json.dumps({n: importlib.import_module(n).__file__ for n in sys.argv[1:]}))"
    )
    r = subprocess.run(
        [str(venv / "python"), "-c", code, *names], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    site = venv.parent / "lib"
    for name, path in json.loads(r.stdout).items():
        assert Path(path).is_relative_to(site), (name, path)  # the wheel's copy, not the tree
        assert Path(path).with_name("__pycache__").is_dir(), name  # compiled at install


def test_the_installed_command_appends(venv, tmp_path):
    env = dict(os.environ, COORD_HOME=str(tmp_path / ".coord"), COORD_AGENT="a1")
    for args in (["init"], ["spawn", "w-1"], ["start", "w-1"], ["heartbeat", "w-1"], ["status", "--json"]):
        r = subprocess.run(
            [str(venv / "coord"), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 0, (args, r.stderr)
    assert [w["worker"] for w in json.loads(r.stdout)] == ["w-1"]
