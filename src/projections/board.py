"""The worker views' projector: what to fold and refold, run inside each append
transaction, and rebuild from zero. The views are stored by the store as opaque bytes
(msgspec JSON of the Worker struct, encoded and decoded only here) plus the columns the
application filters on."""

import msgspec

from ..events.blobs import readable
from ..events.envelope import decode
from ..events.failpoints import failpoint
from ..events.records import HEARTBEAT, EventQuery, ViewRow
from . import notices
from .boardtext import BOARD_FLAG, board_columns, fill_board_columns
from .fromzero import fold_from_zero
from .graph import columns_in_memory, cycle_of, is_ready, split
from .workers import GRAPH_EVENTS, Worker, fold

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Worker)
PROJECTION = "workers"


def decode_view(blob: bytes) -> Worker:
    return _dec.decode(blob)


def view_row(v: Worker, ready: bool = False, waiting: int = 0) -> ViewRow:
    return ViewRow(
        v.worker,
        v.state,
        v.holder,
        v.assignee,
        v.created,
        v.updated,
        v.branch,
        v.base,
        v.worktree,
        _enc.encode(v),
        ready,
        v.priority,
        waiting,
        board_columns(v),
    )


def _columns(v: Worker) -> tuple:
    return (v.state, v.holder, v.assignee, v.created, v.updated, v.branch, v.base, v.worktree, v.priority)


def load(reader, worker: str) -> Worker | None:
    blob = reader.view(worker)
    return _dec.decode(blob) if blob is not None else None


def load_tx(tx, worker: str) -> Worker | None:
    """load() through the transaction's cache: one read per worker per transaction (a
    plain reader, which has no cache, reads each time)."""
    key = ("worker", worker)
    if not hasattr(tx, "cache"):
        return load(tx, worker)
    if key not in tx.cache:
        tx.cache[key] = load(tx, worker)
    return tx.cache[key]


def _graph_columns(tx, v: Worker) -> tuple[bool, int]:
    """(ready, waiting) of a view, from its dependencies' states as the tx sees them."""
    states = tx.states(v.after) if v.after else {}
    waits, _ = split(v.after, states.get)
    return is_ready(v.state, waits), len(waits)


def _settle_dependents(tx, worker: str) -> None:
    """A worker changed state (or appeared, or went): the readiness of every worker that
    waits for it is computed again (the reverse dependency index says which)."""
    for d in tx.dependents(worker):
        dv = load_tx(tx, d)
        if dv is not None:
            tx.set_graph_columns(d, *_graph_columns(tx, dv))


def save_tx(tx, v: Worker, old: Worker | None = None) -> None:
    if old is not None and _columns(old) == _columns(v) and old.after == v.after:
        tx.put_view_blob(v.worker, _enc.encode(v), board_columns(v))  # a heartbeat: no index touched
    else:
        tx.put_view(view_row(v, *_graph_columns(tx, v)))
        if old is None or old.after != v.after:
            tx.set_deps(v.worker, v.after)
    tx.cache[("worker", v.worker)] = v
    if old is None or old.state != v.state:
        _settle_dependents(tx, v.worker)


def waits_tx(tx, v: Worker) -> tuple[list[str], list[str], dict]:
    """(waits_for, blocked_by, states) of a view as the transaction sees its
    dependencies: what `start` refuses on, what `show` and `status` say."""
    states = tx.states(v.after) if v.after else {}
    waits, blocked = split(v.after, states.get)
    return waits, blocked, states


class TxGraph:
    """The graph as the write transaction sees it (the dependency index), for the cycle
    check of an event folded last in (ts, id) order: the store answers reachability, the
    path is spelled out only when there is one."""

    def __init__(self, tx):
        self.tx = tx

    def _edges(self, w: str):
        v = load_tx(self.tx, w)
        return v.after if v is not None else ()

    def cycle(self, worker: str, after: str, eid: str = "") -> list[str] | None:
        if not self.tx.reaches(after, worker):
            return None
        return cycle_of(self._edges, worker, after)


EDGE_TYPES = ("worker.spawned", "worker.dep_added", "worker.dep_removed")


def _edge_event(env) -> bool:
    if env.type == "worker.spawned":
        return "after" in env.payload
    return env.type in GRAPH_EVENTS and env.type != "worker.prioritized"


GRAPH_POS = "graph_pos"  # meta: "ts id" of the latest edge event stored, in (ts, id) order


def _graph_pos(tx) -> tuple[str, str]:
    key = ("meta", GRAPH_POS)
    if key not in tx.cache:
        raw = tx.meta([GRAPH_POS]).get(GRAPH_POS, " ")
        tx.cache[key] = tuple(raw.split(" ", 1))
    return tx.cache[key]


