"""The worker state machine as a pure fold: (view, event) -> view. No I/O.

`check` says whether an event is legal at its place; `fold` applies a legal event or, for
an illegal one (only possible for events imported from a clone that was apart), keeps the
view and records a conflict. Commands call `check` before appending, so the same rules
decide both what a command may do and what a fold applies.
"""

import msgspec

from ..events.envelope import Envelope, encode_json, ts_to_us
from .graph import DEFAULT_PRIORITY, MemGraph, cycle_text

ASSIGNED, WORKING, IN_REVIEW, CONFLICTED = "ASSIGNED", "WORKING", "IN_REVIEW", "CONFLICTED"
APPROVED, COMPLETED, FAILED, CANCELED = "APPROVED", "COMPLETED", "FAILED", "CANCELED"
STATES = (ASSIGNED, WORKING, IN_REVIEW, CONFLICTED, APPROVED, COMPLETED, FAILED, CANCELED)
TERMINAL = frozenset({COMPLETED, CANCELED})
NON_TERMINAL = frozenset(STATES) - TERMINAL
ACTIVE = frozenset({WORKING, CONFLICTED})  # states with liveness

# event type -> (states it may happen in, state it leads to; None = no change)
TRANSITIONS = {
    "worker.spawned": (frozenset({None}), ASSIGNED),
    "worker.started": (frozenset({ASSIGNED}), WORKING),
    "worker.heartbeat": (ACTIVE, None),
    "worker.done": (ACTIVE, IN_REVIEW),
    "worker.conflicted": (frozenset({WORKING, CONFLICTED, APPROVED}), CONFLICTED),
    "worker.approved": (frozenset({IN_REVIEW}), APPROVED),
    "worker.changes_requested": (frozenset({IN_REVIEW}), WORKING),
    "worker.merged": (frozenset({APPROVED}), COMPLETED),
    "worker.released": (ACTIVE, ASSIGNED),
    "worker.canceled": (NON_TERMINAL, CANCELED),
    "worker.failed": (NON_TERMINAL - {FAILED}, FAILED),
    "worker.retried": (frozenset({FAILED}), ASSIGNED),
    # The work graph (coord.projections.graph): no state change, legal until terminal.
    "worker.dep_added": (NON_TERMINAL, None),
    "worker.dep_removed": (NON_TERMINAL, None),
    "worker.prioritized": (NON_TERMINAL, None),
    "worker.check_failed": (frozenset({APPROVED}), WORKING),  # the queue: same holder
}
GRAPH_EVENTS = frozenset({"worker.dep_added", "worker.dep_removed", "worker.prioritized"})

# command name -> event type it appends
ACTIONS = {
    "spawn": "worker.spawned",
    "start": "worker.started",
    "heartbeat": "worker.heartbeat",
    "done": "worker.done",
    "approve": "worker.approved",
    "request-changes": "worker.changes_requested",
    "merge": "worker.merged",
    "release": "worker.released",
    "cancel": "worker.canceled",
    "fail": "worker.failed",
    "retry": "worker.retried",
}
HOLDER_ONLY = frozenset({"worker.heartbeat", "worker.done", "worker.released", "worker.failed"})
NOT_HOLDER = frozenset({"worker.approved", "worker.changes_requested"})


class Worker(msgspec.Struct):
    worker: str
    state: str
    created: str
    updated: str  # ts of the last transition (heartbeats do not count)
    state_since: str  # ts of the transition into the current state
    task: str = ""
    holder: str | None = None
    holder_clone: str | None = None
    assignee: str | None = None
    branch: str | None = None  # prefix + worker id (derived here, never read whole from a payload)
    prefix: str | None = None  # the branch_prefix in force at spawn (recorded in worker.spawned)
    base: str | None = None
    worktree: str | None = None
    summary: str | None = None
    reason: str | None = None
    last_event: str = ""
    last_type: str = ""
    last_from: str = ""
    last_args: str = "{}"  # canonical payload of the last transition (idempotent repeats)
    transitions: int = 0
    starts: int = 0
    # The current (or, once it ended, the last) attempt: opened by each applied
    # worker.started, identified by its id; its number is derived here (attempt_of_start),
    # never read from a payload. 0/None: never started (or folded before attempts existed).
    attempt: int = 0
    attempt_of: str | None = None
    spawner: str | None = None  # who spawned it (msg.coord.stale goes there)
    conflicts: list = []
    info: dict = {}  # type-specific details (conflict files, merge commit, …)
    # Local, heartbeat-derived: heartbeats may stay out of the audit file, so these can
    # differ between clones.
    last_heartbeat: str | None = None
    supervised: str | None = None  # ts of the attempt's last stamped beat (coord run's)
    hb_interval: float | None = None
    hb_note: str | None = None
    idle_s: float | None = None
    heartbeats: int = 0
    # Local, for liveness (contract: a beat's time is the earlier of its ts and the local
    # time it was stored): set only when the event that set last_heartbeat / state_since
    # was stored before its ts (a clock running ahead), then the µs it was stored; None
    # means its ts stands. So a store whose clocks agree folds exactly the pure fold's views.
    beat_local: int | None = None
    since_local: int | None = None
    # The work graph: the workers this one waits for (spawn --after, dep add/rm), in the
    # order they were added, and its priority (0 highest … 4 lowest).
    after: list = []
    priority: int = DEFAULT_PRIORITY
    # Position of the last folded event in (ts, id) order.
    pos_ts: str = ""
    pos_id: str = ""


