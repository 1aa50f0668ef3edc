"""The PostgreSQL store's write transaction (coord.events.store.WriteTx): every INSERT,
UPDATE and DELETE of coord.events.pg_store. Writes wait in the transaction and go to the
server in one pipelined round trip with COMMIT (or before a read, which must see them).
"""

from msgspec.structs import astuple

from .pg_board import BOARD_COLS, SET_BOARD, PgBoardWrites
from .pg_graph import VIEW_COLS, PgGraphWrites
from .pg_inbox import PgInboxWrites
from .pg_reads import EVENT_COLS, PgReader
from .pg_schema import LOCK_CLASS
from .records import AUDIT_WRITTEN, StoredEvent, ViewRow, board_values, worker_of
from .store import WriteTx


class PgTx(PgGraphWrites, PgBoardWrites, PgInboxWrites, PgReader, WriteTx):
    """One optimistic attempt: reads on its snapshot, writes held until COMMIT (or until a
    read, which must see them)."""

    def __init__(self, store, lock_ms: int | None = None):
        PgReader.__init__(self, store)
        self.lock_ms = lock_ms  # take the append lock first, waiting at most this long
        WriteTx.__init__(self, store)
        self.writes: list = []  # (sql, args, many), sent with the next read or with COMMIT
        self.begun = False
        self.pending = True  # after COMMIT: whether an event waits for the audit file

    def _w(self, sql, args=(), many=False) -> None:
        self.writes.append((sql, args, many))

    def opening(self) -> list:
        """BEGIN, the first time something is sent (it travels with the first statement).
        An attempt that takes the append lock first reads in READ COMMITTED: every read
        after the lock is then current, and no append can commit while it holds it (each
        optimistic commit takes the lock shared)."""
        if self.begun:
            return []
        self.begun = True
        if self.lock_ms is None:
            return [("BEGIN ISOLATION LEVEL REPEATABLE READ", (), False)]
        return [
            ("BEGIN ISOLATION LEVEL READ COMMITTED", (), False),
            (f"SET LOCAL lock_timeout = {int(self.lock_ms)}", (), False),
            ("SELECT pg_advisory_xact_lock(%s, 1)", (LOCK_CLASS,), False),
        ]

    def _all(self, sql: str, args=()) -> list:
        if not self.begun or self.writes:  # with BEGIN and the held writes: one round trip
            writes, self.writes = self.opening() + self.writes, []
            return self.store.pipeline(writes, read=(sql, args))
        return self.store.run(sql, args, fetch=True)

    def _clock(self) -> int:
        return self.store.server_now()

    def _horizon(self, now: int) -> int:
        from .envelope import MAX_US

        return min(now + self.store.skew_us, MAX_US)

    def _heads(self, horizon_ts):
        return self._one(
            "SELECT (SELECT coalesce(max(seq), 0) FROM coord.events), "
            "(SELECT ts FROM coord.events WHERE ts <= %s ORDER BY ts DESC LIMIT 1)",
            (horizon_ts,),
        )

    def _has_id(self, eid):
        return self._one("SELECT 1 FROM coord.events WHERE id = %s", (eid,)) is not None

    def _insert(self, ev: StoredEvent) -> None:
        e = ev.env
        self._w(
            f"INSERT INTO coord.events ({EVENT_COLS}) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                ev.seq,
                ev.id,
                e.ts,
                e.from_,
                e.to,
                e.type,
                worker_of(e),
                ev.body,
                ev.origin,
                int(bool(ev.audit)),
                ev.stored,
            ),
        )
        if ev.audit == AUDIT_WRITTEN:  # already in this checkout's file (an import from it)
            self._mark([ev.seq], AUDIT_WRITTEN)

    # --- views ---------------------------------------------------------------------------
    def put_view(self, row: ViewRow) -> None:
        self._w(UPSERT_VIEW, _upsert_args(row))

    def put_view_blob(self, worker, view, board=None) -> None:
        if board is None:
            self._w("UPDATE coord.workers SET view = %s WHERE worker = %s", (view, worker))
        else:
            self._w(
                f"UPDATE coord.workers SET view = %s, {SET_BOARD} WHERE worker = %s",
                (view, *board_values(board), worker),
            )

    def delete_view(self, worker) -> None:
        self._w("DELETE FROM coord.workers WHERE worker = %s", (worker,))
        self._w("DELETE FROM coord.deps WHERE worker = %s", (worker,))

    def replace_views(self, rows) -> None:
        self._w("DELETE FROM coord.workers")
        self._w("DELETE FROM coord.deps")  # set_deps refills it
        if rows:
            self._w(UPSERT_VIEW, [_upsert_args(r) for r in rows], True)

    def set_position(self, name, seq) -> None:
        self._w(
            "INSERT INTO coord.projection_state (name, last_seq) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET last_seq = EXCLUDED.last_seq",
            (name, seq),
        )

    # --- request ids and bookkeeping ----------------------------------------------------
    def remember_request(self, actor, key, result) -> None:
        self._w(
            "INSERT INTO coord.request_ids (actor, key, result) VALUES (%s, %s, %s)", (actor, key, result)
        )

    def replace_request(self, actor, key, result) -> None:
        self._w(
            "UPDATE coord.request_ids SET result = %s WHERE actor = %s AND key = %s", (result, actor, key)
        )

    def set_meta(self, values: dict) -> None:
        co = self.store.checkout
        for k, v in values.items():
            if k.startswith("audit_"):  # this checkout's audit file
                self._w(
                    "INSERT INTO coord.checkout_meta (checkout, key, value) VALUES (%s, %s, %s) "
                    "ON CONFLICT (checkout, key) DO UPDATE SET value = EXCLUDED.value",
                    (co, k, str(v)),
                )
            else:
                self._w(
                    "INSERT INTO coord.meta (key, value) VALUES (%s, %s) "
                    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    (k, str(v)),
                )

    def delete_meta(self, key) -> None:
        table = "checkout_meta WHERE checkout = %s AND" if key.startswith("audit_") else "meta WHERE"
        args = (self.store.checkout, key) if key.startswith("audit_") else (key,)
        self._w(f"DELETE FROM coord.{table} key = %s", args)

    def set_audit(self, seqs, mark) -> None:
        if seqs:
            self._mark(list(seqs), mark)

    def _mark(self, seqs, mark) -> None:
        """This checkout's marks, then its record moved over what is now written."""
        co = self.store.checkout
        self._w("INSERT INTO coord.checkouts (checkout) VALUES (%s) ON CONFLICT DO NOTHING", (co,))
        self._w(
            "INSERT INTO coord.checkout_marks (checkout, seq, mark) SELECT %s, s, %s FROM unnest(%s::bigint[]) s "
            "ON CONFLICT (checkout, seq) DO UPDATE SET mark = EXCLUDED.mark",
            (co, mark, seqs),
        )
        self._w(COMPACT_MARKS, {"co": co})

    # --- search ----------------------------------------------------------------------------
    def index_text(self, seq, etype, text) -> None:
        self._w(INSERT_SEARCH.format(table="search"), _search_row(seq, etype, text))

    def search_shadow_reset(self) -> None:
        self._w("DELETE FROM coord.search_new")

    def search_shadow_add(self, rows) -> None:
        if rows:
            self._w(INSERT_SEARCH.format(table="search_new"), [_search_row(*r) for r in rows], True)

    def search_shadow_swap(self) -> None:
        self._w("DELETE FROM coord.search")
        self._w("INSERT INTO coord.search SELECT * FROM coord.search_new")
        self._w("DELETE FROM coord.search_new")


