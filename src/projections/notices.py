"""Notices (contract: Agents): a lifecycle event that changes or ends an attempt an agent
held, delivered to that agent by `poll` like a message, at least once and in order.

Pure: the view before an event and the event in, the notice (or None) out. The board's
projector (coord.projections.board) stores what this derives inside each append, again
when a worker is re-folded, and on rebuild; the store keeps one row per (agent, seq)
(coord.events.store_notices), so the notice is the lifecycle event itself: no message is
sent for it.

Which events: changes requested, conflicted, check failed, released by someone else
(requeued: `reap --requeue`, `release --force`, the watchdog), canceled, failed, while
the worker is held (WORKING, CONFLICTED, IN_REVIEW, APPROVED), by an actor other than
the holder: an agent is not told of its own action. Approve and merge move the work on;
they are not notices.
"""

from ..events.records import Notice
from .workers import HELD, Worker, check

REASONS = {
    "worker.changes_requested": "changes_requested",
    "worker.conflicted": "conflicted",
    "worker.check_failed": "check_failed",
    "worker.released": "requeued",
    "worker.canceled": "canceled",
    "worker.failed": "failed",
}
NOTICE_TYPES = tuple(REASONS)
FROM_KEY = "notices_from"  # meta: events at or below this seq give no notice (see 0009_notices)


def attempt_number(view: Worker) -> int:
    """The number (1, 2, …) of the worker's current attempt, as the fold derives it (a view
    folded before attempts existed: the starts the fold applied)."""
    return view.attempt or view.starts


def notice_of(view: Worker | None, env) -> tuple[str, int, str] | None:
    """(agent, attempt, reason) when the event, legal at its place, changes or ends the
    attempt the view's holder holds, and someone else appended it; else None."""
    reason = REASONS.get(env.type)
    if reason is None or view is None or view.holder is None or view.state not in HELD:
        return None
    if env.from_ == view.holder or check(view, env) is not None:
        return None
    return view.holder, attempt_number(view), reason


def make(seq: int, worker: str, found: tuple[str, int, str]) -> Notice:
    agent, attempt, reason = found
    return Notice(seq, agent, worker, attempt, reason)


def start_seq(tx) -> int:
    """Events at or below this seq give no notice (they predate the notices table);
    once per transaction."""
    key = ("meta", FROM_KEY)
    if key not in tx.cache:
        tx.cache[key] = start_of(tx)
    return tx.cache[key]


def start_of(reader) -> int:
    return int(reader.meta([FROM_KEY]).get(FROM_KEY) or 0)


def sync(tx, worker: str, derived: list[Notice]) -> None:
    """A re-folded worker's notices become `derived` (those a new order no longer gives
    go; the acknowledgement of those that stay is kept)."""
    keep = {(n.agent, n.seq) for n in derived}
    start = start_seq(tx)
    gone = [(n.agent, n.seq) for n in tx.notices_of(worker) if (n.agent, n.seq) not in keep and n.seq > start]
    if gone:
        tx.drop_notices(gone)
    if derived:
        tx.put_notices(derived)
