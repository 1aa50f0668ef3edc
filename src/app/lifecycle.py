"""The lifecycle use cases: one action on one worker (or one message) as one write
transaction. Inside it: look up the request id, load the view, check the action against
the state machine (coord.projections.workers), append (the projectors fold it), remember
the request id; the store commits, then the audit file's hook runs. Every appending use
case checks its actor here (`need_actor`). Actions with git work around them:
coord.app.gitsteps.

Request ids (`--request-id KEY`): a repeat with a key the actor already used for the same
command and the same arguments returns the first result and appends nothing; the same key
with other arguments is refused (exit 4). Keys are per actor and per command. A stored
result is `{"$args": {name: digest}, "$result": <the first result>}`: one short digest per
argument rides inside the stored JSON, so a mismatch can be named without storing the
values; rows stored before the digests were kept (a bare result) match any arguments.
The arguments compared are the ones a RequestId carries (the CLI attaches what the user
gave), else those of the library call. Lookups and records happen inside the transaction
that appends, so a request is recorded exactly when its result is.
"""

import msgspec

from ..events.envelope import Envelope
from ..events.errors import (
    BadPayload,
    IllegalTransition,
    NothingToClaim,
    NotYours,
    Refused,
    StaleAttempt,
    UnknownWorker,
    UsageError,
)
from ..events.ids import check_worker_id
from ..projections import board
from ..projections.workers import ACTIONS, Worker, check, is_repeat, legal_actions
from .attempts import attempt_extra, with_stamp
from .readiness import refuse_by_graph


class Result(msgspec.Struct):
    worker: str
    state: str
    event: str | None  # id of the appended event; None when nothing was appended
    type: str | None = None
    repeat: bool = False  # an idempotent repeat or a reused --request-id
    seq: int | None = None
    attempt: int | None = None  # the worker's current (or last) attempt after the action
    attempt_of: str | None = None  # its id: the worker.started that opened it


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
        if bad[0] == "attempt":
            raise StaleAttempt(f"cannot {action}: {bad[1]}", **attempt_extra(view))
        raise IllegalTransition(
            f"cannot {action}: {bad[1]}; legal from {state}: "
            f"{', '.join(legal) if legal else 'nothing (terminal)'}",
            state=state,
            legal=legal,
        )


