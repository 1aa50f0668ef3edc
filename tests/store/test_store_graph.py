"""The store interface's work-graph operations (coord.events.store_graph), against every
implementation: the dependency index and its reverse, states by id, reachability (which
terminates on a stored cycle), the ready queue's order and filter, the readiness columns;
and, on SQLite, that the ready queue is read through its partial index."""

import sqlite3

from coord.events.records import ViewRow


def row(w, state="ASSIGNED", created="2026-01-01T00:00:00.000000Z", ready=False, priority=2, assignee=None):
    return ViewRow(w, state, None, assignee, created, created, None, None, None, b"{}", ready, priority, 0)


def test_dependency_index_states_and_reachability(open_store):
    s = open_store()

    def put(tx):
        for w, st in (("a", "COMPLETED"), ("b", "WORKING"), ("c", "ASSIGNED"), ("d", "ASSIGNED")):
            tx.put_view(row(w, st))
        tx.set_deps("c", ["a", "b"])
        tx.set_deps("d", ["c", "ghost"])  # an edge to a worker not stored (an import)

    s.transact(put)
    r = s.reader
    assert r.dependents("a") == ["c"] and r.dependents("c") == ["d"] and r.dependents("ghost") == ["d"]
    assert r.states(["a", "b", "ghost", "a"]) == {"a": "COMPLETED", "b": "WORKING"}
    assert r.reaches("d", "a") and r.reaches("d", "d") and not r.reaches("a", "d")
    s.transact(lambda tx: tx.set_deps("c", ["b"]))  # replaced, not added to
    assert r.dependents("a") == [] and r.dependents("b") == ["c"]
    s.transact(lambda tx: tx.set_deps("a", ["d"]))  # a stored cycle (imports can hold one)
    assert r.reaches("a", "b") and not r.reaches("a", "zzz")
    s.transact(lambda tx: tx.delete_view("d"))
    assert r.dependents("c") == [] and r.dependents("ghost") == []
    s.transact(lambda tx: tx.replace_views([row("a"), row("b")]))
    assert r.dependents("d") == [] and r.dependents("b") == []


def test_ready_queue_by_priority_then_age_and_its_columns(open_store):
    s = open_store()
    t = "2026-01-01T00:00:0{}.000000Z".format

    def put(tx):
        tx.put_view(row("old-low", created=t(1), ready=True, priority=4))
        tx.put_view(row("new-top", created=t(5), ready=True, priority=0))
        tx.put_view(row("mid-a", created=t(2), ready=True))
        tx.put_view(row("mid-b", created=t(2), ready=True, assignee="ann"))
        tx.put_view(row("waits", created=t(0), ready=False, priority=0))

    s.transact(put)
    r = s.reader
    assert [v.worker for v in r.ready_views()] == ["new-top", "mid-a", "mid-b", "old-low"]
    assert [v.worker for v in r.ready_views(assignable_by="bob")] == ["new-top", "mid-a", "old-low"]
    assert [v.worker for v in r.ready_views(limit=2)] == ["new-top", "mid-a"]
    s.transact(lambda tx: tx.set_graph_columns("waits", True, 0))
    s.transact(lambda tx: tx.set_graph_columns("new-top", False, 2))
    got = r.ready_views()
    assert [v.worker for v in got] == ["waits", "mid-a", "mid-b", "old-low"]
    assert got[0].ready is True and got[0].priority == 0 and got[0].waiting == 0
    (v,) = [x for x in r.views() if x.worker == "new-top"]
    assert v.ready is False and v.waiting == 2


def test_sqlite_reads_the_ready_queue_through_its_partial_index(tmp_path):
    from coord.events.home import init_home_dirs

    s = init_home_dirs(tmp_path / ".coord").open_store()
    try:
        s.transact(
            lambda tx: [tx.put_view(row(f"w{i}", ready=i % 3 == 0, priority=i % 5)) for i in range(300)]
        )
        seen = []
        s.conn.set_trace_callback(seen.append)
        s.reader.ready_views(limit=20)
        s.reader.dependents("w1")
        s.conn.set_trace_callback(None)
        con = sqlite3.connect(str(tmp_path / ".coord" / "coord.db"))
        ready_sql, deps_sql = (q for q in seen if "FROM workers WHERE ready" in q or "FROM deps WHERE" in q)
        plan = " ".join(x[-1] for x in con.execute("EXPLAIN QUERY PLAN " + ready_sql))
        assert "workers_ready" in plan and "TEMP B-TREE" not in plan, plan
        plan = " ".join(x[-1] for x in con.execute("EXPLAIN QUERY PLAN " + deps_sql))
        assert "deps_after" in plan, plan
        con.close()
    finally:
        s.close()
