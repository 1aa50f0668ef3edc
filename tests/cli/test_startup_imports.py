"""The CLI's start-up stays light: a per-action command, run as a real process, imports
none of the heavy or optional packages (the PostgreSQL driver, the MCP SDK, the web stack,
sqlite-utils). Read from `python -X importtime`, which names every module a process
imports, with no hook in the process under test."""

import importlib.util
import os

import pytest

from helpers import imported

# Top-level packages the per-action path must not import.
OPTIONAL = ("psycopg", "mcp", "starlette", "uvicorn", "anyio", "websockets")
HEAVY = ("sqlite_utils",)
# `init` creates the schema through sqlite-utils (its migrations): a one-time command,
# not the per-action path, so it may import sqlite_utils (but nothing optional).
ALLOWED = {"init": set(HEAVY)}


@pytest.fixture(scope="module")
def installed():
    """The check means something only for packages that are there to be imported."""
    missing = [m for m in OPTIONAL + HEAVY if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} installed (pip install -e '.[test]')")


def test_the_detector_sees_an_import(tmp_path, installed):
    _, names = imported(["-c", "import coord.cli, psycopg, sqlite_utils"], dict(os.environ), tmp_path)
    assert {"coord", "psycopg", "sqlite_utils", "click"} <= names


def test_per_action_commands_import_nothing_heavy(tmp_path, installed):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["COORD_HOME"] = str(tmp_path / ".coord")
    steps = [
        ("init",),
        ("spawn", "w-1", "--task", "t"),
        ("--as", "agent-1", "start", "w-1"),
        ("--as", "agent-1", "heartbeat", "w-1", "--note", "n"),
        ("status",),
        ("--json", "status"),
        ("--as", "lead", "send", "note", '{"x": 1}', "--to", "agent-1"),
        ("--as", "agent-1", "poll"),
        ("--as", "agent-1", "--json", "poll", "--peek"),
        ("show", "w-1"),
        ("--as", "agent-1", "prime"),
        ("--as", "lead", "--json", "prime", "--role", "lead"),
        ("mcp", "--help"),
    ]
    for step in steps:
        r, names = imported(["-m", "coord", *step], env, tmp_path)
        assert r.returncode == 0, (step, r.stderr)
        assert "coord" in names  # it did run coord
        forbidden = set(OPTIONAL + HEAVY) - ALLOWED.get(step[0], set())
        assert not names & forbidden, f"coord {' '.join(step)} imported {sorted(names & forbidden)}"
