"""Attempts (fencing tokens): each `start` opens one, identified by the id of its
worker.started and numbered by the fold (coord.projections.workers.attempt_of_start). An
action stamped `{"attempt": N, "attempt_of": id}` is refused when that attempt is no longer
current, whatever the actor's name, so a zombie supervisor (suspended, partitioned, slow
to die) can never act on a later attempt of the same worker. `--attempt N` and
`COORD_ATTEMPT` give the number; it is resolved to the id inside the write transaction.
"""

import os

from ..events.errors import StaleAttempt, UsageError
from ..projections.workers import Worker, attempt_label, current_attempt


def attempt_extra(view: Worker | None) -> dict:
    cur = current_attempt(view)
    return {"current_attempt": view.attempt if cur else None, "current_attempt_of": cur}


def with_stamp(view: Worker | None, payload: dict) -> dict:
    """`--attempt N` (a payload with `attempt` but no `attempt_of`) resolved to the stamp
    {"attempt": N, "attempt_of": id} when N is the worker's current attempt; otherwise
    StaleAttempt (exit 4) naming the current one. Read through the transaction."""
    n = payload.get("attempt")
    if n is None or "attempt_of" in payload:
        return payload
    cur = current_attempt(view)
    if cur is not None and view.attempt == n:
        return {**payload, "attempt_of": cur}
    if view is not None and view.attempt_of is None and view.starts and n == view.starts:
        return payload  # a view folded before attempts existed: name-based rules decide
    now = attempt_label(view) if cur else "none"
    state = view.state if view is not None else "unknown"
    raise StaleAttempt(
        f"attempt {n} of {view.worker if view else '?'} is not current (current: {now}; it is {state})",
        **attempt_extra(view),
    )


def attempt_from_env(wid: str, given: int | None, env=None) -> int | None:
    """The attempt an action names: `--attempt N`, else COORD_ATTEMPT when COORD_WORKER
    names this worker (a child of `coord run` acting on another worker is unstamped)."""
    if given is not None:
        return given
    env = os.environ if env is None else env
    text = env.get("COORD_ATTEMPT")
    if not text or env.get("COORD_WORKER") != wid:
        return None
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise UsageError(f"COORD_ATTEMPT must be a whole number from 1, not {text!r}")
    return n
