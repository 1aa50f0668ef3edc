"""Opening files inside a home without following links, the user's own umask, and the
exclusive file locks that make writers queue (the store's, the audit file's, rebuilds').

A home's files arrive through git from other clones, so a `.coord/events.jsonl` (or a
blob, or config.toml) may be a symlink pointing anywhere: every file coord opens inside
the home must be a regular file there, never reached through a link (exit 5 otherwise).

The home's files are private (coord sets a umask of 077, or 007 for a group home), but
what coord writes outside the home (git checkouts and merges, output files such as
`timeline --html`) keeps the umask the user started coord with: `USER_UMASK`.
"""

import errno
import fcntl
import os
import stat
import time
from contextlib import contextmanager

from .errors import Busy, CoordError, IntegrityError, Refused, UsageError


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


def denied(path, e: OSError | None = None, doing: str = "access") -> CoordError:
    """A permission error on a home file, as one line naming the path and its owner (exit 1:
    another user's home is not ours to read or write)."""
    owner = ""
    try:
        import pwd

        uid = os.stat(path).st_uid
        try:
            owner = pwd.getpwuid(uid).pw_name
        except KeyError:
            owner = f"uid {uid}"
    except OSError:
        pass
    if owner:
        owner = f" (it belongs to {owner}; run coord as that user, or ask them for access)"
    why = e.strerror.lower() if e is not None and e.strerror else "permission denied"
    return CoordError(f"cannot {doing} {path}: {why}{owner}")


def open_in_home(path, flags: int, mode: int = 0o660) -> int:
    """os.open for a file inside the home: never through a symlink, and only a regular
    file (a directory, fifo or device put in its place is refused, exit 5)."""
    try:
        fd = os.open(os.fspath(path), flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:  # the last component is a symlink
            raise _not_regular(path) from None
        if e.errno == errno.EISDIR:
            raise _not_regular(path, os.lstat(path)) from None
        if e.errno in (errno.EACCES, errno.EPERM):
            raise denied(path, e, "write" if flags & (os.O_WRONLY | os.O_RDWR) else "read") from None
        if e.errno == errno.ENXIO:  # a fifo with no reader, opened for writing
            raise _not_regular(path, os.lstat(path)) from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise _not_regular(path, st)
    # O_NONBLOCK only kept a fifo put in the file's place from blocking the open.
    os.set_blocking(fd, True)
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


def read_file_in_home(path) -> bytes | None:
    """The bytes of a small file inside the home (settings); None when it does not exist."""
    try:
        fd = open_in_home(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def write_file_in_home(path, data: bytes, mode: int | None = None) -> None:
    """Replace a file inside the home atomically: a new temporary file beside it (created
    exclusively, never through a link), fsynced, renamed over it. A symlink in its place is
    refused (exit 5). `mode` forces the file's permissions (local.toml: 0600)."""
    path = os.fspath(path)
    check_regular(path)
    d, name = os.path.split(path)
    tmp = os.path.join(d, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660)
    except PermissionError as e:
        raise denied(path, e, "write") from None
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)


def create_file_in_home(path, data: bytes = b"") -> bool:
    """Create a file inside the home if it does not exist (never through a link); an
    existing one must be a regular file. Returns whether it was created."""
    try:
        fd = os.open(
            os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o660
        )
    except FileExistsError:
        check_regular(path)
        return False
    except PermissionError as e:
        raise denied(path, e, "write") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def check_home_dir(path) -> None:
    """The home itself must be a real directory: a `.coord` that is a symlink (git commits
    symlinks) would put every file coord writes wherever it points (exit 5)."""
    try:
        st = os.lstat(os.fspath(path))
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise IntegrityError(
            f"{path} is a symlink; coord only uses a real directory as its home "
            "(point --home or COORD_HOME at the directory itself)"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path} is not a directory, so it cannot be a home")


def check_dir_in_home(path) -> None:
    """A directory inside the home (blobs/, worktrees/), if it exists, is a real directory,
    never a symlink (exit 5)."""
    try:
        st = os.lstat(os.fspath(path))
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        what = "a symlink" if stat.S_ISLNK(st.st_mode) else "not a directory"
        raise IntegrityError(f"{path} is {what}; coord only uses real directories inside its home")


def ensure_dir_in_home(path) -> None:
    """A directory inside the home, created if missing, and never a symlink (exit 5)."""
    path = os.fspath(path)
    try:
        os.mkdir(path, 0o770)
    except FileExistsError:
        pass
    except PermissionError as e:
        raise denied(path, e, "create") from None
    check_dir_in_home(path)


# --- output files: named by the user, outside the home ------------------------------------
def check_output_path(path, home_path=None, force: bool = False) -> str:
    """The absolute path of an output file the user named (`timeline --html`, `backup`),
    refused when it cannot or must not be written: its directory missing (exit 2), a
    directory (exit 2), inside the home or any other coord home (exit 4, even with
    --force: it could replace the live database), or an existing file without --force
    (exit 4)."""
    p = os.path.abspath(os.fspath(path))
    # Where the file would really land: links in the directory path, or the file itself
    # being a link, are followed as open() would follow them.
    real = os.path.realpath(p)
    homes = [os.path.realpath(os.fspath(home_path))] if home_path is not None else []
    for where in (p, real):  # and any other home: a directory named .coord on the way
        parts = where.split(os.sep)
        if ".coord" in parts[:-1]:
            homes.append(os.sep.join(parts[: len(parts) - 1 - parts[:-1][::-1].index(".coord")]))
    for h in homes:
        inside = h.rstrip(os.sep) + os.sep
        if real == h or real.startswith(inside) or p.startswith(inside):
            raise Refused(f"{path} is inside a coord home ({h}); write output files elsewhere")
    parent = os.path.dirname(p)
    if not os.path.isdir(parent):
        raise UsageError(f"no such directory: {parent}")
    if os.path.isdir(real):
        raise UsageError(f"{path} is a directory")
    if os.path.lexists(p) and not force:
        raise Refused(f"{path} exists (use --force to overwrite it)")
    return p


def write_output(path, write, force: bool = False) -> None:
    """Write an output file (already checked by check_output_path) with the user's umask:
    `write(fd)` fills a new temporary file in the same directory, which is then renamed
    into place (with --force) or linked there only if the name is still free."""
    p = os.fspath(path)
    d, name = os.path.split(p)
    tmp = os.path.join(d, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    with user_umask():
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except PermissionError as e:
            raise CoordError(f"cannot write to {d}: {e.strerror}") from None
    try:
        try:
            write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        place(tmp, p, force)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)


def place(tmp: str, dest: str, force: bool) -> None:
    """Move a finished temporary file to dest: rename over it with --force, else link it
    there only if the name is still free (someone may have created it meanwhile)."""
    if force:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise Refused(f"{dest} exists (use --force to overwrite it)") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dest):  # a file system without hard links
            raise Refused(f"{dest} exists (use --force to overwrite it)") from None
        os.replace(tmp, dest)