_LEGAL: dict = {}  # state -> its legal actions (the table never changes: computed once)


def legal_actions(state: str | None) -> list[str]:
    got = _LEGAL.get(state)
    if got is None:
        got = _LEGAL[state] = tuple(a for a, t in ACTIONS.items() if state in TRANSITIONS[t][0])
    return list(got)


def check(view: Worker | None, env: Envelope) -> tuple[str, str] | None:
    """None when legal; else (kind, reason) with kind 'state' or 'actor'."""
    rule = TRANSITIONS.get(env.type)
    if rule is None:
        return ("state", f"unknown lifecycle event {env.type}")
    p = env.payload
    stale = stale_stamp(view, p) if "attempt_of" in p else None  # (unstamped: not stale)
    if stale is not None:
        return ("attempt", stale)
    state = view.state if view is not None else None
    if state not in rule[0]:
        if view is None:
            return ("state", f"worker {env.to} does not exist")
        if env.type == "worker.spawned":
            return ("state", f"worker {env.to} already exists ({state})")
        return ("state", f"{env.to} is {state}")
    if env.type == "worker.started" and view.assignee and env.from_ != view.assignee:
        return ("actor", f"{env.to} is assigned to {view.assignee}, not {env.from_}")
    forced = env.type in HOLDER_ONLY and (p.get("force") or p.get("reap"))
    if env.type in HOLDER_ONLY and view.holder and env.from_ != view.holder and not forced:
        return ("actor", f"{env.to} is held by {view.holder}, not {env.from_} (use --force)")
    if env.type in NOT_HOLDER:
        # Nobody reviews work they hold or handed in: IN_REVIEW is entered only by done,
        # so the last transition names who handed it in (a `done --force` included).
        if env.from_ == view.holder:
            return ("actor", f"{env.from_} holds {env.to} and cannot review its own work")
        if view.last_type == "worker.done" and env.from_ == view.last_from:
            return ("actor", f"{env.from_} handed {env.to} in (done) and cannot review it")
    return None


def stamp_of(payload: dict) -> str | None:
    """The attempt an action is stamped with (its `attempt_of`), or None: unstamped."""
    a = payload.get("attempt_of")
    return a if isinstance(a, str) else None


def attempt_label(view: Worker) -> str:
    """How an attempt is named in messages: `attempt 2 (b3:1a2b3c4d5e6f)`."""
    return f"attempt {view.attempt} ({view.attempt_of[:15]})" if view.attempt_of else "no attempt"


HELD = frozenset({WORKING, CONFLICTED, IN_REVIEW, APPROVED})  # an attempt lives on


def current_attempt(view: Worker | None) -> str | None:
    """The id of the attempt in force: the last start's, while the worker is held (until a
    release, a reap, a failure or the end, which end the attempt)."""
    return view.attempt_of if view is not None and view.state in HELD else None


def stale_stamp(view: Worker | None, payload: dict) -> str | None:
    """Why a stamped action's attempt is not the current one (None: unstamped, or current).
    A view folded before attempts existed (attempt_of None, yet started) cannot judge: the
    name-based rules decide (a rebuild numbers its attempts)."""
    stamp = stamp_of(payload)
    if stamp is None or view is None or (view.attempt_of is None and view.starts):
        return None
    if stamp == current_attempt(view):
        return None
    n = payload.get("attempt")
    given = f"attempt {n} ({stamp[:15]})" if isinstance(n, int) else f"attempt {stamp[:15]}"
    now = attempt_label(view) if current_attempt(view) else "none"
    return f"{given} of {view.worker} is no longer current (current: {now}; {view.worker} is {view.state})"


