"""The PostgreSQL store's reads (coord.events.store.Reader): every SELECT it runs, the
translation of the search language to tsquery, and the audit marks of one checkout.

Each query is shaped for an index of src/events/pg/schema.sql. Reads run on the store's
connection: inside a write transaction (PgTx, which first sends the writes it holds), in a
read-only snapshot (Store.read), or each statement on its own (Store.reader).
"""

import re

from .errors import UsageError
from .pg_board import BOARD_COLS, PgBoardReads
from .pg_graph import VIEW_COLS, PgGraphReads, view_row
from .pg_inbox import PgInboxReads, type_clause
from .records import HEARTBEAT, EventQuery, Row, SearchHit, ViewRow
from .store import Reader

EVENT_COLS = 'seq, id, ts, "from", "to", type, worker, body, origin, audit, stored'
# An event as read: its audit column is this checkout's mark (the first parameter).
READ_COLS = EVENT_COLS.replace("audit", "coord.mark(%s, seq, audit)")


def event_query_sql(q: EventQuery, checkout: str, what: str = READ_COLS) -> tuple[str, list]:
    where, args = [], [checkout] if "%s" in what else []
    for cond, value in (
        ("worker = %s", q.worker),
        ('"from" = %s', q.from_),
        ('"to" = %s', q.to),
        ("seq <= %s", q.upto_seq),
        ("ts >= %s", q.since_ts),
        ("ts > %s", q.later_than_ts),
    ):
        if value is not None:
            where.append(cond)
            args.append(value)
    if q.after_seq:
        where.append("seq > %s")
        args.append(q.after_seq)
    if q.after_key is not None:
        where.append("(ts, id) > (%s, %s)")
        args += list(q.after_key)
    if q.upto_key is not None:
        where.append("(ts, id) <= (%s, %s)")
        args += list(q.upto_key)
    if q.lifecycle:
        where.append("worker IS NOT NULL")
    if not q.heartbeats:
        where.append(f"type <> '{HEARTBEAT}'")
    if q.blob_refs:
        where.append("position('\"$blob\"'::bytea in body) > 0")
    if q.types is not None:
        clause, targs = type_clause(q.types)
        where.append(clause)
        args += targs
    sql = f"SELECT {what} FROM coord.events" + (" WHERE " + " AND ".join(where) if where else "")
    if what.startswith("count("):
        return sql, args
    order = "seq" if q.by == "seq" else "ts, id"
    if q.last:
        order = "seq DESC" if q.by == "seq" else "ts DESC, id DESC"
    sql += f" ORDER BY {order}"
    if q.limit is not None:
        sql += " LIMIT %s"
        args.append(q.limit)
    return sql, args


def _row(t) -> Row:
    return Row(*t[:7], bytes(t[7]), *t[8:])


