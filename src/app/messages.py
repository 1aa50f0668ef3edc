"""The inbox use cases: send a message, read what an agent has not acknowledged (now, or
waiting for it), acknowledge what was delivered or everything up to an event (as
`inbox.acked` events, which travel: coord.projections.inbox). Delivery is at least once:
`poll` acknowledges only after the messages are written out.
"""

import re
import time

from ..events.envelope import Envelope
from ..events.errors import BadPayload, UsageError
from ..events.records import Notice, TypeFilter, type_filter
from ..projections.inbox import ACKED, ack_chunks, addresses, check_recipient, message_type
from .lifecycle import Result, append_raw, check_payload, need_actor, remember_request, request_result

TYPE_PATTERN = re.compile(r"^[a-z0-9_.*?\[\]-]+$")
NOTICE_PREFIX = "worker."  # poll --type worker.* selects notices


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
    """poll's `--type` values: names or globs, with or without 'msg.'; those starting
    with 'worker.' select notices. Returns (message filter, notice filter): None selects
    everything, a filter without patterns nothing."""
    for t in types:
        if not TYPE_PATTERN.match(t):
            raise UsageError(
                f"bad --type {t!r}: a message type name or glob such as 'review' or 'build.*' "
                "(or 'worker.*' for notices)"
            )
    if not types:
        return None, None
    notice = [t for t in types if t.startswith(NOTICE_PREFIX)]
    msgs = [t for t in types if not t.startswith(NOTICE_PREFIX)]
    return (
        type_filter(msgs, prefix="msg.") or TypeFilter(()),
        type_filter(notice) or TypeFilter(()),
    )


class Pending(list):
    """What an agent has not acknowledged, oldest first (Rows), and the notice of each row
    that is one, by seq (`notices`)."""

    def __init__(self, rows=(), notices=None):
        super().__init__(rows)
        self.notices: dict[int, Notice] = notices or {}


def pending_in(reader, actor: str, types, limit) -> Pending:
    """THE selection of what `poll` delivers to an agent: msg.* events to its addresses
    and its notices, that no inbox.acked of its lists, merged by seq. `reader` may be a
    write transaction (ack reads through it)."""
    msg_types, notice_types = message_types(types)
    rows = []
    if msg_types is None or msg_types.patterns:
        held = [r.worker for r in reader.views(holder=actor)]
        rows = reader.pending_messages(actor, addresses(actor, held), msg_types, limit)
    found = {}
    if notice_types is None or notice_types.patterns:
        found = {n.seq: (row, n) for row, n in reader.pending_notices(actor, notice_types, limit)}
    if found:
        rows = sorted([*rows, *(row for row, _ in found.values())], key=lambda r: r.seq)[:limit]
    return Pending(rows, {r.seq: found[r.seq][1] for r in rows if r.seq in found})


def pending(c, actor: str, types=(), limit: int | None = None) -> Pending:
    """Unacknowledged messages and notices for actor, oldest first (Rows: to an address
    it reads, or lifecycle events that changed or ended an attempt it held)."""
    with c.store.read() as r:
        return pending_in(r, actor, types, limit)


def wait_pending(c, actor: str, types=(), limit: int | None = None, timeout: float = 0.0) -> Pending:
    """pending(), blocking up to timeout seconds for a first message: the store wakes the
    wait when something commits, so waiting costs no busy reading."""
    deadline = time.monotonic() + timeout
    while True:
        with c.store.read() as r:
            top = r.max_seq()
            rows = pending_in(r, actor, types, limit)
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
    """Acknowledge delivered messages and notices (Rows from pending): one inbox.acked
    event for the batch (more when it is long). Returns the ids newly acknowledged."""
    actor = need_actor(c, actor)
    ids = [r.id for r in rows]
    notices = sorted(getattr(rows, "notices", {}))

    def do(tx):
        done = _append_acks(tx, actor, ids)
        if notices:  # the local flag keeps the pending index small; the acks decide
            tx.ack_notices(actor, seqs=notices)
        return done

    return c.store.transact(do) if ids else []


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
        rows = pending_in(tx, actor, (), None)
        ids = _append_acks(tx, actor, [r.id for r in rows if r.seq <= seq])
        done = [s for s in rows.notices if s <= seq]
        if done:
            tx.ack_notices(actor, seqs=done)
        remember_request(tx, actor, request_id, {"seq": seq, "acked": len(ids)}, "ack", {"through": seq})
        return seq, len(ids)

    return c.store.transact(do)
