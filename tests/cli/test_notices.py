"""Notices: a lifecycle event that changed or ended an attempt an agent held, appended by
someone else, is delivered to that agent by `poll` like a message (at least once, in
order, with "notice" in --json); `--type worker.*` selects them; the agent's own actions
and events outside a held attempt give none; an import that re-orders a worker's history
re-derives them; an old store's events give none after the upgrade."""

import json
import sqlite3

from helpers import ok


def notices(ran):
    return [(m["type"], m.get("notice")) for m in ran.jsonl()]


def cycle(cli, w="w-1", agent="a1"):
    ok(cli("spawn", w, "--task", "t", "--no-git"))
    ok(cli("--as", agent, "start", w))
    ok(cli("--as", agent, "done", w))


def test_changes_requested_reaches_the_holder_through_poll_once_in_order(home, cli):
    cycle(cli)
    ok(cli("--as", "lead", "send", "note", "--text", "before", "--to", "a1"))
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "add tests"))
    ok(cli("--as", "lead", "send", "note", "--text", "after", "--to", "a1"))
    r = ok(cli("--as", "a1", "poll", "--json"))
    got = r.jsonl()
    assert [m["type"] for m in got] == ["msg.note", "worker.changes_requested", "msg.note"]
    assert [m["seq"] for m in got] == sorted(m["seq"] for m in got)
    n = got[1]
    assert n["notice"] == {"worker": "w-1", "attempt": 1, "reason": "changes_requested"}
    assert n["payload"] == {"reason": "add tests"} and n["from"] == "rev" and n["to"] == "w-1"
    assert "notice" not in got[0] and "notice" not in got[2]
    # Acknowledged with the batch: not delivered again.
    assert ok(cli("--as", "a1", "poll", "--json")).stdout == ""
    # Nobody else is told (the reviewer, another agent).
    assert ok(cli("--as", "rev", "poll", "--json")).stdout == ""
    assert ok(cli("--as", "a2", "poll", "--json")).stdout == ""


def test_text_form_marks_the_notice(home, cli):
    cycle(cli)
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "no"))
    out = ok(cli("--as", "a1", "poll")).stdout
    assert "worker.changes_requested [notice: w-1 attempt 1 changes_requested]" in out


def test_each_reason_and_the_attempt_number(home, cli):
    # requeued by reap (someone else's release), then a second attempt canceled.
    ok(cli("spawn", "w-1", "--no-git"))
    ok(cli("--as", "a1", "start", "w-1"))
    ok(cli("--as", "lead", "release", "w-1", "--force"))
    ok(cli("--as", "a1", "start", "w-1"))
    ok(cli("--as", "lead", "cancel", "w-1", "--reason", "not needed"))
    # failed by someone else
    ok(cli("spawn", "w-2", "--no-git"))
    ok(cli("--as", "a1", "start", "w-2"))
    ok(cli("--as", "lead", "fail", "w-2", "--force", "--reason", "wrong approach"))
    got = notices(ok(cli("--as", "a1", "poll", "--json")))
    assert got == [
        ("worker.released", {"worker": "w-1", "attempt": 1, "reason": "requeued"}),
        ("worker.canceled", {"worker": "w-1", "attempt": 2, "reason": "canceled"}),
        ("worker.failed", {"worker": "w-2", "attempt": 1, "reason": "failed"}),
    ]


def test_own_actions_and_events_outside_an_attempt_give_no_notice(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))
    ok(cli("--as", "lead", "cancel", "w-1"))  # never held: nobody to tell
    ok(cli("spawn", "w-2", "--no-git"))
    ok(cli("--as", "a1", "start", "w-2"))
    ok(cli("--as", "a1", "release", "w-2"))  # its own release
    ok(cli("--as", "a1", "start", "w-2"))
    ok(cli("--as", "a1", "fail", "w-2", "--reason", "gave up"))  # its own fail
    ok(cli("--as", "lead", "cancel", "w-2"))  # after the attempt ended (FAILED)
    ok(cli("spawn", "w-3", "--no-git"))
    ok(cli("--as", "a1", "start", "w-3"))
    ok(cli("--as", "a1", "done", "w-3"))
    ok(cli("--as", "rev", "approve", "w-3"))  # progress, not a notice
    assert ok(cli("--as", "a1", "poll", "--json")).stdout == ""
    assert ok(cli("--as", "lead", "poll", "--json")).stdout == ""


