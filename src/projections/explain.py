"""Why a worker is where it is, and what should happen next, by whom. Pure: a view, the
liveness already computed, and the clock in; a small dict out."""

from ..events.envelope import ts_to_us
from .liveness import DEAD, REMOTE, STALE, WARN
from .workers import APPROVED, ASSIGNED, CANCELED, COMPLETED, CONFLICTED, FAILED, IN_REVIEW, WORKING, Worker

SILENT = (WARN, STALE, DEAD)


def expected_next(v: Worker, live: str | None, now_us: int) -> dict:
    """{"actions": [...], "by": who, "why": one sentence, "waiting_on": name or None}."""
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
        if live in SILENT:
            return {
                "actions": ["release --force", "reap --requeue", "fail --force"],
                "by": "anyone (the holder has gone quiet)",
                "waiting_on": holder,
                "why": f"holder {holder} is {live}: no heartbeat for a while; "
                f"requeue it so another agent can take it",
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
