"""Read commands catch up with a pull (contract: Offline sync): when the audit file holds
lines the store lacks (a `git pull`, a `coord sync` in another process, a checkout), a
read command imports them first, so the board it shows is the one the file describes.

The check is cheap (a stat, the bookkeeping and one read of the file's last line: is the
file exactly what this store last wrote or read?). Only when it fails, and only when the
audit file's lock is free at once, the read imports (the exporter's scan: every line
checked, the unknown ones imported through the one write path). When another process
holds the lock, the read does not wait: that process is an exporter, which imports them
itself; the read says on stderr that the board may lag and which command to run, unless
the difference is only that process's own lines being written. On a shared server store
reads never import (its own log is the truth; the file is written from it).
"""

from ..events.errors import CoordError, IntegrityError


def catch_up(c, warn) -> int:
    """Import lines a pull brought into the audit file, if the lock is free at once;
    returns how many were imported. Warnings (a bad line, a busy lock) go to `warn`."""
    if not c.store.imports_pulled_lines:
        return 0
    trail = c.audit
    try:
        if trail.is_as_written():
            return 0
        with trail.lock_now() as got:
            if got:
                return trail.export_locked().imported
        local = trail.only_local_writes_pending()
    except IntegrityError:
        raise  # a damaged store: the read itself would say so (exit 5), once
    except (CoordError, OSError) as e:  # else a read never fails for want of catching up
        warn(f"{trail.path}: not checked for pulled lines ({getattr(e, 'message', None) or e})")
        return 0
    if not local:
        warn(
            f"{trail.path} holds lines this store may not have imported yet (a git pull?) and "
            "its lock is busy, so this shows the store as it was: run `coord export` to import them"
        )
    return 0
