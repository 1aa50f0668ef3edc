"""coord log -f in a real subprocess sees exactly the events other processes commit while
it runs: none missed, none repeated, in seq order; SIGTERM ends it with exit 0."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

from helpers import coord_cmd

WRITER = """
import sys
from coord.app import lifecycle
from coord.app.context import Coord
k, n = sys.argv[1], int(sys.argv[2])
with Coord() as c:
    for i in range(n):
        lifecycle.append_raw(c, "*", "msg.ping", {"w": k, "i": i}, actor="writer-" + k)
        if i % 10 == 0:
            lifecycle.act(c, "spawn", f"w-{k}-{i}", {}, actor="writer-" + k)
"""


def _reader(p, out):
    for line in p.stdout:
        out.append(line)


def _db_rows(home, where=""):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        return con.execute(f"SELECT seq, id FROM events {where} ORDER BY seq").fetchall()
    finally:
        con.close()


def _follow(home, *args, writers=3, per=40):
    import json

    env = dict(os.environ, COORD_HOME=str(home))
    p = subprocess.Popen(
        [*coord_cmd(), "log", "-f", "--json", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out = []
    t = threading.Thread(target=_reader, args=(p, out), daemon=True)
    t.start()
    time.sleep(0.5)
    ws = [subprocess.Popen([sys.executable, "-c", WRITER, str(k), str(per)], env=env) for k in range(writers)]
    for w in ws:
        assert w.wait(timeout=120) == 0
    return p, out, t, json


def _stop(p, t):
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=20) == 0, p.stderr.read()
    t.join(timeout=10)


def _wait_for(out, n, timeout=30):
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        time.sleep(0.05)


def test_follow_sees_every_event_exactly_once(home, cli):
    cli("spawn", "before-1")
    cli("spawn", "before-2")
    p, out, t, json = _follow(home)
    rows = _db_rows(home)
    _wait_for(out, len(rows))
    time.sleep(0.3)  # anything extra (a repeat) would show up now
    _stop(p, t)
    got = [json.loads(line) for line in out]
    assert [(e["seq"], e["id"]) for e in got] == rows
    assert len(rows) == 2 + 3 * 40 + 3 * 4


def test_follow_applies_the_filters(home, cli):
    cli("spawn", "w-0")
    p, out, t, json = _follow(home, "--type", "msg.*", "--from", "writer-1")
    rows = _db_rows(home, "WHERE type = 'msg.ping' AND \"from\" = 'writer-1'")
    _wait_for(out, len(rows))
    time.sleep(0.3)
    _stop(p, t)
    assert [(e["seq"], e["id"]) for e in map(json.loads, out)] == rows and len(rows) == 40


def test_follow_ends_quietly_when_the_reader_goes_away(home, cli):
    for i in range(5):
        cli("spawn", f"w-{i}")
    env = dict(os.environ, COORD_HOME=str(home))
    r = subprocess.run(
        f"{' '.join(coord_cmd())} log -f | head -2",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert len(r.stdout.splitlines()) == 2 and "Error" not in r.stderr and "Traceback" not in r.stderr
