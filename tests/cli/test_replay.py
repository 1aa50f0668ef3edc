"""coord replay: every --at equals folding the first N events; the file and the database
replay identically; filters, --step, --speed, --json, bad files."""

import msgspec
import pytest

from coord.projections.workers import fold_all
from observe_helpers import FIXTURE, export_audit, fixture_events, load_into_store

EVENTS = fixture_events()
KEYS = (
    "worker",
    "state",
    "holder",
    "assignee",
    "task",
    "state_since",
    "last_heartbeat",
    "summary",
    "reason",
    "conflicts",
    "last_event",
)


def board_of(views):
    vs = sorted(views.values(), key=lambda v: (v.created, v.worker))
    return [{k: msgspec.to_builtins(getattr(v, k)) for k in KEYS} for v in vs]


def replay_board(cli, *args):
    r = cli("replay", "--json", *args)
    assert r.exit_code == 0, r.stderr
    return [{k: w[k] for k in KEYS} for w in r.json()["workers"]]


@pytest.fixture
def loaded(home):
    load_into_store(home)
    return home


def test_fixture_covers_the_lifecycle():
    types = {env.type for _, env in EVENTS}
    for t in (
        "worker.spawned",
        "worker.started",
        "worker.heartbeat",
        "worker.done",
        "worker.conflicted",
        "worker.approved",
        "worker.changes_requested",
        "worker.merged",
        "worker.released",
        "worker.canceled",
        "worker.failed",
        "worker.retried",
    ):
        assert t in types, t
    assert any(t.startswith("msg.") for t in types)


def test_at_every_n_equals_folding_the_first_n_events(cli, loaded):
    for n in range(0, len(EVENTS) + 1):
        expected = board_of(fold_all([(env, eid) for eid, env in EVENTS[:n]]))
        assert replay_board(cli, "--from-file", str(FIXTURE), "--at", str(n)) == expected, n
        assert replay_board(cli, "--at", str(n)) == expected, n  # from the database
        if n:
            eid, env = EVENTS[n - 1]
            assert replay_board(cli, "--at", eid[:12]) == expected
            if n == len(EVENTS) or EVENTS[n][1].ts != env.ts:
                assert replay_board(cli, "--at", env.ts) == expected


def test_at_the_end_equals_the_live_board(cli, loaded):
    r = cli("status", "--all", "--json")
    live = [{k: w[k] for k in KEYS} for w in r.json()]
    assert replay_board(cli, "--at", str(len(EVENTS))) == live


def test_replay_from_file_equals_replay_from_database(cli, loaded, tmp_path):
    for args in (
        (),
        ("--json",),
        ("--worker", "retries"),
        ("--type", "msg.*", "--json"),
        ("--since", "10", "--until", "40"),
        ("--at", "33", "--json"),
    ):
        a = cli("replay", *args)
        b = cli("replay", "--from-file", str(FIXTURE), *args)
        assert a.exit_code == b.exit_code == 0, (a.stderr, b.stderr)
        assert a.stdout == b.stdout and a.stdout, args


def test_replay_of_cli_made_history_equals_its_exported_file(cli, home, tmp_path):
    cli("spawn", "w-1", "--task", "one")
    cli("spawn", "w-2")
    cli("--as", "a1", "start", "w-1")
    cli("--as", "a1", "heartbeat", "w-1", "--note", "busy")
    cli("--as", "a2", "send", "msg.hello", '{"x": 1}', "--to", "w-1")  # may not exist yet
    cli("--as", "a1", "done", "w-1", "--summary", "done it")
    cli("--as", "a2", "request-changes", "w-1", "--reason", "more")
    cli("--as", "a1", "fail", "w-1", "--reason", "gave up")
    cli("retry", "w-1")
    cli("cancel", "w-2")
    out = tmp_path / "audit.jsonl"
    n = export_audit(home, out)
    a = cli("replay", "--json")
    b = cli("replay", "--json", "--from-file", str(out))
    assert a.stdout == b.stdout and len(a.jsonl()) == n
    states = [(e["before"], e["after"]) for e in a.jsonl() if e["worker"] == "w-1"]
    assert states == [
        (None, "ASSIGNED"),
        ("ASSIGNED", "WORKING"),
        ("WORKING", "WORKING"),
        ("WORKING", "IN_REVIEW"),
        ("IN_REVIEW", "WORKING"),
        ("WORKING", "FAILED"),
        ("FAILED", "ASSIGNED"),
    ]


