"""The state machine as a pure fold (coord.projections.workers), liveness and type filters,
with no database: random sequences of events, legal and illegal, from several actors."""

from hypothesis import given, settings
from hypothesis import strategies as st

from coord.events.envelope import Envelope, us_to_ts
from coord.events.records import TypeFilter
from coord.projections import liveness
from coord.projections.graph import MemGraph
from coord.projections.workers import (
    ACTIONS,
    ACTIVE,
    GRAPH_EVENTS,
    HOLDER_ONLY,
    NOT_HOLDER,
    STATES,
    TERMINAL,
    TRANSITIONS,
    check,
    fold,
    fold_all,
    is_repeat,
    legal_actions,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z in µs
ACTORS = ["ann", "bob", "cy"]
# The usual next step from each state (the generator's bias, so long lives happen).
FORWARD = {
    None: "worker.spawned",
    "ASSIGNED": "worker.started",
    "WORKING": "worker.heartbeat",
    "CONFLICTED": "worker.done",
    "IN_REVIEW": "worker.approved",
    "APPROVED": "worker.merged",
    "FAILED": "worker.retried",
}
WORKERS = ["w-1", "w-2"]


@st.composite
def events(draw, n_max=40):
    """(Envelope, id) pairs in (ts, id) order: lifecycle events of two workers by three
    actors, some forced, with messages in between. Most steps are drawn from what the
    worker's state allows, by an actor likely to be allowed (so reviews and merges happen);
    the rest anything at all (illegal events, as another clone could bring)."""
    n = draw(st.integers(1, n_max))
    out, views = [], {}
    for i in range(n):
        w = draw(st.sampled_from(WORKERS))
        v = views.get(w)
        actor = draw(st.sampled_from(ACTORS))
        legal = legal_actions(v.state if v else None)
        roll = draw(st.integers(0, 9))
        if roll < 6 and (v is None or v.state in FORWARD):
            kind = FORWARD[v.state if v else None]  # the work moving on
        elif roll < 8 and legal:
            kind = ACTIONS[draw(st.sampled_from(legal))]
        else:
            kind = draw(st.sampled_from([*TRANSITIONS, "msg.note"]))
        if v is not None and kind in HOLDER_ONLY and v.holder and roll < 8:
            actor = v.holder
        if v is not None and kind in NOT_HOLDER and roll < 8:
            actor = draw(st.sampled_from([a for a in ACTORS if a not in (v.holder, v.last_from)] or ACTORS))
        if v is not None and kind == "worker.started" and v.assignee and roll < 8:
            actor = v.assignee
        payload = {}
        if kind == "worker.spawned" and draw(st.integers(0, 3)) == 0:
            payload["assignee"] = draw(st.sampled_from(ACTORS))
        if kind in HOLDER_ONLY and draw(st.integers(0, 4)) == 0:
            payload["force"] = True
        if kind == "worker.heartbeat" and draw(st.integers(0, 2)) == 0:
            kind = "worker.done"  # WORKING moves on after a few beats
        if kind in ("worker.dep_added", "worker.dep_removed"):
            payload["after"] = draw(st.sampled_from(WORKERS))
        if kind == "worker.prioritized":
            payload["priority"] = draw(st.integers(0, 4))
        env = Envelope(us_to_ts(T0 + i * 1000), actor, w, kind, payload)
        eid = f"b3:{i:064x}"
        new = fold(v, env, eid)
        if new is not None:
            views[w] = new
        out.append((env, eid))
    return out


@settings(max_examples=150, deadline=None)
@given(events())
def test_each_event_is_applied_exactly_when_check_allows_it(evs):
    views: dict = {}
    graph = MemGraph(views)
    for env, eid in evs:
        if not env.type.startswith("worker."):
            assert fold(views.get(env.to), env, eid) is views.get(env.to)  # not the fold's business
            continue
        before = views.get(env.to)
        bad = check(before, env)
        after = fold(before, env, eid, graph=graph)
        if before is None and env.type != "worker.spawned":
            assert bad is not None and after is None
            continue
        if bad is None:
            target = TRANSITIONS[env.type][1]
            if env.type in GRAPH_EVENTS:  # no transition: the graph fields only
                assert after.state == before.state and after.transitions == before.transitions
                assert after.last_event == before.last_event and after.last_args == before.last_args
                a = env.payload.get("after")
                if env.type == "worker.dep_added" and a not in before.after and graph.cycle(env.to, a):
                    assert after.after == before.after and after.conflicts[-1]["event"] == eid
                    assert "would close a cycle" in after.conflicts[-1]["reason"]
                elif env.type == "worker.dep_added":
                    assert a in after.after and after.after.count(a) == 1
                elif env.type == "worker.dep_removed":
                    assert a not in after.after
                else:
                    assert after.priority == env.payload["priority"]
            elif target is None:  # a heartbeat
                assert after.state == before.state and after.heartbeats == before.heartbeats + 1
                assert after.transitions == before.transitions
            else:
                assert after.state == target and after.last_event == eid and after.state_since == env.ts
                assert after.transitions == (before.transitions if before else 0) + 1
                assert after.last_type == env.type and after.last_from == env.from_
        else:
            assert after.state == before.state and after.transitions == before.transitions
            if env.type == "worker.heartbeat":  # skipped, not a conflict (heartbeats may not travel)
                assert after.conflicts == before.conflicts
            else:
                assert (
                    after.conflicts[-1]["event"] == eid and len(after.conflicts) == len(before.conflicts) + 1
                )
        assert after.state in STATES and (after.pos_ts, after.pos_id) == (env.ts, eid)
        if before is not None and before.state in TERMINAL:
            assert after.state == before.state  # nothing leaves COMPLETED or CANCELED
        views[env.to] = after
    # the whole history at once folds to the same views
    assert fold_all(evs) == views


@settings(max_examples=100, deadline=None)
@given(events())
def test_who_may_act(evs):
    """Holder-only actions by another actor need force; nobody reviews work they hold or
    handed in; an assigned worker is started only by its assignee."""
    views: dict = {}
    for env, eid in evs:
        v = views.get(env.to)
        bad = check(v, env) if env.type.startswith("worker.") else None
        if v is not None and bad is None and env.type.startswith("worker."):
            if env.type in HOLDER_ONLY and v.holder and env.from_ != v.holder:
                assert env.payload.get("force")
            if env.type in NOT_HOLDER:
                assert env.from_ != v.holder
                assert not (v.last_type == "worker.done" and v.last_from == env.from_)
            if env.type == "worker.started" and v.assignee:
                assert env.from_ == v.assignee
        new = fold(v, env, eid)
        if new is not None:
            views[env.to] = new
        if new is not None and env.type == "worker.started" and bad is None:
            assert new.holder == env.from_
        if new is not None and env.type in ("worker.released", "worker.retried") and bad is None:
            assert new.holder is None


@settings(max_examples=100, deadline=None)
@given(events())
def test_an_idempotent_repeat_changes_nothing_and_is_recognised(evs):
    views = fold_all(evs)
    for v in views.values():
        if not v.last_type or v.last_type == "worker.spawned":
            continue
        import msgspec

        again = Envelope(
            us_to_ts(T0 + 10**9), v.last_from, v.worker, v.last_type, msgspec.json.decode(v.last_args)
        )
        assert is_repeat(v, again)
        assert v.state == TRANSITIONS[v.last_type][1]


def test_legal_actions_are_the_transition_table_read_backwards():
    for state in (None, *STATES):
        legal = legal_actions(state)
        assert legal == [a for a, t in ACTIONS.items() if state in TRANSITIONS[t][0]]
    assert legal_actions("COMPLETED") == [] and legal_actions("CANCELED") == []
    assert "retry" in legal_actions("FAILED") and "fail" not in legal_actions("FAILED")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(ACTIVE)),
    st.floats(0.05, 3600),
    st.lists(st.integers(0, 10**12), min_size=2, max_size=6),
)
def test_liveness_only_worsens_as_silence_grows(state, interval, ages):
    from coord.projections.workers import Worker

    since = us_to_ts(T0)
    v = Worker(worker="w", state=state, created=since, updated=since, state_since=since, hb_interval=interval)
    levels = [liveness.level(v, T0 + a, 10.0) for a in sorted(ages)]
    order = [liveness.ORDER[x] for x in levels]
    assert order == sorted(order)
    for a, lv in zip(sorted(ages), levels, strict=True):
        want = "DEAD" if a >= 30 * interval * 1e6 else "STALE" if a >= 10 * interval * 1e6 else None
        if want:
            assert lv == want
    assert liveness.level(v, T0, 10.0, local_clone="here") == "OK"  # no clone recorded: local
    remote = Worker(
        worker="w", state=state, created=since, updated=since, state_since=since, holder_clone="elsewhere"
    )
    assert liveness.level(remote, T0 + 10**12, 10.0, local_clone="here") == "REMOTE"
    idle = Worker(worker="w", state="ASSIGNED", created=since, updated=since, state_since=since)
    assert liveness.level(idle, T0 + 10**12, 10.0) is None


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abcxyz._-", min_size=1, max_size=12), st.text(alphabet="abcxyz._-", max_size=12))
def test_a_type_filter_without_glob_characters_is_equality(pattern, etype):
    f = TypeFilter((pattern,))
    assert f.matches(etype) == (pattern == etype)
    assert TypeFilter(("*",)).matches(etype) and f.matches(pattern)
    assert TypeFilter((pattern + "*",)).matches(pattern + etype)
    assert not TypeFilter(()).matches(etype)
