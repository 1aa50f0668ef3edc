"""The PostgreSQL store's inboxes and notices (coord.events.store and store_notices):
which ids each agent acknowledged (coord.acks, the projection of inbox.acked events), a
watermark per (agent, address) so the inbox read starts past what is all acknowledged
(coord.cursors), and the notices projection (coord.notices).

Mixed into PgReader (reads) and PgTx (writes); `_all`, `_one`, `_w` and `store` are theirs.
A PgTx sends the writes it holds before each read, so a read after record_acks sees them.
"""

from .records import Notice, Row, _regex, is_glob
from .shapes import BROADCAST

EVENT_COLS = 'seq, id, ts, "from", "to", type, worker, body, origin, audit, stored'
MSG_RANGE = ("msg.", "msg/")  # type >= 'msg.' AND type < 'msg/': every msg.* type, by index


def type_clause(types, column: str = "type") -> tuple[str, list]:
    """`--type` patterns: exact names by equality, globs by a regular expression that reads
    them as SQLite's GLOB does (coord.events.records.TypeFilter.matches)."""
    if not types.patterns:
        return "false", []
    ors, args = [], []
    for p in types.patterns:
        if is_glob(p):
            ors.append(f"{column} ~ %s")
            args.append("^(?:" + _regex(p).pattern + ")$")
        else:
            ors.append(f"{column} = %s")
            args.append(p)
    return "(" + " OR ".join(ors) + ")", args


def _event_cols(alias: str) -> str:
    """An event's columns as read: its audit column is this checkout's mark (a parameter)."""
    cols = [f"{alias}.{c}" for c in EVENT_COLS.split(", ")]
    cols[9] = f"coord.mark(%s, {alias}.seq, {alias}.audit)"
    return ", ".join(cols)


def _row(t) -> Row:
    return Row(*t[:7], bytes(t[7]), *t[8:11])


def pending_sql(agent: str, address: str, after: int | None, checkout: str | None = None) -> tuple[str, list]:
    """Unacknowledged msg.* events to one address after a watermark (`after`; None: the
    agent's stored one, read in the same statement), only their seq when no checkout is
    given (the watermark's move)."""
    what, args = (_event_cols("e"), [checkout]) if checkout is not None else ("e.seq", [])
    if after is None:
        above = "coalesce((SELECT c.seq FROM coord.cursors c WHERE c.agent = %s AND c.address = %s), 0)"
        after_args = [agent, address]
    else:
        above, after_args = "%s", [after]
    sql = (
        f'SELECT {what} FROM coord.events e WHERE e."to" = %s AND e.seq > {above} '
        "AND e.type >= %s AND e.type < %s"
    )
    args += [address, *after_args, *MSG_RANGE]
    if address == BROADCAST:
        sql += ' AND e."from" <> %s'
        args.append(agent)
    sql += " AND NOT EXISTS (SELECT 1 FROM coord.acks k WHERE k.agent = %s AND k.id = e.id)"
    args.append(agent)
    return sql, args


