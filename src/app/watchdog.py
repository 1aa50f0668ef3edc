"""`coord watchdog`: liveness that acts. Each round is one write transaction that records
the watchdog's own beat (`watchdog.heartbeat`, kept out of the audit file) and, for every
active worker observed here: WARN → `msg.coord.nudge` to its holder, STALE →
`msg.coord.stale` to its spawner, DEAD → requeue (`worker.released`, as `reap --requeue`),
or fail once the attempt is the `max_attempts`-th. Message payloads are
{worker, attempt, attempt_of, liveness, silent_s}; the reap events carry the attempt's
stamp, so a reap of an attempt that is no longer current is refused (and, imported, a
conflict).

Each (worker, attempt, level) is acted on at most once per store, however many watchdogs
run and whatever reapers do meanwhile: liveness is judged, and earlier actions looked up,
inside the write transaction through its reads (a message of that type to that address
since the attempt began, naming the attempt), so the decision holds on a store that
re-runs the transaction (PostgreSQL) and across a watchdog that crashed and restarted."""

from ..events.envelope import Envelope, decode, now_us, ts_to_us
from ..events.errors import UsageError
from ..events.records import AUDIT_NONE, EventQuery, TypeFilter
from ..projections import board, liveness
from ..projections.workers import ACTIVE
from .lifecycle import need_actor, transition
from .reaping import REAP_REASON

BEAT = "watchdog.heartbeat"
NUDGE, STALE_MSG = "msg.coord.nudge", "msg.coord.stale"
LAST_BEAT = EventQuery(types=TypeFilter((BEAT,)), last=True, limit=1)  # status: one index step
SEEN_LEVELS = {liveness.OK: 0, liveness.WARN: 3, liveness.STALE: 10, liveness.DEAD: 30}


def spawner_of(tx, v) -> str | None:
    """Who spawned the worker (the view's `spawner`; the spawn event for a view folded
    before it was recorded)."""
    if v.spawner:
        return v.spawner
    rows = tx.events(EventQuery(worker=v.worker, types=TypeFilter(("worker.spawned",)), limit=1))
    return rows[0].from_ if rows else None


def attempt_began(tx, v) -> str:
    """The ts the current attempt began (its worker.started), read through the tx."""
    if v.attempt_of:
        rows = tx.find_events(v.attempt_of, limit=1)
        if rows:
            return rows[0].ts
    return v.state_since


def acted(tx, etype: str, to: str, v) -> bool:
    """Whether a message of this type already went to `to` about this attempt."""
    q = EventQuery(types=TypeFilter((etype,)), to=to, since_ts=attempt_began(tx, v))
    for row in tx.events(q):
        p = decode(row.body).payload
        if p.get("worker") == v.worker and p.get("attempt_of") == v.attempt_of:
            return True
    return False


def round_(c, actor: str | None, interval: float) -> list[dict]:
    """One round: the watchdog's beat and what it did, one dict per action."""
    actor = need_actor(c, actor)
    cfg = c.home.config
    default_interval, max_attempts = cfg["heartbeat_interval"], cfg["max_attempts"]
    clone = c.clone_id

    def do(tx):
        tx.append(Envelope(tx.next_ts(), actor, "*", BEAT, {"interval": interval}), audit=AUDIT_NONE)
        now = now_us()  # judged under the write lock, after the beat
        done = []
        for row in tx.views(states=ACTIVE):
            v = board.decode_view(row.view)
            lv = liveness.level(v, now, default_interval, clone)
            if lv not in (liveness.WARN, liveness.STALE, liveness.DEAD):
                continue
            silent = round((now - liveness.since_us(v)) / 1e6, 1)
            stamp = {"attempt": v.attempt, "attempt_of": v.attempt_of} if v.attempt_of else {}
            item = {"worker": v.worker, **stamp, "liveness": lv, "silent_s": silent, "holder": v.holder}
            if lv == liveness.DEAD:
                fail = v.attempt >= max_attempts
                payload = {"reason": REAP_REASON, "reap": True, "holder": v.holder, "silent_s": silent}
                if fail:
                    payload["max_attempts"] = max_attempts
                r = transition(tx, "fail" if fail else "release", v.worker, actor, {**payload, **stamp})
                item.update(action="fail" if fail else "requeue", to=None, event=r.event, state=r.state)
            else:
                etype = NUDGE if lv == liveness.WARN else STALE_MSG
                to = v.holder if lv == liveness.WARN else spawner_of(tx, v)
                if not to or acted(tx, etype, to, v):
                    continue
                msg = {"worker": v.worker, **stamp, "liveness": lv, "silent_s": silent, "holder": v.holder}
                ev = tx.append(Envelope(tx.next_ts(), actor, to, etype, msg))
                item.update(
                    action="nudge" if lv == liveness.WARN else "stale", to=to, event=ev.id, state=v.state
                )
            done.append(item)
        return done

    return c.store.transact(do)


def last_seen(c, now: int | None = None) -> dict | None:
    """The watchdog's own liveness: its last beat (who, when, its interval), how long it
    has been silent and the level that makes (OK, WARN, STALE, DEAD by its interval).
    None when no watchdog ever ran here."""
    rows = c.store.reader.events(LAST_BEAT)
    if not rows:
        return None
    row = rows[0]
    now = now if now is not None else now_us()
    beat = min(ts_to_us(row.ts), row.stored) if row.stored else ts_to_us(row.ts)
    p = decode(row.body).payload
    i = (
        p.get("interval")
        if isinstance(p.get("interval"), (int, float))
        else c.home.config["heartbeat_interval"]
    )
    silent = max(0.0, (now - beat) / 1e6)
    level = max((lv for lv, k in SEEN_LEVELS.items() if silent >= k * i), key=SEEN_LEVELS.get)
    return {
        "watchdog": row.from_,
        "last_seen": row.ts,
        "interval": i,
        "silent_s": round(silent, 1),
        "liveness": level,
    }


def check_interval(interval: float) -> float:
    why = liveness.interval_error(interval)
    if why:
        raise UsageError(f"--interval {why}")
    return interval
