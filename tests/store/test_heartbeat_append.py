"""Issue 19, the append: heartbeats are out of the type, from and to indexes (migration
0011) and commit at the heartbeat_synchronous level. Every filtered read still returns
exactly what a scan of the whole log would, through indexes; a heartbeat survives a crash
of the process that appended it; anything else commits at the store's level."""

import itertools
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from coord.app import lifecycle, messages
from coord.app.context import Coord
from coord.events.envelope import Envelope
from coord.events.records import HEARTBEAT, EventQuery, type_filter
from coord.events.settings_write import SettingsWriter
from coord.events.sqlite_reads import event_query_sql, pending_sql


def _varied(home):
    """Two agents beating on their workers, messages to agents and to all, a watchdog
    heartbeat, a finished worker: heartbeats interleaved with everything else."""
    with Coord(home, actor="lead") as c:
        for w in ("w-1", "w-2", "w-3"):
            lifecycle.act(c, "spawn", w)
        lifecycle.act(c, "start", "w-1", actor="a1")
        lifecycle.act(c, "start", "w-2", actor="a2")
        for i in range(6):
            lifecycle.act(c, "heartbeat", "w-1", {"interval": 10.0}, actor="a1")
            lifecycle.act(c, "heartbeat", "w-2", {"interval": 10.0, "note": f"n{i}"}, actor="a2")
            if i % 2:
                messages.send(c, "a1", "note", {"text": f"hello {i}"}, actor="lead")
                messages.send(c, "*", "status", {"text": f"all {i}"}, actor="a2")
        lifecycle.act(c, "done", "w-1", {"summary": "s"}, actor="a1")
        c.store.transact(lambda tx: tx.append(Envelope(tx.next_ts(), "wd", "wd", "watchdog.heartbeat", {})))


def _matches(row, q: EventQuery) -> bool:
    return (
        (q.worker is None or row.worker == q.worker)
        and (q.from_ is None or row.from_ == q.from_)
        and (q.to is None or row.to == q.to)
        and (q.types is None or q.types.matches(row.type))
        and (q.heartbeats or row.type != HEARTBEAT)
        and row.seq > q.after_seq
    )


QUERIES = [
    dict(worker=w, from_=f, to=t, types=type_filter(ty), heartbeats=hb, after_seq=after)
    for w, f, t, ty, hb, after in itertools.product(
        (None, "w-2"),
        (None, "a1", "a2", "nobody"),
        (None, "w-1", "a1", "*"),
        (None, [HEARTBEAT], ["worker.*"], ["msg.*"], ["worker.started", "msg.note"], ["*.heartbeat"]),
        (True, False),
        (0, 9),
    )
]


def test_filtered_reads_return_what_a_scan_would(home):
    _varied(home)
    with Coord(home) as c:
        r = c.store.reader
        everything = r.events(EventQuery())
        assert sum(e.type == HEARTBEAT for e in everything) == 12
        for spec in QUERIES:
            want = [e.seq for e in everything if _matches(e, EventQuery(**spec))]
            for by, last, limit in (
                ("seq", False, None),
                ("seq", True, 3),
                ("ts", False, 4),
                ("ts", True, None),
            ):
                q = EventQuery(**spec, by=by, last=last, limit=limit)
                got = [e.seq for e in r.events(q)]
                exp = want if limit is None else (want[-limit:] if last else want[:limit])
                if by == "ts":  # local events: ts order is seq order here
                    assert [e.ts for e in r.events(q)] == sorted(e.ts for e in r.events(q))
                assert got == exp, (spec, by, last, limit)
            assert r.count(EventQuery(**spec)) == len(want), spec


def _plan(con, sql, args) -> str:
    return " ".join(row[-1] for row in con.execute("EXPLAIN QUERY PLAN " + sql, args))


@pytest.mark.parametrize(
    "q, indexes",
    [
        (EventQuery(from_="a1", last=True, limit=20), ("events_from", "events_beats")),
        (EventQuery(to="w-1", last=True, limit=20), ("events_to", "events_worker")),
        (EventQuery(types=type_filter(["msg.*"]), last=True, limit=20), ("events_type",)),
        (EventQuery(from_="a1", heartbeats=False, limit=20), ("events_from",)),
    ],
)
def test_filtered_reads_use_indexes_not_a_scan(home, q, indexes):
    _varied(home)
    con = sqlite3.connect(str(home / "coord.db"))
    p = _plan(con, *event_query_sql(q))
    for name in indexes:
        assert name in p, p
    assert "SCAN events" not in p.replace("SCAN events USING", ""), p
    p = _plan(con, *pending_sql("a1", "a1", 0))  # poll
    assert "events_to" in p, p
    con.close()


