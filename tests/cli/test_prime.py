"""`coord prime`: role-aware, short, the same as data with --json; a lead sees the ready
queue and who is stale; `.coord/PRIME.md` replaces the general part and is checked as
input; prime acknowledges nothing."""

import os
import time

from helpers import ok


def test_agent_sees_what_it_holds_and_its_inbox(home, cli):
    ok(cli("spawn", "w-1", "--task", "fix the parser", "--no-git"))
    ok(cli("spawn", "w-2", "--task", "other work", "--no-git"))
    ok(cli("--as", "a1", "start", "w-1"))
    ok(cli("--as", "a1", "done", "w-1"))
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "add tests"))
    ok(cli("--as", "lead", "send", "note", "--text", "hello", "--to", "a1"))
    d = ok(cli("--as", "a1", "prime", "--json")).json()
    assert (d["agent"], d["role"], d["explicit_identity"]) == ("a1", "agent", True)
    [h] = d["holds"]
    assert (h["worker"], h["state"], h["task"], h["attempt"], h["liveness"]) == (
        "w-1",
        "WORKING",
        "fix the parser",
        1,
        "OK",
    )
    assert h["reason"] == "add tests" and "done" in " ".join(h["expected"]["actions"])
    assert d["inbox"]["unread"] == 2 and d["inbox"]["notices"] == 1 and d["inbox"]["more"] is False
    assert [i["type"] for i in d["inbox"]["items"]] == ["worker.changes_requested", "msg.note"]
    assert d["inbox"]["items"][0]["notice"]["reason"] == "changes_requested"
    g = d["general"]
    assert g["source"] == "builtin" and g["exit_codes"]["4"].startswith("refused")
    assert any(x["command"].startswith("coord poll") for x in g["commands"])
    assert "ready" not in d and "stale" not in d
    # The text form says the same in a few hundred words.
    text = ok(cli("--as", "a1", "prime")).stdout
    assert "you are a1 (agent)" in text and "w-1: WORKING, attempt 1" in text
    assert "reason: add tests" in text and "2 unread, 1 of them notices" in text
    assert 100 < len(text.split()) < 500
    # prime peeks: poll still delivers both.
    assert len(ok(cli("--as", "a1", "poll", "--json")).jsonl()) == 2


def test_without_an_identity_it_says_so(home, cli):
    text = ok(cli("prime", env={"COORD_AGENT": ""})).stdout
    assert "you are human:tester" in text and "No identity given" in text


def test_lead_sees_ready_queue_stale_and_review(home, cli):
    ok(cli("config", "heartbeat_interval", "0.05"))
    ok(cli("--as", "lead", "spawn", "w-1", "--task", "one", "--no-git"))
    ok(cli("--as", "lead", "spawn", "w-2", "--task", "two", "--no-git"))
    ok(cli("--as", "lead", "spawn", "w-3", "--task", "three", "--no-git"))
    ok(cli("--as", "a1", "start", "w-1"))
    ok(cli("--as", "a2", "start", "w-3"))
    ok(cli("--as", "a2", "done", "w-3"))
    deadline = time.monotonic() + 60  # w-1 goes quiet: WARN after 3 intervals
    while ok(cli("status", "w-1", "--json")).json()[0]["liveness"] == "OK":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    d = ok(cli("--as", "lead", "prime", "--json")).json()
    assert d["role"] == "lead" and d["holds"] == []
    assert [b["worker"] for b in d["ready"]] == ["w-2"]
    assert [b["worker"] for b in d["stale"]] == ["w-1"] and d["stale"][0]["holder"] == "a1"
    assert [b["worker"] for b in d["review"]] == ["w-3"]
    assert any(x["command"].startswith("coord spawn") for x in d["general"]["commands"])
    text = ok(cli("--as", "lead", "prime")).stdout
    assert "## Ready to start" in text and "- w-2 ASSIGNED" in text and "held by a1" in text
    # The holder of a quiet worker is told to beat, not to requeue itself.
    [h] = ok(cli("--as", "a1", "prime", "--json")).json()["holds"]
    assert h["expected"]["actions"][0] == "heartbeat"
    # --role overrides; an agent who spawned nothing live is an agent.
    assert ok(cli("--as", "lead", "prime", "--role", "agent", "--json")).json()["role"] == "agent"
    assert ok(cli("--as", "a1", "prime", "--role", "LEAD", "--json")).json()["role"] == "lead"
    for w in ("w-1", "w-2", "w-3"):
        ok(cli("--as", "lead", "cancel", w))
    assert ok(cli("--as", "lead", "prime", "--json")).json()["role"] == "agent"