def attempt_of_start(view: Worker, eid: str) -> tuple[int, str]:
    """(number, id) of the attempt an applied worker.started opens: THE place attempts are
    numbered (1, 2, … per worker, in the fold's (ts, id) order)."""
    return view.attempt + 1, eid


def branch_of(worker: str, p: dict) -> tuple[str | None, str | None]:
    """(prefix, branch) of a worker.spawned payload. The branch is the recorded prefix plus
    the worker id, never a name taken whole from the payload. A spawn from before `prefix`
    was recorded carries only `branch`: its prefix is what precedes the id there; a `branch`
    that does not end with the id keeps prefix None (shown, but no git step uses it)."""
    prefix = p.get("prefix")
    if isinstance(prefix, str):
        return prefix, prefix + worker
    b = p.get("branch")
    if not isinstance(b, str):
        return None, None
    return (b[: -len(worker)] if b.endswith(worker) else None), b


def args_of(payload: dict) -> str:
    return encode_json(payload).decode()


def is_repeat(view: Worker | None, env: Envelope) -> bool:
    """The worker is already where this action leads, and the last transition into it was
    the same action by the same actor with the same arguments."""
    if view is None or env.type == "worker.heartbeat":
        return False
    target = TRANSITIONS.get(env.type, (None, None))[1]
    return (
        view.state == target
        and view.last_type == env.type
        and view.last_from == env.from_
        and view.last_args == args_of(env.payload)
    )


def _local_time(env: Envelope, stored: int | None) -> int | None:
    """The µs an event was stored when that is before its ts (dated ahead of this clock)."""
    if stored is None:
        return None
    return stored if stored < ts_to_us(env.ts) else None


def _conflict(v: Worker, env: Envelope, eid: str, reason: str) -> Worker:
    c = {"event": eid, "type": env.type, "from": env.from_, "ts": env.ts, "reason": reason}
    v.conflicts, v.pos_ts, v.pos_id = [*v.conflicts, c], env.ts, eid
    return v


def _cycle(graph, worker: str, after: str, eid: str) -> str | None:
    """Why the edge would be refused here: the cycle it closes (None: no cycle, or no
    graph to check against)."""
    if graph is None:
        return None
    cyc = graph.cycle(worker, after, eid)
    return None if cyc is None else f"would close a cycle: {cycle_text(cyc)}"


def _fold_graph(v: Worker, env: Envelope, eid: str, graph) -> Worker:
    """dep_added, dep_removed, prioritized: the graph fields only; no transition (so the
    last transition stays what idempotent repeats compare against)."""
    p = env.payload
    if env.type == "worker.prioritized":
        v.priority = p.get("priority", v.priority)
    else:
        a = p.get("after")
        after = list(v.after)
        if env.type == "worker.dep_added" and isinstance(a, str) and a not in after:
            why = _cycle(graph, v.worker, a, eid)
            if why is not None:
                return _conflict(v, env, eid, why)
            after.append(a)
        elif env.type == "worker.dep_removed" and a in after:
            after.remove(a)
        v.after = after
    v.pos_ts, v.pos_id = env.ts, eid
    return v


