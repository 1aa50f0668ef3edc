"""The SQLite store's bulk operations for a rebuild (coord.projections.fromzero and
board.rebuild): events read as just the columns a fold needs, every notice in one read,
views written only where they differ, the dependency index in one statement. Mixed into
SqliteReader (reads: `_all`, `query_sql`) and SqliteTx (writes: `conn`, `_x`, and the
view row's columns, statement and arguments)."""

from .records import EventQuery, Notice
from .sqlite_notices import NOTICE_COLS

BODY_COLS = "seq, id, ts, body, stored"  # event_bodies: what a rebuild reads


class SqliteRebuildReads:
    def event_bodies(self, q: EventQuery) -> list[tuple]:
        return self._all(*self.query_sql(q, BODY_COLS))

    def notices_by_worker(self, workers):
        want, out = set(workers), {}
        for t in self._all(f"SELECT {NOTICE_COLS} FROM notices ORDER BY seq"):
            if t[2] in want:
                out.setdefault(t[2], []).append(Notice(*t))
        return out


class SqliteRebuildWrites:
    def replace_views(self, rows) -> None:
        # Only the rows that differ are written (a rebuild mostly finds the views it had:
        # rewriting each would cost a write of the whole table and its indexes).
        had = {t[0]: t for t in self._all(f"SELECT {self.view_cols} FROM workers")}
        new = [self.view_args(r) for r in rows]
        changed = [t for t in new if had.pop(t[0], None) != t]
        self.conn.executemany("DELETE FROM workers WHERE worker = ?", [(w,) for w in had])
        self.conn.executemany(self.put_view_sql, changed)
        self._x("DELETE FROM deps")  # add_deps (or set_deps) refills it

    def add_deps(self, deps) -> None:
        self.conn.executemany(
            "INSERT OR IGNORE INTO deps(worker, after) VALUES (?, ?)",
            [(w, a) for w, after in deps.items() for a in after],
        )
