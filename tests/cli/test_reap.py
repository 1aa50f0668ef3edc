"""`coord reap`: DEAD workers only, REMOTE ones left alone, one reap event per dead worker
even with several reapers at once (real processes)."""

import json
import os
import sqlite3
import subprocess
import time

from coord.app import lifecycle
from coord.app.context import Coord
from helpers import coord_cmd, count_events


def reap_events(home):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        rows = con.execute(
            "SELECT worker, type, body FROM events WHERE type IN "
            "('worker.failed','worker.released') ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    return [(w, t, json.loads(b)["payload"]) for w, t, b in rows]


def make_dead(home, names, interval=0.02, actor="a1"):
    """Workers that declared a tiny interval and then went quiet: DEAD after 30 intervals."""
    with Coord(home, actor=actor) as c:
        for w in names:
            lifecycle.act(c, "spawn", w, {})
            lifecycle.act(c, "start", w, {})
            lifecycle.act(c, "heartbeat", w, {"interval": interval})
    time.sleep(30 * interval + 0.1)


def test_reap_fails_only_dead_workers(home, cli):
    make_dead(home, ["d-1", "d-2"])
    with Coord(home, actor="a2") as c:
        lifecycle.act(c, "spawn", "alive", {})
        lifecycle.act(c, "start", "alive", {})  # default interval 10 s: OK
        lifecycle.act(c, "spawn", "waiting", {})  # ASSIGNED: no liveness
    r = cli("--as", "reaper", "reap")
    assert r.exit_code == 0, r.stderr
    assert "d-1: reaped" in r.stdout and "d-2: reaped" in r.stdout and "alive" not in r.stdout
    states = {d["worker"]: d["state"] for d in cli("status", "--json").json()}
    assert states == {"d-1": "FAILED", "d-2": "FAILED", "alive": "WORKING", "waiting": "ASSIGNED"}
    evs = reap_events(home)
    assert [(w, t) for w, t, _ in evs] == [("d-1", "worker.failed"), ("d-2", "worker.failed")]
    assert all(
        p["reason"] == "heartbeat timeout" and p["reap"] is True and p["holder"] == "a1" for _, _, p in evs
    )
    n = count_events(home)
    r = cli("reap")  # idempotent: nothing left
    assert r.exit_code == 0 and r.stdout.strip() == "nothing to reap"
    assert count_events(home) == n


def test_reap_requeue_sends_back_to_assigned(home, cli):
    make_dead(home, ["d-1"])
    r = cli("--as", "reaper", "--json", "reap", "--requeue")
    assert r.exit_code == 0
    assert [(d["worker"], d["from_state"], d["state"]) for d in r.json()] == [("d-1", "WORKING", "ASSIGNED")]
    v = cli("status", "d-1", "--json").json()[0]
    assert v["state"] == "ASSIGNED" and v["holder"] is None and v["reason"] == "heartbeat timeout"
    assert cli("--as", "a3", "start", "d-1").exit_code == 0  # another agent can take it


def test_reap_dry_run_appends_nothing(home, cli):
    make_dead(home, ["d-1"])
    n = count_events(home)
    r = cli("--json", "reap", "--dry-run")
    assert [d["worker"] for d in r.json()] == ["d-1"] and r.json()[0]["event"] is None
    assert count_events(home) == n


def test_reap_leaves_remote_workers_alone(home, cli):
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "far", {})
        # a start that came from another clone (as an import would bring it)
        lifecycle.append_raw(c, "far", "worker.started", {"clone": "another-clone"}, actor="remote-agent")
        lifecycle.act(c, "heartbeat", "far", {"interval": 0.01}, actor="remote-agent")
    time.sleep(0.5)
    assert cli("status", "far", "--json").json()[0]["liveness"] == "REMOTE"
    n = count_events(home)
    assert cli("reap").stdout.strip() == "nothing to reap"
    assert count_events(home) == n


def test_two_reapers_at_once_one_event_per_dead_worker(home):
    names = [f"d-{i}" for i in range(8)]
    make_dead(home, names)
    env = dict(os.environ, COORD_HOME=str(home))
    procs = [
        subprocess.Popen(
            [*coord_cmd(), "--as", f"reaper-{i}", "--json", "reap"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    reaped = [d["worker"] for out, _ in outs for d in json.loads(out)]
    assert sorted(reaped) == names  # each worker reaped by exactly one reaper
    evs = reap_events(home)
    assert sorted(w for w, _, _ in evs) == names  # and one event each
