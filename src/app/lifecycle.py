"""The lifecycle use cases: one action on one worker (or one message) as one write
transaction. Inside it: look up the request id, load the view, check the action against
the state machine (coord.projections.workers), append (the projectors fold it), remember
the request id; the store commits, then the audit file's hook runs. Every appending use
case checks its actor here (`need_actor`). Actions with git work around them:
coord.app.gitsteps.
"""

import msgspec

from ..events.envelope import Envelope
from ..events.errors import (
    BadPayload,
    IllegalTransition,
    NothingToClaim,
    NotYours,
    Refused,
    UnknownWorker,
    UsageError,
)
from ..events.ids import check_worker_id
from ..projections import board
from ..projections.workers import ACTIONS, ASSIGNED, Worker, check, is_repeat, legal_actions
from . import requests


class Result(msgspec.Struct):
    worker: str
    state: str
    event: str | None  # id of the appended event; None when nothing was appended
    type: str | None = None
    repeat: bool = False  # an idempotent repeat or a reused --request-id
    seq: int | None = None


# Payload keys the steps around a transition add (the clone at start; the git fields of
# spawn, done, merge and cancel): not the caller's arguments, so a plain-str request id
# does not compare them. The CLI attaches the arguments the user gave instead.
ADDED_BY_STEPS = frozenset(
    {
        "clone",
        "branch",
        "base",
        "worktree",
        "head",
        "rebased",
        "commit",
        "into",
        "worktree_removed",
        "branch_deleted",
        "prefix",
        "deleted_tip",
        "unmerged",
    }
)


def need_actor(c, actor: str | None) -> str:
    """Who acts: the one given, else the home's (Coord.actor). No actor is a usage error
    (exit 2), the same for every use case that appends."""
    actor = actor or c.actor
    if not actor:
        raise UsageError("no actor: pass --as NAME or set COORD_AGENT")
    return actor


def check_payload(payload) -> dict:
    """A caller's payload: a JSON object, no reserved `$` keys, nested at most MAX_DEPTH
    levels (checked on its encoding, before any claim-check puts it in a blob). The other
    shape rules are checked on the event in WriteTx.append."""
    if not isinstance(payload, dict):
        raise BadPayload("payload must be a JSON object")
    bad = [k for k in payload if isinstance(k, str) and k.startswith("$")]
    if bad:
        raise BadPayload(f"payload key {bad[0]!r} is reserved (keys starting with $)")
    for v in payload.values():
        if isinstance(v, (dict, list)):
            break
    else:
        return payload  # flat (a heartbeat's): nothing nests
    from ..events.shapes import MAX_DEPTH, too_deep

    try:
        data = msgspec.json.encode(payload)
    except RecursionError:
        data = None
    except (TypeError, ValueError, OverflowError) as e:
        raise BadPayload(f"payload is not JSON: {e}") from None
    if data is None or too_deep(data):
        raise BadPayload(f"payload nested deeper than {MAX_DEPTH} levels")
    return payload


def lifecycle_args(wid: str, payload: dict) -> dict:
    """The arguments of a lifecycle action, for a plain-str request id."""
    return {**{k: v for k, v in payload.items() if k not in ADDED_BY_STEPS}, "worker": wid}


def worker(c, wid: str) -> Worker:
    """A worker's view (UnknownWorker, exit 3, when there is none)."""
    v = board.load(c.store.reader, wid)
    if v is None:
        raise UnknownWorker(f"unknown worker {wid!r}")
    return v


def _refuse_if_illegal(action: str, view: Worker | None, env: Envelope) -> None:
    bad = check(view, env)
    if bad is not None:
        state = view.state if view else None
        legal = legal_actions(state)
        if bad[0] == "actor":
            raise NotYours(f"cannot {action}: {bad[1]}")
        raise IllegalTransition(
            f"cannot {action}: {bad[1]}; legal from {state}: "
            f"{', '.join(legal) if legal else 'nothing (terminal)'}",
            state=state,
            legal=legal,
        )


def transition(tx, action: str, wid: str, actor: str, payload: dict, stored: dict | None = None) -> Result:
    """One action inside a write transaction: load the view, recognise an idempotent
    repeat, refuse what the state machine refuses, append. `payload` is what the rules
    see; `stored` what the event carries (the payload itself, or its claim-check
    reference when it was too big)."""
    etype = ACTIONS.get(action, action)
    view = board.load_tx(tx, wid)
    if view is None and etype != "worker.spawned":
        raise UnknownWorker(f"unknown worker {wid!r}")
    env = Envelope(tx.next_ts(), actor, wid, etype, payload)
    if is_repeat(view, env):
        return Result(wid, view.state, None, etype, repeat=True)
    _refuse_if_illegal(action, view, env)
    if stored is not None and stored is not payload:
        env = msgspec.structs.replace(env, payload=stored)
    ev = tx.append(env)
    return Result(wid, board.load_tx(tx, wid).state, ev.id, etype, seq=ev.seq)


