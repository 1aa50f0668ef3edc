"""Request ids (`--request-id KEY`): a repeat with a key the actor already used for the same
command and the same arguments returns the first result and appends nothing; the same key
with other arguments is refused (exit 4).

Keys are per actor and per command. A stored result is `{"$args": {name: digest},
"$result": <the first result>}`: one short digest per argument rides inside the stored
JSON (no schema change), so a mismatch can be named without storing the values; rows
stored before the digests were kept (a bare result) match any arguments. The arguments
compared are the ones a RequestId carries (the CLI attaches what the user gave), else
the arguments of the library call. Lookups and records happen inside the transaction
that appends (a store may re-run it), so a request is recorded exactly when its result is.
"""

import msgspec

from ..events.errors import Refused


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


def earlier(reader, actor: str, request_id, command: str, args: dict | None = None):
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


def remember(tx, actor: str, request_id, result, command: str, args: dict | None = None) -> None:
    """Record the first result of a request id, in the transaction that produced it."""
    if request_id is not None:
        tx.remember_request(actor, request_key(command, request_id), _row(result, request_id, args))


def settle(store, actor: str, request_id, command: str, result, args=None) -> None:
    """Replace the stored result of a request id (coord run: the claim's result, kept
    while the child runs, by the run's outcome once it is recorded)."""
    if request_id is None:
        return
    row = _row(result, request_id, args)
    store.transact(lambda tx: tx.replace_request(actor, request_key(command, request_id), row))
