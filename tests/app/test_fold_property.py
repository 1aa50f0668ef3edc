"""Incremental folding (the projector in each append transaction) equals a fold from
zero and equals `rebuild`, on random sequences of legal and illegal actions; so do the
notices it derives."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.app import admin, lifecycle
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.errors import CoordError
from coord.projections import board

ACTORS = ["a1", "a2", "rev"]
WORKERS = ["w1", "w2", "w3"]
ACTIONS = [
    "spawn",
    "start",
    "heartbeat",
    "done",
    "approve",
    "request-changes",
    "merge",
    "release",
    "cancel",
    "fail",
    "retry",
]

step = st.tuples(st.sampled_from(ACTIONS), st.sampled_from(WORKERS), st.sampled_from(ACTORS), st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(step, min_size=1, max_size=40))
def test_incremental_equals_fresh_fold_and_rebuild(tmp_path_factory, steps):
    home, _ = init(tmp_path_factory.mktemp("h") / ".coord")
    with Coord(home) as c:
        accepted = 0
        for action, w, actor, force in steps:
            payload = {"force": True} if force and action in ("heartbeat", "done", "release", "fail") else {}
            if action == "request-changes":
                payload["reason"] = "r"
            try:
                r = lifecycle.act(c, action, w, payload, actor=actor)
                accepted += r.event is not None
            except CoordError as e:
                assert e.exit_code in (3, 4)
        n = c.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert n == accepted
        incremental = board.stored_views(c.store.reader)
        found = []
        assert incremental == board.fold_from_zero(c.store, found=found)[0]
        # The notices kept in each append equal those a fold from zero derives.
        kept = [n for w in WORKERS for n in c.store.reader.notices_of(w)]
        assert sorted(kept, key=lambda n: n.seq) == sorted(found, key=lambda n: n.seq)
        assert all(not v.conflicts for v in incremental.values())  # commands never append illegal events
        admin.rebuild(
            c,
        )
        assert board.stored_views(c.store.reader) == incremental
        last = c.store.conn.execute("SELECT last_seq FROM projection_state WHERE name='workers'").fetchone()
        assert (last[0] if last else 0) == n
