"""Reaping: fail (or requeue) every active worker whose liveness is DEAD.

All in one write transaction: the liveness of each worker is judged inside it (on the
active views read through the transaction), so a second reaper running at the same time
sees the first one's events and finds nothing left to reap (one reap event per dead
worker)."""

from ..events.envelope import now_us
from ..projections import board, liveness
from ..projections.workers import ACTIVE
from .lifecycle import need_actor, remember_request, request_result, transition

REAP_REASON = "heartbeat timeout"


def reap(
    c, actor: str | None = None, requeue: bool = False, dry_run: bool = False, request_id=None
) -> list[dict]:
    """Returns one dict per reaped (or, with dry_run, reapable) worker. A request id used
    before returns that first reap's list and appends nothing."""
    actor = need_actor(c, actor)
    action = "release" if requeue else "fail"
    default_interval = c.home.config["heartbeat_interval"]
    clone = c.clone_id

    def do(tx):
        earlier = None if dry_run else request_result(tx, actor, request_id, "reap", {"requeue": requeue})
        if earlier is not None:
            return earlier
        now = now_us()  # judged under the write lock, not before it
        done = []
        for row in tx.views(states=ACTIVE):
            v = board.decode_view(row.view)
            if liveness.level(v, now, default_interval, clone) != liveness.DEAD:
                continue
            silent = round((now - liveness.since_us(v)) / 1e6, 1)
            item = {
                "worker": v.worker,
                "from_state": v.state,
                "holder": v.holder,
                "silent_s": silent,
                "interval": liveness.interval_of(v, default_interval),
            }
            if not dry_run:
                payload = {"reason": REAP_REASON, "reap": True, "holder": v.holder, "silent_s": silent}
                if v.attempt_of:  # the attempt it ends: a reap of an older one is refused
                    payload.update(attempt=v.attempt, attempt_of=v.attempt_of)
                r = transition(tx, action, v.worker, actor, payload)
                item.update(state=r.state, event=r.event)
            else:
                item.update(state=v.state, event=None)
            done.append(item)
        if not dry_run:
            remember_request(tx, actor, request_id, done, "reap", {"requeue": requeue})
        return done

    return c.store.transact(do)
