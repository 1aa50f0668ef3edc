"""Shared fixtures: every test gets its own home under tmp_path (COORD_HOME), and two ways
to run coord: in-process through the real entry point (`cli`), or as a real subprocess
(`proc`) for concurrency, crashes and signals."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from coord.cli import cli as click_group
from coord.cli.common import run_main


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run large/slow tests too")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def jsonl(self):
        # Split on \n only: JSON strings may hold U+2028 etc., which splitlines() breaks on.
        return [json.loads(line) for line in self.stdout.split("\n") if line.strip()]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    for var in ("COORD_AGENT", "COORD_WORKER", "COORD_HOME", "COORD_FAILPOINTS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "tester")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An initialised home at tmp_path/.coord, exported as COORD_HOME."""
    path = tmp_path / ".coord"
    monkeypatch.setenv("COORD_HOME", str(path))
    r = _run_inprocess(["init"])
    assert r.exit_code == 0, r.stderr
    return path


def _run_inprocess(args, input=None, env=None) -> Ran:
    runner = CliRunner()
    with runner.isolation(input=input, env=env) as streams:
        code = run_main(click_group, [str(a) for a in args])
        out = streams[0].getvalue().decode()
        err = streams[1].getvalue().decode() if streams[1] is not None else ""
    return Ran(code, out, err)


@pytest.fixture
def cli():
    """cli('spawn', 'w-1', input=..., env={...}) -> Ran, in-process, real error handling."""

    def run(*args, input=None, env=None):
        return _run_inprocess(list(args), input=input, env=env)

    return run


def coord_cmd():
    return [sys.executable, "-m", "coord"]


@pytest.fixture
def proc():
    """proc('status', '--json', env={...}) -> CompletedProcess, as a real process."""

    def run(*args, env=None, input=None, timeout=60, **kw):
        e = dict(os.environ)
        if env:
            e.update(env)
        return subprocess.run(
            [*coord_cmd(), *map(str, args)],
            env=e,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )

    return run


def count_events(home_path) -> int:
    import sqlite3

    con = sqlite3.connect(str(home_path / "coord.db"))
    try:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        con.close()
