"""The inbox use cases: send a message, read what an agent has not acknowledged (now, or
waiting for it), acknowledge what was delivered or everything up to an event (as
`inbox.acked` events, which travel: coord.projections.inbox). Delivery is at least once:
`poll` acknowledges only after the messages are written out.
"""

import re
import time

from ..events.envelope import Envelope
from ..events.errors import BadPayload, UsageError
from ..events.records import type_filter
from ..projections.inbox import ACKED, ack_chunks, addresses, check_recipient, message_type
from .lifecycle import Result, append_raw, check_payload, need_actor, remember_request, request_result

TYPE_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]-]+$")


def send(
    c, to: str, name: str, payload: dict, actor=None, request_id=None, reply_to: str | None = None
) -> Result:
    """Append a msg.<name> event to an agent, a worker or '*'."""
    check_recipient(to)
    etype = message_type(name)
    payload = check_payload(payload)
    if reply_to is not None:
        if "reply_to" in payload:
            raise BadPayload("give the reply's target once: --reply-to or a reply_to key")
        payload = {**payload, "reply_to": reply_to}
    return append_raw(c, to, etype, payload, actor=actor, request_id=request_id)


def reply_target(c, text: str) -> tuple[str, str]:
    """The event a reply answers (an id or unique prefix): (its id, its sender, as its
    hashed bytes say)."""
    import msgspec

    from .resolve import event

    row = event(c.store.reader, text)
    return row.id, msgspec.json.decode(row.body)["from"]


def message_types(types):
    """poll's `--type` values: names or globs, with or without 'msg.'."""
    for t in types:
        if not TYPE_PATTERN.match(t):
            raise UsageError(f"bad --type {t!r}: a message type name or glob such as 'review' or 'build.*'")
    return type_filter(types, prefix="msg.")


def pending_rows(reader, actor: str, types=(), limit=None) -> list:
    """THE selection of what `poll` delivers to actor (one function, so other kinds of
    delivery join it here): msg.* events to its addresses that no inbox.acked of its
    lists, by seq. `reader` may be a write transaction (ack reads through it)."""
    held = [r.worker for r in reader.views(holder=actor)]
    return reader.pending_messages(actor, addresses(actor, held), message_types(types), limit)


def pending(c, actor: str, types=(), limit: int | None = None) -> list:
    """Unacknowledged messages for actor, oldest first (Rows: to an address it reads)."""
    with c.store.read() as r:
        return pending_rows(r, actor, types, limit)


def wait_pending(c, actor: str, types=(), limit: int | None = None, timeout: float = 0.0) -> list:
    """pending(), blocking up to timeout seconds for a first message: the store wakes the
    wait when something commits, so waiting costs no busy reading."""
    deadline = time.monotonic() + timeout
    while True:
        with c.store.read() as r:
            top = r.max_seq()
            rows = pending_rows(r, actor, types, limit)
        left = deadline - time.monotonic()
        if rows or left <= 0:
            return rows
        c.store.wait_for_new(top, left)


def _append_acks(tx, actor: str, ids: list[str]) -> list[str]:
    """Append inbox.acked events (from actor, to actor) for the ids actor has not
    acknowledged yet, in payloads under the blob threshold; returns the ids acknowledged."""
    ids = list(dict.fromkeys(ids))
    known = tx.acked(actor, ids)
    ids = [i for i in ids if i not in known]
    for chunk in ack_chunks(ids, tx.store.home.config["blob_threshold"]):
        tx.append(Envelope(tx.next_ts(), actor, actor, ACKED, {"ids": chunk}))
    return ids


def acknowledge(c, actor: str, rows) -> list[str]:
    """Acknowledge delivered messages (Rows from pending): one inbox.acked event for the
    batch (more when it is long). Returns the ids newly acknowledged."""
    actor = need_actor(c, actor)
    ids = [r.id for r in rows]
    return c.store.transact(lambda tx: _append_acks(tx, actor, ids)) if ids else []


def ack_event(c, actor: str, text: str, request_id=None) -> tuple[int, str, int]:
    """`coord ack EVENT`: everything pending for actor up to and including the event named
    (an id or unique prefix); (seq, id, messages acknowledged) (the first result, for a
    request id used before)."""
    from .resolve import event

    seq, n = ack_upto(c, actor, event(c.store.reader, text).seq, request_id=request_id)
    return seq, c.store.reader.event_at(seq).id, n


def ack_upto(c, actor: str, seq: int, request_id=None) -> tuple[int, int]:
    """Acknowledge every message pending for actor with seq <= seq (an inbox.acked listing
    them; nothing when none is pending); returns (seq, how many), the first result for a
    request id used before."""
    actor = need_actor(c, actor)

    def do(tx):
        earlier = request_result(tx, actor, request_id, "ack", {"through": seq})
        if earlier is not None:
            return earlier["seq"], earlier.get("acked", 0)
        ids = _append_acks(tx, actor, [r.id for r in pending_rows(tx, actor) if r.seq <= seq])
        remember_request(tx, actor, request_id, {"seq": seq, "acked": len(ids)}, "ack", {"through": seq})
        return seq, len(ids)

    return c.store.transact(do)
