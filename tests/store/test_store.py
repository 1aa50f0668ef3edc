"""The store interface's contract (coord.events.store), for every implementation: the one
write path and its transactions, the reads the application uses, views, request ids,
bookkeeping, inboxes, search, the audit file's marks, waiting for new events."""

import threading
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.events.envelope import Envelope, canonical, event_id, now_us, ts_to_us, us_to_ts
from coord.events.errors import Busy, CoordError, UsageError
from coord.events.records import (
    AUDIT_DIRTY,
    AUDIT_NONE,
    AUDIT_WRITTEN,
    EventQuery,
    TypeFilter,
    ViewRow,
    type_filter,
)


def add(store, *specs, origin="local"):
    """Append events (to, type, payload[, from]) in one transaction; their StoredEvents."""

    def fn(tx):
        out = []
        for spec in specs:
            to, etype, payload, *frm = spec
            out.append(tx.append(Envelope(tx.next_ts(), frm[0] if frm else "a", to, etype, payload)))
        return out

    return store.transact(fn)


def ids(rows):
    return [r.id for r in rows]


# --- the write path -------------------------------------------------------------------------
def test_append_assigns_gapless_seqs_and_keeps_the_bytes_as_hashed(store):
    evs = add(store, ("w-1", "worker.spawned", {"task": "é \u2028 \x00"}), ("b", "msg.note", {"text": "x"}))
    evs += add(store, ("w-1", "worker.started", {}))
    assert [e.seq for e in evs] == [1, 2, 3]
    rows = store.reader.events(EventQuery())
    assert [r.seq for r in rows] == [1, 2, 3] and store.reader.max_seq() == 3
    for e, r in zip(evs, rows, strict=True):
        assert r.id == e.id == event_id(r.body) and r.body == e.body == canonical(e.env)
        assert (r.ts, r.from_, r.to, r.type) == (e.env.ts, e.env.from_, e.env.to, e.env.type)
    assert [r.worker for r in rows] == ["w-1", None, "w-1"]
    assert all(r.origin == "local" and r.stored is not None for r in rows)


def test_a_failing_transaction_appends_nothing_and_runs_no_hook(open_store):
    seen = []
    store = open_store(after_commit=[lambda s, evs: seen.append([e.id for e in evs])])
    add(store, ("w-1", "worker.spawned", {}))

    def fail(tx):
        tx.append(Envelope(tx.next_ts(), "a", "w-2", "worker.spawned", {}))
        tx.set_meta({"k": "v"})
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.transact(fail)
    assert store.reader.max_seq() == 1 and store.reader.meta(["k"]) == {}
    assert len(seen) == 1  # the first commit's hook only
    assert store.transact(lambda tx: "result") == "result"  # nothing appended: no hook
    store.transact(lambda tx: tx.append(Envelope(tx.next_ts(), "a", "b", "msg.x", {})), hooks=False)
    assert len(seen) == 1


def test_hooks_see_the_events_after_commit(open_store):
    seen = []

    def hook(s, evs):  # a reader of the store sees them committed
        seen.append((s.reader.max_seq(), [e.seq for e in evs]))

    store = open_store(after_commit=[hook])
    add(store, ("w-1", "worker.spawned", {}), ("w-2", "worker.spawned", {}))
    assert seen == [(2, [1, 2])]


def test_projectors_run_inside_the_transaction_for_each_event(open_store):
    def project(tx, ev):
        tx.set_meta({f"seen-{ev.seq}": ev.env.type})

    store = open_store(projectors=[project])
    add(store, ("w-1", "worker.spawned", {}), ("b", "msg.note", {}))
    assert store.reader.meta(["seen-1", "seen-2"]) == {"seen-1": "worker.spawned", "seen-2": "msg.note"}


