"""`coord verify`: a list of independent checks over an open home. Each check reads,
changes nothing, and adds problems (and facts) to the report; verify passes only when no
check found a problem. Features add their own check by appending to CHECKS (e.g. blobs).
"""

from dataclasses import dataclass, field

from .events.envelope import event_id

PAGE = 20000


@dataclass
class Report:
    problems: list = field(default_factory=list)  # one line each, for people
    facts: dict = field(default_factory=dict)  # check name -> details, for --json

    @property
    def ok(self) -> bool:
        return not self.problems


def check_event_hashes(c, report: Report) -> None:
    """Re-hash every stored event's bytes against its id (short read transactions)."""
    bad = []
    n = 0
    last = 0
    while True:
        with c.store.read() as conn:
            rows = conn.execute(
                "SELECT seq, id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (last, PAGE)
            ).fetchall()
        if not rows:
            break
        for seq, eid, body in rows:
            if event_id(body) != eid:
                bad.append(seq)
                report.problems.append(f"event seq {seq} ({eid[:15]}): stored bytes do not hash to its id")
        n += len(rows)
        last = rows[-1][0]
    report.facts["events"] = {"checked": n, "bad": bad}


def check_audit_file(c, report: Report) -> None:
    """Every line of events.jsonl checks out, and every event that belongs in it is in it."""
    r = c.audit.check()
    for b in r["bad"]:
        report.problems.append(f"{r['path']} line {b['line']}: {b['reason']}")
    for eid in r["missing"]:
        report.problems.append(f"{r['path']}: missing event {eid}")
    for eid in r["dirty"]:
        report.problems.append(f"{r['path']}: event {eid} not yet written (run `coord export`)")
    report.facts["audit_file"] = r


def check_projections(c, report: Report) -> None:
    """The stored views equal a fresh fold of all events in (ts, id) order."""
    from .projections import board

    with c.store.read() as conn:
        fresh = board.fresh_fold(conn)
        stored = board.stored_views(conn)
        orphans = conn.execute(
            "SELECT count(*) FROM events WHERE worker IS NOT NULL AND worker NOT IN "
            "(SELECT worker FROM workers)"
        ).fetchone()[0]
    differ = sorted(w for w in set(fresh) | set(stored) if fresh.get(w) != stored.get(w))
    for w in differ:
        why = (
            "missing from the stored views"
            if w not in stored
            else ("stored but not in a fresh fold" if w not in fresh else "differs from a fresh fold")
        )
        report.problems.append(f"worker {w}: view {why} (run `coord rebuild`)")
    report.facts["projections"] = {"workers": len(fresh), "differ": differ, "orphan_events": orphans}


def check_blobs(c, report: Report) -> None:
    """Every blob's bytes hash to its name; every reference names a blob that exists."""
    problems = c.verify_blobs()
    report.problems.extend(problems)
    report.facts["blobs"] = {"problems": len(problems)}


def check_database(c, report: Report) -> None:
    """SQLite's own check of every page and index."""
    with c.store.read() as conn:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
    if rows != ["ok"]:
        report.problems.extend(f"database: {r}" for r in rows)
    report.facts["database"] = {"integrity_check": rows[:20]}


CHECKS = [check_database, check_event_hashes, check_audit_file, check_projections, check_blobs]


def verify(c, checks=None) -> Report:
    report = Report()
    for check in CHECKS if checks is None else checks:
        check(c, report)
    return report
