"""Replay as a pure walk: fold events one by one (the same fold the board uses) and say
what each changed by comparing the worker's view before and after. No I/O."""

import msgspec

from .graph import MemGraph
from .workers import Worker, fold, fold_all


class Step(msgspec.Struct):
    n: int  # 1-based position in (ts, id) order
    id: str
    env: object  # the Envelope
    worker: str | None  # the worker a worker.* event concerns
    before: Worker | None
    after: Worker | None  # the view after (unchanged view for a message to a worker)
    conflict: str | None = None  # an illegal event: kept, not applied, and why


def steps(events, views: dict | None = None, start: int = 0):
    """(id, Envelope) pairs in (ts, id) order -> Steps. `views` (worker -> view) is updated
    in place, so the caller holds the board as of the last step."""
    views = {} if views is None else views
    graph = MemGraph(views)
    n = start
    for eid, env in events:
        n += 1
        if env.type.startswith("worker."):
            before = views.get(env.to)
            after = fold(before, env, eid, graph=graph)
            conflict = None
            if after is None:
                conflict = f"worker {env.to} does not exist"
            elif before is not None and len(after.conflicts) > len(before.conflicts):
                conflict = after.conflicts[-1]["reason"]
            if after is not None:
                views[env.to] = after
            yield Step(n, eid, env, env.to, before, after, conflict)
        else:
            v = views.get(env.to)
            yield Step(n, eid, env, None, v, v)


def fold_upto(events, views: dict | None = None) -> dict:
    """The board after the given events (the --at fast path: no Steps built)."""
    return fold_all(((env, eid) for eid, env in events), views)


def describe(s: Step) -> str:
    """What a step changed, in words: `w-7  WORKING → IN_REVIEW`, `agent-3 sent msg.review to w-7`."""
    env = s.env
    if s.worker is None:
        if env.type.startswith("msg."):
            to = "everyone" if env.to == "*" else env.to
            return f"{env.from_} sent {env.type} to {to}"
        return f"{env.from_} {env.type} → {env.to}"
    w = s.worker
    if s.conflict is not None:
        return f"{w}  CONFLICT (kept, not applied): {s.conflict}"
    if env.type == "worker.heartbeat":
        note = env.payload.get("note")
        return f"{w}  heartbeat" + (f" ({note})" if note else "")
    if env.type == "worker.dep_added":
        return f"{w}  now waits for {env.payload.get('after')}"
    if env.type == "worker.dep_removed":
        return f"{w}  no longer waits for {env.payload.get('after')}"
    if env.type == "worker.prioritized":
        return f"{w}  priority {env.payload.get('priority')}"
    before = s.before.state if s.before is not None else "(new)"
    text = f"{w}  {before} → {s.after.state}"
    p = env.payload
    for key in ("reason", "summary", "note", "task"):
        if isinstance(p.get(key), str) and p[key]:
            text += f"  {key}: {p[key]}"
            break
    if env.type == "worker.spawned" and s.after.after:
        text += f"  after: {', '.join(s.after.after)}"
    if s.after.conflicts and (s.before is None or len(s.after.conflicts) > len(s.before.conflicts)):
        text += f"  CONFLICT: {s.after.conflicts[-1]['reason']}"
    if p.get("force") or p.get("reap"):
        text += "  (forced)"
    return text
