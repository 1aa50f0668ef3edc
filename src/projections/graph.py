"""The work graph, pure: which worker waits for which (`after`, folded per worker by
coord.projections.workers), whether an edge would close a cycle, and what a worker's
dependencies' states make of it (ready, waiting, blocked). No I/O: the projector
(coord.projections.board) hands in the states it read through its transaction.

A worker is **ready** when it is ASSIGNED and every worker it waits for is COMPLETED;
it **waits for** the ones that are not COMPLETED (an unknown one included: an imported
edge may name a worker whose spawn has not arrived yet); it is **blocked** by the ones
that are CANCELED or FAILED.
"""

# The contract's state names (coord.projections.workers imports this module, not the
# other way round).
ASSIGNED, COMPLETED, CANCELED, FAILED = "ASSIGNED", "COMPLETED", "CANCELED", "FAILED"
DEFAULT_PRIORITY = 2
PRIORITIES = range(0, 5)  # 0 highest … 4 lowest
BLOCKING = frozenset({CANCELED, FAILED})


def priority_of(view) -> int:
    """A view's priority (the default where the field is absent: one place to swap)."""
    p = getattr(view, "priority", None)
    return DEFAULT_PRIORITY if p is None else p


def find_path(edges_of, src: str, dst: str) -> list[str] | None:
    """The shortest path src → … → dst following `edges_of(worker)` (the workers it waits
    for), as a list of ids, or None. Breadth first, each worker visited once."""
    if src == dst:
        return [src]
    parent = {src: None}
    frontier = [src]
    while frontier:
        nxt = []
        for w in frontier:
            for a in edges_of(w):
                if a in parent:
                    continue
                parent[a] = w
                if a == dst:
                    path = [a]
                    while parent[path[-1]] is not None:
                        path.append(parent[path[-1]])
                    return path[::-1]
                nxt.append(a)
        frontier = nxt
    return None


def cycle_of(edges_of, worker: str, after: str) -> list[str] | None:
    """The cycle that the edge `worker` waits for `after` would close, as
    [worker, after, …, worker], or None."""
    back = find_path(edges_of, after, worker)
    return None if back is None else [worker, *back]


def cycle_text(cycle: list[str]) -> str:
    return " → ".join(cycle)


class MemGraph:
    """The graph of a dict of folded views (a fold from zero, replay): the edges are the
    views' `after` lists as folded so far, so a check sees the graph at the event's place
    in (ts, id) order."""

    def __init__(self, views: dict):
        self.views = views

    def _edges(self, w: str):
        v = self.views.get(w)
        return v.after if v is not None else ()

    def cycle(self, worker: str, after: str, eid: str = "") -> list[str] | None:
        return cycle_of(self._edges, worker, after)


def split(after, state_of) -> tuple[list[str], list[str]]:
    """(waits_for, blocked_by) of a worker waiting for `after`, given state_of(id) → state
    or None (unknown)."""
    waits, blocked = [], []
    for a in after:
        s = state_of(a)
        if s != COMPLETED:
            waits.append(a)
            if s in BLOCKING:
                blocked.append(a)
    return waits, blocked


def is_ready(state: str, waits_for) -> bool:
    return state == ASSIGNED and not waits_for


def columns_in_memory(views: dict) -> dict[str, tuple[bool, int]]:
    """worker → (ready, waiting) for every view of a dict (rebuild, verify)."""

    def state_of(a):
        v = views.get(a)
        return v.state if v is not None else None

    out = {}
    for w, v in views.items():
        waits, _ = split(v.after, state_of)
        out[w] = (is_ready(v.state, waits), len(waits))
    return out
