"""The work graph folds the same however it is reached: incrementally (the projector, with
readiness kept for dependents), from zero, by `rebuild`, and across clones that changed
the graph while apart and exchanged their events in any order and chunking (a dependency
added on one clone and a completion on another converge; an edge that closes a cycle at
its place in (ts, id) order is a conflict on every clone)."""

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.app import admin, graph, lifecycle
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.audit_read import import_bodies
from coord.events.envelope import decode
from coord.events.errors import CoordError
from coord.events.records import AUDIT_DIRTY
from coord.projections import board
from coord.projections.workers import fold_all

WORKERS = ["w1", "w2", "w3", "w4"]
ACTIONS = [
    "spawn",
    "dep-add",
    "dep-rm",
    "priority",
    "start",
    "done",
    "approve",
    "merge",
    "cancel",
    "fail",
    "retry",
]
op = st.tuples(
    st.sampled_from("AB"),
    st.sampled_from(ACTIONS),
    st.sampled_from(WORKERS),
    st.sampled_from(WORKERS),  # the other worker: a dependency, or the spawn's --after
    st.sampled_from(["x", "y"]),
    st.integers(0, 4),
)


def apply(c, action, w, other, actor, n) -> bool:
    """One action as a command would run it; False when it was refused (nothing appended)."""
    try:
        if action == "spawn":
            payload = {"after": [other], "priority": n} if n % 2 else {}
            r = lifecycle.act(c, "spawn", w, payload, actor=actor)
        elif action in ("dep-add", "dep-rm"):
            r = graph.dep(c, w, other, actor=actor, remove=action == "dep-rm")
        elif action == "priority":
            r = graph.prioritize(c, w, n, actor=actor)
        else:
            payload = {"force": True} if action == "start" and n == 0 else {}
            r = lifecycle.act(c, action, w, payload, actor="rev" if action == "approve" else actor)
        return r.event is not None
    except CoordError as e:
        assert e.exit_code in (3, 4), e
        return False


def check_store(c, expected: dict) -> None:
    r = c.store.reader
    assert board.stored_views(r) == expected
    assert board.stored_graph_columns(r) == board.fresh_graph_columns(expected)
    for w in WORKERS:  # the reverse dependency index matches the views
        assert r.dependents(w) == sorted(x for x, v in expected.items() if w in v.after)
    ready = [v.worker for v in sorted(expected.values(), key=lambda v: (v.priority, v.created, v.worker))]
    cols = board.fresh_graph_columns(expected)
    assert [row.worker for row in r.ready_views()] == [w for w in ready if cols[w][0]]


def _bodies(c):
    return [(eid, body) for eid, body in c.store.conn.execute("SELECT id, body FROM events")]


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op, min_size=1, max_size=40))
def test_incremental_equals_fresh_fold_and_rebuild_on_graphs(steps):
    with tempfile.TemporaryDirectory() as tmp:
        h, _ = init(Path(tmp) / ".coord")
        with Coord(h) as c:
            c.home.write_config({"synchronous": "NORMAL"})
            for _, action, w, other, actor, n in steps:
                apply(c, action, w, other, actor, n)
            fresh = board.fold_from_zero(c.store)[0]
            check_store(c, fresh)
            assert not any(v.conflicts for v in fresh.values())  # commands append no cycle
            admin.rebuild(c)
            check_store(c, fresh)


EXCHANGE = dict(
    shared=st.lists(op, max_size=6),
    apart=st.lists(op, max_size=16),
    seed=st.integers(0, 2**32),
    chunk=st.integers(1, 5),
)


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(**EXCHANGE)
def test_clones_that_changed_the_graph_apart_converge(shared, apart, seed, chunk):
    converge(shared, apart, seed, chunk)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(**EXCHANGE)
def test_clones_that_changed_the_graph_apart_converge_many(shared, apart, seed, chunk):
    converge(shared, apart, seed, chunk)