class PgInboxReads:
    def cursors(self, agent: str) -> dict[str, int]:
        return dict(self._all("SELECT address, seq FROM coord.cursors WHERE agent = %s", (agent,)))

    def pending_messages(self, agent, addresses, types, limit) -> list[Row]:
        parts, args = [], []
        tsql, targs = type_clause(types, "e.type") if types is not None else ("", [])
        for address in addresses:
            sql, a_args = pending_sql(agent, address, None, self.store.checkout)
            parts.append(sql + (f" AND {tsql}" if tsql else ""))
            args += a_args + targs
        if not parts:
            return []
        sql = " UNION ALL ".join(f"({p})" for p in parts) + " ORDER BY seq"
        if limit:
            sql += " LIMIT %s"
            args.append(limit)
        return [_row(t) for t in self._all(sql, args)]

    def acked(self, agent: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        rows = self._all("SELECT id FROM coord.acks WHERE agent = %s AND id = ANY(%s)", (agent, list(ids)))
        return {r[0] for r in rows}

    # --- notices ---------------------------------------------------------------------------
    def pending_notices(self, agent, types, limit):
        sql = (
            f"SELECT {_event_cols('e')}, n.attempt, n.reason FROM coord.notices n "
            "JOIN coord.events e ON e.seq = n.seq WHERE n.agent = %s AND NOT n.acked "
            "AND NOT EXISTS (SELECT 1 FROM coord.acks a WHERE a.agent = n.agent AND a.id = e.id)"
        )
        args = [self.store.checkout, agent]
        if types is not None:
            clause, targs = type_clause(types, "e.type")
            sql += f" AND {clause}"
            args += targs
        sql += " ORDER BY n.seq"
        if limit:
            sql += " LIMIT %s"
            args.append(limit)
        out = []
        for t in self._all(sql, args):
            row = _row(t)
            out.append((row, Notice(row.seq, agent, row.worker, t[11], t[12])))
        return out

    def notices_of(self, worker):
        rows = self._all(
            "SELECT seq, agent, worker, attempt, reason FROM coord.notices WHERE worker = %s ORDER BY seq",
            (worker,),
        )
        return [Notice(*t) for t in rows]


class PgInboxWrites:
    def record_acks(self, agent, ids) -> None:
        ids = list(ids)
        if not ids:
            return
        self._w(
            "INSERT INTO coord.acks (agent, id) SELECT %s, i FROM unnest(%s::text[]) i ON CONFLICT DO NOTHING",
            (agent, ids),
        )
        addresses = self._all(
            'SELECT DISTINCT "to" FROM coord.events WHERE id = ANY(%s) AND type >= %s AND type < %s',
            (ids, *MSG_RANGE),
        )
        cursors = self.cursors(agent) if addresses else {}
        for (address,) in addresses:  # move each watermark over what is contiguous
            cur = cursors.get(address, 0)
            sql, args = pending_sql(agent, address, cur)
            row = self._one(sql + " ORDER BY e.seq LIMIT 1", args)
            if row is not None:
                new = row[0] - 1
            else:
                new = self._one(
                    'SELECT coalesce(max(seq), 0) FROM coord.events WHERE "to" = %s AND seq > %s '
                    "AND type >= %s AND type < %s",
                    (address, cur, *MSG_RANGE),
                )[0]
            if new > cur:
                self._w(
                    "INSERT INTO coord.cursors AS c (agent, address, seq) VALUES (%s, %s, %s) "
                    "ON CONFLICT (agent, address) DO UPDATE SET seq = greatest(c.seq, EXCLUDED.seq)",
                    (agent, address, new),
                )

    def reset_acks(self) -> None:
        self._w("DELETE FROM coord.acks")
        self._w("DELETE FROM coord.cursors")

    # --- notices ---------------------------------------------------------------------------
    def put_notices(self, rows) -> None:
        if rows:
            self._w(
                "INSERT INTO coord.notices (seq, agent, worker, attempt, reason) VALUES (%s,%s,%s,%s,%s) "
                "ON CONFLICT (agent, seq) DO NOTHING",
                [(n.seq, n.agent, n.worker, n.attempt, n.reason) for n in rows],
                True,
            )

    def drop_notices(self, keys) -> None:
        if keys:
            self._w("DELETE FROM coord.notices WHERE agent = %s AND seq = %s", [tuple(k) for k in keys], True)

    def ack_notices(self, agent, seqs=None, through=None) -> None:
        if seqs:
            self._w(
                "UPDATE coord.notices SET acked = true WHERE agent = %s AND seq = ANY(%s::bigint[])",
                (agent, list(seqs)),
            )
        if through is not None:
            self._w(
                "UPDATE coord.notices SET acked = true WHERE agent = %s AND seq <= %s AND NOT acked",
                (agent, through),
            )