def _result(tx, wid: str, etype: str, ev=None, repeat: bool = False) -> Result:
    v = board.load_tx(tx, wid)
    return Result(
        wid,
        v.state,
        ev.id if ev is not None else None,
        etype,
        repeat=repeat,
        seq=ev.seq if ev is not None else None,
        attempt=v.attempt or None,
        attempt_of=v.attempt_of,
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
    stamped = with_stamp(view, payload)
    if stamped is not payload:  # the event carries the resolved stamp (append claim-checks)
        payload = stored = stamped
    env = Envelope(tx.next_ts(), actor, wid, etype, payload)
    if is_repeat(view, env):
        return _result(tx, wid, etype, repeat=True)
    _refuse_if_illegal(action, view, env)
    refuse_by_graph(tx, view, env)
    if stored is not None and stored is not payload:
        env = msgspec.structs.replace(env, payload=stored)
    ev = tx.append(env)
    return _result(tx, wid, etype, ev)


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
    etype = ACTIONS.get(action, action)
    with c.store.read() as r:
        if request_result(r, actor, request_id, action, lifecycle_args(wid, payload)) is not None:
            return True, None
        view = board.load(r, wid)
        if view is None and etype != "worker.spawned":
            raise UnknownWorker(f"unknown worker {wid!r}")
        env = Envelope("", actor, wid, etype, with_stamp(view, payload))
        if is_repeat(view, env):
            return True, view
        _refuse_if_illegal(action, view, env)
        refuse_by_graph(r, view, env)
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
        earlier = request_result(tx, actor, request_id, command, args)
        if earlier is not None:
            return _repeat(earlier)
        r = transition(tx, action, wid, actor, payload, stored)
        if expect_repeat and not r.repeat:
            raise Refused(f"{wid} changed while {action} ran; run it again")
        remember_request(tx, actor, request_id, r, command, args)
        return r

    return c.store.transact(do, beats=action == "heartbeat")


def start_next(c, actor: str | None = None, request_id=None, payload: dict | None = None) -> Result:
    """Claim the first ready worker this actor may take (highest priority, then oldest;
    never one that waits or is blocked): one conditional write."""
    actor = need_actor(c, actor)
    payload = {**check_payload(payload or {}), "clone": c.clone_id}
    stored = c.blobs.claim_check(payload, c.home.config["blob_threshold"])

    def do(tx):
        earlier = request_result(tx, actor, request_id, "start", {"next": True})
        if earlier is not None:
            return _repeat(earlier)
        first = tx.ready_views(assignable_by=actor, limit=1)
        if not first:
            raise NothingToClaim(f"nothing to claim: no ready worker {actor} may start")
        r = transition(tx, "start", first[0].worker, actor, payload, stored)
        remember_request(tx, actor, request_id, r, "start", {"next": True})
        return r

    return c.store.transact(do)


def append_raw(c, to: str, etype: str, payload: dict, actor: str | None = None, request_id=None) -> Result:
    """Append a non-lifecycle event (messages)."""
    actor = need_actor(c, actor)
    stored = c.blobs.claim_check(check_payload(payload), c.home.config["blob_threshold"])
    args = {"to": to, "type": etype, "payload": payload}

    def do(tx):
        earlier = request_result(tx, actor, request_id, "send", args)
        if earlier is not None:
            return _repeat(earlier)
        ev = tx.append(Envelope(tx.next_ts(), actor, to, etype, stored))
        r = Result(to, "", ev.id, etype, seq=ev.seq)
        remember_request(tx, actor, request_id, r, "send", args)
        return r

    return c.store.transact(do)


# --- request ids -------------------------------------------------------------------
class RequestIdReused(Refused):
    code = "request_id_reused"


class RequestId(str):
    """A request id that carries the arguments of the request, as the caller sees them
    (the CLI: the options the user gave, the worker resolved). A plain str key works too:
    each use case then compares the arguments it was given."""

    args: dict | None = None


def with_args(key: str | None, **args) -> "RequestId | None":
    """KEY with the request's arguments attached (None stays None)."""
    if key is None:
        return None
    r = RequestId(key)
    r.args = args
    return r


def request_key(command: str, key: str) -> str:
    """A key reused by another command is a new request, never a replay of a result of
    another shape."""
    return f"{command}\x1f{key}"


def args_digest(args: dict) -> dict:
    """One short digest per argument: canonical JSON, BLAKE3. Absent, None and False are
    the same (no digest), so an option added later does not change the digest of
    requests that do not use it."""
    import blake3

    from ..events.envelope import encode_json

    return {
        k: blake3.blake3(encode_json(v)).hexdigest()[:32]
        for k, v in sorted(args.items())
        if v is not None and v is not False
    }


def _given(request_id, default: dict | None) -> dict | None:
    """The digests to compare: the arguments the RequestId carries, else the call's own."""
    args = getattr(request_id, "args", None)
    if args is None:
        args = default
    return None if args is None else args_digest(args)


def _stored(raw: bytes) -> tuple[dict | None, object]:
    data = msgspec.json.decode(raw)
    if isinstance(data, dict) and "$result" in data:
        return data.get("$args"), data["$result"]
    return None, data


def request_result(reader, actor: str, request_id, command: str, args: dict | None = None):
    """The first result stored for a request id this actor used for this command, decoded
    (None when unused, or no key was given). The same key with other arguments is
    RequestIdReused (exit 4). Read through the write transaction that would record it."""
    if request_id is None:
        return None
    raw = reader.request(actor, request_key(command, request_id))
    if raw is None:
        return None
    stored, result = _stored(raw)
    given = _given(request_id, args)
    if stored is not None and given is not None:
        differ = sorted(k for k in stored.keys() | given.keys() if stored.get(k) != given.get(k))
        if differ:
            raise RequestIdReused(
                f"request id {str(request_id)!r} was already used for {command} with other arguments "
                f"({', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}); "
                "nothing was done: use a new key for a new request",
                differ=differ,
            )
    return result


def _row(result, request_id, args: dict | None) -> bytes:
    row = {"$result": result}
    given = _given(request_id, args)
    if given is not None:
        row["$args"] = given
    return msgspec.json.encode(row)


def remember_request(tx, actor: str, request_id, result, command: str, args: dict | None = None) -> None:
    """Record the first result of a request id, in the transaction that produced it."""
    if request_id is not None:
        tx.remember_request(actor, request_key(command, request_id), _row(result, request_id, args))


def settle_request(store, actor: str, request_id, command: str, result, args=None) -> None:
    """Replace the stored result of a request id (coord run: the claim's result, kept
    while the child runs, by the run's outcome once it is recorded)."""
    if request_id is None:
        return
    row = _row(result, request_id, args)
    store.transact(lambda tx: tx.replace_request(actor, request_key(command, request_id), row))