def _note_edge(tx, env, eid) -> None:
    if _edge_event(env) and (env.ts, eid) > _graph_pos(tx):
        tx.set_meta({GRAPH_POS: f"{env.ts} {eid}"})
        tx.cache[("meta", GRAPH_POS)] = (env.ts, eid)


def _before_graph(tx, env, eid) -> bool:
    """Whether an imported event falls before the latest edge event stored (spawn with
    `after`, dep_added, dep_removed): then the cycle checks of the edges after it may
    come out otherwise. One meta read per transaction."""
    return (env.ts, eid) < _graph_pos(tx)


def edge_pos_of(rows, pos=("", "")) -> tuple[str, str]:
    """The latest edge event among rows read in (ts, id) order (conservative: a spawn whose
    bytes mention "after" counts)."""
    for r in rows:
        if r.type in EDGE_TYPES[1:] or (r.type == EDGE_TYPES[0] and b'"after"' in r.body):
            pos = max(pos, (r.ts, r.id))
    return pos


def project(tx, ev) -> None:
    """The projector: runs inside the append transaction for every appended event.

    Local events always come last in (ts, id) order and fold incrementally. An imported
    event may fall earlier than what a worker's view has folded (or be a spawn arriving
    after later events of its worker); that worker is then re-folded from all its events,
    once, just before the transaction commits (so a batch of imports re-folds each
    touched worker once, not once per event)."""
    env = ev.env
    if env.type.startswith("worker."):
        env = readable(env, tx.store.blobs)
        pending = tx.before_commit.get(PROJECTION)
        if pending is not None and (pending.everything or env.to in pending.workers):
            pass  # re-folded before commit
        else:
            view = load_tx(tx, env.to)
            if ev.origin != "local" and _edge_event(env) and _before_graph(tx, env, ev.id):
                # Two clones changed the graph while apart: which edges close a cycle
                # depends on the order of every edge, so the board is folded from zero
                # (inside this transaction) before it commits.
                if pending is None:
                    pending = tx.before_commit[PROJECTION] = _Refold()
                pending.everything = True
            elif ev.origin != "local" and _falls_earlier(tx, view, env, ev.id):
                if pending is None:
                    pending = tx.before_commit[PROJECTION] = _Refold()
                pending.workers.add(env.to)
                pending.earliest = min(pending.earliest, (env.ts, ev.id))
                tx.cache.pop(("worker", env.to), None)
            else:
                found = notices.notice_of(view, env)
                new = fold(view, env, ev.id, ev.stored, TxGraph(tx))
                if new is not None:
                    save_tx(tx, new, view)
                if found is not None and ev.seq > notices.start_seq(tx):
                    tx.put_notices([notices.make(ev.seq, env.to, found)])
        _note_edge(tx, env, ev.id)
    if ev.env.type != HEARTBEAT:
        # The position is the high-water mark `verify` finds deleted rows by; a heartbeat
        # does not move it (a page less in its commit): one deleted from the end shows as
        # its worker's view no longer matching a refold (it counts beats).
        tx.set_position(PROJECTION, ev.seq)


def _falls_earlier(tx, view, env, eid) -> bool:
    if view is not None:
        return (env.ts, eid) < (view.pos_ts, view.pos_id)
    # No view yet: events of this worker already stored (an orphan started/canceled that
    # arrived before its spawn) must be folded after this one.
    return any(r.id != eid for r in tx.events(EventQuery(worker=env.to, limit=2)))


class _Refold:
    """Workers to re-fold before commit (a before_commit callback of the transaction)."""

    def __init__(self):
        self.workers: set[str] = set()
        self.everything = False
        self.earliest = ("\uffff", "")  # the earliest (ts, id) that fell earlier

    def __call__(self, tx):
        tx.cache.clear()
        if not self.everything:
            # A re-folded worker with edge events in its history may change which of
            # them apply (a cancel that arrived late makes its later dep_removed a
            # conflict), and so the cycle checks of every edge after that place.
            edged = refold(tx, sorted(self.workers))
            self.everything = edged and self.earliest < _graph_pos(tx)
            tx.cache.clear()
        if self.everything:
            refold_everything(tx)
        tx.cache.clear()


def refold(tx, workers) -> bool:
    """Fold the given workers again from all their events, in (ts, id) order, and derive
    their notices again. Returns whether any of them has edge events in its history."""
    blobs, start = tx.store.blobs, notices.start_seq(tx)
    graph = TxGraph(tx)
    edged = False
    for w in workers:
        rows = tx.events(EventQuery(worker=w, by="ts"))
        edged = edged or edge_pos_of(rows) != ("", "")
        view, found = None, []
        for r in rows:
            env = readable(decode(r.body), blobs)
            n = notices.notice_of(view, env)
            if n is not None and r.seq > start:
                found.append(notices.make(r.seq, w, n))
            if env.type.startswith("worker."):
                view = fold(view, env, r.id, r.stored, graph) or view
        tx.cache.pop(("worker", w), None)
        if view is not None:
            save_tx(tx, view)  # as new: its columns, dependencies and dependents
        else:
            tx.delete_view(w)
            _settle_dependents(tx, w)
        notices.sync(tx, w, found)
    return edged


