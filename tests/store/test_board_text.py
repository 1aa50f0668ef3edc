"""The text board read from the columns stored beside the views (Reader.board_lines,
rendered by the store) is the board rendered from the decoded views (render_board of
board_items), on every store, on a store with every state, attempts, dependencies
(waiting and blocked), checks, conflicts, priorities, heartbeats with notes and idle
times, a holder on another clone, and agent text that needs escaping or cutting; at times
that make every liveness level and every form of age. The columns stay right after
heartbeats (written with the view's bytes), a rebuild, and `verify` compares them."""

import pytest

from coord.app.checks import add_check_status
from coord.app.context import Coord
from coord.app.queries import board_items, text_board
from coord.cli.render import render_board, render_stored_board
from coord.events.envelope import Envelope, now_us
from coord.events.pg_board import BOARD_COLS
from coord.projections import board
from coord.projections.workers import ACTIVE, STATES

S = 1_000_000
LATER = [
    0,
    2 * S,
    4 * S,
    12 * S,
    45 * S,
    90 * S,
    400 * S,
    2 * 3600 * S,
    3 * 86400 * S,
    40 * 86400 * S,
    -30 * S,
]


def fill(c):
    me = c.clone_id

    def do(tx):
        def ev(frm, to, etype, payload=None):
            tx.append(Envelope(tx.next_ts(), frm, to, etype, payload or {}))

        def spawn(w, **p):
            ev("human:lead", w, "worker.spawned", {"task": f"task of {w}", **p})

        def start(w, agent="ann", clone=me, **hb):
            ev(agent, w, "worker.started", {"clone": clone} if clone else {})
            if hb:
                ev(agent, w, "worker.heartbeat", hb)

        spawn("assigned")
        spawn("urgent", priority=0)
        spawn("low", priority=4, task="")
        spawn("w-local")
        start("w-local", interval=1, note="compiling")
        spawn("w-idle")
        start("w-idle", "bob", interval=5, idle_s=125, note="waiting for input")
        spawn("w-idle-nonote")
        start("w-idle-nonote", "bob", interval=5, idle_s=7300.5)
        spawn("w-remote")
        start("w-remote", "cy", clone="another-clone", interval=2)
        spawn("w-noclone")
        start("w-noclone", "dee", clone=None)
        spawn("w-silent")
        start("w-silent", "eve")  # never beat: liveness from the start
        for w, summary in (("review", "ready for review, a long summary cut to fit"), ("approved", None)):
            spawn(w)
            start(w, interval=3)
            ev("ann", w, "worker.done", {"summary": summary} if summary else {})
        ev("bob", "approved", "worker.approved")
        spawn("completed")
        start("completed")
        ev("ann", "completed", "worker.done", {"summary": "merged it"})
        ev("bob", "completed", "worker.approved")
        ev("bob", "completed", "worker.merged")
        spawn("failed")
        start("failed")
        ev("ann", "failed", "worker.failed", {"reason": "boom\n\x1b[31mred\x1b[0m second line"})
        spawn("canceled", priority=1)
        ev("human:lead", "canceled", "worker.canceled", {"reason": "not needed"})
        spawn("retried")
        start("retried")
        ev("ann", "retried", "worker.failed", {"reason": "flaky"})
        ev("human:lead", "retried", "worker.retried")
        start("retried", "bob", interval=1, note="second attempt")
        spawn("conflicted")
        start("conflicted")
        ev("ann", "conflicted", "worker.conflicted", {"files": ["a.py"]})
        spawn("illegal")
        start("illegal")
        ev("zed", "illegal", "worker.merged")  # not legal here: kept as a conflict
        spawn("waits", after=["w-local", "assigned"])
        spawn("blocked", after=["failed", "w-local"], priority=3)
        spawn("deps-done", after=["completed"])
        spawn("waits-canceled", after=["w-local"])
        ev("human:lead", "waits-canceled", "worker.canceled")
        spawn("checked")
        start("checked")
        ev("ann", "checked", "worker.done", {"summary": "tests pass"})
        for etype, name in (("check.passed", "tests"), ("check.failed", "lint")):
            ev("ann", "checked", etype, {"name": name, "command": ["true"], "commit": "abc", "exit": 0})
        spawn("a-very-long-worker-name-indeed", task="t\tab, trailing spaces   ")
        start("a-very-long-worker-name-indeed", "an-agent-with-a-long-name", interval=60)
        spawn("nbsp", task="ends in a no-break space\u00a0")
        spawn("wide", task="日本語のタスクです、長いです、とても長い")
        spawn("spaces", task="x" + " " * 40)
        spawn("blank", task="   ")
        spawn("ctrl", task="\x07bell\u2028sep")

    c.store.transact(do)


def from_views(c, now, states=(), all_=False):
    items = board_items(c, None, set(states), False, all_, now, full=False)
    add_check_status(c, items)
    return render_board(items, now) if items else []


