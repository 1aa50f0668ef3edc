"""The worker views' projector: what to fold and refold, run inside each append
transaction, and rebuild from zero. The views are stored by the store as opaque bytes
(msgspec JSON of the Worker struct, encoded and decoded only here) plus the columns the
application filters on."""

import msgspec

from ..events.blobs import readable
from ..events.envelope import decode
from ..events.failpoints import failpoint
from ..events.records import EventQuery, ViewRow
from .workers import Worker, fold, fold_all

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Worker)
PROJECTION = "workers"
PAGE = 20000  # events per short read transaction when folding from zero


def decode_view(blob: bytes) -> Worker:
    return _dec.decode(blob)


class BoardView(msgspec.Struct):
    """The part of a view the text board shows and liveness reads (field names and
    defaults as in Worker): decoding only these skips the rest of each view's bytes."""

    worker: str
    state: str
    state_since: str
    task: str = ""
    holder: str | None = None
    holder_clone: str | None = None
    summary: str | None = None
    reason: str | None = None
    conflicts: list = []
    last_heartbeat: str | None = None
    hb_interval: float | None = None
    hb_note: str | None = None
    idle_s: float | None = None
    beat_local: int | None = None
    since_local: int | None = None


_board_dec = msgspec.json.Decoder(BoardView)


def decode_board_view(blob: bytes) -> BoardView:
    return _board_dec.decode(blob)


def view_row(v: Worker) -> ViewRow:
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
    )


def _columns(v: Worker) -> tuple:
    return (v.state, v.holder, v.assignee, v.created, v.updated, v.branch, v.base, v.worktree)


def load(reader, worker: str) -> Worker | None:
    blob = reader.view(worker)
    return _dec.decode(blob) if blob is not None else None


def load_tx(tx, worker: str) -> Worker | None:
    """load() through the transaction's cache: one read per worker per transaction."""
    key = ("worker", worker)
    if key not in tx.cache:
        tx.cache[key] = load(tx, worker)
    return tx.cache[key]


def save_tx(tx, v: Worker, old: Worker | None = None) -> None:
    if old is not None and _columns(old) == _columns(v):
        tx.put_view_blob(v.worker, _enc.encode(v))  # a heartbeat: only the bytes change
    else:
        tx.put_view(view_row(v))
    tx.cache[("worker", v.worker)] = v


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
        if pending is not None and env.to in pending.workers:
            pass  # re-folded before commit
        else:
            view = load_tx(tx, env.to)
            if ev.origin != "local" and _falls_earlier(tx, view, env, ev.id):
                if pending is None:
                    pending = tx.before_commit[PROJECTION] = _Refold()
                pending.workers.add(env.to)
                tx.cache.pop(("worker", env.to), None)
            else:
                new = fold(view, env, ev.id, ev.stored)
                if new is not None:
                    save_tx(tx, new, view)
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

    def __call__(self, tx):
        refold(tx, sorted(self.workers))
        for w in self.workers:
            tx.cache.pop(("worker", w), None)


def refold(tx, workers) -> None:
    """Fold the given workers again from all their events, in (ts, id) order."""
    blobs = tx.store.blobs
    for w in workers:
        rows = tx.events(EventQuery(worker=w, by="ts"))
        views = fold_all((readable(decode(r.body), blobs), r.id, r.stored) for r in rows)
        if w in views:
            tx.put_view(view_row(views[w]))
        else:
            tx.delete_view(w)


def fold_from_zero(store, upto: int | None = None, reader=None, after_page=None) -> tuple[dict, int]:
    """Every view folded from zero in (ts, id) order, in pages of PAGE events: each page
    its own short read transaction (no write lock held), or all of them in `reader`'s one
    snapshot (verify compares them with the stored views of the same moment). Returns
    (views, events folded); after_page(rows, total) is called after each page."""
    views: dict[str, Worker] = {}
    blobs = store.blobs
    total = 0
    last = ("", "")
    while True:  # (ts, id) keyset pagination
        q = EventQuery(lifecycle=True, upto_seq=upto, after_key=last, by="ts", limit=PAGE)
        if reader is not None:
            rows = reader.events(q)
        else:
            with store.read() as r:
                rows = r.events(q)
        if not rows:
            return views, total
        for row in rows:
            env = readable(decode(row.body), blobs)
            v = fold(views.get(env.to), env, row.id, row.stored)
            if v is not None:
                views[env.to] = v
        total += len(rows)
        last = (rows[-1].ts, rows[-1].id)
        if after_page is not None:
            after_page(rows, total)


def rebuild(store, progress=None) -> int:
    """Fold every event from zero and swap the views in. The long read runs outside any
    write lock; the final write transaction only re-folds workers touched since the read
    began, then swaps. Returns the number of events folded."""

    def after_page(_rows, total):
        failpoint("rebuild-mid-read")
        if progress:
            progress(total)

    upto = store.reader.max_seq()
    views, total = fold_from_zero(store, upto, after_page=after_page)
    failpoint("rebuild-before-swap")
    rows = [view_row(v) for v in views.values()]

    def swap(tx):  # readers see the old views or the new, never a mix
        tx.replace_views(rows)
        late = {r.worker for r in tx.events(EventQuery(after_seq=upto, lifecycle=True))}
        refold(tx, sorted(late))
        tx.set_position(PROJECTION, tx.max_seq())

    store.transact(swap)
    return total


def stored_views(reader) -> dict[str, Worker]:
    return {r.worker: _dec.decode(r.view) for r in reader.views()}
