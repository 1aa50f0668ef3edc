"""--request-id on the commands whose result is not one lifecycle transition: reap, ack,
and run's claim. A repeat with a used key returns the first result and appends nothing."""

import time

from helpers import count_events


def test_reap_with_a_used_request_id_returns_the_first_result(home, cli):
    assert cli("config", "heartbeat_interval", "0.05").exit_code == 0
    for w in ("w-1", "w-2"):
        assert cli("spawn", w).exit_code == 0
        assert cli("--as", "a", "start", w).exit_code == 0
    time.sleep(1.6)  # 30 intervals: DEAD
    first = cli("--as", "janitor", "reap", "--request-id", "k", "--json")
    assert first.exit_code == 0 and {d["worker"] for d in first.json()} == {"w-1", "w-2"}
    n = count_events(home)
    assert cli("spawn", "w-3").exit_code == 0 and cli("--as", "a", "start", "w-3").exit_code == 0
    time.sleep(1.6)
    n = count_events(home)
    again = cli("--as", "janitor", "reap", "--request-id", "k", "--json")
    assert again.exit_code == 0 and again.json() == first.json()
    assert count_events(home) == n  # w-3 is dead too, but this key was used: nothing appended
    other = cli("--as", "janitor", "reap", "--request-id", "k2", "--json")
    assert [d["worker"] for d in other.json()] == ["w-3"]


def test_ack_with_a_used_request_id_keeps_the_first_position(home, cli):
    ids = []
    for i in range(3):
        r = cli("--as", "lead", "send", "note", '{"n": %d}' % i, "--to", "a", "--json")
        ids.append(r.json()["event"])
    assert cli("--as", "a", "ack", ids[0], "--request-id", "k").exit_code == 0
    assert cli("--as", "lead", "send", "note", "{}", "--to", "a").exit_code == 0
    r = cli("--as", "a", "ack", ids[0], "--request-id", "k", "--json")
    assert r.exit_code == 0 and r.json()["acked_through"] == ids[0]
    # the same key for another event is another request: refused (contract), cursor kept
    r = cli("--as", "a", "ack", ids[2], "--request-id", "k")
    assert r.exit_code == 4 and "other arguments" in r.stderr
    left = cli("--as", "a", "poll", "--peek", "--json").jsonl()
    assert [e["id"] for e in left][:2] == ids[1:]


def test_run_passes_its_request_id_to_the_claim(home, cli, proc):
    assert cli("spawn", "w-1").exit_code == 0
    env = {"COORD_HOME": str(home)}
    r = proc("--as", "a", "run", "w-1", "--here", "--request-id", "claim-1", "--", "true", env=env)
    assert r.returncode == 0, r.stderr
    start = [e for e in cli("log", "--json").jsonl() if e["type"] == "worker.started"]
    assert len(start) == 1
    import sqlite3

    con = sqlite3.connect(home / "coord.db")
    assert (
        con.execute("SELECT count(*) FROM request_ids WHERE actor='a' AND key LIKE '%claim-1'").fetchone()[0]
        == 1
    )


def test_a_key_reused_by_another_command_is_a_new_request(home, cli):
    r = cli("--as", "a", "send", "note", "--text", "z", "--to", "b", "--request-id", "k")
    assert r.exit_code == 0
    r = cli("--as", "a", "spawn", "w9", "--request-id", "k")
    assert r.exit_code == 0 and "spawned" in r.stdout
    assert cli("status", "w9", "--json").json()[0]["state"] == "ASSIGNED"
    assert cli("--as", "a", "reap", "--request-id", "k").exit_code == 0
    ev = cli("log", "--json").jsonl()[0]["id"]
    assert cli("--as", "b", "ack", ev, "--request-id", "k").exit_code == 0
