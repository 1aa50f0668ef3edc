"""Attempts in the pure fold: numbered by applied starts, identified by the start's id,
stale stamps refused (and, folded, kept as conflicts or skipped), a new attempt starts
with no heartbeat of its own."""

from coord.events.envelope import Envelope, canonical, event_id, us_to_ts
from coord.projections import liveness
from coord.projections.workers import check, current_attempt, fold, fold_all

T0 = 1_767_225_600_000_000


class Log:
    def __init__(self):
        self.items, self.t = [], T0

    def add(self, frm, etype, payload=None, dt=1_000_000):
        self.t += dt
        env = Envelope(us_to_ts(self.t), frm, "w", etype, payload or {})
        eid = event_id(canonical(env))
        self.items.append((env, eid))
        return eid

    def fold(self):
        return fold_all(self.items)["w"]


def test_attempts_are_numbered_by_starts_and_identified_by_their_ids():
    log = Log()
    log.add("lead", "worker.spawned")
    assert log.fold().attempt == 0 and log.fold().spawner == "lead"
    s1 = log.add("a", "worker.started")
    v = log.fold()
    assert (v.attempt, v.attempt_of, current_attempt(v)) == (1, s1, s1)
    log.add("lead", "worker.released", {"reap": True})
    v = log.fold()
    assert current_attempt(v) is None and v.attempt == 1  # ended, still named
    s2 = log.add("a", "worker.started")
    assert (log.fold().attempt, log.fold().attempt_of) == (2, s2)


def test_a_stale_stamp_is_refused_whatever_the_name_and_folded_as_a_conflict():
    log = Log()
    log.add("lead", "worker.spawned")
    s1 = log.add("a", "worker.started")
    log.add("a", "worker.heartbeat", {"attempt": 1, "attempt_of": s1})
    log.add("wd", "worker.released", {"reap": True, "attempt": 1, "attempt_of": s1})
    s2 = log.add("a", "worker.started")  # the same name starts attempt 2
    v = log.fold()
    zombie = Envelope(us_to_ts(log.t + 1), "a", "w", "worker.done", {"attempt": 1, "attempt_of": s1})
    kind, why = check(v, zombie)
    assert kind == "attempt" and "attempt 1" in why and "attempt 2" in why
    fresh = Envelope(us_to_ts(log.t + 1), "a", "w", "worker.done", {"attempt": 2, "attempt_of": s2})
    assert check(v, fresh) is None
    unstamped = Envelope(us_to_ts(log.t + 1), "a", "w", "worker.done", {})
    assert check(v, unstamped) is None  # name-based rules, as before
    # Folded (an import): the stale done is a conflict; a stale heartbeat is skipped.
    log.add("a", "worker.heartbeat", {"attempt": 1, "attempt_of": s1})
    log.add("a", "worker.done", {"attempt": 1, "attempt_of": s1})
    v = log.fold()
    assert v.state == "WORKING" and v.heartbeats == 0
    assert [c["type"] for c in v.conflicts] == ["worker.done"]


def test_a_new_attempt_has_no_heartbeat_of_its_own():
    log = Log()
    log.add("lead", "worker.spawned")
    log.add("a", "worker.started")
    log.add("a", "worker.heartbeat", {"interval": 0.05})
    log.add("lead", "worker.released", {"force": True})
    log.add("b", "worker.started")
    v = log.fold()
    assert v.last_heartbeat is None and v.heartbeats == 0 and v.hb_interval is None
    # liveness counts from the start, not from the previous holder's beat
    assert liveness.since_us(v) == log.t


def test_stamped_beats_mark_the_attempt_supervised():
    log = Log()
    log.add("lead", "worker.spawned")
    s1 = log.add("a", "worker.started")
    log.add("a", "worker.heartbeat")
    assert log.fold().supervised is None
    log.add("a", "worker.heartbeat", {"attempt": 1, "attempt_of": s1})
    assert log.fold().supervised == log.fold().last_heartbeat


def test_incremental_fold_equals_fold_all():
    log = Log()
    log.add("lead", "worker.spawned")
    s1 = log.add("a", "worker.started")
    log.add("a", "worker.heartbeat", {"attempt": 1, "attempt_of": s1})
    log.add("a", "worker.released", {"attempt": 1, "attempt_of": s1})
    log.add("b", "worker.started")
    v = None
    for env, eid in log.items:
        v = fold(v, env, eid)
    assert v == log.fold()
