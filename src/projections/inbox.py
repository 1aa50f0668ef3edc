"""Inboxes: an agent's addresses and the rules of message names and recipients. The store
keeps the cursors (coord.events.store: pending_messages, ack_messages, ack_through).

An agent's inbox is the union of its addresses: its own name, `*` (broadcasts, except its
own), and every worker it holds (a message to a worker reaches whoever holds it). Per
(agent, address), the store keeps a watermark: every message to that address at or below
it is acknowledged. Cursors are per agent, so each agent acknowledges a broadcast for
itself. Acknowledgements above the watermark are kept too (`poll --type` takes messages
out of order); they fold into the watermark once contiguous. `seq` is assigned
inside the write transaction, so a message committed later always has a higher seq:
moving a watermark never skips one.

Cursors are local reading positions, like a consumer offset: they are not events, not in
the audit file, and not shared between clones.
"""

import re

from ..events.errors import UsageError
from ..events.shapes import BROADCAST, recipient_ok

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
