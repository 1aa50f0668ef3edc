"""The PostgreSQL store's text board (coord.events.store.Reader.board_lines), as on SQLite
(coord.events.sqlite_board): the rows of `coord status` rendered by the server from the
columns stored beside each view (coord.events.records.BoardRow). Mixed into PgReader and
PgTx; `_all` and `_w` are theirs. Also the upgrade of a log made at schema 2 (which had
no such columns)."""

from .records import BOARD_COLUMNS, board_values

BOARD_COLS = ", ".join(BOARD_COLUMNS)
SET_BOARD = ", ".join(f"{c} = %s" for c in BOARD_COLUMNS)  # put_board, PgTx.put_view_blob


def _age(x: str) -> str:
    """cli/output.fmt_age of `x` whole seconds, in SQL (bigint division truncates toward
    zero, as int() does)."""
    return (
        f"CASE WHEN {x} < 60 THEN {x} || 's' WHEN {x} < 3600 THEN ({x} / 60) || 'm' "
        f"WHEN {x} < 86400 THEN ({x} / 3600) || 'h' || lpad((mod({x}, 3600) / 60)::text, 2, '0') || 'm' "
        f"ELSE ({x} / 86400) || 'd' || (mod({x}, 86400) / 3600) || 'h' END"
    )


_LEFT = "board_head IS NULL OR waiting > 0 OR worker = ANY(%(special)s::text[])"
_LIVE = "(%(now)s::bigint - board_live)::float8 / 1000000.0::float8"
_INTERVAL = "coalesce(board_interval, %(interval)s::float8)"
BOARD_SQL = (
    f"SELECT CASE WHEN {_LEFT} THEN NULL ELSE rtrim(board_head || format('%%6s %%9s %%-8s ', "
    + _age("greatest(0, (%(now)s::bigint - board_since) / 1000000)")
    + ", CASE WHEN board_beat IS NULL THEN '-' ELSE "
    + _age("greatest(0, (%(now)s::bigint - board_beat) / 1000000)")
    + " END, CASE WHEN board_live IS NULL THEN '-' "
    "WHEN %(clone)s <> '' AND board_clone IS NOT NULL AND board_clone <> %(clone)s THEN 'REMOTE' "
    f"WHEN {_LIVE} >= 30 * {_INTERVAL} THEN 'DEAD' "
    f"WHEN {_LIVE} >= 10 * {_INTERVAL} THEN 'STALE' "
    f"WHEN {_LIVE} >= 3 * {_INTERVAL} THEN 'WARN' ELSE 'OK' END) || board_note) END, "
    f"CASE WHEN {_LEFT} THEN worker END FROM coord.workers"
)


class PgBoardReads:
    def board_lines(self, states, now, interval, clone, special=()) -> list[tuple[str | None, str | None]]:
        args = {"now": now, "interval": float(interval), "clone": clone or "", "special": list(special)}
        where = ""
        if states is not None:
            where = " WHERE state = ANY(%(states)s::text[])"
            args["states"] = sorted(states)
        return [tuple(t) for t in self._all(BOARD_SQL + where + " ORDER BY created, worker", args)]

    def has_views(self, states) -> bool:
        states = sorted(states)
        return bool(states) and bool(
            self._all("SELECT 1 FROM coord.workers WHERE state = ANY(%s::text[]) LIMIT 1", (states,))
        )


class PgBoardWrites:
    def put_board(self, worker, board) -> None:
        self._w(f"UPDATE coord.workers SET {SET_BOARD} WHERE worker = %s", (*board_values(board), worker))


# A log made at schema 2: the board's columns, filled from the views by the first process
# (coord.projections.boardtext.fill_board_columns, on the `board_columns` flag).
UPGRADE_2_TO_3 = (
    "ALTER TABLE coord.workers ADD COLUMN IF NOT EXISTS board_head text, "
    "ADD COLUMN IF NOT EXISTS board_note text, ADD COLUMN IF NOT EXISTS board_since bigint, "
    "ADD COLUMN IF NOT EXISTS board_beat bigint, ADD COLUMN IF NOT EXISTS board_live bigint, "
    "ADD COLUMN IF NOT EXISTS board_interval double precision, ADD COLUMN IF NOT EXISTS board_clone text",
    "INSERT INTO coord.meta (key, value) SELECT 'board_columns', '1' WHERE EXISTS (SELECT 1 FROM coord.workers) "
    "ON CONFLICT (key) DO NOTHING",
    "UPDATE coord.meta SET value = '3' WHERE key = 'schema_version'",
)


def upgrade(conn, lock_class: int) -> bool:
    """Bring a schema-2 log to schema 3, once, whichever process comes first (the install
    lock). Returns whether the log is at 3 now."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (lock_class,))
        if conn.execute("SELECT value FROM coord.meta WHERE key = 'schema_version'").fetchone()[0] == "2":
            for sql in UPGRADE_2_TO_3:
                conn.execute(sql)
    return True
