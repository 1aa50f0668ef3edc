"""Crashes at named failpoints (COORD_FAILPOINTS makes the process SIGKILL itself there),
round after round: each crash is a real process killed mid-command; the steps around it
(the spawns before, the commands a person runs after) run through the same entry point
in this process. After each: `coord verify` passes once the next command has run, every
event a caller was told succeeded is present exactly once, no partial line stays in the
audit file, and PRAGMA integrity_check is ok."""

import json
import os
import sqlite3
import subprocess

import pytest

from coord.events.codec import check_line
from crashkit import check_store
from helpers import coord_cmd, many_spawned


def run(home, *args, fail=None, agent="a", input=None):
    env = dict(os.environ, COORD_HOME=str(home), COORD_AGENT=agent)
    env.pop("COORD_FAILPOINTS", None)
    if fail:
        env["COORD_FAILPOINTS"] = fail
    return subprocess.run(
        [*coord_cmd(), *map(str, args)], env=env, capture_output=True, text=True, input=input, timeout=120
    )


def audit_ok(home):
    data = (home / "events.jsonl").read_bytes()
    assert not data or data.endswith(b"\n"), "a partial line is left in the audit file"
    ids = [check_line(line)[0] for line in data.split(b"\n") if line]
    assert len(ids) == len(set(ids)), "a line is duplicated"
    return ids


def settle(home, cli):
    """What a person does after a crash: nothing special. The next command repairs."""
    r = cli("export")
    assert r.exit_code == 0, r.stderr
    r = cli("verify")
    assert r.exit_code == 0, r.stdout + r.stderr
    audit_ok(home)


CASES = [
    # (failpoint, command that reaches it, was the action committed?)
    ("before-commit", ("spawn", "{w}"), False),
    ("after-commit", ("spawn", "{w}"), True),
    ("audit-mid-write", ("spawn", "{w}"), True),
    ("audit-after-write", ("spawn", "{w}"), True),
    ("blob-mid-write", ("send", "big", "-", "--to", "x"), False),
    ("rebuild-mid-read", ("rebuild",), None),
    ("rebuild-before-swap", ("rebuild",), None),
    ("poll-after-output", ("poll",), None),
]


@pytest.mark.parametrize("fp,cmd,committed", CASES, ids=[c[0] for c in CASES])
def test_crash_at_failpoint_loses_nothing(home, cli, fp, cmd, committed):
    acked = []
    for i in range(3):  # round after round on the same home
        w = f"w-{fp}-{i}"
        r = cli("spawn", w, "--json")
        assert r.exit_code == 0, r.stderr
        acked.append(r.json()["event"])
        if fp == "poll-after-output":
            assert cli("--as", "a", "send", "note", '{"n": %d}' % i, "--to", "a").exit_code == 0
        before = sqlite3.connect(home / "coord.db").execute("SELECT count(*) FROM events").fetchone()[0]
        big = json.dumps({"text": "y" * 300_000 + str(i)})
        args = [a.format(w=w + "-x") for a in cmd]
        r = run(home, *args, fail=fp, input=big if "-" in args else None)
        assert r.returncode == -9, (fp, r.returncode, r.stderr)
        after = sqlite3.connect(home / "coord.db").execute("SELECT count(*) FROM events").fetchone()[0]
        if committed is True:
            assert after == before + 1
        elif committed is False:
            assert after == before
        settle(home, cli)
        if fp == "poll-after-output":  # at least once: the message comes again
            again = cli("--as", "a", "poll", "--json")
            assert again.exit_code == 0 and f'"n":{i}' in again.stdout.replace(" ", "")
        check_store(home, acked)
        ids = audit_ok(home)
        assert set(acked) <= set(ids)
        assert not [
            p for p in (home / "blobs").iterdir() if not p.name.startswith(".tmp") and len(p.name) != 64
        ]


def test_import_killed_between_batches_then_retried(home, cli, tmp_path):
    src = many_spawned(tmp_path / "src" / ".coord", 2600)  # more than one import batch
    r = run(home, "import", src / "events.jsonl", fail="import-between-batches")
    assert r.returncode == -9
    n1 = sqlite3.connect(home / "coord.db").execute("SELECT count(*) FROM events").fetchone()[0]
    assert 0 < n1 < 2600  # the first batch committed, the rest did not
    r = run(home, "import", src / "events.jsonl")
    assert r.returncode == 0, r.stderr
    n2 = sqlite3.connect(home / "coord.db").execute("SELECT count(*) FROM events").fetchone()[0]
    assert n2 == 2600
    settle(home, cli)
    check_store(home, [])
