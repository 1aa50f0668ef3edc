"""Shared plumbing for commands that run until interrupted (log -f, status --watch):
SIGTERM ends them like Ctrl-C, and a closed pipe (`| head`) ends them quietly."""

import os
import select
import signal
import sys
from contextlib import contextmanager


class Stop(Exception):
    """Raised inside a live loop to end it cleanly (signal or closed pipe)."""


def _on_term(signum, frame):
    raise Stop()


@contextmanager
def until_interrupted():
    """Run the body until Ctrl-C, SIGTERM or a broken pipe; all three end it with exit 0."""
    old = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread (in-process tests): Ctrl-C still works
        old = None
    try:
        yield
    except (KeyboardInterrupt, Stop):
        pass
    except BrokenPipeError:
        silence_stdout()
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def silence_stdout():
    """After the reader went away: point stdout at /dev/null so the exit flush is quiet."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass


def write(data: bytes) -> None:
    """Write and flush at once: a follower's reader wants each line as it happens."""
    out = sys.stdout.buffer
    out.write(data)
    out.flush()


def reader_gone() -> bool:
    """True once the reading end of a stdout pipe has closed (`log -f | head`): a quiet
    follower would otherwise only notice at its next write."""
    try:
        p = select.poll()
        p.register(sys.stdout.fileno(), 0)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))
    except (OSError, ValueError, AttributeError):
        return False
