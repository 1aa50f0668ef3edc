"""The fast rebuild (projections/fromzero: lean rows, a fold in place, settled at the end;
bulk writes of views, dependencies, notices and acknowledgements) leaves exactly what
the projector's incremental fold kept in each append: the same bytes in every row of
`workers` (views, as the plain fold encodes them, and their columns), `deps`, `notices` (with
their acknowledged flags), `acks` and `cursors`, on a varied store: attempts, stamped
and forced actions, the work graph, notices and their acknowledgements, messages and
acknowledgements, and events imported from a clone that was apart (conflicting starts,
edges, events dated ahead of this clock, arriving in shuffled chunks). It also equals
the plain fold (workers.fold without `mutate`) of the same events, and the search index
holds each event's text as read from its stored bytes. The acknowledgement
watermarks equal those of a rebuild event by event (the live ones may stop lower, below
messages that were not there yet: the same messages are pending either way)."""

import random

import pytest
from msgspec.structs import astuple

from coord.app import admin, graph, lifecycle, messages
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.audit_read import import_bodies
from coord.events.codec import decode_body
from coord.events.envelope import Envelope, canonical, event_id, now_us, us_to_ts
from coord.events.errors import CoordError
from coord.events.records import AUDIT_DIRTY, EventQuery, type_filter
from coord.events.sqlite_board import BOARD_COLS
from coord.events.sqlite_reads import VIEW_COLS
from coord.projections import board, fromzero, inbox, search
from coord.projections.graph import MemGraph, columns_in_memory
from coord.projections.workers import current_attempt, fold, legal_actions

WORKERS = [f"w{i}" for i in range(10)]
AGENTS = ["a1", "a2", "a3"]
TABLES = {
    "workers": f"SELECT {VIEW_COLS}, {BOARD_COLS} FROM workers ORDER BY worker",  # a ViewRow's order
    "deps": "SELECT * FROM deps ORDER BY worker, after",
    "notices": "SELECT agent, seq, worker, attempt, reason, acked FROM notices ORDER BY agent, seq",
    "acks": "SELECT agent, id FROM acks ORDER BY agent, id",
    "cursors": "SELECT agent, address, seq FROM cursors ORDER BY agent, address",
    "search": "SELECT rowid, type, text FROM search ORDER BY rowid",
}


def stored_form(row) -> tuple:
    """A ViewRow as its row of `workers` reads back (its board columns inline)."""
    return astuple(row)[:13] + (astuple(row.board) if row.board is not None else (None,) * 7)


def snapshot(c) -> dict:
    return {k: c.store.conn.execute(sql).fetchall() for k, sql in TABLES.items()}


def step(c, rnd: random.Random) -> None:
    """One random action, as a command would run it (refusals are fine)."""
    known = [v.worker for v in c.store.reader.views()]
    w, other = rnd.choice(known or WORKERS), rnd.choice(WORKERS)
    agent = rnd.choice(AGENTS)
    kind = rnd.random()
    try:
        if kind < 0.08 or len(known) < 3:
            w = rnd.choice(WORKERS)
            payload = {"task": f"task {w}"}
            if rnd.random() < 0.4:
                payload["after"] = [other]
            if rnd.random() < 0.3:
                payload["priority"] = rnd.randrange(5)
            lifecycle.act(c, "spawn", w, payload, actor="human:lead")
        elif kind < 0.13:
            graph.dep(c, w, other, actor="human:lead", remove=rnd.random() < 0.3)
        elif kind < 0.15:
            graph.prioritize(c, w, rnd.randrange(5), actor="human:lead")
        elif kind < 0.30:
            view = board.load(c.store.reader, w)
            payload = {"interval": 60, "note": rnd.choice(["x", "y"])}
            if view is not None and current_attempt(view) and rnd.random() < 0.5:
                payload["attempt_of"] = current_attempt(view)  # a stamped beat (coord run's)
            lifecycle.act(c, "heartbeat", w, payload, actor=view.holder if view and view.holder else agent)
        elif kind < 0.45:
            to = rnd.choice([*AGENTS, "*", w])
            messages.send(c, to, "note", {"text": f"about {w} {rnd.random():.3f}"}, actor=agent)
        elif kind < 0.52:
            got = messages.pending(c, agent)
            if got:
                messages.acknowledge(c, agent, got)
        else:
            view = board.load(c.store.reader, w)
            legal = [a for a in legal_actions(view.state) if a not in ("spawn", "heartbeat")] if view else []
            if rnd.random() < 0.15 or not legal:
                legal = ["start", "done", "approve", "request-changes", "merge", "release", "fail", "retry"]
            for rare in ("cancel", "fail"):  # keep most workers going
                if rare in legal and len(legal) > 1 and rnd.random() < 0.8:
                    legal.remove(rare)
            action = rnd.choice(legal)
            payload = {}
            actor = rnd.choice([agent, "rev", "human:lead"])
            if action in ("done", "release", "fail") and view is not None and view.holder:
                actor = view.holder if rnd.random() < 0.7 else actor
                if actor != view.holder:
                    payload["force"] = True  # someone else's: a notice for the holder
            if action == "request-changes":
                payload["reason"] = "again"
            if view is not None and current_attempt(view) and rnd.random() < 0.2:
                payload["attempt_of"] = current_attempt(view)
            lifecycle.act(c, action, w, payload, actor=actor)
    except CoordError as e:
        assert e.exit_code in (2, 3, 4), e