def test_an_imported_event_already_stored_is_not_added_again(store):
    [e] = add(store, ("b", "msg.note", {"n": 1}))
    got = store.transact(lambda tx: tx.append(body=e.body, origin="import"))
    assert got is None and store.reader.max_seq() == 1
    other = canonical(Envelope("2020-01-01T00:00:00.000000Z", "x", "b", "msg.note", {}))
    got = store.transact(lambda tx: tx.append(body=other, origin="import"))
    assert got.seq == 2 and got.origin == "import" and store.reader.event_at(2).origin == "import"


def test_a_local_event_breaking_a_shape_rule_is_a_usage_error(store):
    with pytest.raises(UsageError):
        add(store, ("bad name", "msg.note", {}))
    assert store.reader.max_seq() == 0


def test_new_ts_follows_stored_events_within_the_skew_but_not_beyond(store):
    """The amended ts rule: max(now, g + 1 µs), g the greatest stored ts no more than
    max_clock_skew (default 300 s) ahead of now."""
    add(store, ("w-1", "worker.spawned", {}))
    near = us_to_ts(now_us() + 120_000_000)  # 2 min ahead: within the skew
    far = "2099-01-01T00:00:00.000000Z"  # beyond it: stored, never sets the clock

    def both(tx):
        for ts in (near, far):
            tx.append(body=canonical(Envelope(ts, "other", "w-9", "msg.note", {})), origin="import")

    store.transact(both)
    [e] = add(store, ("w-2", "worker.spawned", {}))
    assert e.env.ts == us_to_ts(ts_to_us(near) + 1)


def test_export_pending_is_decided_inside_the_transaction(open_store):
    """After a commit that appended, the store says whether anything waits for the audit
    file (asked inside the write transaction: the hook needs no read of its own)."""
    seen = []
    store = open_store(after_commit=[lambda s, evs: seen.append(s.export_pending)])
    add(store, ("w-1", "worker.spawned", {}))  # dirty: for the file
    store.transact(lambda tx: tx.set_audit([1], AUDIT_WRITTEN))
    add(store, ("w-1", "worker.heartbeat", {}))  # not for the file, nothing left dirty
    store.transact(
        lambda tx: tx.append(Envelope(tx.next_ts(), "a", "b", "msg.x", {}), audit=AUDIT_DIRTY), hooks=False
    )
    add(store, ("w-1", "worker.heartbeat", {}))  # not for the file, but msg.x is still dirty
    assert seen == [True, False, True]


def test_audit_marks_are_decided_at_append(store):
    add(store, ("w-1", "worker.spawned", {}), ("w-1", "worker.started", {}))
    add(store, ("w-1", "worker.heartbeat", {}))  # audit_heartbeats is off by default
    store.transact(lambda tx: tx.append(Envelope(tx.next_ts(), "a", "b", "msg.x", {}), audit=AUDIT_WRITTEN))
    r = store.reader
    assert [x.audit for x in r.events(EventQuery())] == [AUDIT_DIRTY, AUDIT_DIRTY, AUDIT_NONE, AUDIT_WRITTEN]
    assert [x.seq for x in r.audit_rows(dirty_only=True)] == [1, 2]
    assert [x.seq for x in r.audit_rows()] == [1, 2, 4]
    assert [m[0] for m in r.audit_marks(after_seq=1)] == [2, 4] and r.any_dirty()
    store.transact(lambda tx: tx.set_audit([1, 2], AUDIT_WRITTEN))
    assert not store.reader.any_dirty() and store.reader.audit_rows(dirty_only=True) == []
    assert [x.seq for x in store.reader.audit_rows(after_seq=1, upto_seq=2, limit=5)] == [2]


# --- reading events -------------------------------------------------------------------------
@pytest.fixture
def history(store):
    """A small log: three workers' lifecycles with heartbeats, messages among agents."""

    def fn(tx):
        for w, a in (("w-1", "ag1"), ("w-2", "ag2"), ("x-3", "ag1")):
            tx.append(Envelope(tx.next_ts(), "lead", w, "worker.spawned", {"task": w}))
            tx.append(Envelope(tx.next_ts(), a, w, "worker.started", {}))
            for i in range(3):
                tx.append(Envelope(tx.next_ts(), a, w, "worker.heartbeat", {"i": i}))
            tx.append(Envelope(tx.next_ts(), a, "lead", "msg.review_request", {"w": w}))
            tx.append(Envelope(tx.next_ts(), "lead", "*", "msg.note", {"about": w}))
        tx.append(Envelope(tx.next_ts(), "ag1", "lead", "msg.big", {"$blob": "b3:" + "0" * 64, "size": 9}))
        tx.append(Envelope(tx.next_ts(), "ag2", "w-1", "worker.done", {"summary": "s"}))

    store.transact(fn)
    return store