class PgReader(PgGraphReads, PgBoardReads, PgInboxReads, Reader):
    """Reads over the store's connection (see the module's docstring)."""

    def __init__(self, store):
        self.store = store

    def _before_read(self) -> None:
        """A write transaction sends the writes it holds first (reads see them)."""

    def _all(self, sql: str, args=()) -> list:
        self._before_read()
        return self.store.run(sql, args, fetch=True)

    def _one(self, sql: str, args=()):
        rows = self._all(sql, args)
        return rows[0] if rows else None

    # --- events ------------------------------------------------------------------------
    def max_seq(self) -> int:
        return self._one("SELECT coalesce(max(seq), 0) FROM coord.events")[0]

    def events(self, q: EventQuery) -> list[Row]:
        rows = [_row(t) for t in self._all(*event_query_sql(q, self.store.checkout))]
        return rows[::-1] if q.last else rows

    def count(self, q: EventQuery) -> int:
        return self._one(*event_query_sql(q, "", "count(*)"))[0]

    def event_at(self, seq: int) -> Row | None:
        t = self._one(f"SELECT {READ_COLS} FROM coord.events WHERE seq = %s", (self.store.checkout, seq))
        return _row(t) if t else None

    def find_events(self, prefix: str, limit: int = 11, upto_seq: int | None = None) -> list[Row]:
        sql = f"SELECT {READ_COLS} FROM coord.events WHERE id >= %s AND id < %s"
        args = [self.store.checkout, prefix, prefix + "g"]
        if upto_seq is not None:
            sql += " AND seq <= %s"
            args.append(upto_seq)
        return [_row(t) for t in self._all(sql + " ORDER BY id LIMIT %s", args + [limit])]

    def nth_event(self, n: int, upto_seq: int | None = None) -> Row | None:
        sql, args = f"SELECT {READ_COLS} FROM coord.events", [self.store.checkout]
        if upto_seq is not None:
            sql += " WHERE seq <= %s"
            args.append(upto_seq)
        t = self._one(sql + " ORDER BY ts, id LIMIT 1 OFFSET %s", args + [n - 1])
        return _row(t) if t else None

    def known_ids(self, ids: list[str]) -> set[str]:
        rows = self._all("SELECT id FROM coord.events WHERE id = ANY(%s)", (list(ids),))
        return {r[0] for r in rows}

    # --- views -------------------------------------------------------------------------
    def view(self, worker: str) -> bytes | None:
        t = self._one("SELECT view FROM coord.workers WHERE worker = %s", (worker,))
        return bytes(t[0]) if t else None

    def views(
        self, states=None, holder=None, naming=None, assignable_by=None, limit=None, board=False
    ) -> list[ViewRow]:
        where, args = [], []
        if states is not None:
            where.append("state = ANY(%s)")
            args.append(sorted(states))
        if holder is not None:
            where.append("holder = %s")
            args.append(holder)
        if naming is not None:
            where.append("(branch = %s OR base = %s)")
            args += [naming, naming]
        if assignable_by is not None:
            where.append("(assignee IS NULL OR assignee = %s)")
            args.append(assignable_by)
        cols = f"{VIEW_COLS}, {BOARD_COLS}" if board else VIEW_COLS
        sql = f"SELECT {cols} FROM coord.workers" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created, worker"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        return [view_row(t) for t in self._all(sql, args)]

    def worker_ids(self, prefix: str, limit: int = 11) -> list[str]:
        rows = self._all(
            "SELECT worker FROM coord.workers WHERE worker >= %s AND worker < %s ORDER BY worker LIMIT %s",
            (prefix, prefix + "\U0010ffff", limit),
        )
        return [r[0] for r in rows]

    def position(self, name: str) -> int:
        t = self._one("SELECT last_seq FROM coord.projection_state WHERE name = %s", (name,))
        return t[0] if t else 0

    # --- request ids and bookkeeping ----------------------------------------------------
    def request(self, actor: str, key: str) -> bytes | None:
        t = self._one("SELECT result FROM coord.request_ids WHERE actor = %s AND key = %s", (actor, key))
        return bytes(t[0]) if t else None

    def meta(self, keys) -> dict[str, str]:
        """The log's values, and (keys starting `audit_`) this checkout's audit record."""
        keys = list(keys)
        rows = self._all(
            "SELECT key, value FROM coord.meta WHERE key = ANY(%(k)s) AND key NOT LIKE 'audit\\_%%' "
            "UNION ALL SELECT key, value FROM coord.checkout_meta WHERE checkout = %(co)s "
            "AND key = ANY(%(k)s)",
            {"k": keys, "co": self.store.checkout},
        )
        return dict(rows)

    # --- search ------------------------------------------------------------------------
    def search(self, query, types, from_, to, limit) -> list[SearchHit]:
        tsq = to_tsquery(query)
        where, args = ["s.tsv @@ to_tsquery('coord.search', %s)"], [tsq]
        if types is not None:
            clause, targs = type_clause(types, "e.type")
            where.append(clause)
            args += targs
        if from_:
            where.append('e."from" = %s')
            args.append(from_)
        if to:
            where.append('e."to" = %s')
            args.append(to)
        sql = (
            'SELECT e.seq, e.id, e.ts, e."from", e."to", e.type, '
            "-ts_rank(s.tsv, to_tsquery('coord.search', %s)) AS rank "
            "FROM coord.search s JOIN coord.events e ON e.seq = s.seq WHERE "
            + " AND ".join(where)
            + " ORDER BY rank, e.seq LIMIT %s"
        )
        return [SearchHit(*r) for r in self._all(sql, [tsq, *args, limit])]

    def search_text(self, seq: int) -> tuple[str, str] | None:
        t = self._one("SELECT type, text FROM coord.search WHERE seq = %s", (seq,))
        return (t[0] or "", t[1] or "") if t else None

    def search_count(self) -> int:
        return self._one("SELECT count(*) FROM coord.search")[0]

    # --- this checkout's audit marks ---------------------------------------------------
    def _marks(self, after_seq, upto_seq, limit, what: str, dirty: bool = False) -> list:
        if dirty:
            return self._dirty(after_seq, upto_seq, limit, what)
        p = {"co": self.store.checkout, "after": after_seq}
        sql = (
            f"SELECT {what} FROM (SELECT e.*, coord.mark(%(co)s, e.seq, e.audit) AS mark FROM coord.events e "
        )
        sql += "WHERE e.audit = 1 AND e.seq > %(after)s"
        if upto_seq is not None:
            sql += " AND e.seq <= %(upto_seq)s"
            p["upto_seq"] = upto_seq
        sql += ") x" + (" WHERE mark = 1" if dirty else "") + " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT %(limit)s"
            p["limit"] = limit
        return self._all(sql, p)

    def _dirty(self, after_seq, upto_seq, limit, what: str) -> list:
        """Dirty events by two index ranges (the exporter's per-command query): above the
        checkout's record and not marked written, and below it marked dirty again."""
        p = {
            "co": self.store.checkout,
            "after": after_seq,
            "hi": upto_seq or 1 << 62,
            "lim": limit or 1 << 62,
        }
        sel = what.replace("mark", "1::smallint AS mark")
        upto = "coalesce((SELECT upto FROM coord.checkouts WHERE checkout = %(co)s), 0)"
        marked = "SELECT m.seq FROM coord.checkout_marks m WHERE m.checkout = %(co)s AND m.mark = "
        sql = (
            f"(SELECT {sel} FROM coord.events e WHERE e.audit = 1 AND e.seq > greatest(%(after)s, {upto}) "
            f"AND e.seq <= %(hi)s AND e.seq NOT IN ({marked}2) ORDER BY e.seq LIMIT %(lim)s) UNION ALL "
            f"(SELECT {sel} FROM coord.events e WHERE e.audit = 1 AND e.seq > %(after)s "
            f"AND e.seq <= least(%(hi)s, {upto}) AND e.seq IN ({marked}1) ORDER BY e.seq LIMIT %(lim)s) "
            "ORDER BY seq LIMIT %(lim)s"
        )
        return self._all(sql, p)

    def audit_rows(self, after_seq=0, upto_seq=None, dirty_only=False, limit=None) -> list[Row]:
        what = EVENT_COLS.replace("audit", "mark")
        return [_row(t) for t in self._marks(after_seq, upto_seq, limit, what, dirty_only)]

    def audit_marks(self, after_seq=0, limit=None) -> list[tuple[int, str, int]]:
        return [tuple(t) for t in self._marks(after_seq, None, limit, "seq, id, mark")]

    def any_dirty(self) -> bool:
        return self._dirty_possible() and bool(self._marks(0, None, 1, "seq", True))

    def _dirty_possible(self) -> bool:
        """One cheap look: an event for the file above this checkout's record, or a mark."""
        return self._one(DIRTY_POSSIBLE, {"co": self.store.checkout})[0]


