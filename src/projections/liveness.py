"""Liveness, computed when read and never stored (contract: Liveness)."""

from ..events.envelope import ts_to_us
from ..events.settings import MAX_INTERVAL, MIN_INTERVAL  # noqa: F401  (interval bounds: 0.05 s .. 1 day)
from .workers import ACTIVE, Worker

OK, WARN, STALE, DEAD, REMOTE = "OK", "WARN", "STALE", "DEAD", "REMOTE"

ORDER = {None: -1, OK: 0, REMOTE: 0, WARN: 1, STALE: 2, DEAD: 3}


def interval_of(view: Worker, default_interval: float) -> float:
    return view.hb_interval or default_interval


def since_us(view: Worker) -> int:
    """The later of the last heartbeat and entering the state."""
    base = ts_to_us(view.state_since)
    if view.last_heartbeat:
        base = max(base, ts_to_us(view.last_heartbeat))
    return base


def level(view: Worker, now_us: int, default_interval: float, local_clone: str | None = None) -> str | None:
    if view.state not in ACTIVE:
        return None
    if local_clone and view.holder_clone and view.holder_clone != local_clone:
        return REMOTE
    i = interval_of(view, default_interval)
    age = (now_us - since_us(view)) / 1e6
    if age >= 30 * i:
        return DEAD
    if age >= 10 * i:
        return STALE
    if age >= 3 * i:
        return WARN
    return OK
