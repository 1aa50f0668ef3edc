"""The work graph at the command line: spawn --after, dep add|rm, priority, ready, start
--next by readiness, start of a waiting worker, what status and show say, and events
that arrive by import."""

import json
import os
import sqlite3
import subprocess

from helpers import coord_cmd, count_events


def ok(r):
    assert r.exit_code == 0, r.stderr
    return r


def _merge(cli, w, by="a1"):
    for args in (["--as", by, "start", w], ["--as", by, "done", w], ["--as", "rev", "approve", w]):
        ok(cli(*args))
    ok(cli("--as", "rev", "merge", w))


def test_dependencies_refuse_unknown_workers_and_cycles_and_append_nothing(home, cli):
    ok(cli("spawn", "a"))
    ok(cli("spawn", "b", "--after", "a"))
    ok(cli("spawn", "c", "--after", "b"))
    n = count_events(home)
    r = cli("spawn", "d", "--after", "nope")
    assert r.exit_code == 3 and "nope" in r.stderr
    r = cli("spawn", "d", "--after", "d")
    assert r.exit_code == 4 and "d → d" in r.stderr
    r = cli("dep", "add", "a", "c")
    assert r.exit_code == 4 and "a → c → b → a" in r.stderr, r.stderr
    r = cli("--json", "dep", "add", "a", "a")
    assert r.exit_code == 4 and json.loads(r.stderr)["error"]["code"] == "cycle"
    assert cli("dep", "add", "a", "zzz").exit_code == 3
    assert cli("dep", "add", "zzz", "a").exit_code == 3
    assert cli("dep", "rm", "a", "zzz").exit_code == 3
    # idempotent: an existing dependency added again, a missing one removed
    r = ok(cli("dep", "add", "c", "b"))
    assert "nothing appended" in r.stdout
    r = ok(cli("dep", "rm", "a", "b"))
    assert "nothing appended" in r.stdout
    assert count_events(home) == n
    ok(cli("dep", "rm", "c", "b"))
    ok(cli("dep", "add", "a", "c"))  # no longer a cycle
    assert count_events(home) == n + 2
    # request ids: a repeat returns the first result; the key with other arguments is refused
    first = ok(cli("--json", "dep", "rm", "a", "c", "--request-id", "k1")).json()
    again = ok(cli("--json", "dep", "rm", "a", "c", "--request-id", "k1")).json()
    assert again["event"] == first["event"] and again["repeat"] is True
    assert cli("dep", "rm", "b", "a", "--request-id", "k1").exit_code == 4
    ok(cli("dep", "add", "a", "c"))
    assert count_events(home) == n + 4
    ok(cli("--as", "x", "cancel", "c"))
    r = cli("dep", "add", "c", "a")  # terminal: refused
    assert r.exit_code == 4 and "CANCELED" in r.stderr
    assert cli("priority", "c", "1").exit_code == 4


def test_ready_orders_by_priority_then_age_and_follows_dependencies(home, cli):
    ok(cli("spawn", "base"))
    ok(cli("spawn", "low", "--priority", "4"))
    ok(cli("spawn", "mid"))
    ok(cli("spawn", "top", "--priority", "0", "--after", "base"))
    ok(cli("spawn", "hub", "--after", "base", "--after", "mid"))
    ready = lambda *a: [d["worker"] for d in ok(cli("--json", "ready", *a)).json()]  # noqa: E731
    assert ready() == ["base", "mid", "low"]
    assert ready("--limit", "2") == ["base", "mid"]
    ok(cli("priority", "low", "0"))
    assert "nothing appended" in ok(cli("priority", "low", "0")).stdout
    assert cli("priority", "low", "5").exit_code == 2
    assert ready() == ["low", "base", "mid"]
    _merge(cli, "base")
    assert ready() == ["low", "top", "mid"]  # top is ready once base COMPLETED
    _merge(cli, "mid", by="a2")
    assert ready() == ["low", "top", "hub"]
    text = ok(cli("ready")).stdout.splitlines()
    assert text[0].split()[:2] == ["PRI", "WORKER"] and text[2].split()[:2] == ["0", "top"]


def test_start_refuses_a_waiting_or_blocked_worker_unless_forced_and_next_skips_it(home, cli):
    ok(cli("spawn", "a"))
    ok(cli("spawn", "b", "--after", "a", "--priority", "0"))
    ok(cli("spawn", "c"))
    n = count_events(home)
    r = cli("--as", "x", "--json", "start", "b")
    assert r.exit_code == 4 and "waits for a (ASSIGNED)" in r.stderr
    assert json.loads(r.stderr)["error"]["code"] == "not_ready"
    assert count_events(home) == n
    # --next: the ready ones by priority then age, never b
    assert ok(cli("--as", "x", "--json", "start", "--next")).json()["worker"] == "a"
    assert ok(cli("--as", "y", "--json", "start", "--next")).json()["worker"] == "c"
    r = cli("--as", "z", "--json", "start", "--next")
    assert r.exit_code == 4 and json.loads(r.stderr)["error"]["code"] == "nothing_to_claim"
    ok(cli("--as", "x", "fail", "a", "--reason", "broken"))
    r = cli("--as", "z", "start", "b")
    assert r.exit_code == 4 and "blocked by a" in r.stderr
    d = ok(cli("--json", "status", "b")).json()[0]
    assert d["blocked_by"] == ["a"] and d["waits_for"] == [{"worker": "a", "state": "FAILED"}]
    assert d["ready"] is False and d["after"] == ["a"] and d["priority"] == 0
    assert "blocked by a" in ok(cli("status")).stdout
    shown = ok(cli("show", "b")).stdout
    assert "BLOCKED   by a" in shown and "why       blocked by a" in shown
    ok(cli("--as", "x", "retry", "a"))  # a FAILED worker retried: b only waits again
    d = ok(cli("--json", "show", "b")).json()
    assert d["blocked_by"] == [] and d["waits_for"] == [{"worker": "a", "state": "ASSIGNED"}]
    assert "waits for a" in d["expected"]["why"] and d["expected"]["waiting_on"] == "a"
    assert ok(cli("--json", "show", "a")).json()["waited_by"] == ["b"]
    ok(cli("--as", "z", "start", "b", "--force"))
    last = ok(cli("--json", "log", "--worker", "b", "--type", "worker.started")).jsonl()[-1]
    assert last["payload"]["force"] is True


