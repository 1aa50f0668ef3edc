"""The SQLite store's reads (coord.events.store.Reader): every SELECT of the project.

Each query is shaped for an index the schema keeps (coord.events.sqlite_schema): events by
(ts, id), by (worker, ts, id) and its partial twin without heartbeats, by type, from, to,
the dirty list; views by (state, created), holder, branch and base.
"""

import sqlite3

from .errors import UsageError
from .records import HEARTBEAT, EventQuery, Notice, Row, SearchHit, TypeFilter, ViewRow, board_row, is_glob
from .shapes import BROADCAST
from .sqlite_board import BOARD_COLS, BoardReads
from .sqlite_graph import GraphReads
from .sqlite_rebuild import SqliteRebuildReads
from .store import Reader

EVENT_COLS = 'seq, id, ts, "from", "to", type, worker, body, origin, audit, stored'
VIEW_COLS = "worker, state, holder, assignee, created, updated, branch, base, worktree, view, ready, priority, waiting"
MSG_RANGE = ("msg.", "msg/")  # type >= 'msg.' AND type < 'msg/': every msg.* type, by index
LOOKUP_BATCH = 500


def type_clause(types: TypeFilter, column: str = "type") -> tuple[str, list]:
    """`--type` patterns as SQL: exact names by equality, globs by GLOB (the same rule as
    TypeFilter.matches). No pattern matches nothing."""
    if not types.patterns:
        return "0", []
    ors = [f"{column} GLOB ?" if is_glob(p) else f"{column} = ?" for p in types.patterns]
    return "(" + " OR ".join(ors) + ")", list(types.patterns)


NOT_BEAT = f"type != '{HEARTBEAT}'"  # literally the partial indexes' condition (0004, 0011)
IS_BEAT = f"type = '{HEARTBEAT}'"  # events_beats' condition


def event_query_sql(q: EventQuery, what: str = EVENT_COLS) -> tuple[str, list]:
    """The SELECT for an EventQuery (tests read its query plan).

    The type, from and to indexes leave heartbeats out (migration 0011). A query that
    filters on one of those and may include heartbeats reads in two arms, merged in order
    by SQLite: the other events through those indexes, the heartbeats through events_beats
    (by actor) or events_worker (a heartbeat's `to` is its worker)."""
    where, args = [], []
    if q.worker is not None:
        where.append("worker = ?")
        args.append(q.worker)
    if q.from_ is not None:
        where.append('"from" = ?')
        args.append(q.from_)
    if q.to is not None:
        where.append('"to" = ?')
        args.append(q.to)
    if q.after_seq:
        where.append("seq > ?")
        args.append(q.after_seq)
    if q.upto_seq is not None:
        where.append("seq <= ?")
        args.append(q.upto_seq)
    if q.after_key is not None:
        where.append("(ts, id) > (?, ?)")
        args += list(q.after_key)
    if q.upto_key is not None:
        where.append("(ts, id) <= (?, ?)")
        args += list(q.upto_key)
    if q.since_ts is not None:
        where.append("ts >= ?")
        args.append(q.since_ts)
    if q.later_than_ts is not None:
        where.append("ts > ?")
        args.append(q.later_than_ts)
    if q.lifecycle:
        where.append("worker IS NOT NULL")
    if q.blob_refs:
        where.append("instr(body, ?) > 0")
        args.append(b'"$blob"')
    arms = []
    if q.heartbeats and q.worker is None and (q.from_ is not None or q.to is not None or q.types is not None):
        if q.types is None or q.types.matches(HEARTBEAT):
            beat_where, beat_args = [*where, IS_BEAT], list(args)
            if q.to is not None:  # through events_worker
                beat_where.append("worker = ?")
                beat_args.append(q.to)
            arms.append((beat_where, beat_args))
        where.append(NOT_BEAT)
    elif not q.heartbeats:
        where.append(NOT_BEAT)
    if q.types is not None:
        clause, targs = type_clause(q.types)
        where.append(clause)
        args += targs
    arms.insert(0, (where, args))
    selects = [f"SELECT {what} FROM events" + (" WHERE " + " AND ".join(w) if w else "") for w, _ in arms]
    args = [a for _, arm_args in arms for a in arm_args]
    if what.startswith("count("):
        return "SELECT " + " + ".join(f"({sel})" for sel in selects), args
    sql = " UNION ALL ".join(selects)
    order = "seq" if q.by == "seq" else "ts, id"
    if q.last:
        order = "seq DESC" if q.by == "seq" else "ts DESC, id DESC"
    sql += f" ORDER BY {order}"
    if q.limit is not None:
        sql += " LIMIT ?"
        args.append(q.limit)
    return sql, args


