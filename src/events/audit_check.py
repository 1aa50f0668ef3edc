"""The audit file checked against the store without changing it (`export --check`,
`verify`), and regenerated from the store (`export --rewrite`). Both work on the home's
AuditTrail (coord.events.audit)."""

import os

import blake3

from .audit import EXPORT_CHUNK, ExportResult, fsync_dir, write_all
from .audit_read import SUM_MOD, id_int, import_bodies, scan_file
from .files import open_in_home
from .records import AUDIT_DIRTY, AUDIT_WRITTEN


def rewrite(trail) -> tuple[ExportResult, list]:
    """Regenerate the file from the store: temporary file, fsync, rename. Valid lines
    the store does not know are imported first, so nothing is lost; bad lines are
    dropped (returned, for the caller to report), and so is any stored row that does
    not check out (reported as a warning; it stays dirty)."""
    res = ExportResult()
    with trail.lock():
        s = scan_file(trail.path, store=trail.store, collect=True)
        if s.new:
            res.imported = import_bodies(trail.store, s.new, AUDIT_WRITTEN)
        s.new = []
        tmp = trail.path.with_name(trail.path.name + ".tmp")
        hasher = blake3.blake3()
        size = count = total = 0
        last = ""
        newly = []  # seqs of dirty events this rewrite writes
        try:
            os.unlink(tmp)  # a leftover of an interrupted rewrite, never followed
        except FileNotFoundError:
            pass
        fd = open_in_home(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            # Events committed after this moment have a higher seq: they stay dirty
            # below and are written after the rename, still under the lock.
            upto = trail.store.reader.max_seq()
            after = 0
            while rows := trail.store.reader.audit_rows(after, upto, limit=EXPORT_CHUNK):
                after = rows[-1].seq
                data, good = trail.lines_of(rows)
                write_all(fd, data)
                hasher.update(data)
                size += len(data)
                if good:
                    last = good[-1].id
                count += len(good)
                total = (total + sum(id_int(r.id) for r in good)) % SUM_MOD
                newly.extend(r.seq for r in good if r.audit == AUDIT_DIRTY)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, trail.path)
        fsync_dir(trail.path.parent)
        trail.book_write(
            newly,
            [],
            dict(
                audit_length=size,
                audit_last=last,
                audit_count=count,
                audit_sum=f"{total:x}",
                audit_checked_b3="b3:" + hasher.hexdigest(),
                audit_checked_length=size,
            ),
        )
        res.written = count
        trail.write_dirty(res)  # whatever committed while the file was being rewritten
    return res, s.bad


def check(trail) -> dict:
    """Read everything, change nothing. Problems: each bad line (with its number),
    each event that belongs in the file but is missing from it, and each event this
    store wrote to the file (per its record) that is no longer in the store. Also
    reports the whole file's BLAKE3 and compares it with the one recorded at the last
    clean check or rewrite."""
    rec = trail.record()
    s = scan_file(trail.path, store=trail.store, prefix=rec[0] if rec else None)
    missing, dirty = [], []
    after = 0
    while marks := trail.store.reader.audit_marks(after, EXPORT_CHUNK):
        after = marks[-1][0]
        for _seq, eid, audit in marks:
            if eid not in s.ids:
                (dirty if audit == AUDIT_DIRTY else missing).append(eid)
    unknown = s.unknown
    lost = [{"line": n, "id": e} for n, e in s.prefix_new] if trail.prefix_intact(s, rec) else []
    m = trail.store.reader.meta(["audit_checked_b3", "audit_checked_length"])
    prev = m.get("audit_checked_b3")
    return {
        "path": str(trail.path),
        "lines": s.lines,
        "bytes": s.size,
        "b3": s.b3,
        "previous_b3": prev,
        "unchanged": prev == s.b3 if prev else None,
        "bad": [{"line": b.lineno, "reason": b.reason} for b in s.bad],
        "missing": missing,
        "dirty": dirty,
        "lost": lost,
        "unknown": unknown - len(lost),
        "duplicates": s.duplicates,
        "recorded": None if rec is None else {"bytes": rec[0], "lines": rec[1]},
        "ok": not (s.bad or missing or dirty or lost),
    }