TYPES = ["worker.*", "msg.*", "worker.heartbeat", "msg.note", "*.started", "worker.[a-h]*", "msg.?ig", "nope"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    worker=st.sampled_from([None, "w-1", "x-3"]),
    types=st.lists(st.sampled_from(TYPES), max_size=2),
    frm=st.sampled_from([None, "lead", "ag1"]),
    to=st.sampled_from([None, "lead", "*", "w-2"]),
    after=st.integers(0, 20),
    upto=st.one_of(st.none(), st.integers(0, 24)),
    lifecycle=st.booleans(),
    beats=st.booleans(),
    refs=st.booleans(),
    by=st.sampled_from(["seq", "ts"]),
    last=st.booleans(),
    limit=st.one_of(st.none(), st.integers(1, 8)),
)
def test_event_queries_select_what_their_fields_say(
    history, worker, types, frm, to, after, upto, lifecycle, beats, refs, by, last, limit
):
    """Every field of an EventQuery narrows as documented: the store's answer equals the
    same selection made in Python over all events (TypeFilter.matches for the types)."""
    tf = type_filter(types)
    q = EventQuery(
        worker=worker,
        types=tf,
        from_=frm,
        to=to,
        after_seq=after,
        upto_seq=upto,
        lifecycle=lifecycle,
        heartbeats=beats,
        blob_refs=refs,
        by=by,
        last=last,
        limit=limit,
    )
    everything = history.reader.events(EventQuery())
    want = [
        r
        for r in everything
        if (worker is None or r.worker == worker)
        and (tf is None or tf.matches(r.type))
        and (frm is None or r.from_ == frm)
        and (to is None or r.to == to)
        and r.seq > after
        and (upto is None or r.seq <= upto)
        and (not lifecycle or r.worker is not None)
        and (beats or r.type != "worker.heartbeat")
        and (not refs or b'"$blob"' in r.body)
    ]
    matching = len(want)
    want.sort(key=(lambda r: r.seq) if by == "seq" else (lambda r: (r.ts, r.id)))
    if limit is not None:
        want = want[-limit:] if last else want[:limit]
    assert ids(history.reader.events(q)) == ids(want)
    assert history.reader.count(q) == matching  # limit and order do not count


def test_keys_times_and_positions(history):
    r = history.reader
    rows = r.events(EventQuery(by="ts"))
    k = (rows[4].ts, rows[4].id)
    assert ids(r.events(EventQuery(after_key=k, by="ts"))) == ids(rows[5:])
    assert ids(r.events(EventQuery(upto_key=k, by="ts"))) == ids(rows[:5])
    assert ids(r.events(EventQuery(since_ts=rows[4].ts, by="ts"))) == ids(rows[4:])
    assert ids(r.events(EventQuery(later_than_ts=rows[4].ts, by="ts"))) == ids(rows[5:])
    assert r.nth_event(5).id == rows[4].id and r.nth_event(len(rows) + 1) is None
    assert r.nth_event(2, upto_seq=1) is None
    assert r.event_at(3).id == rows[2].id and r.event_at(999) is None
    assert r.known_ids([rows[0].id, "b3:" + "f" * 64]) == {rows[0].id}
    assert r.count(EventQuery(worker="w-1")) == 6


