"""The SQLite store's work-graph operations (coord.events.store): the dependency index
(`deps`: worker waits for after; its reverse index deps_after answers "who waits for
X"), states by id, reachability for the cycle check, the ready queue and its columns.

Mixed into SqliteReader (reads) and SqliteTx (writes); `_all`, `_one` and `_x` are
theirs. The ready queue is one partial index, workers_ready(priority, created, worker)
WHERE ready = 1, so `ready --limit 20` reads 20 index entries whatever the graph's size.
"""

from .records import ViewRow

LOOKUP_BATCH = 500
READY_COLS = "worker, state, holder, assignee, created, updated, branch, base, worktree, view, ready, priority, waiting"


class GraphReads:
    def ready_views(self, assignable_by: str | None = None, limit: int | None = None) -> list[ViewRow]:
        sql, args = f"SELECT {READY_COLS} FROM workers WHERE ready = 1", []
        if assignable_by is not None:
            sql += " AND (assignee IS NULL OR assignee = ?)"
            args.append(assignable_by)
        sql += " ORDER BY priority, created, worker"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [ViewRow(*t[:10], bool(t[10]), t[11], t[12]) for t in self._all(sql, args)]

    def states(self, workers) -> dict[str, str]:
        ids = list(dict.fromkeys(workers))
        out: dict[str, str] = {}
        for i in range(0, len(ids), LOOKUP_BATCH):
            part = ids[i : i + LOOKUP_BATCH]
            q = f"SELECT worker, state FROM workers WHERE worker IN ({','.join('?' * len(part))})"
            out.update(self._all(q, part))
        return out

    def dependents(self, worker: str) -> list[str]:
        return [r[0] for r in self._all("SELECT worker FROM deps WHERE after = ? ORDER BY worker", (worker,))]

    def reaches(self, src: str, dst: str) -> bool:
        # UNION (not ALL) visits each worker once, so a cycle already stored (an import)
        # cannot loop; LIMIT 1 stops the walk at the first sight of dst.
        row = self._one(
            "WITH RECURSIVE r(w) AS (SELECT ? UNION SELECT d.after FROM deps d JOIN r ON d.worker = r.w) "
            "SELECT 1 FROM r WHERE w = ? LIMIT 1",
            (src, dst),
        )
        return row is not None


class GraphWrites:
    def set_deps(self, worker: str, after) -> None:
        self._x("DELETE FROM deps WHERE worker = ?", (worker,))
        if after:
            self.conn.executemany(
                "INSERT OR IGNORE INTO deps(worker, after) VALUES (?, ?)", [(worker, a) for a in after]
            )

    def set_graph_columns(self, worker: str, ready: bool, waiting: int) -> None:
        self._x("UPDATE workers SET ready = ?, waiting = ? WHERE worker = ?", (int(ready), waiting, worker))