UPSERT_VIEW = (
    f"INSERT INTO coord.workers ({VIEW_COLS}, {BOARD_COLS}) VALUES ({','.join(['%s'] * 20)}) "
    "ON CONFLICT (worker) DO UPDATE SET state = EXCLUDED.state, holder = EXCLUDED.holder, "
    "assignee = EXCLUDED.assignee, created = EXCLUDED.created, updated = EXCLUDED.updated, "
    "branch = EXCLUDED.branch, base = EXCLUDED.base, worktree = EXCLUDED.worktree, view = EXCLUDED.view, "
    "ready = EXCLUDED.ready, priority = EXCLUDED.priority, waiting = EXCLUDED.waiting, "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in BOARD_COLS.split(", "))
)


def _upsert_args(row: ViewRow) -> tuple:
    return astuple(row)[:13] + board_values(row.board)


INSERT_SEARCH = "INSERT INTO coord.{table} (seq, type, text, tsv) VALUES (%s, %s, %s, coord.tsv(%s, %s))"
# Move a checkout's record up to just below its first event for the file not marked
# written (or the head), and drop the marks it now covers.
COMPACT_MARKS = (
    "WITH c AS (SELECT upto FROM coord.checkouts WHERE checkout = %(co)s), "
    "n AS (SELECT min(e.seq) AS s FROM coord.events e, c WHERE e.audit = 1 AND e.seq > c.upto "
    "AND NOT EXISTS (SELECT 1 FROM coord.checkout_marks m WHERE m.checkout = %(co)s AND m.seq = e.seq "
    "AND m.mark = 2)), "
    "u AS (UPDATE coord.checkouts k SET upto = coalesce((SELECT s FROM n) - 1, "
    "(SELECT coalesce(max(seq), 0) FROM coord.events)) WHERE k.checkout = %(co)s RETURNING k.upto) "
    "DELETE FROM coord.checkout_marks m USING u WHERE m.checkout = %(co)s AND m.mark = 2 AND m.seq <= u.upto"
)


def _search_row(seq, etype, text):
    # PostgreSQL text holds no NUL, and only valid UTF-8.
    text = text.replace("\x00", " ").encode("utf-8", "replace").decode("utf-8")
    return (seq, etype, text, etype, text)