def test_events_found_by_id_prefix(history):
    r = history.reader
    full = r.events(EventQuery())
    one = full[7]
    assert ids(r.find_events(one.id)) == [one.id]
    assert ids(r.find_events(one.id[:6], limit=100)) == sorted(
        x.id for x in full if x.id.startswith(one.id[:6])
    )
    assert len(r.find_events("b3:", limit=3)) == 3
    assert r.find_events(one.id, upto_seq=one.seq - 1) == []


# --- views ----------------------------------------------------------------------------------
def view(worker, state, created, holder=None, assignee=None, branch=None, base=None, worktree=None):
    return ViewRow(worker, state, holder, assignee, created, created, branch, base, worktree, worker.encode())


def test_views_are_stored_bytes_with_the_columns_queries_use(store):
    rows = [
        view("w-2", "ASSIGNED", "2026-01-02", assignee="bob"),
        view("w-1", "ASSIGNED", "2026-01-01"),
        view("w-3", "WORKING", "2026-01-03", holder="ann", branch="coord/w-3", base="main", worktree="/t/3"),
        view("w-10", "COMPLETED", "2026-01-04", branch="coord/w-10", base="coord/w-3"),
    ]

    def put(tx):
        for v in rows:
            tx.put_view(v)
        tx.set_position("workers", 7)

    store.transact(put)
    r = store.reader
    assert r.view("w-3") == b"w-3" and r.view("nope") is None
    assert [v.worker for v in r.views()] == ["w-1", "w-2", "w-3", "w-10"]  # by created
    assert [v.worker for v in r.views(states=["ASSIGNED"])] == ["w-1", "w-2"]
    assert [v.worker for v in r.views(states={"ASSIGNED", "WORKING"}, limit=2)] == ["w-1", "w-2"]
    assert [v.worker for v in r.views(holder="ann")] == ["w-3"]
    assert [v.worker for v in r.views(naming="coord/w-3")] == ["w-3", "w-10"]  # branch or base
    assert [v.worker for v in r.views(states=["ASSIGNED"], assignable_by="ann")] == ["w-1"]
    assert [v.worker for v in r.views(states=["ASSIGNED"], assignable_by="bob")] == ["w-1", "w-2"]
    assert r.views(holder="ann")[0] == rows[2] and r.position("workers") == 7 and r.position("x") == 0
    assert r.worker_ids("w-1") == ["w-1", "w-10"] and r.worker_ids("w", limit=2) == ["w-1", "w-10"]
    store.transact(lambda tx: tx.put_view_blob("w-3", b"beat"))
    assert store.reader.view("w-3") == b"beat" and store.reader.views(holder="ann")[0].branch == "coord/w-3"
    store.transact(lambda tx: tx.delete_view("w-2"))
    assert [v.worker for v in store.reader.views()] == ["w-1", "w-3", "w-10"]
    store.transact(lambda tx: tx.replace_views([view("z", "FAILED", "2026-02-01")]))
    assert [v.worker for v in store.reader.views()] == ["z"]


def test_a_write_sees_its_own_writes(store):
    def fn(tx):
        tx.put_view(view("w-1", "ASSIGNED", "2026"))
        e = tx.append(Envelope(tx.next_ts(), "a", "w-1", "worker.spawned", {}))
        return tx.view("w-1"), tx.max_seq(), tx.event_at(e.seq).id == e.id

    assert store.transact(fn) == (b"w-1", 1, True)


# --- request ids and bookkeeping -------------------------------------------------------------
def test_request_ids_and_meta(store):
    store.transact(lambda tx: tx.remember_request("ann", "start\x1fk", b'{"$result": 1}'))
    assert store.reader.request("ann", "start\x1fk") == b'{"$result": 1}'
    assert store.reader.request("bob", "start\x1fk") is None
    with pytest.raises(CoordError):  # a key is recorded once
        store.transact(lambda tx: tx.remember_request("ann", "start\x1fk", b"2"))
    store.transact(lambda tx: tx.replace_request("ann", "start\x1fk", b"3"))
    assert store.reader.request("ann", "start\x1fk") == b"3"
    store.transact(lambda tx: tx.set_meta({"a": "1", "b": 2}))
    assert store.reader.meta(["a", "b", "c"]) == {"a": "1", "b": "2"}
    store.transact(lambda tx: tx.delete_meta("a"))
    assert store.reader.meta(["a", "b"]) == {"b": "2"}
    assert store.clone_id()  # every store has an identity among clones


