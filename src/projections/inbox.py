"""Inboxes: an agent's addresses, the rules of message names and recipients, and the
acknowledgements projection.

An agent's inbox is the union of its addresses: its own name, `*` (broadcasts, except its
own), and every worker it holds (a message to a worker reaches whoever holds it). A
message is acknowledged for an agent once an `inbox.acked` event from that agent to itself
lists its id, on any clone or machine (contract: Acknowledgements): `poll` appends one per
delivered batch, `ack EVENT` one for what it covers. Acknowledgements are events, so they
travel through the audit file like any other; what each agent acknowledged is a projection
of them (`project`, inside each append; `rebuild`), kept by the store (record_acks,
pending_messages, acked). Ids, never a seq or a time: seq differs between clones.
Acknowledgements are per agent, so each agent acknowledges a broadcast for itself.
`inbox.*` events are never delivered and not indexed for search.
"""

import re

from ..events.blobs import is_ref, readable
from ..events.envelope import ID_RE
from ..events.errors import UsageError
from ..events.records import EventQuery, type_filter
from ..events.shapes import BROADCAST, recipient_ok

ACKED = "inbox.acked"
ID_CHARS = 70  # an id in a payload's list: 67 characters, its quotes and a comma

NAME_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\Z")


def check_recipient(to: str) -> str:
    if recipient_ok(to):
        return to
    raise UsageError(
        f"bad recipient {to!r}: use an agent name or worker id (letters, digits, "
        "and . _ - : @, starting with a letter or digit), or '*' for everyone"
    )


def message_type(name: str) -> str:
    """'review' or 'msg.review' -> 'msg.review'."""
    n = name[4:] if name.startswith("msg.") else name
    if not NAME_RE.match(n):
        raise UsageError(
            f"bad message type {name!r}: lower-case dotted words of a-z 0-9 _ "
            "(e.g. review_request or build.failed)"
        )
    return "msg." + n


def addresses(agent: str, held) -> list[str]:
    """An agent's inbox addresses: its own name, '*', then the workers it holds (sorted)."""
    out = []
    for a in (agent, BROADCAST, *sorted(held)):
        if a not in out:
            out.append(a)
    return out


def ack_chunks(ids: list[str], blob_threshold: int) -> list[list[str]]:
    """The ids of one acknowledgement, in as many inbox.acked payloads as keep each under
    the blob threshold (a payload over it would travel as a blob, which may lag behind)."""
    per = max(1, (blob_threshold - 16) // ID_CHARS)
    return [ids[i : i + per] for i in range(0, len(ids), per)]


def acked_ids(env, blobs) -> list[str]:
    """The ids an inbox.acked event acknowledges for its sender: none unless it is from the
    agent to itself (nobody acknowledges for another), nor while its blob is missing."""
    if env.type != ACKED or env.from_ != env.to:
        return []
    payload = env.payload
    if is_ref(payload):
        payload = readable(env, blobs).payload
        if is_ref(payload):
            return []  # unresolved: `verify` reports the blob; a rebuild takes it once it arrives
    ids = payload.get("ids")
    return [i for i in ids if isinstance(i, str) and ID_RE.match(i)] if isinstance(ids, list) else []


def project(tx, ev) -> None:
    """The projector: record what an inbox.acked event acknowledges, inside its transaction."""
    if ev.env.type == ACKED:
        ids = acked_ids(ev.env, tx.store.blobs)
        if ids:
            tx.record_acks(ev.env.from_, ids)


PAGE = 5000


def rebuild(store) -> int:
    """Every acknowledgement again from the inbox.acked events, in one write transaction
    (readers see the old set or the new). Returns how many events were read. Each agent's
    ids are recorded at once: the same acknowledgements, and the same watermarks (each is
    where the last acknowledgement touching its address left it, and acknowledgements
    only add)."""

    def redo(tx):
        tx.reset_acks()
        n, after, by_agent = 0, 0, {}
        while rows := tx.events(EventQuery(types=type_filter([ACKED]), after_seq=after, limit=PAGE)):
            after = rows[-1].seq
            for r in rows:
                ids = acked_ids(r.env, store.blobs)
                if ids:
                    by_agent.setdefault(r.from_, {}).update(dict.fromkeys(ids))
            n += len(rows)
        for agent, ids in by_agent.items():
            tx.record_acks(agent, list(ids))
        return n

    return store.transact(redo)