@contextmanager
def user_umask():
    """Run the body with the umask the user started coord with (for files written outside
    the home: output files, git checkouts)."""
    old = os.umask(USER_UMASK)
    try:
        yield
    finally:
        os.umask(old)


@contextmanager
def exclusive_flock(fd: int, timeout: float, what: str):
    """An exclusive flock on fd, waited for at most `timeout` seconds (then Busy, exit 7).
    Polls with a short, growing sleep (for locks held rarely: the audit file's, rebuilds');
    the store's write lock is a FairLock."""
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise Busy(f"{what} stayed locked past the busy timeout; safe to retry") from None
            time.sleep(delay)
            delay = min(delay * 1.5, 0.005)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _blocking_flock(fd: int, deadline: float) -> int | None:
    """Take an exclusive flock on fd's open file, waiting in the kernel (woken the moment
    it is released, not after a sleep) until `deadline`. Returns None when taken, else
    fd closed and replaced: a new descriptor of the same file to use from now on.

    A blocking flock has no timeout, so the wait runs on a helper thread holding a dup of
    fd (the same open file: a lock it takes is ours) while this thread waits at most until
    the deadline. Given up, this thread closes its descriptor; when the helper's flock
    returns at last it closes the dup, the open file's last descriptor, which releases the
    lock: a late grant is never leaked, and nothing is ever called on a reused number."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        pass
    import threading

    dup = os.dup(fd)
    state = {"got": False, "gave_up": False, "error": None}
    mu = threading.Lock()
    done = threading.Event()

    def wait():
        try:
            fcntl.flock(dup, fcntl.LOCK_EX)
            with mu:
                state["got"] = True
        except OSError as e:
            state["error"] = e
        finally:
            os.close(dup)  # the lock stays with the open file (fd) unless we gave up
            done.set()

    threading.Thread(target=wait, daemon=True, name="coord-flock").start()
    done.wait(max(0.0, deadline - time.monotonic()))
    with mu:
        if state["got"]:
            return None
        state["gave_up"] = True
    if state["error"] is not None:
        raise state["error"]
    return -1


class FairLock:
    """The store's write lock: writers are served in turn, not by who polls first.

    Two flocks, a turnstile: a writer takes `gate`, then `lock`, then lets `gate` go, and
    holds `lock` for its transaction. At most one writer (the gate's holder) ever waits on
    `lock`, so when `lock` is released it is handed to that writer: the writer that just
    released it, coming back at once, finds the gate taken and queues behind it. Waits are
    blocking flocks (woken by the kernel on release, no sleeps), bounded by `timeout`
    (then Busy, exit 7). Each lock is held through its own open file, so two stores in one
    process (a `coord run` heartbeat thread beside the command's) exclude each other too."""

    def __init__(self, open_file, gate_path, lock_path, what: str):
        self.open_file = open_file  # path -> a new read-write fd (inside the home)
        self.paths = (gate_path, lock_path)
        self.fds: list = [None, None]
        self.what = what

    def _fd(self, i: int) -> int:
        if self.fds[i] is None:
            self.fds[i] = self.open_file(self.paths[i])
        return self.fds[i]

    def _take(self, i: int, deadline: float) -> None:
        fd = self._fd(i)
        if _blocking_flock(fd, deadline) is not None:
            os.close(fd)  # the helper thread's late grant dies with the open file
            self.fds[i] = None
            raise Busy(f"{self.what} stayed locked past the busy timeout; safe to retry")

    @contextmanager
    def held(self, timeout: float):
        deadline = time.monotonic() + timeout
        self._take(0, deadline)
        try:
            self._take(1, deadline)
        finally:
            fcntl.flock(self.fds[0], fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.fds[1], fcntl.LOCK_UN)

    def close(self) -> None:
        for i, fd in enumerate(self.fds):
            if fd is not None:
                os.close(fd)
                self.fds[i] = None