def _bodies(c):
    return list(c.store.conn.execute("SELECT id, body FROM events"))


def _ahead(c, rnd: random.Random) -> list[tuple[str, bytes]]:
    """Events legal after the last one, dated ahead of this clock (so stored before their
    ts: local times in the views): a beat and a hand-in from each holder, a start of
    each unassigned worker."""
    out, base = [], now_us() + 3_600_000_000
    for i, v in enumerate(board.stored_views(c.store.reader).values()):
        if v.state == "WORKING" and v.holder:
            evs = [(v.holder, "worker.heartbeat", {"interval": 30}), (v.holder, "worker.done", {})]
        elif v.state == "ASSIGNED" and not v.assignee:
            evs = [(rnd.choice(AGENTS), "worker.started", {})]
        else:
            continue
        for j, (frm, etype, payload) in enumerate(evs):
            body = canonical(Envelope(us_to_ts(base + i * 1000 + j), frm, v.worker, etype, payload))
            out.append((event_id(body), body))
    return out


def acks_one_by_one(store) -> None:
    """The acknowledgements rebuilt one inbox.acked event at a time (as before issue 19)."""

    def redo(tx):
        tx.reset_acks()
        for r in tx.events(EventQuery(types=type_filter([inbox.ACKED]))):
            ids = inbox.acked_ids(r.env, store.blobs)
            if ids:
                tx.record_acks(r.from_, ids)

    store.transact(redo)


def damage(c) -> None:
    """Projections changed behind coord's back (the rebuild must put back every row; an
    acknowledged notice's local flag is the one thing a rebuild keeps, not derives)."""
    for sql in (
        "DELETE FROM notices WHERE acked = 0 AND seq % 2 = 0",
        "DELETE FROM workers WHERE rowid % 3 = 0",
        "UPDATE workers SET ready = 1 - ready, waiting = waiting + 1, view = view || ' ' WHERE rowid % 3 = 1",
        "DELETE FROM deps",
        "DELETE FROM acks WHERE rowid % 2 = 0",
        "UPDATE cursors SET seq = 0",
        "DELETE FROM search WHERE rowid % 2 = 0",
    ):
        c.store.conn.execute(sql)


def indexed_from_bytes(c) -> list:
    """The search rows of every event, from its stored bytes (payload keys in canonical
    order: a rebuild's order, which the live index of a payload given in another key order
    does not share; the same words either way)."""
    out = []
    for seq, body in c.store.conn.execute("SELECT seq, body FROM events ORDER BY seq"):
        env = decode_body(body)
        if env.type not in search.SKIP_TYPES and not env.type.startswith(search.NOT_INDEXED):
            out.append(search.row_for(seq, env.type, env.payload, c.store.blobs))
    return out