def test_text_says_what_changed(cli):
    r = cli("replay", "--from-file", str(FIXTURE))
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == len(EVENTS)
    assert any("parser-fix  WORKING → IN_REVIEW" in ln for ln in lines)
    assert any("agent-1 sent msg.review to reviewer" in ln for ln in lines)
    assert any("agent-4 sent msg.note to everyone" in ln for ln in lines)
    assert any("race  CONFLICT (kept, not applied)" in ln for ln in lines)
    assert "\x1b" not in r.stdout and "\u2028" not in r.stdout  # agent text escaped


def test_filters(cli):
    f = ("--from-file", str(FIXTURE))
    r = cli("replay", "--json", "--worker", "retries", *f).jsonl()
    assert r and all(e["to"] == "retries" for e in r)
    assert len(r) == sum(1 for _, env in EVENTS if env.to == "retries")
    msgs = cli("replay", "--json", "--type", "msg.*", *f).jsonl()
    assert [m["type"] for m in msgs] == [env.type for _, env in EVENTS if env.type.startswith("msg.")]
    rev = cli("replay", "--json", "--from", "reviewer", *f).jsonl()
    assert rev and {e["from"] for e in rev} == {"reviewer"}
    win = cli("replay", "--json", "--since", "10", "--until", "20", *f).jsonl()
    assert [e["n"] for e in win] == list(range(10, 21))
    assert [e["id"] for e in win] == [eid for eid, _ in EVENTS[9:20]]
    by_id = cli("replay", "--json", "--since", EVENTS[4][0], "--until", EVENTS[6][0], *f).jsonl()
    assert [e["n"] for e in by_id] == [5, 6, 7]
    by_time = cli("replay", "--json", "--since", EVENTS[4][1].ts, "--until", EVENTS[6][1].ts, *f).jsonl()
    assert [e["n"] for e in by_time] == [5, 6, 7]


def test_json_state_after_each_event_matches_the_fold(cli):
    rows = cli("replay", "--json", "--from-file", str(FIXTURE)).jsonl()
    for i, row in enumerate(rows):
        views = fold_all([(env, eid) for eid, env in EVENTS[: i + 1]])
        if row["worker"] and row["worker"] in views:
            assert row["after"] == views[row["worker"]].state
            assert row["view"]["state"] == row["after"]


def test_step_waits_for_a_line_per_event_and_q_quits(cli):
    r = cli("replay", "--step", "--from-file", str(FIXTURE), input="\n\nq\n")
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 3
    r = cli("replay", "--step", "--from-file", str(FIXTURE), input="\n")  # end of input stops too
    assert len(r.stdout.splitlines()) == 2


def test_speed_plays_back_and_caps_gaps(cli):
    import time

    t = time.monotonic()
    r = cli("replay", "--speed", "1e9", "--max-gap", "0.01", "--until", "5", "--from-file", str(FIXTURE))
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 5
    assert time.monotonic() - t < 30


def test_bad_audit_line_is_an_integrity_error(cli, tmp_path):
    data = FIXTURE.read_bytes().split(b"\n")
    data[3] = data[3].replace(b"agent", b"agant", 1)
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b"\n".join(data))
    r = cli("replay", "--from-file", str(bad))
    assert r.exit_code == 5 and ":4:" in r.stderr and r.stdout == ""


def test_from_file_needs_no_home(proc, tmp_path):
    r = proc("replay", "--from-file", str(FIXTURE), "--at", "20", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("board at ")
    r = proc("replay", "--at", "20", cwd=str(tmp_path))
    assert r.returncode == 3  # no home, no file


def test_usage_errors(cli):
    f = ("--from-file", str(FIXTURE))
    assert cli("replay", "--at", "5", "--step", *f).exit_code == 2
    assert cli("replay", "--step", "--speed", "2", *f).exit_code == 2
    assert cli("replay", "--at", "999", *f).exit_code == 3
    assert cli("replay", "--at", "b3:ffffffffff", *f).exit_code == 3
    assert cli("replay", "--at", "not a time", *f).exit_code == 2
    assert cli("replay", "--worker", "nope", *f).exit_code == 3
