"""Heartbeats must not make reads scan history: `show`'s history goes through the partial
index of migration 0004 (events_worker_transitions), on a new database and on one migrated
from schema 1."""

import sqlite3

from coord.app import lifecycle
from coord.app.context import Coord
from coord.app.queries import HISTORY_SHOWN
from coord.events.records import EventQuery
from coord.events.sqlite_reads import event_query_sql
from coord.events.sqlite_store import SCHEMA_VERSION

# The query `show` runs for a worker's history (coord.app.queries.worker_detail).
HISTORY = EventQuery(worker="w-1", heartbeats=False, by="ts", last=True, limit=HISTORY_SHOWN)


def plan(con):
    sql, args = event_query_sql(HISTORY)
    return " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + sql, args))


def test_show_history_skips_heartbeats_through_the_partial_index(home, cli):
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1", {})
        lifecycle.act(c, "start", "w-1", {})
        for _ in range(50):
            lifecycle.act(c, "heartbeat", "w-1", {"interval": 10.0})
        lifecycle.act(c, "done", "w-1", {"summary": "s"})
    con = sqlite3.connect(str(home / "coord.db"))
    assert "events_worker_transitions" in plan(con)
    con.close()
    with Coord(home) as c:
        assert [r.type for r in c.store.reader.events(HISTORY)] == [
            "worker.spawned",
            "worker.started",
            "worker.done",
        ]
    r = cli("show", "w-1", "--json")
    assert [h["type"] for h in r.json()["history"]] == ["worker.spawned", "worker.started", "worker.done"]
    assert r.json()["heartbeat"]["count"] == 50


def test_old_schema_gets_the_index_when_opened(home, cli):
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("DROP INDEX events_worker_transitions")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0004_events_worker_transitions'")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    assert "events_worker_transitions" not in plan(con)
    con.close()
    assert cli("status").exit_code == 0  # any command migrates
    con = sqlite3.connect(str(home / "coord.db"))
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "events_worker_transitions" in plan(con)
    con.close()


def test_the_watchdog_last_seen_is_one_index_step(home, cli):
    # `status` asks when the watchdog last beat: the type index, newest first, no sort.
    from coord.app.watchdog import LAST_BEAT

    assert cli("--as", "wd", "watchdog", "--once").exit_code == 0
    con = sqlite3.connect(str(home / "coord.db"))
    sql, args = event_query_sql(LAST_BEAT)
    p = " ".join(r[-1] for r in con.execute("EXPLAIN QUERY PLAN " + sql, args))
    con.close()
    assert "events_type" in p and "TEMP B-TREE" not in p, p
