"""Opening files inside a home without following links, and the user's own umask.

A home's files arrive through git from other clones, so a `.coord/events.jsonl` (or a
blob, or config.toml) may be a symlink pointing anywhere: every file coord opens inside
the home must be a regular file there, never reached through a link (exit 5 otherwise).

The home's files are private (coord sets a umask of 077, or 007 for a group home), but
what coord writes outside the home (git checkouts and merges, output files such as
`timeline --html`) keeps the umask the user started coord with: `USER_UMASK`.
"""

import os
import stat
from contextlib import contextmanager

from .errors import IntegrityError


def _read_umask() -> int:
    m = os.umask(0o022)
    os.umask(m)
    return m


# The umask the process started with, read when coord's log room is first imported (before
# any home sets its private umask).
USER_UMASK = _read_umask()


def _not_regular(path, st=None) -> IntegrityError:
    what = "a symlink" if st is None or stat.S_ISLNK(st.st_mode) else "not a regular file"
    return IntegrityError(f"{path} is {what}; coord only opens regular files inside its home")


def open_in_home(path, flags: int, mode: int = 0o660) -> int:
    """os.open for a file inside the home: never through a symlink, and only a regular
    file (a directory, fifo or device put in its place is refused, exit 5)."""
    try:
        fd = os.open(os.fspath(path), flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == 40:  # ELOOP: the last component is a symlink
            raise _not_regular(path) from None
        if e.errno == 21:  # EISDIR
            raise _not_regular(path, os.lstat(path)) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st)
    return fd


def open_file_in_home(path, mode: str = "rb"):
    """A Python file object for open_in_home (modes 'rb', 'ab', 'r+b')."""
    flags = {"rb": os.O_RDONLY, "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT, "r+b": os.O_RDWR}[mode]
    return os.fdopen(open_in_home(path, flags), mode)


def check_regular(path, missing_ok: bool = True) -> bool:
    """For files opened by a library (SQLite): the path is a regular file, not a link.
    Returns whether it exists."""
    try:
        st = os.lstat(os.fspath(path))
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    if not stat.S_ISREG(st.st_mode):
        raise _not_regular(path, st)
    return True


@contextmanager
def user_umask():
    """Run the body with the umask the user started coord with (for files written outside
    the home: output files, git checkouts)."""
    old = os.umask(USER_UMASK)
    try:
        yield
    finally:
        os.umask(old)
