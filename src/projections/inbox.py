"""Inboxes: which messages an agent has not acknowledged yet, and its durable cursors.

An agent's inbox is the union of its addresses: its own name, `*` (broadcasts, except its
own), and every worker it holds (a message to a worker reaches whoever holds it). Per
(agent, address), `cursors.seq` is a watermark: every message to that address at or below
it is acknowledged. Cursors are per agent, so each agent acknowledges a broadcast for
itself. `msg_acks` holds acknowledgements above the watermark (`poll --type` takes
messages out of order); they fold into the watermark once contiguous. `seq` is assigned
inside the write transaction, so a message committed later always has a higher seq:
moving a watermark never skips one.

Cursors are local reading positions, like a consumer offset: they are not events, not in
the audit file, and not shared between clones.
"""

import re
from collections import defaultdict

from ..events.errors import UsageError
from ..events.shapes import BROADCAST, recipient_ok

NAME_RE = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\Z")
_MSG = ("msg.", "msg/")  # type >= 'msg.' AND type < 'msg/': every msg.* type, by index


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


def type_filter(types) -> tuple[str, list]:
    """--type filters: names or globs, with or without the msg. prefix."""
    if not types:
        return "", []
    ors, args = [], []
    for t in types:
        full = t if t.startswith("msg.") else "msg." + t
        ors.append("type GLOB ?" if any(ch in t for ch in "*?[") else "type = ?")
        args.append(full)
    return " AND (" + " OR ".join(ors) + ")", args


def addresses(conn, agent: str) -> list[str]:
    held = [
        r[0] for r in conn.execute("SELECT worker FROM workers WHERE holder = ? ORDER BY worker", (agent,))
    ]
    out = []
    for a in (agent, BROADCAST, *held):
        if a not in out:
            out.append(a)
    return out


def cursors(conn, agent: str) -> dict[str, int]:
    return dict(conn.execute("SELECT address, seq FROM cursors WHERE agent = ?", (agent,)))


def _address_query(agent: str, address: str, after: int) -> tuple[str, list]:
    sql = 'SELECT seq, id, body, "to" FROM events WHERE "to" = ? AND seq > ? AND type >= ? AND type < ?'
    args = [address, after, *_MSG]
    if address == BROADCAST:
        sql += ' AND "from" != ?'
        args.append(agent)
    sql += (
        " AND NOT EXISTS (SELECT 1 FROM msg_acks k WHERE k.agent = ? AND k.address = ? "
        "AND k.seq = events.seq)"
    )
    args += [agent, address]
    return sql, args


def pending(conn, agent: str, types=(), limit: int | None = None) -> list[tuple]:
    """Unacknowledged messages for agent, oldest first: (seq, id, body, to) rows."""
    cur = cursors(conn, agent)
    tsql, targs = type_filter(types)
    parts, args = [], []
    for a in addresses(conn, agent):
        sql, a_args = _address_query(agent, a, cur.get(a, 0))
        parts.append(sql + tsql)
        args += a_args + targs
    sql = " UNION ALL ".join(parts) + " ORDER BY seq"
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    return conn.execute(sql, args).fetchall()


def _set_cursor(conn, agent: str, address: str, seq: int) -> None:
    conn.execute(
        "INSERT INTO cursors(agent, address, seq) VALUES (?,?,?) "
        "ON CONFLICT(agent, address) DO UPDATE SET seq = max(seq, excluded.seq)",
        (agent, address, seq),
    )
    conn.execute("DELETE FROM msg_acks WHERE agent = ? AND address = ? AND seq <= ?", (agent, address, seq))


def _compact(conn, agent: str, address: str) -> None:
    """Move the watermark over acknowledged messages that are now contiguous."""
    cur = cursors(conn, agent).get(address, 0)
    sql, args = _address_query(agent, address, cur)
    row = conn.execute(sql + " ORDER BY seq LIMIT 1", args).fetchone()
    if row is not None:
        new = row[0] - 1
    else:
        new = conn.execute(
            "SELECT coalesce(max(seq), 0) FROM msg_acks WHERE agent = ? AND address = ?", (agent, address)
        ).fetchone()[0]
    if new > cur:
        _set_cursor(conn, agent, address, new)


def acknowledge(conn, agent: str, delivered) -> None:
    """Acknowledge delivered (seq, to) pairs (inside a write transaction)."""
    by_addr = defaultdict(list)
    for seq, to in delivered:
        by_addr[to].append(seq)
    for address, seqs in by_addr.items():
        conn.executemany(
            "INSERT OR IGNORE INTO msg_acks(agent, address, seq) VALUES (?,?,?)",
            [(agent, address, s) for s in seqs],
        )
        _compact(conn, agent, address)


def acknowledge_upto(conn, agent: str, seq: int) -> None:
    """Everything for agent at or below seq counts as acknowledged (`coord ack EVENT`)."""
    for address in addresses(conn, agent):
        _set_cursor(conn, agent, address, seq)
        _compact(conn, agent, address)