# --- inboxes ----------------------------------------------------------------------------------
def test_pending_messages_and_acknowledgements(store):
    add(
        store,
        ("ann", "msg.note", {"n": 1}, "bob"),  # 1
        ("*", "msg.note", {"n": 2}, "ann"),  # 2: ann's own broadcast
        ("*", "msg.review", {"n": 3}, "bob"),  # 3
        ("w-1", "msg.note", {"n": 4}, "bob"),  # 4: to a worker
        ("ann", "worker.spawned", {}, "bob"),  # not a message (to ann? a worker named ann)
        ("ann", "msg.review", {"n": 6}, "bob"),  # 6
    )
    r = store.reader
    after = ["ann", "*", "w-1"]
    eid = {m.seq: m.id for m in r.events(EventQuery())}
    assert [m.seq for m in r.pending_messages("ann", after, None, None)] == [1, 3, 4, 6]
    assert [m.seq for m in r.pending_messages("ann", after, type_filter(["msg.review"]), None)] == [3, 6]
    assert [m.seq for m in r.pending_messages("ann", after, None, 2)] == [1, 3]
    assert [m.seq for m in r.pending_messages("ann", ["ann"], None, None)] == [1, 6]
    assert r.pending_messages("ann", [], None, None) == []

    def pending(agent="ann"):
        return [m.seq for m in store.reader.pending_messages(agent, after, None, None)]

    # acknowledged by id, out of order (poll --type); an id not stored yet is kept for later
    late = "b3:" + "e" * 64
    store.transact(lambda tx: tx.record_acks("ann", [eid[3], eid[6], late]))
    assert pending() == [1, 4] and pending("bob") == [1, 2, 4, 6]  # per agent (3 is bob's own)
    assert r.acked("ann", [eid[1], eid[3], late]) == {eid[3], late} and r.acked("bob", [eid[3]]) == set()
    store.transact(lambda tx: tx.record_acks("ann", [eid[1], eid[1]]))  # twice: no change
    assert pending() == [4]
    store.transact(lambda tx: tx.record_acks("ann", [eid[4]]))
    assert pending() == []
    add(store, ("ann", "msg.note", {"n": 7}, "bob"))  # a new message above every watermark
    assert pending() == [7]
    store.transact(lambda tx: tx.reset_acks())  # rebuild starts from nothing
    assert pending() == [1, 3, 4, 6, 7] and r.acked("ann", [late]) == set()


def test_notices_pending_acknowledged_and_dropped(store):
    from coord.events.records import Notice

    add(
        store,
        ("w-1", "worker.spawned", {}, "lead"),  # 1
        ("w-1", "worker.started", {}, "ann"),  # 2
        ("w-1", "worker.released", {"force": True}, "lead"),  # 3
        ("w-2", "worker.spawned", {}, "lead"),  # 4
        ("w-2", "worker.canceled", {}, "lead"),  # 5
    )
    store.transact(
        lambda tx: tx.put_notices(
            [Notice(5, "ann", "w-2", 1, "canceled"), Notice(3, "ann", "w-1", 1, "requeued")]
        )
    )
    r = store.reader
    got = r.pending_notices("ann", None, None)
    assert [(row.seq, row.type, n.reason, n.attempt) for row, n in got] == [
        (3, "worker.released", "requeued", 1),
        (5, "worker.canceled", "canceled", 1),
    ]
    assert [row.seq for row, _ in r.pending_notices("ann", type_filter(["worker.can*"]), None)] == [5]
    assert [row.seq for row, _ in r.pending_notices("ann", None, 1)] == [3]
    assert r.pending_notices("bob", None, None) == []
    assert [n.seq for n in r.notices_of("w-1")] == [3]
    store.transact(lambda tx: tx.ack_notices("ann", seqs=[5]))
    assert [row.seq for row, _ in store.reader.pending_notices("ann", None, None)] == [3]
    # Adding a notice again keeps its acknowledgement; `through` covers what is below.
    store.transact(lambda tx: tx.put_notices([Notice(5, "ann", "w-2", 1, "canceled")]))
    assert [row.seq for row, _ in store.reader.pending_notices("ann", None, None)] == [3]
    store.transact(lambda tx: tx.ack_notices("ann", through=3))
    assert store.reader.pending_notices("ann", None, None) == []
    store.transact(lambda tx: tx.drop_notices([("ann", 3)]))
    assert store.reader.notices_of("w-1") == [] and [n.seq for n in store.reader.notices_of("w-2")] == [5]


