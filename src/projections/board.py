"""Storage of the worker views: load, save, the projector run inside each append
transaction, re-folding workers, and rebuild from zero."""

import msgspec

from ..events.envelope import decode
from ..events.errors import Ambiguous, UnknownWorker
from ..events.failpoints import failpoint
from .workers import Worker, fold, fold_all

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder(Worker)
PROJECTION = "workers"


def load(conn, worker: str) -> Worker | None:
    row = conn.execute("SELECT view FROM workers WHERE worker = ?", (worker,)).fetchone()
    return _dec.decode(row[0]) if row else None


def load_tx(tx, worker: str) -> Worker | None:
    """load() through the transaction's cache: one read per worker per transaction."""
    key = ("worker", worker)
    if key not in tx.cache:
        tx.cache[key] = load(tx.conn, worker)
    return tx.cache[key]


def save_tx(tx, v: Worker, old: Worker | None = None) -> None:
    if old is not None and (old.state, old.holder, old.assignee, old.updated) == (
        v.state,
        v.holder,
        v.assignee,
        v.updated,
    ):
        # A heartbeat: only the view blob changes, so skip the index maintenance of a REPLACE.
        tx.conn.execute("UPDATE workers SET view = ? WHERE worker = ?", (_enc.encode(v), v.worker))
    else:
        save(tx.conn, v)
    tx.cache[("worker", v.worker)] = v


def decode_view(blob: bytes) -> Worker:
    return _dec.decode(blob)


def save(conn, v: Worker, table: str = "workers") -> None:
    conn.execute(
        f"INSERT OR REPLACE INTO {table}(worker, state, holder, assignee, created, updated, view) "
        "VALUES (?,?,?,?,?,?,?)",
        (v.worker, v.state, v.holder, v.assignee, v.created, v.updated, _enc.encode(v)),
    )


def readable(env, blobs=None, conn=None):
    """The envelope a fold sees (coord.events.blobs.readable: lenient claim-check)."""
    if "$blob" not in env.payload:
        return env
    from ..events.blobs import readable as _readable
    from ..events.blobs import store_for_conn

    return _readable(env, blobs if blobs is not None else store_for_conn(conn))


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
            if ev.origin != "local" and _falls_earlier(tx.conn, view, env, ev.id):
                if pending is None:
                    pending = tx.before_commit[PROJECTION] = _Refold()
                pending.workers.add(env.to)
                tx.cache.pop(("worker", env.to), None)
            else:
                new = fold(view, env, ev.id, ev.stored)
                if new is not None:
                    save_tx(tx, new, view)
    tx.conn.execute(
        "INSERT OR REPLACE INTO projection_state(name, last_seq) VALUES (?, ?)", (PROJECTION, ev.seq)
    )


def _falls_earlier(conn, view, env, eid) -> bool:
    if view is not None:
        return (env.ts, eid) < (view.pos_ts, view.pos_id)
    # No view yet: events of this worker already stored (an orphan started/canceled that
    # arrived before its spawn) must be folded after this one.
    return (
        conn.execute("SELECT 1 FROM events WHERE worker = ? AND id != ? LIMIT 1", (env.to, eid)).fetchone()
        is not None
    )


class _Refold:
    """Workers to re-fold before commit (a before_commit callback of the transaction)."""

    def __init__(self):
        self.workers: set[str] = set()

    def __call__(self, tx):
        refold(tx.conn, sorted(self.workers))
        for w in self.workers:
            tx.cache.pop(("worker", w), None)


def worker_events(conn, worker: str):
    for eid, body, stored in conn.execute(
        "SELECT id, body, stored FROM events WHERE worker = ? ORDER BY ts, id", (worker,)
    ):
        yield readable(decode(body), conn=conn), eid, stored


def refold(conn, workers) -> None:
    """Fold the given workers again from all their events, in (ts, id) order."""
    for w in workers:
        views = fold_all(worker_events(conn, w))
        if w in views:
            save(conn, views[w])
        else:
            conn.execute("DELETE FROM workers WHERE worker = ?", (w,))


def resolve(conn, prefix: str) -> str:
    """A worker id or a unique prefix of one."""
    if conn.execute("SELECT 1 FROM workers WHERE worker = ?", (prefix,)).fetchone():
        return prefix
    rows = [
        r[0]
        for r in conn.execute(
            "SELECT worker FROM workers WHERE worker >= ? AND worker < ? ORDER BY worker LIMIT 11",
            (prefix, prefix + "\U0010ffff"),
        )
    ]
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise UnknownWorker(f"unknown worker {prefix!r}")
    more = ", …" if len(rows) > 10 else ""
    raise Ambiguous(f"worker prefix {prefix!r} is ambiguous: {', '.join(rows[:10])}{more}")


def rebuild(store, batch: int = 20000, progress=None) -> int:
    """Fold every event from zero into a fresh table and swap it in. The long read runs
    outside any write lock; the final write transaction only re-folds workers touched
    since the read began, then swaps tables. Returns the number of events folded."""
    views: dict[str, Worker] = {}
    upto = store.max_seq()
    total = 0
    last = ("", "")
    while True:  # (ts, id) keyset pagination in short read transactions
        with store.read() as c:
            rows = c.execute(
                "SELECT ts, id, body, stored FROM events WHERE seq <= ? AND (ts, id) > (?, ?) "
                "AND worker IS NOT NULL ORDER BY ts, id LIMIT ?",
                (upto, *last, batch),
            ).fetchall()
        if not rows:
            break
        for _ts, eid, body, stored in rows:
            env = readable(decode(body), store.blobs)
            v = fold(views.get(env.to), env, eid, stored)
            if v is not None:
                views[env.to] = v
        total += len(rows)
        last = (rows[-1][0], rows[-1][1])
        failpoint("rebuild-mid-read")
        if progress:
            progress(total)
    failpoint("rebuild-before-swap")
    with store.write() as tx:  # the swap: readers see the old views or the new, never a mix
        c = tx.conn
        c.execute("DELETE FROM workers")
        c.executemany(
            "INSERT INTO workers(worker, state, holder, assignee, created, updated, view) "
            "VALUES (?,?,?,?,?,?,?)",
            [
                (v.worker, v.state, v.holder, v.assignee, v.created, v.updated, _enc.encode(v))
                for v in views.values()
            ],
        )
        late = [
            r[0]
            for r in c.execute(
                "SELECT DISTINCT worker FROM events WHERE seq > ? AND worker IS NOT NULL", (upto,)
            )
        ]
        refold(c, late)
        c.execute(
            "INSERT OR REPLACE INTO projection_state(name, last_seq) VALUES (?, ?)",
            (PROJECTION, store.max_seq()),
        )
    return total


def fresh_fold(conn) -> dict[str, Worker]:
    """All views folded from zero (for verify and tests)."""

    def events():
        for eid, body, stored in conn.execute(
            "SELECT id, body, stored FROM events WHERE worker IS NOT NULL ORDER BY ts, id"
        ):
            yield readable(decode(body), conn=conn), eid, stored

    return fold_all(events())


def stored_views(conn) -> dict[str, Worker]:
    return {w: _dec.decode(b) for w, b in conn.execute("SELECT worker, view FROM workers")}
