"""Real processes against one home: nothing lost, nothing duplicated, seq gapless, and
exactly one winner per contested worker."""

import os
import sqlite3
import subprocess
import sys
import textwrap

from helpers import coord_cmd

HAMMER = textwrap.dedent("""
    import sys
    from coord.app.context import Coord
    from coord.app import lifecycle
    from coord.events.errors import Busy
    home, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ok = []
    with Coord(home, actor=me) as c:
        lifecycle.act(c, "spawn", f"w-{me}")
        lifecycle.act(c, "start", f"w-{me}")
        for i in range(n):
            r = lifecycle.act(c, "heartbeat", f"w-{me}", {"note": f"{me}-{i}"})
            ok.append(r.event)
    print("\\n".join(ok))
""")


def test_eight_processes_lose_nothing_duplicate_nothing_gapless(home, tmp_path):
    script = tmp_path / "hammer.py"
    script.write_text(HAMMER)
    n = 40
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(home), f"p{i}", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    acked = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        acked += out.split()
    assert len(acked) == 8 * n
    con = sqlite3.connect(home / "coord.db")
    seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
    ids = {r[0] for r in con.execute("SELECT id FROM events")}
    assert seqs == list(range(1, 8 * (n + 2) + 1))  # gapless, nothing extra
    assert set(acked) <= ids and len(set(acked)) == len(acked)  # every acknowledged event is there once
    notes = [
        r[0]
        for r in con.execute(
            "SELECT json_extract(body, '$.payload.note') FROM events WHERE type='worker.heartbeat'"
        )
    ]
    assert len(notes) == len(set(notes)) == 8 * n
    for _w, view in con.execute("SELECT worker, json_extract(view, '$.heartbeats') FROM workers"):
        assert view == n


def _race(home, argv_for, k):
    env = dict(os.environ, COORD_HOME=str(home))
    procs = [
        subprocess.Popen(
            [*coord_cmd(), *argv_for(i), "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(k)
    ]
    return [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]


def test_racing_start_has_exactly_one_winner(home, cli):
    for w in ("w-1", "w-2"):  # set up in-process; the racers are real processes
        assert cli("spawn", w).exit_code == 0
    for w in ("w-1", "w-2"):
        results = _race(home, lambda i, w=w: ["--as", f"agent-{i}", "start", w], 6)
        codes = sorted(r[0] for r in results)
        assert codes == [0] + [4] * 5, results
    con = sqlite3.connect(home / "coord.db")
    assert con.execute("SELECT count(*) FROM events WHERE type='worker.started'").fetchone()[0] == 2


def test_start_next_with_fewer_workers_than_agents(home, cli):
    for w in ("w-1", "w-2", "w-3"):
        assert cli("spawn", w).exit_code == 0
    results = _race(home, lambda i: ["--as", f"agent-{i}", "start", "--next"], 8)
    winners = [r for r in results if r[0] == 0]
    assert len(winners) == 3 and sorted(r[0] for r in results).count(4) == 5
    import json

    assert sorted(json.loads(r[1])["worker"] for r in winners) == ["w-1", "w-2", "w-3"]
    for code, _out, err in results:
        if code == 4:
            assert json.loads(err)["error"]["code"] == "nothing_to_claim"
