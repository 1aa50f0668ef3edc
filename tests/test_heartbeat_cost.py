"""Heartbeats must not make reads scan history: `show`'s history goes through the partial
index of migration 0401, on a new database and on one migrated from schema 1."""

import sqlite3

from coord.app.lifecycle import Coord
from coord.cli.board import _history
from coord.events.sqlite_store import SCHEMA_VERSION


def plan(con, wid="w-1"):
    q = (
        'EXPLAIN QUERY PLAN SELECT seq, id, ts, "from", type, body FROM events WHERE worker = ? '
        "AND type != 'worker.heartbeat' ORDER BY ts DESC, id DESC LIMIT 50"
    )
    return " ".join(r[-1] for r in con.execute(q, (wid,)))


def test_show_history_skips_heartbeats_through_the_partial_index(home, cli):
    with Coord(home, actor="a1") as c:
        c.act("spawn", "w-1", {})
        c.act("start", "w-1", {})
        for _ in range(50):
            c.act("heartbeat", "w-1", {"interval": 10.0})
        c.act("done", "w-1", {"summary": "s"})
    con = sqlite3.connect(str(home / "coord.db"))
    assert "events_worker_transitions" in plan(con)
    assert [r[4] for r in _history(con, "w-1")] == ["worker.spawned", "worker.started", "worker.done"]
    con.close()
    r = cli("show", "w-1", "--json")
    assert [h["type"] for h in r.json()["history"]] == ["worker.spawned", "worker.started", "worker.done"]
    assert r.json()["heartbeat"]["count"] == 50


def test_old_schema_gets_the_index_when_opened(home, cli):
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("DROP INDEX events_worker_transitions")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0401_events_worker_transitions'")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    assert "events_worker_transitions" not in plan(con)
    con.close()
    assert cli("status").exit_code == 0  # any command migrates
    con = sqlite3.connect(str(home / "coord.db"))
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "events_worker_transitions" in plan(con)
    con.close()
