"""`coord verify`: a list of independent checks over an open home. Each check reads,
changes nothing, and adds problems (and facts) to the report; verify passes only when no
check found a problem. Features add their own check by appending to CHECKS (e.g. blobs).
"""

from dataclasses import dataclass, field

from ..events import audit_check
from ..events.envelope import MAX_US, event_id
from ..events.records import EventQuery, worker_of

PAGE = 20000


@dataclass
class Report:
    problems: list = field(default_factory=list)  # one line each, for people
    facts: dict = field(default_factory=dict)  # check name -> details, for --json
    notices: list = field(default_factory=list)  # worth saying, but nothing is wrong

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_NAMED = 20  # ids named per kind of notice


def check_events(c, report: Report) -> None:
    """Every stored event, in short read transactions: its bytes hash to its id and meet
    every shape rule (coord.events.shapes); the columns the queries use (ts, from, to,
    type, worker) say what the hashed bytes say; `seq` runs 1, 2, … with no gap and up to
    the last seq the projector saw (a deleted row shows as a gap); a claim-checked payload
    whose blob is here fits its type. Events dated more than max_clock_skew ahead of this
    clock are noticed (they never set the clock), not failed: clones keep them alike."""
    from ..events.codec import decode_body
    from ..events.envelope import now_us, us_to_ts
    from ..events.errors import CoordError, IntegrityError
    from ..events.shapes import payload_problem

    horizon = us_to_ts(min(now_us() + int(c.home.config["max_clock_skew"] * 1e6), MAX_US))
    bad, columns, gaps, ahead = [], [], [], []
    n = 0
    last = 0
    while True:
        with c.store.read() as r:
            rows = r.events(EventQuery(after_seq=last, limit=PAGE))
        if not rows:
            break
        for row in rows:
            seq, eid, body = row.seq, row.id, row.body
            if seq != last + 1:
                gaps.append((last + 1, seq - 1))
                report.problems.append(
                    f"events seq {last + 1}"
                    + (f"..{seq - 1}" if seq - 1 > last + 1 else "")
                    + " missing: rows deleted from coord.db"
                )
            last = seq
            if event_id(body) != eid:
                bad.append(seq)
                report.problems.append(f"event seq {seq} ({eid[:15]}): stored bytes do not hash to its id")
                continue
            try:
                env = decode_body(body)
            except IntegrityError as e:
                bad.append(seq)
                report.problems.append(f"event seq {seq} ({eid[:15]}): {e.message}")
                continue
            want = {"ts": env.ts, "from": env.from_, "to": env.to, "type": env.type, "worker": worker_of(env)}
            got = {"ts": row.ts, "from": row.from_, "to": row.to, "type": row.type, "worker": row.worker}
            for col in want:
                if want[col] != got[col]:
                    columns.append(seq)
                    report.problems.append(
                        f"event seq {seq} ({eid[:15]}): stored column {col} is {got[col]!r}, "
                        f"its hashed bytes say {want[col]!r}"
                    )
            if env.ts > horizon:
                ahead.append(eid)
            if "$blob" in env.payload and c.blobs.has(env.payload["$blob"]):
                try:
                    why = payload_problem(env.type, c.blobs.payload_of(env.payload))
                except CoordError as e:
                    why = e.message
                if why:
                    bad.append(seq)
                    report.problems.append(
                        f"event seq {seq} ({eid[:15]}): blob {env.payload['$blob']} does not fit {env.type}: "
                        f"{why} (shown unresolved)"
                    )
        n += len(rows)
    projected = c.store.reader.position("workers")
    if projected > last:
        gaps.append((last + 1, projected))
        report.problems.append(
            f"events seq {last + 1}"
            + (f"..{projected}" if projected > last + 1 else "")
            + " missing at the end: rows deleted from coord.db"
        )
    if ahead:
        shown = ", ".join(ahead[:MAX_NAMED]) + (", …" if len(ahead) > MAX_NAMED else "")
        report.notices.append(
            f"{len(ahead)} event(s) dated more than max_clock_skew "
            f"({c.home.config['max_clock_skew']:g} s) ahead of this clock; they are kept and "
            f"folded but do not set the time of new events: {shown}"
        )
    report.facts["events"] = {
        "checked": n,
        "bad": bad,
        "columns": sorted(set(columns)),
        "gaps": [list(g) for g in gaps],
        "ahead": ahead[:1000],  # the first thousand; `ahead_count` says how many
        "ahead_count": len(ahead),
    }


