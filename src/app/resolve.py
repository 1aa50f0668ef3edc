"""What the user named: a worker (an id or a unique prefix, COORD_WORKER, or the worktree
the command runs in), an event (an id or a unique prefix), a blob (a hash or a unique
prefix). An unknown name is exit 3; an ambiguous prefix is exit 2 listing the candidates,
everywhere (coord.events.ids.one_of)."""

import os
from pathlib import Path

from ..events.errors import UnknownEvent, UnknownWorker, UsageError
from ..events.ids import SHOWN, normalize_event_prefix, one_of


def worker_id(reader, text: str) -> str:
    """A worker id or a unique prefix of one, among the stored views."""
    return one_of(reader.worker_ids(text, SHOWN + 1), text, "worker", UnknownWorker)


def event(reader, text: str, upto_seq: int | None = None):
    """An event id or a unique prefix of one -> its Row."""
    p = normalize_event_prefix(text)
    rows = reader.find_events(p, SHOWN + 1, upto_seq)
    eid = one_of([r.id for r in rows], text, "event", UnknownEvent, exact=p, shown=lambda i: i[:15])
    return next(r for r in rows if r.id == eid)


def blob(c, text: str) -> str:
    """A blob reference or a unique prefix ('b3:ab12', 'ab12') -> 'b3:<hex>'."""
    return c.blobs.resolve(text)


def worker_arg(c, given: str | None) -> str:
    """The worker a command acts on: an explicit id (or unique prefix); else COORD_WORKER;
    else the live worker whose branch is checked out where the current directory is
    (git's own record, not a recorded path)."""
    if given:
        return worker_id(c.store.reader, given)
    env = os.environ.get("COORD_WORKER")
    if env:
        return worker_id(c.store.reader, env)
    from .worktrees import worker_here

    here = worker_here(c, Path.cwd().absolute())
    if here is not None:
        return here
    raise UsageError("no worker given: pass ID, set COORD_WORKER, or run inside its worktree")


def worker_in_history(history, text: str) -> str:
    """A worker id or unique prefix among the workers a history (a store's, or an audit
    file's with no database) spawned."""
    from ..events.history import StoreHistory

    if isinstance(history, StoreHistory):
        return worker_id(history.store.reader, text)
    ids = history.spawned()
    hits = [w for w in ids if w.startswith(text)][: SHOWN + 1]
    return one_of(hits, text, "worker", UnknownWorker)
