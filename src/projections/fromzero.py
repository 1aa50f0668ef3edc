"""The worker views folded from zero (rebuild, verify, a re-fold of everything inside an
import): every lifecycle event in (ts, id) order, read in pages of just the columns a
fold needs (Reader.event_bodies), decoded without the checks the codec made when the
event was stored (`verify` makes them again), and folded in place into views this fold
owns (workers.fold with mutate). The same fold as the projector's, so the same views and
notices as an incremental fold of the same events (tests/app/test_rebuild_equivalence.py).
"""

import gc
from contextlib import contextmanager

import msgspec

from ..events.blobs import readable
from ..events.envelope import Envelope, ts_to_us
from ..events.errors import IntegrityError
from ..events.records import EventQuery
from . import notices
from .graph import MemGraph
from .workers import Worker, args_of, fold

PAGE = 20000  # events per short read transaction
# The columns of a row of Reader.event_bodies.
SEQ, ID, TS, BODY, STORED = range(5)
SPAWNED = "worker.spawned"
EDGE_TYPES = frozenset({SPAWNED, "worker.dep_added", "worker.dep_removed"})
_dec = msgspec.json.Decoder(Envelope)


@contextmanager
def no_gc():
    """The cyclic garbage collector paused: a fold from zero allocates a container per
    event and keeps every view, so each collection would walk them all again (a fold
    makes no cycles: reference counting frees what it drops)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def settle(v: Worker) -> Worker:
    """What a fold with `mutate` left raw, made what the fold without it gives: the last
    transition's canonical arguments, and each local time kept only when the event that
    set it (the one that set state_since, last_heartbeat) was stored before its ts.
    Idempotent."""
    if not isinstance(v.last_args, str):
        v.last_args = args_of(v.last_args)
    if v.since_local is not None and v.since_local >= ts_to_us(v.state_since):
        v.since_local = None
    if v.beat_local is not None and v.beat_local >= ts_to_us(v.last_heartbeat):
        v.beat_local = None
    return v


def fold_from_zero(
    store, upto: int | None = None, reader=None, after_page=None, found: list | None = None, edge_pos=None
) -> tuple[dict, int]:
    """Every view folded from zero in (ts, id) order, in pages of PAGE events: each page
    its own short read transaction (no write lock held), or all of them in `reader`'s one
    snapshot (verify compares them with the stored views of the same moment). Returns
    (views, events folded); after_page(envs, total) is called after each page with its
    events' envelopes. Given a `found` list, the notices the events give are added to it;
    given `edge_pos` ([(ts, id)]), its one item becomes the latest edge event's place (a
    spawn whose bytes mention "after" counts, as board.edge_pos_of says)."""
    with no_gc():
        return _fold(store, upto, reader, after_page, found, edge_pos)


def _pages(store, upto, reader):
    """The pages of lifecycle rows in (ts, id) order: in `reader`'s snapshot, or each page
    its own short read transaction."""
    last = ("", "")
    while True:
        q = EventQuery(lifecycle=True, upto_seq=upto, after_key=last, by="ts", limit=PAGE)
        if reader is not None:
            rows = reader.event_bodies(q)
        else:
            with store.read() as r:
                rows = r.event_bodies(q)
        if not rows:
            return
        yield rows
        last = (rows[-1][TS], rows[-1][ID])


def _fold(store, upto, reader, after_page, found, edge_pos) -> tuple[dict, int]:
    views: dict = {}
    graph = MemGraph(views)
    blobs = store.blobs
    reasons, notice_of, make = notices.REASONS, notices.notice_of, notices.make
    get = views.get
    total = 0
    for rows in _pages(store, upto, reader):
        edge = None
        try:
            envs = [_dec.decode(r[BODY]) for r in rows]
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
            raise IntegrityError(f"not an event envelope: {e}") from None
        for (seq, eid, ts, body, stored), env in zip(rows, envs, strict=True):
            if "$blob" in env.payload:
                env = readable(env, blobs)
            w, t = env.to, env.type
            view = get(w)
            if found is not None and t in reasons:
                n = notice_of(view, env)
                if n is not None:
                    found.append(make(seq, w, n))
            v = fold(view, env, eid, stored, graph, True)
            if v is not view and v is not None:
                views[w] = v
            if t in EDGE_TYPES and (t != SPAWNED or b'"after"' in body):
                edge = (ts, eid)
        if edge_pos is not None and edge is not None:
            edge_pos[0] = max(edge_pos[0], edge)
        total += len(rows)
        if after_page is not None:
            after_page(envs, total)
    for v in views.values():
        settle(v)
    return views, total
