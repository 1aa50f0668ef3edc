"""The state machine through the CLI: every transition, who may act, refusals that append
nothing, idempotent repeats, --request-id, prefixes."""

import os

import pytest

from helpers import count_events


def walk(cli, *steps):
    for args in steps:
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
    return r


def state_of(cli, w):
    return cli("status", w, "--json").json()[0]["state"]


def test_happy_path_and_review_loop(home, cli):
    walk(
        cli,
        ("spawn", "w-1", "--task", "t"),
        ("--as", "a", "start", "w-1"),
        ("--as", "a", "heartbeat", "w-1"),
        ("--as", "a", "done", "w-1", "--summary", "s"),
    )
    assert state_of(cli, "w-1") == "IN_REVIEW"
    walk(cli, ("--as", "r", "request-changes", "w-1", "--reason", "tests"))
    assert state_of(cli, "w-1") == "WORKING"
    walk(cli, ("--as", "a", "done", "w-1"), ("--as", "r", "approve", "w-1"), ("merge", "w-1"))
    assert state_of(cli, "w-1") == "COMPLETED"


def test_release_fail_retry_cancel(home, cli):
    walk(cli, ("spawn", "w-1"), ("--as", "a", "start", "w-1"), ("--as", "a", "release", "w-1"))
    assert state_of(cli, "w-1") == "ASSIGNED"
    walk(cli, ("--as", "b", "start", "w-1"), ("--as", "b", "fail", "w-1", "--reason", "x"))
    assert state_of(cli, "w-1") == "FAILED"
    walk(cli, ("retry", "w-1"))
    assert state_of(cli, "w-1") == "ASSIGNED"
    walk(cli, ("cancel", "w-1"))
    assert cli("status", "w-1", "--json").json()[0]["state"] == "CANCELED"


@pytest.mark.parametrize(
    "setup,cmd,state",
    [
        ([], ("merge", "w-1"), "ASSIGNED"),
        ([], ("--as", "a", "done", "w-1"), "ASSIGNED"),
        ([("--as", "a", "start", "w-1")], ("--as", "b", "start", "w-1"), "WORKING"),
        ([("--as", "a", "start", "w-1")], ("--as", "r", "approve", "w-1"), "WORKING"),
        ([("--as", "a", "start", "w-1")], ("retry", "w-1"), "WORKING"),
        ([("cancel", "w-1")], ("--as", "a", "start", "w-1"), "CANCELED"),
        ([("cancel", "w-1")], ("fail", "w-1"), "CANCELED"),
    ],
)
def test_illegal_transition_exits_4_names_state_and_legal_actions_appends_nothing(
    home, cli, setup, cmd, state
):
    walk(cli, ("spawn", "w-1"), *setup)
    before = count_events(home)
    r = cli(*cmd)
    assert r.exit_code == 4, r.stderr
    assert state in r.stderr and "legal from" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert count_events(home) == before


def test_who_may_act(home, cli):
    walk(cli, ("spawn", "w-1", "--assignee", "bob"))
    before = count_events(home)
    r = cli("--as", "alice", "start", "w-1")
    assert r.exit_code == 4 and "assigned to bob" in r.stderr
    assert count_events(home) == before
    walk(cli, ("--as", "bob", "start", "w-1"))
    for cmd in (
        ("--as", "eve", "heartbeat", "w-1"),
        ("--as", "eve", "done", "w-1"),
        ("--as", "eve", "release", "w-1"),
        ("--as", "eve", "fail", "w-1"),
    ):
        before = count_events(home)
        r = cli(*cmd)
        assert r.exit_code == 4 and "held by bob" in r.stderr, cmd
        assert count_events(home) == before
    walk(cli, ("--as", "eve", "heartbeat", "w-1", "--force"))
    ev = cli("log", "--worker", "w-1", "--type", "worker.heartbeat", "--json").jsonl()[-1]
    assert ev["from"] == "eve" and ev["payload"]["force"] is True
    walk(cli, ("--as", "bob", "done", "w-1"))
    r = cli("--as", "bob", "approve", "w-1")
    assert r.exit_code == 4 and "own work" in r.stderr
    r = cli("--as", "bob", "request-changes", "w-1", "--reason", "x")
    assert r.exit_code == 4


def test_start_and_run_need_explicit_identity(home, cli):
    walk(cli, ("spawn", "w-1"))
    r = cli("start", "w-1")
    assert r.exit_code == 2 and "identity" in r.stderr
    assert cli("start", "w-1", env={"COORD_AGENT": "a"}).exit_code == 0
    ev = cli("log", "--json").jsonl()[-1]
    assert ev["from"] == "a"


def test_default_actor_is_human_user(home, cli):
    walk(cli, ("spawn", "w-1"))
    assert cli("log", "--json").jsonl()[0]["from"] == "human:tester"


def test_idempotent_repeat_appends_nothing(home, cli):
    walk(cli, ("spawn", "w-1", "--task", "t"))
    n = count_events(home)
    r = cli("spawn", "w-1", "--task", "t")
    assert r.exit_code == 0 and "nothing appended" in r.stdout
    assert count_events(home) == n
    r = cli("spawn", "w-1", "--task", "other")  # different arguments: a duplicate spawn
    assert r.exit_code == 4 and "already exists" in r.stderr
    walk(cli, ("--as", "a", "start", "w-1"))
    n = count_events(home)
    assert cli("--as", "a", "start", "w-1").exit_code == 0
    assert count_events(home) == n
    assert cli("--as", "b", "start", "w-1").exit_code == 4  # same state, other actor
    walk(cli, ("--as", "a", "done", "w-1", "--summary", "s"))
    n = count_events(home)
    assert cli("--as", "a", "done", "w-1", "--summary", "s").exit_code == 0
    assert cli("--as", "a", "done", "w-1", "--summary", "other").exit_code == 4
    assert count_events(home) == n
    # Heartbeats are not transitions: each one appends.
    walk(cli, ("--as", "r", "request-changes", "w-1", "--reason", "x"))
    n = count_events(home)
    walk(cli, ("--as", "a", "heartbeat", "w-1"), ("--as", "a", "heartbeat", "w-1"))
    assert count_events(home) == n + 2