def test_merge_conflict_reaches_the_holder(repo, cli):
    from helpers import commit_file, g

    ok(cli("spawn", "w-1", "--task", "edit a"))
    wt = json.loads(ok(cli("show", "w-1", "--json")).stdout)["worktree"]
    ok(cli("--as", "a1", "start", "w-1"))
    commit_file(wt, "a.txt", "line 1\nworker\nline 3\n")
    ok(cli("--as", "a1", "done", "w-1"))
    ok(cli("--as", "rev", "approve", "w-1"))
    commit_file(repo, "a.txt", "line 1\nmain\nline 3\n")
    r = cli("--as", "lead", "merge", "w-1")
    assert r.exit_code == 4, r.stdout + r.stderr
    g(repo, "status", "--porcelain")
    got = notices(ok(cli("--as", "a1", "poll", "--json")))
    assert got == [("worker.conflicted", {"worker": "w-1", "attempt": 1, "reason": "conflicted"})]


def test_type_selects_notices_or_messages(home, cli):
    cycle(cli)
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
    ok(cli("--as", "lead", "send", "note", "--text", "x", "--to", "a1"))
    only_msgs = ok(cli("--as", "a1", "poll", "--peek", "--type", "note", "--json")).jsonl()
    assert [m["type"] for m in only_msgs] == ["msg.note"]
    only_notices = ok(cli("--as", "a1", "poll", "--peek", "--type", "worker.*", "--json")).jsonl()
    assert [m["type"] for m in only_notices] == ["worker.changes_requested"]
    exact = ok(cli("--as", "a1", "poll", "--peek", "--type", "worker.canceled", "--json")).stdout
    assert exact == ""
    # Taking the notices out of order leaves the message pending, and vice versa.
    ok(cli("--as", "a1", "poll", "--type", "worker.*"))
    rest = ok(cli("--as", "a1", "poll", "--json")).jsonl()
    assert [m["type"] for m in rest] == ["msg.note"]


def test_limit_takes_the_oldest_of_both(home, cli):
    cycle(cli)
    ok(cli("--as", "lead", "send", "note", "--text", "1", "--to", "a1"))
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
    ok(cli("--as", "lead", "send", "note", "--text", "2", "--to", "a1"))
    first = ok(cli("--as", "a1", "poll", "--limit", "2", "--json")).jsonl()
    assert [m["type"] for m in first] == ["msg.note", "worker.changes_requested"]
    second = ok(cli("--as", "a1", "poll", "--json")).jsonl()
    assert [m["payload"]["text"] for m in second] == ["2"]


def test_ack_event_covers_notices_up_to_it(home, cli):
    cycle(cli)
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
    last = ok(cli("--as", "lead", "send", "note", "--text", "x", "--to", "a1", "--json")).json()
    peeked = ok(cli("--as", "a1", "poll", "--peek", "--json")).jsonl()
    assert len(peeked) == 2
    ok(cli("--as", "a1", "ack", last["event"]))
    assert ok(cli("--as", "a1", "poll", "--json")).stdout == ""


