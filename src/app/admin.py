"""Administering a home: create it (`init`, from a checked-out audit file too), rebuild its
projections, back it up, export its audit file (and check or regenerate it), import
another clone's events."""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..events import audit_check
from ..events.audit_read import import_sorted, read_sorted
from ..events.errors import CoordError, IntegrityError, NotFound
from ..events.files import check_home_dir, check_output_path, check_regular, place, user_umask
from ..events.home import Home, init_home_dirs, init_target
from ..events.records import AUDIT_DIRTY, AUDIT_WRITTEN, EventQuery
from ..projections import board, inbox, search
from .context import Coord


def init(path: str | Path | None = None, cwd: Path | None = None) -> tuple[Home, bool]:
    """Create a home (idempotent). Returns (home, created). Where: `path`, else
    COORD_HOME, else found from cwd (coord.events.home.init_target: inside a worktree, the
    repository's home; a home inside another is refused, exit 4). In a fresh clone whose
    events.jsonl exists without a database, the store is built from that file (every
    line checked first: a bad file is refused with exit 5 and no database is created);
    the file itself is never truncated."""
    p = init_target(str(path) if path is not None else None, cwd)
    check_home_dir(p)  # a .coord that is a symlink is refused before anything is created
    _ = Home(p).config  # and so are invalid settings a clone checked out (exit 2)
    created = not Home(p).has_store()
    lines = None  # the file's checked lines, sorted in bounded memory (scratch runs)
    if created:
        audit_path = Home(p).audit_path
        if check_regular(audit_path) and audit_path.stat().st_size:
            lines = read_sorted(audit_path, in_home=True)
    try:
        home = init_home_dirs(p)
        if not created:
            home.open_store().close()  # brings the schema up to date
            return home, created
        try:
            with Coord(home) as c:
                if lines is not None and lines.added:
                    import_sorted(c.store, lines.items(), AUDIT_WRITTEN)
                    c.audit.adopt()
        except BaseException:
            # A store half-built from the file would pass for a home next time: remove it.
            home.discard_store()
            raise
    finally:
        if lines is not None:
            lines.close()
    return home, created


def rebuild(c, progress=None) -> int:
    """Rebuild every projection from the events: the worker views, the search index and
    the acknowledgements.
    Returns the number of lifecycle events folded. Refused (exit 5) while the events
    themselves do not check out (a row deleted or changed behind coord's back): views
    folded from them would bless the damage."""
    from .verification import damage

    problems = damage(c)
    if problems:
        more = f" (and {len(problems) - 1} more; see `coord verify`)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"not rebuilding: {problems[0]}{more}. The store was changed behind coord's back; "
            "restore a backup, or move coord.db aside and run `coord init` to rebuild it from "
            "events.jsonl"
        )
    n = board.rebuild(c.store, progress=progress)
    search.rebuild(c.store)
    inbox.rebuild(c.store)
    return n


def indexed(c) -> int:
    """How many events the search index holds."""
    return c.store.reader.search_count()


def lifecycle_events(c) -> int:
    """How many events a rebuild folds (for a progress bar's total)."""
    return c.store.reader.count(EventQuery(lifecycle=True))


def backup(c, dest: Path, force: bool = False) -> int:
    """A consistent snapshot of the store in dest, even while others write; returns the
    number of events in it. dest is an output file: refused inside the home (exit 4, even
    with force), when it exists without force (exit 4) or its directory is missing (exit
    2); written with the user's umask, to a temporary file renamed into place."""
    dest = Path(check_output_path(dest, c.home.path, force))
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    try:
        with user_umask():
            n = c.store.backup(str(tmp))
        place(str(tmp), str(dest), force)
    except CoordError as e:
        raise CoordError(f"backup to {dest} failed: {e.message}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return n


# --- the audit file ----------------------------------------------------------------------
def export(c, warn):
    """Write what is not yet in the audit file (ExportResult). Warnings go to `warn`; a
    file that is refused is exit 5 (its refusal is the error, said once)."""
    said = []
    c.audit.warn = said.append
    res = c.audit.export()
    if res.refused:
        raise IntegrityError(res.refused)
    for m in said:
        warn(m)
    return res


def check_audit_file(c) -> dict:
    """The whole file against the store, changing nothing (but remembering the file's
    BLAKE3 when all is well)."""
    r = audit_check.check(c.audit)
    if r["ok"]:
        c.audit.record_checked(r["b3"], r["bytes"])
    return r


def rewrite_audit_file(c):
    """Regenerate the file from the store: (ExportResult, dropped bad lines)."""
    return audit_check.rewrite(c.audit)


def import_file(c, file: str) -> dict:
    """Add the events of an events file (or '-': stdin) that this store lacks. Every line is
    checked first: one bad line and nothing is imported (exit 5). The home's own audit file
    is already written; another's events become dirty, and the export that follows makes
    the home's file the union."""
    path = Path(file)
    own = False
    if file == "-":
        with tempfile.NamedTemporaryFile(prefix="coord-import-", suffix=".jsonl") as tmp:
            shutil.copyfileobj(sys.stdin.buffer, tmp)  # in chunks: stdin may be large
            tmp.flush()
            lines = read_sorted(tmp.name)
    else:
        if not path.exists():
            raise NotFound(f"no such file: {file}")
        own = path.resolve() == c.home.audit_path.resolve()
        lines = read_sorted(path, in_home=own)
    # Every line was checked before anything is appended; the lines are then streamed in
    # (ts, id) order from scratch runs, so memory stays bounded whatever the file's length.
    with lines:
        total, added = import_sorted(c.store, lines.items(), AUDIT_WRITTEN if own else AUDIT_DIRTY)
    c.audit.export()  # the file becomes the union; a refusal was warned about, the import stands
    return {"file": file, "events": total, "imported": added, "known": total - added}
