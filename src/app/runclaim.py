"""`coord run`'s claim, as one write transaction: start the worker (opening a new attempt)
or, on a worker the actor already holds, adopt its current attempt, but only when no
supervisor of that attempt has beaten within 3 intervals (two `coord run`s never beat for
one attempt). The run's first heartbeat, stamped with the attempt and declaring the
interval, is appended in the same transaction, so a second `coord run` racing this one
sees it and is refused (exit 4)."""

from ..events.envelope import now_us, ts_to_us
from ..events.errors import Refused, UnknownWorker
from ..projections import board
from ..projections.liveness import interval_of
from ..projections.workers import ACTIVE, attempt_label
from .lifecycle import Result, _repeat, need_actor, remember_request, request_result, transition

ADOPT_AFTER = 3  # intervals of silence after which a supervisor is taken to be gone


def supervised_ago(view, now: int) -> float | None:
    """Seconds since the attempt's last stamped beat (a `coord run` beating for it), or
    None when it has none."""
    if not view.supervised:
        return None
    return max(0.0, (now - ts_to_us(view.supervised)) / 1e6)


def stamp(view) -> dict:
    """What the run stamps on its events (nothing for a view folded before attempts)."""
    return {"attempt": view.attempt, "attempt_of": view.attempt_of} if view.attempt_of else {}


def claim(c, wid: str, actor: str, interval: float, request_id=None) -> tuple[Result, dict | None, bool]:
    """(the claim's Result, the stamp {"attempt", "attempt_of"} the run puts on every event
    it appends, adopted?). A request id used before returns its first result and no stamp
    (the caller reads the worker to decide)."""
    actor = need_actor(c, actor)
    start_payload = {"clone": c.clone_id}
    default_interval = c.home.config["heartbeat_interval"]

    def do(tx):
        earlier = request_result(tx, actor, request_id, "run", {"worker": wid})
        if earlier is not None:
            return _repeat(earlier), None, False
        view = board.load_tx(tx, wid)
        if view is None:
            raise UnknownWorker(f"unknown worker {wid!r}")
        adopted = view.state in ACTIVE and view.holder == actor
        if adopted:
            ago = supervised_ago(view, now_us())
            i = interval_of(view, default_interval)
            if ago is not None and ago < ADOPT_AFTER * i:
                raise Refused(
                    f"cannot run {wid}: its {attempt_label(view)} is supervised by a coord run "
                    f"that beat {ago:.1f}s ago (within {ADOPT_AFTER} intervals of {i:g}s); "
                    "end that run first, or wait until it is silent"
                )
            r = Result(wid, view.state, None, "worker.started", repeat=True)
        else:
            r = transition(tx, "start", wid, actor, start_payload)
        v = board.load_tx(tx, wid)
        s = stamp(v)
        r.attempt, r.attempt_of = v.attempt, v.attempt_of
        transition(tx, "heartbeat", wid, actor, {"interval": interval, "idle_s": 0.0, **s})
        remember_request(tx, actor, request_id, r, "run", {"worker": wid})
        return r, s, adopted

    return c.store.transact(do)
