"""Bad input and hostile conditions: a one-line error, the documented exit code, nothing
appended, never a traceback."""

import json
import os
import subprocess
import sys
import time

import pytest

from coord.app.lifecycle import check_payload
from coord.events.errors import BadPayload
from helpers import count_events, unprivileged, world_reachable_tmp


def one_line_error(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


@pytest.mark.parametrize(
    "args,code",
    [
        (("--as", "a", "start", "nope"), 3),
        (("show", "nope"), 3),
        (("spawn", "-bad"), 2),
        (("spawn", "has space"), 2),
        (("spawn", "x" * 65), 2),
        (("spawn", "w-1", "--bogus"), 2),
        (("request-changes", "w-1"), 2),  # --reason missing
        (("status", "--state", "sleeping"), 2),
        (("log", "--limit", "0"), 2),
        (("heartbeat", "w-1", "--interval", "-1", "--as", "a"), 2),
        (("heartbeat", "w-1", "--interval", "nan", "--as", "a"), 2),
        (("heartbeat", "w-1", "--interval", "inf", "--as", "a"), 2),
        (("frobnicate",), 2),
        (("config", "nope"), 2),
        (("config", "heartbeat_interval", "fast"), 2),
    ],
)
def test_bad_input_one_line_documented_code_nothing_appended(home, cli, args, code):
    assert cli("spawn", "w-0").exit_code == 0
    n = count_events(home)
    r = cli(*args)
    assert r.exit_code == code, (args, r.stderr)
    assert one_line_error(r.stderr), r.stderr
    assert count_events(home) == n


def test_json_errors_have_code_message_exit(home, cli):
    r = cli("--json", "--as", "a", "start", "nope")
    err = json.loads(r.stderr)["error"]
    assert err == {"code": "unknown_worker", "message": "unknown worker 'nope'", "exit": 3}


def test_payload_must_be_an_object_without_reserved_keys():
    with pytest.raises(BadPayload):
        check_payload([1, 2])
    with pytest.raises(BadPayload, match=r"\$blob"):
        check_payload({"$blob": "x"})
    assert check_payload({"a": 1}) == {"a": 1}


def test_no_home_exits_3(tmp_path, cli):
    r = cli("status")
    assert r.exit_code == 3 and one_line_error(r.stderr) and "coord init" in r.stderr
    (tmp_path / ".coord").mkdir()  # a .coord/ without coord.db is not a home
    assert cli("status").exit_code == 3


def test_store_locked_past_busy_timeout_exits_7_and_appends_nothing(home, cli, tmp_path):
    assert cli("config", "busy_timeout", "0.5").exit_code == 0
    assert cli("spawn", "w-1").exit_code == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time\n"
                f"c = sqlite3.connect({str(home / 'coord.db')!r}, isolation_level=None)\n"
                "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(30)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        n = count_events(home)
        t = time.monotonic()
        r = cli("--as", "a", "start", "w-1")
        assert r.exit_code == 7 and one_line_error(r.stderr) and "retry" in r.stderr
        assert time.monotonic() - t < 10
    finally:
        holder.kill()
        holder.wait()
    assert count_events(home) == n
    assert cli("--as", "a", "start", "w-1").exit_code == 0  # and it was safe to retry


@pytest.fixture
def world_reachable_dir():
    """pytest's tmp_path sits in root-only directories; `nobody` must be able to reach this."""
    import shutil

    d = world_reachable_tmp()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unwritable_home_for_an_unprivileged_user(world_reachable_dir, proc):
    """Tests run as root, who can write anywhere: drop to `nobody` so this can fail. coord
    runs from a world-readable copy (tests/helpers.py), so this works from any clone."""
    nobody = unprivileged()
    h = world_reachable_dir / ".coord"
    env = {"COORD_HOME": str(h)}
    assert proc("init", env=env).returncode == 0
    assert proc("spawn", "w-1", env=env).returncode == 0
    # Readable by everyone, writable by root only.
    for root, _dirs, files in os.walk(h):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    n = count_events(h)
    r = nobody.run("start", "w-1", env={**env, "COORD_AGENT": "a"})
    assert r.returncode == 1, r.stderr
    assert one_line_error(r.stderr) and ("cannot write" in r.stderr or "readonly" in r.stderr), r.stderr
    assert count_events(h) == n


def test_home_files_are_never_world_accessible(home, cli):
    cli("spawn", "w-1")
    for root, dirs, files in os.walk(home):
        for name in dirs + files:
            mode = os.stat(os.path.join(root, name)).st_mode
            assert mode & 0o007 == 0, (name, oct(mode))


def test_garbage_database_is_an_integrity_error(tmp_path, cli, monkeypatch):
    h = tmp_path / "g" / ".coord"
    h.mkdir(parents=True)
    (h / "coord.db").write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("COORD_HOME", str(h))
    r = cli("status")
    assert r.exit_code == 5 and one_line_error(r.stderr), r.stderr


def test_bare_coord_prints_help(cli):
    r = cli()
    assert r.exit_code == 0 and r.stdout.startswith("Usage: coord") and "Commands:" in r.stdout
