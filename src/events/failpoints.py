"""Named crash points for tests: COORD_FAILPOINTS=name[,name] makes the process SIGKILL
itself when it reaches one of them. Costs one dict lookup when unset."""

import os

_ACTIVE = frozenset(filter(None, os.environ.get("COORD_FAILPOINTS", "").split(",")))


def failpoint(name: str) -> None:
    if name in _ACTIVE:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def active(name: str) -> bool:
    """Whether a failpoint is set (for a crash in the middle of a step, not at its edge)."""
    return name in _ACTIVE
