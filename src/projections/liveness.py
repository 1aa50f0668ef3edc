"""Liveness, computed when read and never stored (contract: Liveness)."""

from ..events.envelope import ts_to_us
from ..events.settings import MAX_INTERVAL, MIN_INTERVAL
from .workers import ACTIVE, Worker

OK, WARN, STALE, DEAD, REMOTE = "OK", "WARN", "STALE", "DEAD", "REMOTE"
# Heartbeat intervals (`run --interval`, `heartbeat --interval`, the heartbeat_interval
# setting): finite, at least MIN_INTERVAL (a floor: 0.001 s wrote 863 events a second),
# at most a day (the bounds live in coord.events.settings).


def interval_error(value) -> str | None:
    """Why `value` is not a usable heartbeat interval (None when it is). nan and inf fail
    the comparisons."""
    if not (isinstance(value, (int, float)) and MIN_INTERVAL <= value <= MAX_INTERVAL):
        return f"must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds, not {value!r}"
    return None


ORDER = {None: -1, OK: 0, REMOTE: 0, WARN: 1, STALE: 2, DEAD: 3}


def interval_of(view: Worker, default_interval: float) -> float:
    return view.hb_interval or default_interval


def since_us(view: Worker, since_ts_us: int | None = None, beat_ts_us: int | None = None) -> int:
    """The later of the last heartbeat and entering the state, each taken as the earlier
    of its ts and the local time this store recorded it (contract: Liveness; the view
    keeps the local time only where it is the earlier), so an event dated ahead of this
    clock cannot keep a silent worker OK or put off `reap`. (since_ts_us, beat_ts_us: the
    two ts in µs, when the caller has them already.)"""
    if view.since_local is not None:
        base = view.since_local
    else:
        base = since_ts_us if since_ts_us is not None else ts_to_us(view.state_since)
    if view.last_heartbeat:
        if view.beat_local is not None:
            beat = view.beat_local
        else:
            beat = beat_ts_us if beat_ts_us is not None else ts_to_us(view.last_heartbeat)
        base = max(base, beat)
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