def from_columns(c, now, states=(), all_=False):
    rows, special, _ = text_board(c, set(states), all_, now)
    return render_stored_board(rows, special, now) if rows else []


def same_boards(c, nows):
    for now in nows:
        for states, all_ in (
            ((), True),
            ((), False),
            (("WORKING", "ASSIGNED"), False),
            (("COMPLETED",), False),
        ):
            want = from_views(c, now, states, all_)
            assert from_columns(c, now, states, all_) == want, (now, states, all_)


@pytest.fixture
def coord(open_store):
    with Coord(open_store.home, actor="human:lead") as c:
        yield c


def test_the_stored_board_is_the_board_of_the_views(coord, monkeypatch):
    from coord.events import sqlite_board

    c = coord
    fill(c)
    base = now_us()
    shown = from_views(c, base, all_=True)
    assert {line.split()[1] for line in shown[1:]} == set(STATES)  # every state is on it
    lines = "\n".join("\n".join(from_views(c, base + d, all_=True)) for d in LATER)
    for word in ("REMOTE", " OK ", "WARN", "STALE", "DEAD", "waits for", "blocked by", "tests:passed"):
        assert word in lines, word
    for word in ("conflict(s)", "P0", "P4", "idle 2m", "idle 2h01m", "…", "\\x1b", "\\n", "40d0h", "2h00m"):
        assert word in lines, word
    same_boards(c, [base + d for d in LATER])
    with monkeypatch.context() as m:
        m.setattr(sqlite_board, "MAX_LISTED", 0)  # SQLite: the special ones as JSON
        same_boards(c, [base])
    rows, special, any_active = text_board(c, (), True, base)
    assert set(special) == {"waits", "blocked", "deps-done", "waits-canceled", "checked"} - {"deps-done"}
    assert any_active and not text_board(c, {"COMPLETED"}, False, base)[2]

    # Heartbeats rewrite the columns with the view's bytes (a new note, interval, idle).
    def beats(tx):
        for w, p in (("w-local", {"note": "linking"}), ("w-idle", {"idle_s": None, "interval": 30})):
            tx.append(Envelope(tx.next_ts(), "ann" if w == "w-local" else "bob", w, "worker.heartbeat", p))

    c.store.transact(beats)
    same_boards(c, [now_us() + d for d in LATER[:5]])
    assert board.stored_graph_columns(c.store.reader) == board.fresh_graph_columns(
        board.stored_views(c.store.reader)
    )
    board.rebuild(c.store)
    same_boards(c, [now_us() + d for d in LATER[:5]])
    assert c.store.reader.has_views(ACTIVE) and not c.store.reader.has_views(())


def test_verify_sees_a_stale_board_column(coord):
    from coord.app.verification import Report, check_projections
    from coord.events.records import BoardRow

    c = coord
    fill(c)
    report = Report()
    check_projections(c, report)
    assert report.problems == []
    c.store.transact(lambda tx: tx.put_board("assigned", BoardRow("x", "y", 0)))
    report = Report()
    check_projections(c, report)
    assert report.problems == ["worker assigned: view differs from a fresh fold (run `coord rebuild`)"]
    # A row stored without its columns is rendered from its view meanwhile.
    c.store.transact(lambda tx: tx.put_board("assigned", None))
    same_boards(c, [now_us()])


def test_a_log_from_before_the_board_columns_is_upgraded(pg_log_url, tmp_path):
    """PostgreSQL: a log made at schema 2 (no board columns) is brought to 3 by the first
    coord that opens it, and the columns are filled from the views. (SQLite's own
    migration: tests/store/test_migrations.py.)"""
    from coord.events.home import init_home_dirs

    home = init_home_dirs(tmp_path / ".coord")
    home.write_config({"store": pg_log_url})
    s = home.open_store((), ())
    with Coord(home, actor="human:lead") as c:
        fill(c)
        want = from_views(c, now_us() + 5 * S, all_=True)
    cols = ", ".join(f"DROP COLUMN {col}" for col in BOARD_COLS.split(", "))
    s.run(f"ALTER TABLE coord.workers {cols}")
    s.run("UPDATE coord.meta SET value = '2' WHERE key = 'schema_version'")
    with Coord(home, actor="human:lead") as c:
        assert c.store.reader.meta(["schema_version", "board_columns"]) == {"schema_version": "3"}
        now = now_us() + 5 * S
        assert from_columns(c, now, all_=True) == from_views(c, now, all_=True)
        assert [line.split()[:3] for line in from_columns(c, now, all_=True)] == [
            line.split()[:3] for line in want
        ]
        rows, special, _ = text_board(c, (), True, now)
        assert set(special) == {"waits", "blocked", "waits-canceled", "checked"}
    s.close()
