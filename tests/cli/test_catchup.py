"""Read commands notice a pull (contract: Offline sync): lines in the audit file that the
store lacks are imported before the read when the audit file's lock is free at once;
otherwise stderr says so and names the command, unless the difference is only another
local process's own lines being written."""

import fcntl
import os

from helpers import ok


def pulled_home(tmp_path, cli):
    """Two homes of one log; B's file then gets A's newer lines, as a `git pull` would."""
    a, b = tmp_path / "a" / ".coord", tmp_path / "b" / ".coord"
    ok(cli("--home", str(a), "init"))
    ok(cli("--home", str(a), "spawn", "w-1", "--no-git"))
    b.mkdir(parents=True)
    (b / "events.jsonl").write_bytes((a / "events.jsonl").read_bytes())
    ok(cli("--home", str(b), "init"))
    ok(cli("--home", str(a), "spawn", "w-2", "--no-git"))
    ok(cli("--home", str(a), "--as", "lead", "send", "n", "--text", "hi", "--to", "dev"))
    (b / "events.jsonl").write_bytes((a / "events.jsonl").read_bytes())
    return b


def workers(ran):
    return [d["worker"] for d in ran.json()]


def test_a_read_imports_what_a_pull_brought(tmp_path, cli):
    b = pulled_home(tmp_path, cli)
    r = ok(cli("--home", str(b), "status", "--all", "--json"))
    assert workers(r) == ["w-1", "w-2"] and r.stderr == ""
    r = ok(cli("--home", str(b), "--as", "dev", "poll", "--json"))  # poll reads after catching up
    assert [m["payload"]["text"] for m in r.jsonl()] == ["hi"]
    ok(cli("--home", str(b), "verify"))


def test_a_busy_lock_gives_a_hint_and_the_read_goes_on(tmp_path, cli):
    b = pulled_home(tmp_path, cli)
    fd = os.open(b / "audit.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = ok(cli("--home", str(b), "status", "--all", "--json"))
        assert workers(r) == ["w-1"]
        assert "may not have imported" in r.stderr and "coord export" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    finally:
        os.close(fd)
    r = ok(cli("--home", str(b), "log", "--json"))
    assert [e["type"] for e in r.jsonl()] == ["worker.spawned", "worker.spawned", "msg.n"] and r.stderr == ""


def test_no_hint_for_lines_another_local_process_is_writing(home, cli, proc):
    # A process killed between its write to the file and its bookkeeping: the file holds
    # more than recorded, but only this store's own dirty lines, so nothing is "pulled".
    r = proc("spawn", "w-1", "--no-git", env={"COORD_FAILPOINTS": "audit-after-write"})
    assert r.returncode == -9
    fd = os.open(home / "audit.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = ok(cli("status", "--all", "--json"))
        assert workers(r) == ["w-1"] and r.stderr == ""
    finally:
        os.close(fd)


def test_a_bad_pulled_line_is_reported_and_the_read_still_answers(tmp_path, cli):
    b = pulled_home(tmp_path, cli)
    with open(b / "events.jsonl", "ab") as f:
        f.write(b'{"id":"b3:' + b"0" * 64 + b'","ts":"x"}\n')
    r = ok(cli("--home", str(b), "status", "--all", "--json"))
    assert workers(r) == ["w-1"] and "line 4" in r.stderr and "not touching the file" in r.stderr