def test_request_id_returns_first_result_and_appends_nothing(home, cli):
    walk(cli, ("spawn", "w-1"), ("--as", "a", "start", "w-1"))
    r1 = cli("--as", "a", "heartbeat", "w-1", "--request-id", "k1", "--json")
    n = count_events(home)
    r2 = cli("--as", "a", "heartbeat", "w-1", "--request-id", "k1", "--json")
    assert r2.exit_code == 0 and count_events(home) == n
    assert r2.json()["event"] == r1.json()["event"] and r2.json()["repeat"] is True
    # The key belongs to the actor: another actor's k1 is a new request.
    r3 = cli("--as", "a", "fail", "w-1", "--request-id", "k2", "--json")
    assert r3.exit_code == 0
    r4 = cli("--as", "a", "fail", "w-1", "--request-id", "k2", "--json")
    assert r4.json()["event"] == r3.json()["event"]
    walk(cli, ("retry", "w-1", "--request-id", "r1"))
    n = count_events(home)
    walk(cli, ("retry", "w-1", "--request-id", "r1"))
    assert count_events(home) == n


def test_start_next_takes_oldest_claimable(home, cli):
    walk(cli, ("spawn", "w-a", "--assignee", "other"), ("spawn", "w-b"), ("spawn", "w-c"))
    r = cli("--as", "me", "start", "--next", "--json")
    assert r.json()["worker"] == "w-b"
    r = cli("--as", "me", "start", "--next", "--json")
    assert r.json()["worker"] == "w-c"
    n = count_events(home)
    r = cli("--as", "me", "start", "--next")
    assert r.exit_code == 4 and "nothing to claim" in r.stderr
    assert count_events(home) == n
    assert cli("--as", "other", "start", "--next", "--json").json()["worker"] == "w-a"


def test_prefixes_and_ambiguity(home, cli):
    walk(cli, ("spawn", "alpha-1"), ("spawn", "alpha-2"), ("spawn", "beta"))
    assert cli("--as", "a", "start", "be").exit_code == 0
    r = cli("--as", "a", "start", "alp")
    assert r.exit_code == 2 and "alpha-1" in r.stderr and "alpha-2" in r.stderr
    eid = cli("log", "--json").jsonl()[0]["id"]
    r = cli("show", eid[:10], "--json")
    assert r.exit_code == 0 and r.json()["id"] == eid
    r = cli("show", eid[3:12], "--json")
    assert r.json()["id"] == eid
    assert cli("show", "b3:").exit_code in (2, 3)


def test_worker_json_fields_and_show(home, cli):
    walk(cli, ("spawn", "w-1", "--task", "t"), ("--as", "a", "start", "w-1"))
    d = cli("status", "--json").json()[0]
    for k in (
        "worker",
        "state",
        "holder",
        "assignee",
        "task",
        "branch",
        "created",
        "updated",
        "last_heartbeat",
        "liveness",
        "conflicts",
    ):
        assert k in d
    s = cli("show", "w-1", "--json").json()
    assert [e["type"] for e in s["history"]] == ["worker.spawned", "worker.started"]
    text = cli("show", "w-1").stdout
    assert "WORKING" in text and "heartbeat" in text


def test_log_filters(home, cli):
    walk(
        cli,
        ("spawn", "w-1"),
        ("spawn", "w-2"),
        ("--as", "a", "start", "w-1"),
        ("--as", "a", "heartbeat", "w-1"),
    )
    evs = cli("log", "--json").jsonl()
    assert [e["seq"] for e in evs] == [1, 2, 3, 4]
    assert len(cli("log", "--worker", "w-1", "--json").jsonl()) == 3
    assert len(cli("log", "--type", "worker.s*", "--json").jsonl()) == 3
    assert len(cli("log", "--from", "a", "--json").jsonl()) == 2
    assert [e["seq"] for e in cli("log", "--limit", "2", "--json").jsonl()] == [3, 4]
    assert [e["seq"] for e in cli("log", "--since", evs[1]["id"], "--json").jsonl()] == [3, 4]
    assert len(cli("log", "--since", "1h", "--json").jsonl()) == 4
    assert cli("log", "--since", "yesterday-ish").exit_code == 2


def test_control_characters_are_escaped_in_text_output(home, cli):
    walk(cli, ("spawn", "w-1", "--task", "evil \x1b[2J\x07 task"))
    for out in (cli("status").stdout, cli("show", "w-1").stdout, cli("log").stdout):
        assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b" in cli("status").stdout


def test_default_actor_without_user_variables_is_the_login_name(home, cli, monkeypatch):
    import pwd

    monkeypatch.delenv("USER", raising=False)
    monkeypatch.delenv("LOGNAME", raising=False)
    walk(cli, ("spawn", "w-1"))
    assert cli("log", "--json").jsonl()[0]["from"] == "human:" + pwd.getpwuid(os.getuid()).pw_name