def refold_everything(tx) -> None:
    """Every view folded from zero inside the transaction; the rows that differ (the view
    or its readiness), the dependency index and the notices are replaced."""
    pos, found = [("", "")], []
    views, _ = fold_from_zero(tx.store, reader=tx, found=found, edge_pos=pos)
    tx.set_meta({GRAPH_POS: " ".join(pos[0])})
    cols = columns_in_memory(views)
    stored = {r.worker: r for r in tx.views(board=True)}
    for w, v in views.items():
        row = view_row(v, *cols[w])
        had = stored.get(w)
        if had != row:
            tx.put_view(row)
            if had is None or decode_view(had.view).after != v.after:
                tx.set_deps(w, v.after)
    for w in set(stored) - set(views):
        tx.delete_view(w)
    _sync_notices(tx, views, found)


def rebuild(store, progress=None) -> int:
    """Fold every event from zero and swap the views in. The long read runs outside any
    write lock; the final write transaction only re-folds workers touched since the read
    began, then swaps. Returns the number of events folded."""

    pos = [("", "")]

    def after_page(_rows, total):
        failpoint("rebuild-mid-read")
        if progress:
            progress(total)

    upto, found = store.reader.max_seq(), []
    views, total = fold_from_zero(store, upto, after_page=after_page, found=found, edge_pos=pos)
    failpoint("rebuild-before-swap")
    cols = columns_in_memory(views)
    rows = [view_row(v, *cols[w]) for w, v in views.items()]

    def swap(tx):  # readers see the old views or the new, never a mix
        tx.replace_views(rows)
        tx.add_deps({w: v.after for w, v in views.items() if v.after})
        tx.set_meta({GRAPH_POS: " ".join(max(pos[0], _graph_pos(tx)))})
        # The notices become what the fold derived (acknowledgements of those that stay
        # are kept); workers with events after `upto` are re-folded below, notices too.
        _sync_notices(tx, views, found)
        late = {r.worker for r in tx.events(EventQuery(after_seq=upto, lifecycle=True))}
        refold(tx, sorted(late))
        tx.set_position(PROJECTION, tx.max_seq())
        if tx.meta([REFOLD_FLAG]):
            tx.delete_meta(REFOLD_FLAG)

    store.transact(swap)
    return total


REFOLD_FLAG = "views_refold"  # meta: views folded by an older coord, to be folded again


def ensure_views_current(store) -> None:
    """Views folded by an older coord (a migration set the flag) are folded again from the
    events, once, by the first process that opens the store (or by verify); views stored
    without the board's columns get them (computed from each view)."""
    flags = store.reader.meta([REFOLD_FLAG, BOARD_FLAG])
    if flags.get(REFOLD_FLAG):
        with store.rebuild_lock():
            if store.reader.meta([REFOLD_FLAG]):  # another process may have done it meanwhile
                rebuild(store)
    if flags.get(BOARD_FLAG):
        store.transact(fill_board_columns)


def stored_views(reader) -> dict[str, Worker]:
    return {r.worker: _dec.decode(r.view) for r in reader.views()}


def stored_graph_columns(reader) -> dict[str, tuple]:
    """worker → (ready, waiting, priority, the board's columns) as stored (verify compares
    a fresh fold's)."""
    return {r.worker: (r.ready, r.waiting, r.priority, r.board) for r in reader.views(board=True)}


def fresh_graph_columns(views: dict) -> dict[str, tuple]:
    return {w: (*c, views[w].priority, board_columns(views[w])) for w, c in columns_in_memory(views).items()}


def _sync_notices(tx, views, found) -> None:
    """The notices of these workers become those derived (`found`: from a fold from zero),
    as notices.sync of each would make them, in one read and two writes."""
    start, by_worker = notices.start_seq(tx), {}
    for n in found:
        if n.seq > start:
            by_worker.setdefault(n.worker, []).append(n)
    stored, gone, derived = tx.notices_by_worker(views), [], []
    for w in set(stored) | (set(by_worker) & set(views)):  # the others have none, nor had
        mine = by_worker.get(w, [])
        keep = {(n.agent, n.seq) for n in mine}
        had = {(n.agent, n.seq) for n in stored.get(w, ())}
        gone += [k for k in had if k not in keep and k[1] > start]
        derived += [n for n in mine if (n.agent, n.seq) not in had]  # a kept one stays as it is
    if gone:
        tx.drop_notices(gone)
    if derived:
        tx.put_notices(derived)
