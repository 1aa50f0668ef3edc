"""The work graph's rules of spawn and start, checked by every lifecycle action."""

from ..events.envelope import Envelope
from ..events.errors import Cycle, NotReady, UnknownWorker
from ..projections import board
from ..projections.workers import Worker


def refuse_by_graph(tx, view: Worker | None, env: Envelope) -> None:
    """The work graph's rules of spawn and start: a spawn waits only for workers that
    exist (exit 3), never for itself (exit 4); a worker that waits for others, or is
    blocked, is not started without --force (exit 4, naming them)."""
    p = env.payload
    if env.type == "worker.spawned":
        for a in p.get("after") or ():
            if a == env.to:
                raise Cycle(f"cannot spawn {a}: it cannot wait for itself ({a} → {a})", cycle=[a, a])
            if board.load_tx(tx, a) is None:
                raise UnknownWorker(f"unknown worker {a!r} (in --after)")
    elif env.type == "worker.started" and view.after and not p.get("force"):
        waits, blocked, states = board.waits_tx(tx, view)
        if waits:
            named = ", ".join(f"{a} ({states.get(a, 'unknown')})" for a in waits)
            what = f"is blocked by {', '.join(blocked)}; it waits for" if blocked else "waits for"
            raise NotReady(
                f"cannot start: {env.to} {what} {named} (start --force to start it anyway)",
                waits_for=waits,
                blocked_by=blocked,
            )