def plain_fold(c) -> dict:
    """The views the plain (copying, eager) fold gives of the stored events."""
    rows = c.store.conn.execute(
        "SELECT id, body, stored FROM events WHERE worker IS NOT NULL ORDER BY ts, id"
    ).fetchall()
    views: dict = {}
    g = MemGraph(views)
    for eid, body, stored in rows:
        env = decode_body(body)
        v = fold(views.get(env.to), env, eid, stored, g)
        if v is not None:
            views[env.to] = v
    return views


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_rebuild_equals_the_incremental_fold(tmp_path, seed):
    rnd = random.Random(seed)
    homes = {}
    for name in "AB":
        h, _ = init(tmp_path / name / ".coord")
        homes[name] = Coord(h, actor="human:lead")
        homes[name].home.write_config({"synchronous": "NORMAL"})
    A, B = homes["A"], homes["B"]
    try:
        for _ in range(60):
            step(A, rnd)
        import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
        for _ in range(120):  # apart: both change the same workers
            step(rnd.choice([A, B]), rnd)
        items = _bodies(B)
        rnd.shuffle(items)
        while items:  # B's events arrive at A in shuffled chunks
            k = rnd.randint(1, 12)
            import_bodies(A.store, items[:k], AUDIT_DIRTY)
            items = items[k:]
        for _ in range(30):  # and life goes on after the exchange
            step(A, rnd)
        import_bodies(A.store, _ahead(A, rnd), AUDIT_DIRTY)
        lifecycle.act(A, "spawn", "wz", {"task": "last", "after": sorted(WORKERS)[:2]}, actor="human:lead")
        before = snapshot(A)
        incremental = board.stored_views(A.store.reader)
        assert any(v.conflicts for v in incremental.values()), "the scenario should conflict"
        assert any(v.since_local or v.beat_local for v in incremental.values()), "and be dated ahead"
        assert before["notices"] and before["acks"] and before["deps"], before
        plain = plain_fold(A)
        assert plain == incremental
        found: list = []
        assert fromzero.fold_from_zero(A.store, found=found)[0] == incremental
        pending = {a: [r.id for r in messages.pending(A, a)] for a in AGENTS}
        acks_one_by_one(A.store)  # the watermarks as rebuilt event by event (the live ones
        before["cursors"] = snapshot(A)["cursors"]  # stop below messages not yet there)
        before["search"] = indexed_from_bytes(A)
        damage(A)
        admin.rebuild(A)
        after = snapshot(A)
        # The views' bytes are those the plain fold encodes; the live ones may differ only
        # where a view went through the stored form (an int hb_interval comes back a float).
        cols = columns_in_memory(plain)
        assert after["workers"] == [stored_form(board.view_row(plain[w], *cols[w])) for w in sorted(plain)]
        assert board.stored_views(A.store.reader) == incremental
        assert [r[:9] + r[10:] for r in after["workers"]] == [r[:9] + r[10:] for r in before["workers"]]
        before["workers"] = after["workers"]
        for table in TABLES:
            assert after[table] == before[table], table
        assert {a: [r.id for r in messages.pending(A, a)] for a in AGENTS} == pending
        # each part alone, run twice (idempotent)
        for part in (board.rebuild, search.rebuild, inbox.rebuild, board.rebuild):
            part(A.store)
            assert snapshot(A) == before
    finally:
        for c in homes.values():
            c.close()


def interface_snapshot(c) -> dict:
    """What the store interface shows of the projections (any store)."""
    r = c.store.reader
    rows = r.views(board=True)
    workers = [v.worker for v in rows]
    return {
        "views": [(v.worker, v.state, v.holder, v.ready, v.waiting, v.priority, v.board) for v in rows],
        "decoded": board.stored_views(r),
        "deps": {w: r.dependents(w) for w in workers},
        "notices": {w: r.notices_of(w) for w in workers},
        "acked": {a: sorted(r.acked(a, [x.id for x in r.events(EventQuery())])) for a in AGENTS},
        "pending": {a: [x.id for x in messages.pending(c, a)] for a in AGENTS},
        "indexed": r.search_count(),
    }


def test_fast_rebuild_on_postgresql(tmp_path, pg_log_url):
    """The same rebuild on the PostgreSQL store (its own defaults for the bulk reads and
    writes) leaves what the incremental fold kept."""
    rnd = random.Random(7)
    h, _ = init(tmp_path / "pg" / ".coord")
    h.write_config({"store": pg_log_url})
    with Coord(h, actor="human:lead") as c:
        for _ in range(120):
            step(c, rnd)
        lifecycle.act(c, "spawn", "wz", {"task": "last", "after": sorted(WORKERS)[:2]}, actor="human:lead")
        before = interface_snapshot(c)
        assert any(before["notices"].values()) and any(before["deps"].values())
        assert plain_fold_of(c) == before["decoded"]
        admin.rebuild(c)
        assert interface_snapshot(c) == before


def plain_fold_of(c) -> dict:
    """plain_fold through the store interface."""
    views: dict = {}
    g = MemGraph(views)
    for row in c.store.reader.events(EventQuery(lifecycle=True, by="ts")):
        env = decode_body(row.body)
        v = fold(views.get(env.to), env, row.id, row.stored, g)
        if v is not None:
            views[env.to] = v
    return views
