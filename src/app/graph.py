"""The work graph's use cases: `dep add`/`dep rm` (with the cycle check), `priority`, the
ready queue, and what a set of workers waits for (for `status` and `show`). Each write
is one transaction through coord.app.lifecycle's helpers (actor, request ids, the state
machine); the readiness columns are kept by the projector (coord.projections.board)."""

from ..events.envelope import Envelope
from ..events.errors import Cycle, UnknownWorker, UsageError
from ..events.ids import check_worker_id
from ..projections import board
from ..projections.graph import PRIORITIES, cycle_text, split
from ..projections.workers import COMPLETED
from .lifecycle import Result, _refuse_if_illegal, _repeat, need_actor, remember_request, request_result


def _need(tx, wid: str, what: str = ""):
    v = board.load_tx(tx, wid)
    if v is None:
        raise UnknownWorker(f"unknown worker {wid!r}{what}")
    return v


def dep(c, wid: str, after: str, actor=None, remove: bool = False, request_id=None) -> Result:
    """`wid` waits for `after` (remove: no longer). An existing dependency added again, or
    a missing one removed, is exit 0 with nothing appended; an unknown worker is exit 3;
    an edge that would close a cycle is exit 4 (Cycle, naming it), nothing appended."""
    actor = need_actor(c, actor)
    check_worker_id(after)
    etype = "worker.dep_removed" if remove else "worker.dep_added"
    command = "dep rm" if remove else "dep add"
    args = {"worker": wid, "after": after}

    def do(tx):
        earlier = request_result(tx, actor, request_id, command, args)
        if earlier is not None:
            return _repeat(earlier)
        view = _need(tx, wid)
        present = after in view.after
        if not present and (not remove or board.load_tx(tx, after) is None):
            _need(tx, after)
        if present != remove:
            return Result(wid, view.state, None, etype, repeat=True)
        env = Envelope(tx.next_ts(), actor, wid, etype, {"after": after})
        _refuse_if_illegal(command, view, env)
        if not remove:
            cyc = board.TxGraph(tx).cycle(wid, after)
            if cyc is not None:
                raise Cycle(
                    f"cannot add: {wid} waiting for {after} would close a cycle: {cycle_text(cyc)}", cycle=cyc
                )
        ev = tx.append(env)
        r = Result(wid, view.state, ev.id, etype, seq=ev.seq)
        remember_request(tx, actor, request_id, r, command, args)
        return r

    return c.store.transact(do)


def prioritize(c, wid: str, priority: int, actor=None, request_id=None) -> Result:
    """Set a worker's priority (0 highest … 4 lowest); the same priority again is exit 0
    with nothing appended."""
    actor = need_actor(c, actor)
    if priority not in PRIORITIES:
        raise UsageError(f"priority must be 0 (highest) to 4 (lowest), not {priority}")
    args = {"worker": wid, "priority": priority}

    def do(tx):
        earlier = request_result(tx, actor, request_id, "priority", args)
        if earlier is not None:
            return _repeat(earlier)
        view = _need(tx, wid)
        if view.priority == priority:
            return Result(wid, view.state, None, "worker.prioritized", repeat=True)
        env = Envelope(tx.next_ts(), actor, wid, "worker.prioritized", {"priority": priority})
        _refuse_if_illegal("priority", view, env)
        ev = tx.append(env)
        r = Result(wid, view.state, ev.id, "worker.prioritized", seq=ev.seq)
        remember_request(tx, actor, request_id, r, "priority", args)
        return r

    return c.store.transact(do)


def ready(c, limit: int | None = None, assignable_by: str | None = None) -> list:
    """The ready queue (views), highest priority first, then oldest: one indexed read."""
    return [board.decode_view(r.view) for r in c.store.reader.ready_views(assignable_by, limit)]


def waits(reader, views) -> dict[str, dict]:
    """worker → {"waits_for", "blocked_by", "ready"} for views that wait for others, from
    one read of their dependencies' states (a worker without dependencies is left out:
    it waits for nothing)."""
    deps = {a for v in views for a in v.after}
    states = reader.states(sorted(deps)) if deps else {}
    out = {}
    for v in views:
        if v.after:
            w, b = split(v.after, states.get)
            out[v.worker] = {
                "waits_for": [{"worker": a, "state": states.get(a)} for a in w],
                "blocked_by": b,
                "ready": v.state == "ASSIGNED" and not w,
            }
    return out


def explain_waiting(v, info: dict | None) -> str | None:
    """Why a worker is not ready, in one sentence (None when nothing in the graph holds
    it back)."""
    if not info or not info["waits_for"]:
        return None
    names = ", ".join(f"{d['worker']} ({d['state'] or 'unknown'})" for d in info["waits_for"])
    if info["blocked_by"]:
        first = info["blocked_by"][0]
        return (
            f"blocked by {', '.join(info['blocked_by'])} (CANCELED or FAILED, so never COMPLETED unless a "
            f"FAILED one is retried): retry it, `coord dep rm {v.worker} {first}`, or cancel {v.worker}"
        )
    return f"waits for {names}: not ready until each is {COMPLETED}"
