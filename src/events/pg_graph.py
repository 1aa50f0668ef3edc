"""The PostgreSQL store's work-graph operations (coord.events.store_graph): the dependency
index (coord.deps: worker waits for after; deps_after answers "who waits for X"), states by
id, reachability for the cycle check, the ready queue and its columns.

Mixed into PgReader (reads) and PgTx (writes); `_all`, `_one` and `_w` are theirs. The
ready queue is one partial index, workers_ready (priority, created, worker) WHERE ready,
as on SQLite (coord.events.sqlite_graph).
"""

from .records import ViewRow, board_row

VIEW_COLS = "worker, state, holder, assignee, created, updated, branch, base, worktree, view, ready, priority, waiting"


def view_row(t) -> ViewRow:
    if len(t) == 13:
        return ViewRow(*t[:9], bytes(t[9]), bool(t[10]), t[11], t[12])
    return ViewRow(*t[:9], bytes(t[9]), bool(t[10]), t[11], t[12], board_row(t[13:]))


class PgGraphReads:
    def ready_views(self, assignable_by: str | None = None, limit: int | None = None) -> list[ViewRow]:
        sql, args = f"SELECT {VIEW_COLS} FROM coord.workers WHERE ready", []
        if assignable_by is not None:
            sql += " AND (assignee IS NULL OR assignee = %s)"
            args.append(assignable_by)
        sql += " ORDER BY priority, created, worker"
        if limit is not None:
            sql += " LIMIT %s"
            args.append(limit)
        return [view_row(t) for t in self._all(sql, args)]

    def states(self, workers) -> dict[str, str]:
        ids = list(dict.fromkeys(workers))
        if not ids:
            return {}
        return dict(self._all("SELECT worker, state FROM coord.workers WHERE worker = ANY(%s)", (ids,)))

    def dependents(self, worker: str) -> list[str]:
        rows = self._all("SELECT worker FROM coord.deps WHERE after = %s ORDER BY worker", (worker,))
        return [r[0] for r in rows]

    def reaches(self, src: str, dst: str) -> bool:
        # UNION (not ALL) visits each worker once, so a cycle already stored (an import)
        # cannot loop; LIMIT 1 stops the walk at the first sight of dst.
        row = self._one(
            'WITH RECURSIVE r(w) AS (SELECT %s::text COLLATE "C" UNION '
            "SELECT d.after FROM coord.deps d JOIN r ON d.worker = r.w) "
            "SELECT 1 FROM r WHERE w = %s LIMIT 1",
            (src, dst),
        )
        return row is not None


class PgGraphWrites:
    def set_deps(self, worker: str, after) -> None:
        self._w("DELETE FROM coord.deps WHERE worker = %s", (worker,))
        if after:
            self._w(
                "INSERT INTO coord.deps (worker, after) SELECT %s, a FROM unnest(%s::text[]) a "
                "ON CONFLICT DO NOTHING",
                (worker, list(after)),
            )

    def set_graph_columns(self, worker: str, ready: bool, waiting: int) -> None:
        self._w(
            "UPDATE coord.workers SET ready = %s, waiting = %s WHERE worker = %s",
            (bool(ready), waiting, worker),
        )