def converge(shared, apart, seed, chunk):
    with tempfile.TemporaryDirectory() as tmp:
        homes = {}
        for name in "ABC":
            h, _ = init(Path(tmp) / name / ".coord")
            homes[name] = Coord(h)
            homes[name].home.write_config({"synchronous": "NORMAL"})
        try:
            A, B, C = homes["A"], homes["B"], homes["C"]
            for _, *args in shared:
                apply(A, *args)
            import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
            for side, *args in apart:
                apply(A if side == "A" else B, *args)
            union = dict(_bodies(A))
            union.update(_bodies(B))
            expected = fold_all(
                (decode(union[i]), i) for i in sorted(union, key=lambda i: (decode(union[i]).ts, i))
            )
            items = list(union.items())
            random.Random(seed).shuffle(items)
            for i in range(0, len(items), chunk):
                import_bodies(C.store, items[i : i + chunk], AUDIT_DIRTY)
            import_bodies(A.store, _bodies(B), AUDIT_DIRTY)
            import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
            for c in (A, B, C):
                check_store(c, expected)
                assert board.fold_from_zero(c.store)[0] == expected
        finally:
            for c in homes.values():
                c.close()


def test_edges_added_apart_that_close_a_cycle_keep_the_earlier_on_every_clone(tmp_path):
    """B adds w2 → w1, then A adds w1 → w2 (later): together they close a cycle, so the
    later edge is the conflict, on A (which imports the earlier edge after its own) as on
    B; and a completion on one clone makes the dependent ready on both."""
    homes = []
    for name in "AB":
        h, _ = init(tmp_path / name / ".coord")
        homes.append(Coord(h))
    A, B = homes
    try:
        for w in ("w1", "w2", "w3"):
            lifecycle.act(A, "spawn", w, {}, actor="lead")
        import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
        graph.dep(B, "w2", "w1", actor="b")  # earlier
        graph.dep(A, "w1", "w2", actor="a")  # later: legal on A while apart
        graph.dep(A, "w3", "w1", actor="a")
        for step in ("start", "done", "approve", "merge"):  # w1 completes on B
            lifecycle.act(B, step, "w1", {}, actor="rev" if step == "approve" else "b")
        import_bodies(A.store, _bodies(B), AUDIT_DIRTY)
        import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
        for c in (A, B):
            views = board.stored_views(c.store.reader)
            assert views["w2"].after == ["w1"] and views["w1"].after == []
            (cf,) = views["w1"].conflicts
            assert cf["type"] == "worker.dep_added" and "w1 → w2 → w1" in cf["reason"]
            assert [r.worker for r in c.store.reader.ready_views()] == ["w2", "w3"]
            check_store(c, board.fold_from_zero(c.store)[0])
    finally:
        for c in homes:
            c.close()


def test_a_late_cancel_that_keeps_an_edge_makes_a_later_edge_a_conflict_on_every_clone(tmp_path):
    """Shared: x waits for y. Apart, B cancels x; A removes that edge and then adds y → x
    (legal there). In (ts, id) order the removal comes after the cancel, so it is not
    applied, x still waits for y, and y → x closes a cycle: a conflict on both clones,
    though on A only the cancel arrives late (it re-folds x, whose edges change)."""
    homes = []
    for name in "AB":
        h, _ = init(tmp_path / name / ".coord")
        homes.append(Coord(h))
    A, B = homes
    try:
        for w in ("x", "y"):
            lifecycle.act(A, "spawn", w, {}, actor="lead")
        graph.dep(A, "x", "y", actor="lead")
        import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
        lifecycle.act(B, "cancel", "x", {}, actor="b")
        graph.dep(A, "x", "y", actor="a", remove=True)
        graph.dep(A, "y", "x", actor="a")
        import_bodies(A.store, _bodies(B), AUDIT_DIRTY)
        import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
        for c in (A, B):
            views = board.stored_views(c.store.reader)
            assert views["x"].after == ["y"] and views["x"].state == "CANCELED"
            assert views["y"].after == [] and "would close a cycle" in views["y"].conflicts[-1]["reason"]
            check_store(c, board.fold_from_zero(c.store)[0])
    finally:
        for c in homes:
            c.close()
