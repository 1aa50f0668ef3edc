"""`coord watchdog`: WARN → nudge the holder, STALE → tell the spawner, DEAD → requeue (or
fail at max_attempts); each (worker, attempt, level) acted on once per store, with several
watchdogs and a reaper racing (real processes); its own beat stays out of the audit file
and `status` shows when it was last seen."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from coord.app import lifecycle
from coord.app.context import Coord
from helpers import coord_cmd, ok

REAP_TYPES = ("worker.released", "worker.failed")
LOST: list = []  # runs reaped while still running (too slow to beat), for the figures
BY: dict = {}  # reaps by kind of reaper (wd: a watchdog, human:ops: the reaper), for the figures


def wait_for(cond, timeout=90, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def popen(home, *args):
    env = dict(os.environ, COORD_HOME=str(home))
    return subprocess.Popen(
        [*coord_cmd(), *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def events(home, types=None):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        rows = con.execute('SELECT seq, id, type, "from", "to", body FROM events ORDER BY seq').fetchall()
    finally:
        con.close()
    out = [(s, i, t, f, to, json.loads(b)["payload"]) for s, i, t, f, to, b in rows]
    return [e for e in out if types is None or e[2] in types]


def beating(home, wid, interval, actor="a", lead="lead"):
    """wid spawned by `lead`, started by `actor`, one beat declaring `interval`."""
    with Coord(home, actor=actor) as c:
        lifecycle.act(c, "spawn", wid, {}, actor=lead)
        lifecycle.act(c, "start", wid, {})
        lifecycle.act(c, "heartbeat", wid, {"interval": interval})


def levels(cli):
    return {d["worker"]: d["liveness"] for d in cli("status", "--json").json()}


def test_watchdog_needs_an_explicit_identity(home, cli):
    r = cli("watchdog", "--once")
    assert r.exit_code == 2 and "--as" in r.stderr
    assert cli("--as", "wd", "watchdog", "--once", "--interval", "0.001").exit_code == 2


def test_each_level_is_acted_on_once(home, cli):
    beating(home, "warn", 1.0)  # WARN from 3 s to 10 s
    beating(home, "stale", 0.2)  # STALE from 2 s to 6 s
    beating(home, "dead", 0.05)  # DEAD from 1.5 s
    wait_for(lambda: levels(cli) == {"warn": "WARN", "stale": "STALE", "dead": "DEAD"}, what="the levels")
    # Three watchdogs under different names and a person running reap, all at once.
    procs = [popen(home, "--as", f"wd-{i}", "--json", "watchdog", "--once") for i in range(3)]
    procs.append(popen(home, "--as", "human:ops", "--json", "reap", "--requeue"))
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    acted = [json.loads(line) for out, _ in outs[:3] for line in out.splitlines()]
    reaped = json.loads(outs[3][0])
    assert sorted(d["action"] for d in acted) in (["nudge", "requeue", "stale"], ["nudge", "stale"])
    assert len([d for d in acted if d["action"] == "requeue"]) + len(reaped) == 1
    got = {d["worker"]: d for d in acted}
    assert (got["warn"]["to"], got["warn"]["liveness"], got["warn"]["attempt"]) == ("a", "WARN", 1)
    assert (got["stale"]["to"], got["stale"]["liveness"]) == ("lead", "STALE")
    # A second round, by another watchdog: nothing new for these attempts and levels.
    assert ok(cli("--as", "wd-9", "--json", "watchdog", "--once")).stdout == ""
    nudge = [e for e in events(home, ("msg.coord.nudge",))]
    assert len(nudge) == 1 and nudge[0][4] == "a"
    assert set(nudge[0][5]) >= {"worker", "attempt", "attempt_of", "liveness", "silent_s"}
    # The holder gets the nudge as a message, and the requeue of its dead worker as a notice.
    polled = cli("--as", "a", "--json", "poll").jsonl()
    msgs = [m for m in polled if "notice" not in m]
    assert [m["type"] for m in msgs] == ["msg.coord.nudge"] and msgs[0]["payload"]["worker"] == "warn"
    assert [(m["notice"]["worker"], m["notice"]["reason"]) for m in polled if "notice" in m] == [
        ("dead", "requeued")
    ]
    (reap,) = events(home, REAP_TYPES)
    assert reap[5]["reap"] is True and reap[5]["attempt"] == 1 and reap[5]["attempt_of"]


def test_dead_at_max_attempts_fails(home, cli):
    ok(cli("config", "max_attempts", "2"))
    beating(home, "w", 0.05)
    wait_for(lambda: levels(cli)["w"] == "DEAD", what="DEAD")
    assert ok(cli("--as", "wd", "--json", "watchdog", "--once")).jsonl()[0]["action"] == "requeue"
    with Coord(home, actor="a") as c:
        lifecycle.act(c, "start", "w", {})
        lifecycle.act(c, "heartbeat", "w", {"interval": 0.05})
    wait_for(lambda: levels(cli)["w"] == "DEAD", what="DEAD again")
    (d,) = ok(cli("--as", "wd", "--json", "watchdog", "--once")).jsonl()
    assert (d["action"], d["attempt"], d["state"]) == ("fail", 2, "FAILED")
    assert events(home, ("worker.failed",))[-1][5]["max_attempts"] == 2
    assert cli("config", "max_attempts", "0").exit_code == 2


def test_its_beat_stays_out_of_the_audit_file_and_status_shows_it(home, cli):
    beating(home, "w", 10)
    assert "watchdog" not in cli("status").stdout  # no watchdog ever ran here
    ok(cli("--as", "wd-1", "watchdog", "--once", "--interval", "0.05"))
    assert "watchdog  wd-1 last seen" in cli("status").stdout or "SILENT" in cli("status").stdout
    wait_for(lambda: cli("watchdog", "--status", "--json").json()["liveness"] == "DEAD", what="silent")
    assert "watchdog  wd-1 SILENT for" in cli("status").stdout
    ok(cli("export"))
    assert b"watchdog.heartbeat" not in (home / "events.jsonl").read_bytes()
    assert ok(cli("verify")).exit_code == 0


def test_show_says_when_a_stale_worker_becomes_reapable(home, cli):
    beating(home, "w", 0.2)
    wait_for(lambda: levels(cli)["w"] == "STALE", what="STALE")
    ex = cli("show", "w", "--json").json()["expected"]
    assert "reap --requeue" not in ex["actions"] and "once it is DEAD, in" in ex["why"]


class Reaper(threading.Thread):
    """A person running `coord reap --requeue` again and again (real processes)."""

    def __init__(self, home):
        super().__init__(daemon=True)
        self.home, self.stop, self.runs = home, threading.Event(), 0

    def run(self):
        while not self.stop.is_set():
            p = popen(self.home, "--as", "human:ops", "reap", "--requeue")
            p.communicate(timeout=120)
            assert p.returncode == 0
            self.runs += 1


def check_once_per_attempt(home, cli):
    reaps, msgs = {}, {}
    for _seq, _id, etype, frm, _to, p in events(home):
        if etype in REAP_TYPES and p.get("reap"):
            key = (p["attempt_of"],)
            reaps[key] = reaps.get(key, 0) + 1
            BY[frm.split("-")[0]] = BY.get(frm.split("-")[0], 0) + 1
        if etype in ("msg.coord.nudge", "msg.coord.stale"):
            key = (etype, p["worker"], p["attempt_of"])
            msgs[key] = msgs.get(key, 0) + 1
    assert all(n == 1 for n in reaps.values()), reaps
    assert all(n == 1 for n in msgs.values()), msgs
    r = cli("verify")
    assert r.exit_code == 0, r.stdout + r.stderr
    return reaps, msgs


def kill_loop(home, cli, workers, rounds):
    """Each round: a `coord run` per worker, SIGKILLed once it beats; two watchdogs and a
    reaper race to requeue them. Returns (attempts, reaps)."""
    BY.clear()
    LOST.clear()
    ok(cli("config", "max_attempts", "1000"))
    for w in workers:
        ok(cli("--as", "lead", "spawn", w, "--no-git"))
    dogs = [popen(home, "--as", f"wd-{i}", "--json", "watchdog", "--interval", "0.05") for i in range(2)]
    reaper = Reaper(home)
    reaper.start()
    try:
        for n in range(1, rounds + 1):
            runs = {
                w: popen(home, "--as", "agent", "run", w, "--interval", "0.05", "--", "sleep", "600")
                for w in workers
            }

            def settled(n=n, runs=runs):
                # Each run claimed attempt n and beats, or is over already: on a loaded
                # machine a run may miss 30 beats of 0.05 s and be reaped while alive (its
                # claim is then lost and it exits); that attempt was reaped once all the same.
                d = {v["worker"]: v for v in cli("status", "--json").json()}
                return all(
                    d[w]["attempt"] == n and (d[w]["heartbeat"]["count"] >= 2 or runs[w].poll() is not None)
                    for w in workers
                )

            wait_for(settled, what=f"round {n}: every run beats")
            for p in runs.values():
                if p.poll() is None:
                    p.send_signal(signal.SIGKILL)
                else:
                    LOST.append(p.returncode)
                p.communicate(timeout=60)
            wait_for(
                lambda: all(d["state"] == "ASSIGNED" for d in cli("status", "--json").json()),
                what=f"round {n}: every worker requeued",
            )
    finally:
        reaper.stop.set()
        for d in dogs:
            d.send_signal(signal.SIGTERM)
            d.communicate(timeout=60)
        reaper.join(120)
    reaps, msgs = check_once_per_attempt(home, cli)
    attempts = {v["worker"]: v["attempt"] for v in cli("status", "--json").json()}
    kinds = {k[0]: sum(1 for m in msgs if m[0] == k[0]) for k in msgs}
    print(
        f"\nreaps by {dict(BY)}; messages once each: {kinds}; reaped while running: {len(LOST)}",
        file=sys.stderr,
    )
    return attempts, reaps


def test_kill_loop_with_two_watchdogs_and_a_reaper(home, cli):
    workers = ["k-1", "k-2"]
    attempts, reaps = kill_loop(home, cli, workers, rounds=2)
    assert attempts == {w: 2 for w in workers} and len(reaps) == 4  # one reap per dead attempt


@pytest.mark.slow
def test_kill_loop_long(home, cli):
    workers = [f"k-{i}" for i in range(4)]
    t0 = time.monotonic()
    attempts, reaps = kill_loop(home, cli, workers, rounds=25)
    assert attempts == {w: 25 for w in workers} and len(reaps) == 100
    print(f"\nkill loop: 4 workers x 25 rounds, 100 reaps, {time.monotonic() - t0:.0f}s", file=sys.stderr)


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_a_watchdog_killed_mid_round_and_restarted_repeats_nothing(home, cli, point):
    beating(home, "warn", 1.0)
    beating(home, "dead", 0.05)
    wait_for(lambda: levels(cli) == {"warn": "WARN", "dead": "DEAD"}, what="the levels")
    env = dict(os.environ, COORD_HOME=str(home), COORD_FAILPOINTS=point)
    crashed = subprocess.run(
        [*coord_cmd(), "--as", "wd", "--json", "watchdog", "--once"],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL
    again = ok(cli("--as", "wd", "--json", "watchdog", "--once")).jsonl()
    acted = sorted(d["action"] for d in again)
    assert acted == (["nudge", "requeue"] if point == "before-commit" else [])  # rolled back, or done once
    assert len(events(home, ("msg.coord.nudge",))) == 1 and len(events(home, REAP_TYPES)) == 1
    assert cli("verify").exit_code == 0