def test_a_heartbeat_writes_fewer_pages(home):
    """A heartbeat's commit writes the table, events_id, events_ts, events_worker,
    events_beats and the view: about 6 WAL pages (10-11 before migration 0011, with the
    type, from and to indexes and the projection's position)."""
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
        c.store.conn.execute("PRAGMA wal_autocheckpoint = 0")
        c.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        wal = home / "coord.db-wal"
        page = c.store.conn.execute("PRAGMA page_size").fetchone()[0]
        for _ in range(50):
            lifecycle.act(c, "heartbeat", "w-1")
        frames = (wal.stat().st_size - 32) / (page + 24)
    assert frames / 50 <= 7.5, frames / 50
    con = sqlite3.connect(str(home / "coord.db"))
    sql = dict(con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    con.close()
    for index in ("events_type", "events_from", "events_to"):
        assert sql[index].endswith(f"WHERE type != '{HEARTBEAT}'"), sql[index]
    assert sql["events_beats"].endswith(f"WHERE type = '{HEARTBEAT}'")


NORMAL, FULL = 1, 2
LEVELS = {"NORMAL": NORMAL, "FULL": FULL, "EXTRA": 3}


def _commit_level(c, action) -> int:
    """The synchronous level in effect at the first COMMIT `action()` runs (its own
    transaction; the audit file's bookkeeping may follow)."""
    conn = c.store.conn
    level = [conn.execute("PRAGMA synchronous").fetchone()[0]]
    at_commit = []

    def trace(sql):
        if sql.startswith("PRAGMA synchronous = "):
            level[0] = LEVELS[sql.rsplit(" ", 1)[1]]
        elif sql == "COMMIT":
            at_commit.append(level[0])

    conn.set_trace_callback(trace)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return at_commit[0]


def test_heartbeats_commit_at_heartbeat_synchronous_and_the_rest_at_synchronous(home):
    with Coord(home, actor="a1") as c:
        assert _commit_level(c, lambda: lifecycle.act(c, "spawn", "w-1")) == FULL
        assert _commit_level(c, lambda: lifecycle.act(c, "start", "w-1")) == FULL
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-1")) == NORMAL
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-1")) == NORMAL
        assert _commit_level(c, lambda: messages.send(c, "a2", "note", {"text": "x"}, actor="a1")) == FULL
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-1")) == NORMAL
        assert _commit_level(c, lambda: lifecycle.act(c, "done", "w-1")) == FULL
    SettingsWriter(home).set("heartbeat_synchronous", "FULL")
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-2")
        lifecycle.act(c, "start", "w-2")
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-2")) == FULL
    SettingsWriter(home).set("synchronous", "EXTRA")
    SettingsWriter(home).set("heartbeat_synchronous", "NORMAL")
    with Coord(home, actor="a1") as c:
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-2")) == NORMAL
        assert _commit_level(c, lambda: lifecycle.act(c, "release", "w-2")) == 3


def test_a_beats_transaction_that_appends_more_runs_again_durably(home):
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        levels = []

        def fn(tx):
            levels.append(tx.conn.execute("PRAGMA synchronous").fetchone()[0])
            return tx.append(Envelope(tx.next_ts(), "a1", "a2", "msg.note", {"text": "t"}))

        ev = c.store.transact(fn, beats=True)
        assert levels == [NORMAL, FULL]
        assert [e.id for e in c.store.reader.events(EventQuery(types=type_filter(["msg.note"])))] == [ev.id]


def test_heartbeats_for_the_audit_file_commit_durably(home, cli):
    assert cli("config", "audit_heartbeats", "true").exit_code == 0
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
        assert _commit_level(c, lambda: lifecycle.act(c, "heartbeat", "w-1")) == FULL
    assert HEARTBEAT in (home / "events.jsonl").read_text()


CRASH = """
import os, signal, sys
from coord.app import lifecycle
from coord.app.context import Coord
c = Coord(sys.argv[1], actor="a1")
r = lifecycle.act(c, "heartbeat", "w-1", {"note": "last words"})
print(r.event, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_acknowledged_heartbeat_survives_a_crash_of_coord(home):
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
    p = subprocess.run([sys.executable, "-c", CRASH, str(home)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr
    eid = p.stdout.strip()
    assert eid.startswith("b3:")
    with Coord(home) as c:
        assert [e.id for e in c.store.reader.events(EventQuery(types=type_filter([HEARTBEAT])))] == [eid]
        assert c.store.reader.view("w-1") is not None
    assert os.path.exists(home / "coord.db")


def test_a_heartbeat_deleted_from_the_end_is_seen_by_verify(home, cli):
    """Heartbeats do not move the projection's position: its view, which counts beats,
    no longer matching a refold is what shows one deleted from the end."""
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
        lifecycle.act(c, "heartbeat", "w-1")
        lifecycle.act(c, "heartbeat", "w-1")
    assert cli("verify").exit_code == 0
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    con.commit()
    con.close()
    r = cli("verify")
    assert r.exit_code == 5, r.stdout