# --- search -----------------------------------------------------------------------------------
def test_search_index_queries_and_rebuild(store):
    [a, b] = add(store, ("lead", "msg.note", {}), ("lead", "msg.review", {}))

    def index(tx):
        tx.index_text(a.seq, "msg.note", "the flaky parser test")
        tx.index_text(b.seq, "msg.review", "parser rewrite looks good")

    store.transact(index)
    r = store.reader
    assert {h.seq for h in r.search("parser", None, None, None, 10)} == {a.seq, b.seq}
    assert [h.seq for h in r.search("flaky", None, None, None, 10)] == [a.seq]
    assert [h.seq for h in r.search("parser", TypeFilter(("msg.rev*",)), None, None, 10)] == [b.seq]
    assert r.search("parser", None, "nobody", None, 10) == []
    assert r.search_text(a.seq) == ("msg.note", "the flaky parser test") and r.search_count() == 2
    with pytest.raises(UsageError):
        r.search('"unterminated', None, None, None, 10)

    def rebuild(tx):
        tx.search_shadow_reset()
        tx.search_shadow_add([(b.seq, "msg.review", "only this one")])
        tx.search_shadow_swap()

    store.transact(rebuild)
    assert store.reader.search_count() == 1 and store.reader.search("parser", None, None, None, 10) == []


# --- waiting, locking, whole-store operations -------------------------------------------------
def test_waiting_for_new_events_wakes_on_another_connections_commit(open_store):
    waiter, writer = open_store(), open_store()
    add(writer, ("b", "msg.x", {}))
    assert waiter.wait_for_new(0, 0.0)  # already there
    t0 = time.monotonic()
    assert not waiter.wait_for_new(1, 0.2) and time.monotonic() - t0 >= 0.19
    woke = []
    th = threading.Thread(target=lambda: woke.append(waiter.wait_for_new(1, 30)))
    th.start()
    add(writer, ("b", "msg.y", {}))
    th.join(60)
    assert woke == [True]


def test_one_rebuild_at_a_time(open_store):
    a, b = open_store(), open_store()
    with a.rebuild_lock():
        with pytest.raises(Busy):
            with b.rebuild_lock(timeout=0.05):
                pass
    with b.rebuild_lock(timeout=1):
        pass


def test_a_read_snapshot_is_consistent_while_others_write(open_store):
    reader, writer = open_store(), open_store()
    add(writer, ("b", "msg.x", {}))
    with reader.read() as r:
        first = r.max_seq()
        add(writer, ("b", "msg.y", {}))
        assert r.max_seq() == first == len(r.events(EventQuery()))
    assert reader.reader.max_seq() == first + 1


def test_backup_and_integrity_check(store, tmp_path):
    add(store, ("w-1", "worker.spawned", {}), ("b", "msg.x", {}))
    assert store.integrity_check() == ["ok"]
    assert store.backup(str(tmp_path / "copy")) == 2 and (tmp_path / "copy").stat().st_size > 0


def test_rows_decode_to_their_envelopes(store):
    [e] = add(store, ("w-1", "worker.spawned", {"task": "t"}))
    row = store.reader.event_at(e.seq)
    assert row.env == e.env and msgspec.json.decode(row.body)["payload"] == {"task": "t"}