# An event for this checkout's audit file above its record, or one marked dirty.
DIRTY_POSSIBLE = (
    "SELECT EXISTS (SELECT 1 FROM coord.events e WHERE e.audit = 1 AND e.seq > coalesce("
    "(SELECT upto FROM coord.checkouts WHERE checkout = %(co)s), 0)) OR EXISTS (SELECT 1 FROM "
    "coord.checkout_marks WHERE checkout = %(co)s AND mark = 1)"
)


# --- the search language on PostgreSQL: the common subset --------------------------------
_TOKEN = re.compile(r'\s*(?:(")((?:[^"]|"")*)"|(\()|(\))|([^\s()"]+))')
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _lexemes(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _quote(w: str) -> str:
    return "'" + w.replace("'", "''").replace("\\", "\\\\") + "'"


def to_tsquery(query: str) -> str:
    """words, "phrases", prefix*, AND / OR / NOT, parentheses -> a tsquery for the `simple`
    configuration (words split as the index splits them). NEAR and column filters are not
    in the common subset: exit 2."""
    out: list[str] = []
    pos, need_op = 0, False
    bad = UsageError
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if m is None or m.end() == pos:
            if query[pos:].strip() == "":
                break
            raise bad(f"bad search query {query!r}: cannot read it at {query[pos : pos + 10]!r}")
        pos = m.end()
        quoted, phrase, lp, rp, word = m.groups()
        if word in ("AND", "OR", "NOT"):
            if not need_op:
                raise bad(f"bad search query {query!r}: {word} needs a term before it")
            out.append({"AND": "&", "OR": "|", "NOT": "& !"}[word])
            need_op = False
            continue
        if word is not None and (word.startswith("NEAR") or ":" in word):
            raise bad(
                f"bad search query {query!r}: NEAR and column filters are not supported on a "
                'PostgreSQL store (words, "phrases", prefix*, AND, OR, NOT)'
            )
        if rp:
            out.append(")")
            need_op = True
            continue
        if need_op:
            out.append("&")
        if lp:
            out.append("(")
            need_op = False
            continue
        prefix = word is not None and word.endswith("*")
        words = _lexemes(phrase.replace('""', '"') if quoted else word.rstrip("*"))
        if not words:
            raise bad(f"bad search query {query!r}: {m.group(0).strip()!r} holds no word")
        term = " <-> ".join(_quote(w) for w in words)
        if prefix:
            term = term[:-1] + "':*" if len(words) == 1 else term + ":*"
        out.append(f"({term})" if len(words) > 1 else term)
        need_op = True
    if not out or not need_op:
        raise bad(f"bad search query {query!r}: it ends without a term")
    return " ".join(out)
