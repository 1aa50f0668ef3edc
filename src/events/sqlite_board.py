"""The SQLite store's text board (coord.events.store.Reader.board_lines): the rows of
`coord status` rendered by SQLite from the columns stored beside each view
(coord.events.records.BoardRow), so a board of 10,000 workers is one read of plain
columns with no view decoded. Mixed into SqliteReader; `_all` is its."""

import json

from .records import BOARD_COLUMNS

BOARD_COLS = ", ".join(BOARD_COLUMNS)


def _age(x: str) -> str:
    """cli/output.fmt_age of `x` whole seconds, in SQL."""
    return (
        f"CASE WHEN {x} < 60 THEN {x} || 's' WHEN {x} < 3600 THEN ({x} / 60) || 'm' "
        f"WHEN {x} < 86400 THEN printf('%dh%02dm', {x} / 3600, {x} % 3600 / 60) "
        f"ELSE printf('%dd%dh', {x} / 86400, {x} % 86400 / 3600) END"
    )


# The text board's row from the stored columns (coord.events.records.BoardRow), as
# cli/render.board_line renders it from a view: AGE, HEARTBEAT and LIVENESS (liveness.level:
# the thresholds 3, 10 and 30 intervals) at :now; integer division truncates toward zero
# as int() does, and the float arithmetic is IEEE double in both. Rows left to the caller
# (a view stored without the columns, a worker that waits for others or is one of the
# `special` given, which board_lines puts in place of {special}) come back as
# (NULL, worker).
_LEFT = "board_head IS NULL OR waiting > 0{special}"
MAX_LISTED = 10000  # special workers as parameters; more go as one JSON array (slower)
_LIVE = "(:now - board_live) / 1e6"
BOARD_SQL = (
    f"SELECT CASE WHEN {_LEFT} THEN NULL ELSE rtrim(board_head || printf('%6s %9s %-8s ', "
    + _age("max(0, (:now - board_since) / 1000000)")
    + ", CASE WHEN board_beat IS NULL THEN '-' ELSE "
    + _age("max(0, (:now - board_beat) / 1000000)")
    + " END, CASE WHEN board_live IS NULL THEN '-' "
    "WHEN :clone != '' AND board_clone IS NOT NULL AND board_clone != :clone THEN 'REMOTE' "
    f"WHEN {_LIVE} >= 30 * coalesce(board_interval, :interval) THEN 'DEAD' "
    f"WHEN {_LIVE} >= 10 * coalesce(board_interval, :interval) THEN 'STALE' "
    f"WHEN {_LIVE} >= 3 * coalesce(board_interval, :interval) THEN 'WARN' ELSE 'OK' END) || board_note) END, "
    f"CASE WHEN {_LEFT} THEN worker END FROM workers"
)


class BoardReads:
    def board_lines(self, states, now, interval, clone, special=()) -> list[tuple[str | None, str | None]]:
        where, args = "", {"now": now, "interval": interval, "clone": clone or ""}
        special = sorted(special)
        if not special:  # the usual board: no clause at all (a JSON array costs a third)
            named = ""
        elif len(special) <= MAX_LISTED:
            keys = {f"w{i}": w for i, w in enumerate(special)}
            named = f" OR worker IN ({', '.join(':' + k for k in keys)})"
            args.update(keys)
        else:
            named, args["special"] = (
                " OR worker IN (SELECT value FROM json_each(:special))",
                json.dumps(special),
            )
        if states is not None:
            names = {f"s{i}": st for i, st in enumerate(sorted(states))}
            where = f" WHERE state IN ({', '.join(':' + k for k in names)})"
            args.update(names)
        sql = BOARD_SQL.replace("{special}", named)
        return self._all(sql + where + " ORDER BY created, worker", args)

    def has_views(self, states) -> bool:
        states = sorted(states)
        sql = f"SELECT 1 FROM workers WHERE state IN ({','.join('?' * len(states))}) LIMIT 1"
        return bool(states) and bool(self._all(sql, states))
