"""The SQLite store's files and errors: what must hold before SQLite opens anything in a
home (regular files, never links), and sqlite3's and the OS's errors as coord's, each
naming the home and with its exit code.
"""

import errno
import sqlite3

from .errors import Busy, CoordError, IntegrityError
from .files import check_dir_in_home, check_home_dir, check_regular


def check_home_files(home) -> None:
    """Before SQLite opens anything: the home is a real directory and the database and its
    -wal and -shm are regular files, never symlinks SQLite would follow (exit 5)."""
    check_home_dir(home.path)
    for suffix in ("", "-wal", "-shm"):
        check_regular(f"{home.db_path}{suffix}")
    # The audit file, the lock files and the directories beside them too, so a command
    # refuses before it appends anything rather than after (when the audit file could
    # only be a warning).
    for name in ("events.jsonl", "write.lock", "write.queue", "audit.lock", "rebuild.lock"):
        check_regular(home.path / name)
    for d in (home.blobs_path, home.path / "worktrees"):
        check_dir_in_home(d)


def coord_error(e: Exception, home) -> CoordError:
    if isinstance(e, sqlite3.OperationalError) and ("locked" in str(e) or "busy" in str(e)):
        return Busy("the store stayed locked past the busy timeout; safe to retry")
    if isinstance(e, PermissionError) or (isinstance(e, OSError) and e.errno in (errno.EACCES, errno.EROFS)):
        return CoordError(f"cannot write to {home.path}: {e.strerror}")
    msg = str(e)
    if "disk is full" in msg or (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EFBIG)):
        return CoordError(
            f"no space left for {home.path} (disk full or file size limit); nothing was recorded"
        )
    if "disk I/O error" in msg:
        return CoordError(
            f"I/O error writing {home.db_path} (disk full, a file-size limit, or a "
            "failing disk); nothing was recorded"
        )
    if "readonly" in msg or "read-only" in msg or "unable to open" in msg:
        return CoordError(f"cannot write to {home.db_path}: {msg}")
    if "malformed" in msg or "not a database" in msg:
        return IntegrityError(
            f"{home.db_path} is damaged ({msg}); restore a backup or rebuild from events.jsonl"
        )
    if isinstance(e, OSError):
        return CoordError(f"{home.path}: {e}")
    return CoordError(f"database error: {msg}")