def test_poll_wait_wakes_for_a_notice(home, cli, proc):
    import subprocess
    import sys

    from helpers import coord_cmd

    cycle(cli)
    waiter = subprocess.Popen(
        [*coord_cmd(), "--as", "a1", "poll", "--wait", "120", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
        out, err = waiter.communicate(timeout=120)
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    [m] = [json.loads(x) for x in out.splitlines()]
    assert m["notice"]["reason"] == "changes_requested", sys.executable


def test_crash_before_ack_delivers_the_notice_again(home, cli, proc):
    cycle(cli)
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
    r = proc("--as", "a1", "poll", "--json", env={"COORD_FAILPOINTS": "poll-after-output"})
    assert r.returncode == -9 and '"notice"' in r.stdout
    assert [m["type"] for m in ok(cli("--as", "a1", "poll", "--json")).jsonl()] == [
        "worker.changes_requested"
    ]


def test_import_that_reorders_a_worker_rederives_its_notices(tmp_path, cli):
    """On clone B, a2 started w-1 and the lead canceled it: a2 is told. Then B imports A,
    where a1 had started w-1 earlier: in (ts, id) order a1 held the attempt the cancel
    ended (a2's start is a conflict), so the notice moves from a2 to a1."""
    a, b = tmp_path / "a" / ".coord", tmp_path / "b" / ".coord"
    for h in (a, b):
        ok(cli("--home", h, "init"))
    ok(cli("--home", a, "spawn", "w-1", "--no-git"))
    ok(cli("--home", b, "import", a / "events.jsonl"))
    ok(cli("--home", a, "--as", "a1", "start", "w-1"))
    ok(cli("--home", b, "--as", "a2", "start", "w-1"))
    ok(cli("--home", b, "--as", "lead", "cancel", "w-1"))
    got = notices(ok(cli("--home", b, "--as", "a2", "poll", "--peek", "--json")))
    assert got == [("worker.canceled", {"worker": "w-1", "attempt": 1, "reason": "canceled"})]
    ok(cli("--home", b, "import", a / "events.jsonl"))
    assert ok(cli("--home", b, "--as", "a2", "poll", "--json")).stdout == ""
    got = notices(ok(cli("--home", b, "--as", "a1", "poll", "--json")))
    assert got == [("worker.canceled", {"worker": "w-1", "attempt": 1, "reason": "canceled"})]


def test_verify_finds_a_damaged_notices_projection_and_rebuild_repairs_it(home, cli):
    cycle(cli)
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "r"))
    ok(cli("--as", "a1", "done", "w-1"))
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "again"))
    assert len(ok(cli("--as", "a1", "poll", "--limit", "1", "--json")).jsonl()) == 1
    ok(cli("verify"))
    con = sqlite3.connect(home / "coord.db")
    con.execute("DELETE FROM notices WHERE acked = 0")  # one lost
    con.execute(
        "INSERT INTO notices(agent, seq, worker, attempt, reason) VALUES ('a9', 2, 'w-1', 1, 'canceled')"
    )
    con.commit()
    con.close()
    r = cli("verify")
    assert r.exit_code == 5
    assert "notices missing: a1 at seq" in r.stdout + r.stderr
    assert "notices not derived from the events: a9 at seq 2" in r.stdout + r.stderr
    ok(cli("rebuild"))
    ok(cli("verify"))
    assert ok(cli("--as", "a9", "poll", "--json")).stdout == ""
    # The acknowledged one stays acknowledged; the lost one is back.
    got = ok(cli("--as", "a1", "poll", "--json")).jsonl()
    assert [m["payload"]["reason"] for m in got] == ["again"]


def test_an_upgraded_store_gives_no_notices_for_old_events(tmp_path, cli):
    """A store made before notices (schema 8) keeps its history quiet after the upgrade;
    events after it give notices."""
    h = tmp_path / ".coord"
    ok(cli("--home", h, "init"))
    ok(cli("--home", h, "spawn", "w-1", "--no-git"))
    ok(cli("--home", h, "--as", "a1", "start", "w-1"))
    ok(cli("--home", h, "--as", "lead", "release", "w-1", "--force"))
    con = sqlite3.connect(h / "coord.db")
    con.execute("DROP TABLE notices")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0009_notices'")
    con.execute("PRAGMA user_version = 8")
    con.commit()
    con.close()
    assert ok(cli("--home", h, "--as", "a1", "poll", "--json")).stdout == ""
    ok(cli("--home", h, "--as", "a1", "start", "w-1"))
    ok(cli("--home", h, "--as", "lead", "cancel", "w-1"))
    assert [n for _, n in notices(ok(cli("--home", h, "--as", "a1", "poll", "--json")))] == [
        {"worker": "w-1", "attempt": 2, "reason": "canceled"}
    ]
    ok(cli("--home", h, "rebuild"))
    assert ok(cli("--home", h, "--as", "a1", "poll", "--json")).stdout == ""


def test_reaped_workers_tell_their_holders(home, cli):
    """A reaper requeues two dead workers: each holder learns it from poll; the second
    attempt of one dies too and the reaper fails it: its holder learns that (attempt 2)."""
    import time

    ok(cli("config", "heartbeat_interval", "0.05"))
    for w, agent in (("w-1", "a1"), ("w-2", "a2")):
        ok(cli("spawn", w, "--no-git"))
        ok(cli("--as", agent, "start", w))
    deadline = time.monotonic() + 90  # DEAD after 30 silent intervals: a condition, not a time
    while {d["liveness"] for d in ok(cli("status", "--json")).json()} != {"DEAD"}:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ok(cli("--as", "reaper", "reap", "--requeue"))
    got = {}
    for agent in ("a1", "a2"):
        [(etype, notice)] = notices(ok(cli("--as", agent, "poll", "--json")))
        got[agent] = (etype, notice["reason"], notice["attempt"])
    assert got == {
        "a1": ("worker.released", "requeued", 1),
        "a2": ("worker.released", "requeued", 1),
    }
    ok(cli("--as", "a1", "start", "w-1"))
    while ok(cli("status", "w-1", "--json")).json()[0]["liveness"] != "DEAD":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    ok(cli("--as", "reaper", "reap"))
    [(etype, notice)] = notices(ok(cli("--as", "a1", "poll", "--json")))
    assert (etype, notice) == ("worker.failed", {"worker": "w-1", "attempt": 2, "reason": "failed"})