def test_graph_events_travel_in_the_audit_file_and_a_cycle_by_import_is_a_conflict(tmp_path, cli):
    a, b = tmp_path / "a" / ".coord", tmp_path / "b" / ".coord"
    A = lambda *args: cli("--home", str(a), *args)  # noqa: E731
    B = lambda *args: cli("--home", str(b), *args)  # noqa: E731
    ok(A("init"))
    ok(A("spawn", "w-1"))
    ok(A("spawn", "w-2"))
    b.mkdir(parents=True)
    (b / "events.jsonl").write_bytes((a / "events.jsonl").read_bytes())
    ok(B("init"))
    ok(B("dep", "add", "w-2", "w-1"))  # earlier
    ok(A("dep", "add", "w-1", "w-2"))  # later, legal on A while apart
    ok(A("priority", "w-2", "0"))
    types = [json.loads(line)["type"] for line in (a / "events.jsonl").read_text().splitlines()]
    assert "worker.dep_added" in types and "worker.prioritized" in types
    ok(A("import", str(b / "events.jsonl")))
    ok(B("import", str(a / "events.jsonl")))
    for side in (A, B):
        d = {x["worker"]: x for x in ok(side("--json", "status")).json()}
        assert d["w-2"]["after"] == ["w-1"] and d["w-1"]["after"] == [] and d["w-2"]["priority"] == 0
        (cf,) = d["w-1"]["conflicts"]
        assert "would close a cycle: w-1 → w-2 → w-1" in cf["reason"]
        assert [x["worker"] for x in ok(side("--json", "ready")).json()] == ["w-1"]
        assert ok(side("verify")).exit_code == 0
    assert "CONFLICT" in ok(A("show", "w-1")).stdout


def test_an_imported_dependency_event_without_its_field_is_a_bad_line(tmp_path, cli):
    from coord.events.codec import audit_line
    from coord.events.envelope import Envelope, canonical, event_id

    h = tmp_path / ".coord"
    ok(cli("--home", str(h), "init"))
    ok(cli("--home", str(h), "spawn", "w-1"))
    bad = tmp_path / "bad.jsonl"
    good = canonical(
        Envelope("2026-01-01T00:00:00.000000Z", "x", "w-1", "worker.dep_added", {"after": "w-1"})
    )
    worse = canonical(Envelope("2026-01-01T00:00:01.000000Z", "x", "w-1", "worker.dep_added", {}))
    bad.write_bytes(audit_line(event_id(good), good) + audit_line(event_id(worse), worse))
    n = count_events(h)
    r = cli("--home", str(h), "import", str(bad))
    assert r.exit_code == 5 and "needs the field 'after'" in r.stderr
    assert count_events(h) == n


def test_start_next_race_on_a_graph_has_one_winner_and_claims_only_ready_workers(home, cli):
    """8 real processes claim from a graph: a chain of waiting workers and a few ready
    ones; every claim is distinct and of a worker that was ready."""
    for i in range(3):
        ok(cli("spawn", f"r-{i}", "--priority", str(i)))
    ok(cli("spawn", "root"))
    ok(cli("spawn", "wait-0", "--after", "root"))
    ok(cli("spawn", "wait-1", "--after", "wait-0", "--priority", "0"))
    env = dict(os.environ, COORD_HOME=str(home))
    procs = [
        subprocess.Popen(
            [*coord_cmd(), "--as", f"agent-{i}", "--json", "start", "--next"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    won = sorted(json.loads(out)["worker"] for code, out, _ in results if code == 0)
    assert won == ["r-0", "r-1", "r-2", "root"], results
    assert all(
        json.loads(err)["error"]["code"] == "nothing_to_claim" for code, _, err in results if code == 4
    )
    con = sqlite3.connect(home / "coord.db")
    assert con.execute("SELECT count(*) FROM events WHERE type='worker.started'").fetchone()[0] == 4


def test_replay_and_timeline_show_dependencies(home, cli, tmp_path):
    ok(cli("spawn", "a"))
    ok(cli("spawn", "b", "--after", "a"))
    ok(cli("spawn", "c"))
    ok(cli("dep", "add", "c", "b"))
    ok(cli("priority", "c", "0"))
    replay = ok(cli("replay")).stdout
    assert "after: a" in replay and "c  now waits for b" in replay and "c  priority 0" in replay
    text = ok(cli("timeline")).stdout
    assert "b waits for a" in text and "c waits for b" in text
    page = tmp_path / "t.html"
    ok(cli("timeline", "--html", str(page)))
    assert '"after":["a"]' in page.read_text() and "waits for: " in page.read_text()