def check_audit_file(c, report: Report) -> None:
    """Every line of events.jsonl checks out, and every event that belongs in it is in it."""
    r = audit_check.check(c.audit)
    for b in r["bad"]:
        report.problems.append(f"{r['path']} line {b['line']}: {b['reason']}")
    for eid in r["missing"]:
        report.problems.append(f"{r['path']}: missing event {eid}")
    for eid in r["dirty"]:
        report.problems.append(f"{r['path']}: event {eid} not yet written (run `coord export`)")
    for x in r["lost"]:
        report.problems.append(
            f"{r['path']} line {x['line']}: event {x['id']} was recorded by this store and is no "
            "longer in it (a row deleted from coord.db)"
        )
    report.facts["audit_file"] = r


def check_projections(c, report: Report) -> None:
    """The stored views equal a fresh fold of all events in (ts, id) order; so do the
    stored notices (coord.projections.notices)."""
    from ..projections import board, notices

    orphans = 0  # lifecycle events of workers without a stored view

    def count(envs, _total):
        nonlocal orphans
        orphans += sum(1 for env in envs if env.to not in stored)

    with c.store.read() as r:  # one snapshot: the stored views and the events they come from
        stored = board.stored_views(r)
        found = []
        fresh, _ = board.fold_from_zero(c.store, reader=r, after_page=count, found=found)
        columns = board.stored_graph_columns(r)
        start = notices.start_of(r)
        kept = {(n.agent, n.seq) for w in sorted(set(fresh) | set(stored)) for n in r.notices_of(w)}
    fresh_columns = board.fresh_graph_columns(fresh)
    derived = {(n.agent, n.seq) for n in found if n.seq > start}
    for what, keys in (("missing", derived - kept), ("not derived from the events", kept - derived)):
        if keys:
            some = ", ".join(f"{a} at seq {s}" for a, s in sorted(keys, key=lambda k: k[1])[:MAX_NAMED])
            report.problems.append(f"notices {what}: {some} (run `coord rebuild`)")
    differ = sorted(
        w
        for w in set(fresh) | set(stored)
        if fresh.get(w) != stored.get(w) or fresh_columns.get(w) != columns.get(w)
    )
    for w in differ:
        why = (
            "missing from the stored views"
            if w not in stored
            else ("stored but not in a fresh fold" if w not in fresh else "differs from a fresh fold")
        )
        report.problems.append(f"worker {w}: view {why} (run `coord rebuild`)")
    report.facts["projections"] = {
        "workers": len(fresh),
        "differ": differ,
        "orphan_events": orphans,
        "notices": len(derived),
    }


def check_blobs(c, report: Report) -> None:
    """Every blob's bytes hash to its name; every reference names a blob that exists."""
    problems = blob_problems(c)
    report.problems.extend(problems)
    report.facts["blobs"] = {"problems": len(problems)}


def blob_problems(c) -> list[str]:
    """Corrupt blob files, and references in events to blobs that are missing."""
    with c.store.read() as r:
        referring = r.events(EventQuery(blob_refs=True))
    return c.blobs.verify(referring)


def check_database(c, report: Report) -> None:
    """The database's own check of its storage (SQLite: every page and index)."""
    rows = c.store.integrity_check()
    if rows != ["ok"]:
        report.problems.extend(f"database: {r}" for r in rows)
    report.facts["database"] = {"integrity_check": rows[:20]}


def check_acks(c, report: Report) -> None:
    """Every acknowledgement in the log (an inbox.acked from an agent to itself) is in
    the acknowledgements projection; fix with `coord rebuild`."""
    from ..events.records import type_filter
    from ..projections.inbox import ACKED, acked_ids

    missing, after = 0, 0
    with c.store.read() as r:
        while rows := r.events(EventQuery(types=type_filter([ACKED]), after_seq=after, limit=PAGE)):
            after = rows[-1].seq
            for row in rows:
                ids = acked_ids(row.env, c.blobs)
                missing += len(set(ids) - r.acked(row.from_, ids))
    if missing:
        report.problems.append(
            f"acknowledgements: {missing} acknowledged id(s) missing from the projection (run `coord rebuild`)"
        )
    report.facts["acks"] = {"missing": missing}


CHECKS = [check_database, check_events, check_audit_file, check_projections, check_acks, check_blobs]


def damage(c) -> list[str]:
    """What `rebuild` must not paper over: problems of the events themselves (bad bytes,
    columns that disagree with them, deleted rows) and events this store wrote to the
    audit file that it no longer holds."""
    report = Report()
    check_events(c, report)
    lost = audit_check.check(c.audit)["lost"]
    report.problems.extend(
        f"event {x['id']} (audit file line {x['line']}) is no longer in the store" for x in lost
    )
    return report.problems


def verify(c, checks=None, remember: bool = False) -> Report:
    """Run the checks. With `remember`, a clean result records the audit file's BLAKE3
    (`export --check` and `verify` then say whether it changed since)."""
    report = Report()
    for check in CHECKS if checks is None else checks:
        check(c, report)
    af = report.facts.get("audit_file")
    if remember and report.ok and af:
        c.audit.record_checked(af["b3"], af["bytes"])
    return report