def fold(
    view: Worker | None, env: Envelope, eid: str, stored: int | None = None, graph=None, mutate: bool = False
) -> Worker | None:
    """Apply one event. Illegal events are kept as conflicts, never applied. `stored`: the
    local time the store recorded it (µs), for liveness, or None. `graph` says whether an
    edge closes a cycle at this event's place (MemGraph, or the projector's TxGraph); None
    checks none. `mutate` (a fold from zero owning its views) changes the view in place
    and leaves last_args and the local times raw until fromzero.settle makes them so."""
    rule = TRANSITIONS.get(env.type)
    if rule is None:
        return view
    bad = check(view, env)
    if view is None:  # a conflict has nothing to hang on (`verify` reports orphans)
        return _spawned(env, eid, stored, graph, mutate) if bad is None else None
    v = view if mutate else view.__copy__()
    if bad is not None:
        if env.type == "worker.heartbeat":
            # Heartbeats change no state and may stay out of the audit file, so a clone
            # may never see them: a misplaced one is skipped, not listed as a conflict
            # (conflicts must be the same on every clone). Its position still counts, so
            # an earlier import re-folds it into place.
            v.pos_ts, v.pos_id = env.ts, eid
            return v
        return _conflict(v, env, eid, bad[1])
    if env.type in GRAPH_EVENTS:
        return _fold_graph(v, env, eid, graph)
    p = env.payload
    if env.type == "worker.heartbeat":
        v.last_heartbeat = env.ts
        if stamp_of(p):
            v.supervised = env.ts
        v.heartbeats += 1
        v.hb_interval = p.get("interval", v.hb_interval)
        v.hb_note = p.get("note", v.hb_note)
        v.idle_s = p.get("idle_s", v.idle_s)
        v.beat_local = stored if mutate else _local_time(env, stored)
        v.pos_ts, v.pos_id = env.ts, eid
        return v
    t = env.type
    v.transitions += 1
    v.state, v.updated, v.state_since = rule[1], env.ts, env.ts
    v.last_event, v.last_type, v.last_from, v.last_args = eid, t, env.from_, p if mutate else args_of(p)
    v.since_local = stored if mutate else _local_time(env, stored)
    v.pos_ts, v.pos_id = env.ts, eid
    if t == "worker.started":
        v.attempt, v.attempt_of = attempt_of_start(v, eid)
        v.holder, v.holder_clone, v.starts = env.from_, p.get("clone"), v.starts + 1
        v.summary = v.reason = None
        # Liveness belongs to the attempt: a new holder starts with no heartbeat of its own.
        v.hb_interval = v.hb_note = v.idle_s = v.last_heartbeat = v.supervised = v.beat_local = None
        v.heartbeats = 0
        if p.get("worktree"):
            v.worktree = p["worktree"]
    elif t == "worker.done":
        v.summary = p.get("summary")
        v.info = {k: p[k] for k in ("head", "rebased") if k in p}
    elif t == "worker.conflicted":
        v.info = {k: p[k] for k in ("files", "stage", "onto") if k in p}
    elif t == "worker.changes_requested":
        v.reason = p.get("reason")
    elif t == "worker.check_failed":
        v.reason = p.get("reason")
        v.info = {k: p[k] for k in ("check", "commit") if k in p}
    elif t == "worker.approved":
        v.reason = p.get("note")
    elif t == "worker.merged":
        v.info = {k: p[k] for k in ("commit", "into") if k in p}
        v.worktree = None if p.get("worktree_removed") else v.worktree
    elif t in ("worker.released", "worker.retried"):
        v.holder = v.holder_clone = None
        v.reason = p.get("reason")
    elif t in ("worker.failed", "worker.canceled"):
        v.reason = p.get("reason")
        if t == "worker.canceled" and p.get("worktree_removed"):
            v.worktree = None
    return v


def _spawned(env: Envelope, eid: str, stored: int | None, graph, mutate: bool) -> Worker:
    p = env.payload  # a legal worker.spawned: the view it creates
    prefix, branch = branch_of(env.to, p)
    after, cycles = [], []
    for a in p.get("after") or ():
        if a in after:
            continue
        why = _cycle(graph, env.to, a, eid)
        if why is None:
            after.append(a)
        else:  # only by import: locally an edge to an unknown worker is refused
            cycles.append({"event": eid, "type": env.type, "from": env.from_, "ts": env.ts, "reason": why})
    # Few keywords, then attributes: a Struct built from 23 keywords costs three times more.
    v = Worker(worker=env.to, state=ASSIGNED, created=env.ts, updated=env.ts, state_since=env.ts)
    v.task, v.assignee, v.branch, v.prefix = p.get("task", ""), p.get("assignee"), branch, prefix
    v.base, v.worktree, v.spawner = p.get("base"), p.get("worktree"), env.from_
    v.last_event, v.last_type, v.last_from = eid, env.type, env.from_
    v.last_args = p if mutate else args_of(p)
    v.transitions, v.since_local = 1, stored if mutate else _local_time(env, stored)
    v.after, v.priority, v.conflicts = after, p.get("priority", DEFAULT_PRIORITY), cycles
    v.pos_ts, v.pos_id = env.ts, eid
    return v


def fold_all(events, views: dict | None = None, graph=None) -> dict[str, Worker]:
    """Fold (env, id) or (env, id, stored) tuples, already in (ts, id) order, onto `views`
    (default: nothing). Edges are checked for cycles against `graph` (default: the views
    being folded)."""
    views = {} if views is None else views
    graph = MemGraph(views) if graph is None else graph
    for item in events:
        env = item[0]
        if env.type.startswith("worker."):
            v = fold(views.get(env.to), env, item[1], item[2] if len(item) > 2 else None, graph)
            if v is not None:
                views[env.to] = v
    return views