def test_reviewer_sees_work_it_may_review(home, cli):
    for w in ("w-1", "w-2"):
        ok(cli("spawn", w, "--no-git"))
    ok(cli("--as", "a1", "start", "w-1"))
    ok(cli("--as", "a1", "done", "w-1"))
    ok(cli("--as", "rev", "start", "w-2"))
    ok(cli("--as", "rev", "done", "w-2"))
    d = ok(cli("--as", "rev", "prime", "--role", "reviewer", "--json")).json()
    assert [b["worker"] for b in d["review"]] == ["w-1"]  # not its own


def test_bad_role_is_a_usage_error(home, cli):
    r = cli("--as", "a1", "prime", "--role", "boss")
    assert r.exit_code == 2 and "boss" in r.stderr


def test_prime_md_replaces_the_general_part(home, cli):
    (home / "PRIME.md").write_text("# Our rules\nAlways run `make check` before done.\x1b[31m\n")
    d = ok(cli("--as", "a1", "prime", "--json")).json()
    assert d["general"] == {
        "source": str(home / "PRIME.md"),
        "text": "# Our rules\nAlways run `make check` before done.\x1b[31m\n",
    }
    text = ok(cli("--as", "a1", "prime")).stdout
    assert "Always run `make check` before done." in text and "\x1b" not in text
    assert "Exit codes" not in text


def test_a_prime_md_that_breaks_a_rule_is_skipped_with_a_warning(home, cli, tmp_path):
    target = tmp_path / "elsewhere.md"
    target.write_text("secret\n")
    os.symlink(target, home / "PRIME.md")
    r = ok(cli("--as", "a1", "prime"))
    assert "secret" not in r.stdout and "Exit codes" in r.stdout and "warning:" in r.stderr
    (home / "PRIME.md").unlink()
    (home / "PRIME.md").write_bytes(b"x" * (64 * 1024 + 1))
    r = ok(cli("--as", "a1", "prime", "--json"))
    assert r.json()["general"]["source"] == "builtin" and "64 KiB" in r.stderr
    (home / "PRIME.md").write_bytes(b"\xff\xfe bad")
    r = ok(cli("--as", "a1", "prime"))
    assert "not UTF-8" in r.stderr and "Exit codes" in r.stdout


def test_prime_in_a_worktree_names_branch_and_worktree(repo, cli):
    ok(cli("spawn", "w-1", "--task", "t"))
    ok(cli("--as", "a1", "start", "w-1"))
    [h] = ok(cli("--as", "a1", "prime", "--json")).json()["holds"]
    assert h["branch"] == "coord/w-1" and h["worktree"].endswith("w-1")


def test_a_big_inbox_is_counted_up_to_a_bound(home, cli, monkeypatch):
    from coord.app import messages, prime
    from coord.app.context import Coord

    monkeypatch.setattr(prime, "INBOX_COUNTED", 3)
    with Coord(home, actor="lead") as c:
        for i in range(5):
            messages.send(c, "a1", "note", {"text": str(i)})
    d = ok(cli("--as", "a1", "prime", "--json")).json()
    assert (d["inbox"]["unread"], d["inbox"]["more"]) == (3, True)
    assert "3 or more unread" in ok(cli("--as", "a1", "prime")).stdout