def _repeat(earlier) -> Result:
    r = msgspec.convert(earlier, Result)
    r.repeat = True
    return r


def precheck(
    c, action: str, wid: str, payload: dict, actor: str, request_id=None
) -> tuple[bool, Worker | None]:
    """Would `act` append? Read-only, for actions with work to do outside the write
    transaction (git). Returns (repeat, view): repeat is True when `act` would append
    nothing (a used request id, or an idempotent repeat); otherwise the action is legal
    now and view is the worker (None before a spawn). Raises what `act` would raise.
    `act` checks again inside its transaction."""
    actor = need_actor(c, actor)
    with c.store.read() as r:
        if requests.earlier(r, actor, request_id, action, lifecycle_args(wid, payload)) is not None:
            return True, None
        view = board.load(r, wid)
    etype = ACTIONS.get(action, action)
    if view is None and etype != "worker.spawned":
        raise UnknownWorker(f"unknown worker {wid!r}")
    env = Envelope("", actor, wid, etype, payload)
    if is_repeat(view, env):
        return True, view
    _refuse_if_illegal(action, view, env)
    return False, view


def act(
    c,
    action: str,
    wid: str,
    payload: dict | None = None,
    actor: str | None = None,
    request_id=None,
    expect_repeat: bool = False,
    request_command: str | None = None,
) -> Result:
    """Run one lifecycle action as one transaction. expect_repeat: the caller skipped
    work outside the transaction because `precheck` saw a repeat; refuse rather than
    append if the worker moved meanwhile. request_command: the command the request id
    belongs to, when it is not the action itself (`run` claims with `start`)."""
    actor = need_actor(c, actor)
    payload = check_payload(payload if payload is not None else {})
    if action == "spawn":
        check_worker_id(wid)
    args = lifecycle_args(wid, payload)
    if action == "start":
        payload = {**payload, "clone": c.clone_id}
    stored = c.blobs.claim_check(payload, c.home.config["blob_threshold"])  # before the lock
    command = request_command or action

    def do(tx):
        earlier = requests.earlier(tx, actor, request_id, command, args)
        if earlier is not None:
            return _repeat(earlier)
        r = transition(tx, action, wid, actor, payload, stored)
        if expect_repeat and not r.repeat:
            raise Refused(f"{wid} changed while {action} ran; run it again")
        requests.remember(tx, actor, request_id, r, command, args)
        return r

    return c.store.transact(do)


def start_next(c, actor: str | None = None, request_id=None, payload: dict | None = None) -> Result:
    """Claim the oldest ASSIGNED worker this actor may take: one conditional write."""
    actor = need_actor(c, actor)
    payload = {**check_payload(payload or {}), "clone": c.clone_id}
    stored = c.blobs.claim_check(payload, c.home.config["blob_threshold"])

    def do(tx):
        earlier = requests.earlier(tx, actor, request_id, "start", {"next": True})
        if earlier is not None:
            return _repeat(earlier)
        first = tx.views(states=[ASSIGNED], assignable_by=actor, limit=1)
        if not first:
            raise NothingToClaim(f"nothing to claim: no ASSIGNED worker {actor} may start")
        r = transition(tx, "start", first[0].worker, actor, payload, stored)
        requests.remember(tx, actor, request_id, r, "start", {"next": True})
        return r

    return c.store.transact(do)


def append_raw(c, to: str, etype: str, payload: dict, actor: str | None = None, request_id=None) -> Result:
    """Append a non-lifecycle event (messages)."""
    actor = need_actor(c, actor)
    stored = c.blobs.claim_check(check_payload(payload), c.home.config["blob_threshold"])
    args = {"to": to, "type": etype, "payload": payload}

    def do(tx):
        earlier = requests.earlier(tx, actor, request_id, "send", args)
        if earlier is not None:
            return _repeat(earlier)
        ev = tx.append(Envelope(tx.next_ts(), actor, to, etype, stored))
        r = Result(to, "", ev.id, etype, seq=ev.seq)
        requests.remember(tx, actor, request_id, r, "send", args)
        return r

    return c.store.transact(do)