class SqliteReader(GraphReads, BoardReads, SqliteRebuildReads, Reader):
    """Reads over one connection: inside BEGIN … COMMIT (Store.read), inside a write
    transaction (SqliteTx), or each statement on its own (Store.reader)."""

    query_sql = staticmethod(event_query_sql)

    def __init__(self, conn, translate):
        self.conn = conn
        self._translate = translate  # sqlite3 error -> CoordError naming the home

    def _all(self, sql: str, args=()) -> list:
        try:
            return self.conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as e:
            raise self._translate(e) from None

    def _one(self, sql: str, args=()):
        try:
            return self.conn.execute(sql, args).fetchone()
        except sqlite3.DatabaseError as e:
            raise self._translate(e) from None

    # --- events ------------------------------------------------------------------------
    def max_seq(self) -> int:
        return self._one("SELECT coalesce(max(seq), 0) FROM events")[0]

    def events(self, q: EventQuery) -> list[Row]:
        rows = [Row(*t) for t in self._all(*event_query_sql(q))]
        return rows[::-1] if q.last else rows

    def count(self, q: EventQuery) -> int:
        return self._one(*event_query_sql(q, "count(*)"))[0]

    def event_at(self, seq: int) -> Row | None:
        t = self._one(f"SELECT {EVENT_COLS} FROM events WHERE seq = ?", (seq,))
        return Row(*t) if t else None

    def find_events(self, prefix: str, limit: int = 11, upto_seq: int | None = None) -> list[Row]:
        sql = f"SELECT {EVENT_COLS} FROM events WHERE id >= ? AND id < ?"
        args = [prefix, prefix + "g"]
        if upto_seq is not None:
            sql += " AND seq <= ?"
            args.append(upto_seq)
        return [Row(*t) for t in self._all(sql + " ORDER BY id LIMIT ?", args + [limit])]

    def nth_event(self, n: int, upto_seq: int | None = None) -> Row | None:
        sql, args = f"SELECT {EVENT_COLS} FROM events", []
        if upto_seq is not None:
            sql += " WHERE seq <= ?"
            args.append(upto_seq)
        t = self._one(sql + " ORDER BY ts, id LIMIT 1 OFFSET ?", args + [n - 1])
        return Row(*t) if t else None

    def known_ids(self, ids: list[str]) -> set[str]:
        found = set()
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            rows = self._all(f"SELECT id FROM events WHERE id IN ({','.join('?' * len(part))})", part)
            found.update(r[0] for r in rows)
        return found

    # --- views -------------------------------------------------------------------------
    def view(self, worker: str) -> bytes | None:
        t = self._one("SELECT view FROM workers WHERE worker = ?", (worker,))
        return t[0] if t else None

    def views(
        self, states=None, holder=None, naming=None, assignable_by=None, limit=None, board=False
    ) -> list[ViewRow]:
        where, args = [], []
        if states is not None:
            states = sorted(states)
            where.append(f"state IN ({','.join('?' * len(states))})")
            args += states
        if holder is not None:
            where.append("holder = ?")
            args.append(holder)
        if naming is not None:
            where.append("(branch = ? OR base = ?)")
            args += [naming, naming]
        if assignable_by is not None:
            where.append("(assignee IS NULL OR assignee = ?)")
            args.append(assignable_by)
        cols = f"{VIEW_COLS}, {BOARD_COLS}" if board else VIEW_COLS
        sql = f"SELECT {cols} FROM workers" + (" WHERE " + " AND ".join(where) if where else "")
        if limit is None:
            # Sorted here: SQLite's sorter would copy every view's bytes (half the time of
            # `status --all` at 10,000 workers); (created, worker) is unique.
            rows = self._all(sql, args)
            rows.sort(key=lambda t: (t[4], t[0]))
            return [_view_row(t) for t in rows]
        sql += " ORDER BY created, worker LIMIT ?"
        args.append(limit)
        return [_view_row(t) for t in self._all(sql, args)]

    def worker_ids(self, prefix: str, limit: int = 11) -> list[str]:
        rows = self._all(
            "SELECT worker FROM workers WHERE worker >= ? AND worker < ? ORDER BY worker LIMIT ?",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    def position(self, name: str) -> int:
        t = self._one("SELECT last_seq FROM projection_state WHERE name = ?", (name,))
        return t[0] if t else 0

    # --- request ids and bookkeeping ----------------------------------------------------
    def request(self, actor: str, key: str) -> bytes | None:
        t = self._one("SELECT result FROM request_ids WHERE actor = ? AND key = ?", (actor, key))
        return t[0] if t else None

    def meta(self, keys) -> dict[str, str]:
        keys = list(keys)
        rows = self._all(f"SELECT key, value FROM meta WHERE key IN ({','.join('?' * len(keys))})", keys)
        return dict(rows)

    # --- inboxes -------------------------------------------------------------------------
    def cursors(self, agent: str) -> dict[str, int]:
        """The watermarks (SQLite's own: every message to the address at or below is
        acknowledged by `agent`)."""
        return dict(self._all("SELECT address, seq FROM cursors WHERE agent = ?", (agent,)))

    def pending_messages(self, agent, addresses, types, limit) -> list[Row]:
        after = self.cursors(agent)
        parts, args = [], []
        tsql, targs = type_clause(types) if types is not None else ("", [])
        for address in addresses:
            sql, a_args = pending_sql(agent, address, after.get(address, 0))
            parts.append(sql + (f" AND {tsql}" if tsql else ""))
            args += a_args + targs
        if not parts:
            return []
        sql = " UNION ALL ".join(parts) + " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        return [Row(*t) for t in self._all(sql, args)]

    # --- notices (coord.events.store_notices) ---------------------------------------------
    def pending_notices(self, agent, types, limit):
        cols = ", ".join("e." + c for c in EVENT_COLS.split(", "))
        sql = (
            f"SELECT {cols}, n.attempt, n.reason FROM notices n JOIN events e ON e.seq = n.seq "
            "WHERE n.agent = ? AND n.acked = 0 "
            "AND NOT EXISTS (SELECT 1 FROM acks a WHERE a.agent = n.agent AND a.id = e.id)"
        )
        args = [agent]
        if types is not None:
            clause, targs = type_clause(types, "e.type")
            sql += f" AND {clause}"
            args += targs
        sql += " ORDER BY n.seq"
        if limit:
            sql += " LIMIT ?"
            args.append(limit)
        out = []
        for t in self._all(sql, args):
            row = Row(*t[:11])
            out.append((row, Notice(row.seq, agent, row.worker, t[11], t[12])))
        return out

    def notices_of(self, worker):
        rows = self._all(
            "SELECT seq, agent, worker, attempt, reason FROM notices WHERE worker = ? ORDER BY seq", (worker,)
        )
        return [Notice(*t) for t in rows]

    def acked(self, agent: str, ids: list[str]) -> set[str]:
        found = set()
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            rows = self._all(
                f"SELECT id FROM acks WHERE agent = ? AND id IN ({','.join('?' * len(part))})", [agent, *part]
            )
            found.update(r[0] for r in rows)
        return found

    def _addresses_of(self, ids: list[str]) -> list[str]:
        """The addresses of the messages among these ids (a watermark to move for each)."""
        out = set()
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            rows = self._all(
                f'SELECT DISTINCT "to" FROM events WHERE id IN ({",".join("?" * len(part))}) '
                "AND type >= ? AND type < ?",
                [*part, *MSG_RANGE],
            )
            out.update(r[0] for r in rows)
        return sorted(out)

    def _watermark(self, agent: str, address: str, cur: int) -> int:
        """Where the watermark may move from `cur`: just below the first message to the
        address `agent` has not acknowledged, else the last message there. A message that
        arrives later gets a higher seq, so it never lies below a watermark."""
        sql, args = pending_sql(agent, address, cur)
        row = self._one(sql + " ORDER BY seq LIMIT 1", args)
        if row is not None:
            return row[0] - 1
        return self._one(
            'SELECT coalesce(max(seq), 0) FROM events WHERE "to" = ? AND seq > ? AND type >= ? AND type < ? '
            f"AND {NOT_BEAT}",
            (address, cur, *MSG_RANGE),
        )[0]

    # --- search ------------------------------------------------------------------------
    def search(self, query, types, from_, to, limit) -> list[SearchHit]:
        where, args = ["search MATCH ?"], [query]
        if types is not None:
            clause, targs = type_clause(types, "e.type")
            where.append(clause)
            args += targs
        if from_:
            where.append('e."from" = ?')
            args.append(from_)
        if to:
            where.append('e."to" = ?')
            args.append(to)
        sql = (
            'SELECT e.seq, e.id, e.ts, e."from", e."to", e.type, rank '
            "FROM search JOIN events e ON e.seq = search.rowid WHERE "
            + " AND ".join(where)
            + " ORDER BY rank LIMIT ?"
        )
        try:
            rows = self.conn.execute(sql, args + [limit]).fetchall()
        except sqlite3.OperationalError as e:
            msg = str(e)
            if any(
                w in msg
                for w in ("fts5", "no such column", "syntax error", "unterminated", "unknown special")
            ):
                raise UsageError(
                    f"bad search query {query!r}: {msg} (quote words with punctuation: "
                    "'\"foo-bar\"'; operators: AND OR NOT, prefix*)"
                ) from None
            raise self._translate(e) from None
        except sqlite3.DatabaseError as e:
            raise self._translate(e) from None
        return [SearchHit(*r) for r in rows]

    def search_text(self, seq: int) -> tuple[str, str] | None:
        t = self._one("SELECT type, text FROM search WHERE rowid = ?", (seq,))
        return (t[0] or "", t[1] or "") if t else None

    def search_count(self) -> int:
        return self._one("SELECT count(*) FROM search")[0]

    # --- the audit file's marks --------------------------------------------------------
    def audit_rows(self, after_seq=0, upto_seq=None, dirty_only=False, limit=None) -> list[Row]:
        # `audit = 1` alone is what the partial index events_dirty covers.
        sql = f"SELECT {EVENT_COLS} FROM events WHERE " + ("audit = 1" if dirty_only else "audit != 0")
        args = []
        if after_seq:
            sql += " AND seq > ?"
            args.append(after_seq)
        if upto_seq is not None:
            sql += " AND seq <= ?"
            args.append(upto_seq)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [Row(*t) for t in self._all(sql, args)]

    def audit_marks(self, after_seq=0, limit=None) -> list[tuple[int, str, int]]:
        sql, args = "SELECT seq, id, audit FROM events WHERE audit != 0 AND seq > ? ORDER BY seq", [after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return self._all(sql, args)

    def any_dirty(self) -> bool:
        return self._one("SELECT 1 FROM events WHERE audit = 1 LIMIT 1") is not None


def _view_row(t) -> ViewRow:
    if len(t) == 13:
        return ViewRow(*t[:10], bool(t[10]), t[11], t[12])
    return ViewRow(*t[:10], bool(t[10]), t[11], t[12], board_row(t[13:]))


def pending_sql(agent: str, address: str, after: int) -> tuple[str, list]:
    """Unacknowledged msg.* events to one address after a cursor (shared by the inbox read
    and the cursor's compaction)."""
    sql = f'SELECT {EVENT_COLS} FROM events WHERE "to" = ? AND seq > ? AND type >= ? AND type < ? AND {NOT_BEAT}'
    args = [address, after, *MSG_RANGE]
    if address == BROADCAST:
        sql += ' AND "from" != ?'
        args.append(agent)
    sql += " AND NOT EXISTS (SELECT 1 FROM acks k WHERE k.agent = ? AND k.id = events.id)"
    args.append(agent)
    return sql, args
