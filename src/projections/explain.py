"""Why a worker is where it is, and what should happen next, by whom. Pure: a view, the
liveness already computed, and the clock in; a small dict out."""

from ..events.envelope import ts_to_us
from .liveness import DEAD, REMOTE, STALE, WARN, interval_of, since_us
from .workers import APPROVED, ASSIGNED, CANCELED, COMPLETED, CONFLICTED, FAILED, IN_REVIEW, WORKING, Worker

SILENT = (WARN, STALE, DEAD)


def _reapable_in(v: Worker, now_us: int, default_interval: float) -> float:
    """Seconds until the worker goes DEAD (30 intervals of silence), when reap acts."""
    return max(0.0, 30 * interval_of(v, default_interval) - (now_us - since_us(v)) / 1e6)


def _secs(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


def expected_next(v: Worker, live: str | None, now_us: int, default_interval: float = 10.0) -> dict:
    """{"actions": [...], "by": who, "why": one sentence, "waiting_on": name or None}.
    `default_interval`: the heartbeat_interval setting (liveness of a worker whose beats
    declared none)."""
    holder = v.holder or "nobody"
    in_state = max(0, (now_us - ts_to_us(v.state_since)) / 1e6)
    s = v.state
    if v.conflicts:
        return {
            "actions": ["inspect the conflicts (coord show), then fail or cancel if needed"],
            "by": "a human",
            "waiting_on": "a human",
            "why": f"{len(v.conflicts)} event(s) from another clone could not be applied",
        }
    if s == ASSIGNED:
        who = v.assignee or "any agent"
        return {
            "actions": ["start"],
            "by": who,
            "waiting_on": v.assignee,
            "why": f"nobody has claimed it yet (waiting {int(in_state)}s)",
        }
    if s in (WORKING, CONFLICTED):
        work = "resolve the conflict, then done" if s == CONFLICTED else "heartbeat while working, then done"
        if live == DEAD:
            return {
                "actions": ["reap --requeue", "release --force", "fail --force"],
                "by": "anyone (the holder has gone quiet)",
                "waiting_on": holder,
                "why": f"holder {holder} is DEAD: no heartbeat for 30 intervals; "
                f"requeue it so another agent can take it (`coord watchdog` does)",
            }
        if live in SILENT:
            left = _secs(_reapable_in(v, now_us, default_interval))
            return {
                "actions": ["release --force", "fail --force"],
                "by": "anyone (the holder has gone quiet), or wait",
                "waiting_on": holder,
                "why": f"holder {holder} is {live}: no heartbeat for a while; `reap` acts on it "
                f"once it is DEAD, in {left} if it stays silent (or release it now with --force)",
            }
        if live == REMOTE:
            return {
                "actions": [work],
                "by": f"{holder} (on another clone)",
                "waiting_on": holder,
                "why": "its holder works on another clone; liveness is not observed here",
            }
        return {
            "actions": [work, "release", "fail"],
            "by": holder,
            "waiting_on": holder,
            "why": f"{holder} is working on it",
        }
    if s == IN_REVIEW:
        return {
            "actions": ["approve", "request-changes"],
            "by": f"anyone but the holder ({holder})"
            + (f" and {v.last_from}, who handed it in" if v.last_from not in ("", v.holder) else ""),
            "waiting_on": "a reviewer",
            "why": "the work is handed in and waits for review",
        }
    if s == APPROVED:
        return {
            "actions": ["merge"],
            "by": "anyone",
            "waiting_on": "a merger",
            "why": "approved, waiting to be merged",
        }
    if s == FAILED:
        return {
            "actions": ["retry", "cancel"],
            "by": "anyone",
            "waiting_on": "a human",
            "why": "it failed" + (f": {v.reason}" if v.reason else ""),
        }
    if s in (COMPLETED, CANCELED):
        return {"actions": [], "by": None, "waiting_on": None, "why": f"{s.lower()}: nothing more to do"}
    return {"actions": [], "by": None, "waiting_on": None, "why": f"unknown state {s}"}
