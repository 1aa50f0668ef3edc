"""Read commands: status (the board), show (a worker or an event), log."""

import click

from ..events.envelope import now_us, parse_time, ts_to_us
from ..events.errors import Ambiguous, UnknownEvent, UnknownWorker, UsageError
from ..events.ids import normalize_event_prefix
from ..projections import board, liveness
from ..projections.explain import expected_next
from ..projections.workers import STATES, legal_actions
from .options import (
    MAX_COUNT,
    FiniteFloat,
    clean,
    echo,
    emit_json,
    emit_raw_json,
    fmt_age,
    global_options,
    one_line,
    state,
    warn,
)


def worker_dict(c, v, now=None) -> dict:
    now = now if now is not None else now_us()
    return view_dict(v, now, c.home.config["heartbeat_interval"], c.clone_id)


def view_dict(v, now: int, interval: float, clone: str | None) -> dict:
    """A view in its reading form, liveness computed at `now` (replay passes a past now)."""
    lv = liveness.level(v, now, interval, clone)
    return {
        "worker": v.worker,
        "state": v.state,
        "holder": v.holder,
        "assignee": v.assignee,
        "task": v.task,
        "branch": v.branch,
        "base": v.base,
        "worktree": v.worktree,
        "created": v.created,
        "updated": v.updated,
        "state_since": v.state_since,
        "last_heartbeat": v.last_heartbeat,
        "liveness": lv,
        "heartbeat": {
            "interval": liveness.interval_of(v, interval),
            "note": v.hb_note,
            "idle_s": v.idle_s,
            "count": v.heartbeats,
        },
        "summary": v.summary,
        "reason": v.reason,
        "info": v.info,
        "conflicts": v.conflicts,
        "last_event": v.last_event,
        "legal": legal_actions(v.state),
    }


def event_json_bytes(seq: int, eid: str, body: bytes) -> bytes:
    """The reading form of an event: seq and id, then the stored envelope's members."""
    return b'{"seq":%d,"id":"%s",' % (seq, eid.encode()) + body[1:]


def event_json_parts(blobs, seq: int, eid: str, body: bytes, problems: list | None = None) -> list[bytes]:
    """The reading form with a claim-checked payload resolved, as pieces to write one
    after another (a 200 MB payload is held once, never copied into one line): the blob's
    bytes (checked against their hash, and checked to be one JSON object) stand in for
    the reference, and a `blob` member names it. The stored bytes and the audit file keep
    the reference. Attachments (`send --file`) stay references: `coord blob cat` fetches
    them.

    An unresolved blob (missing: not arrived yet; corrupt; not a regular file) raises
    (exit 3 or 5); given a `problems` list instead, the event keeps its reference, gains
    `blob_error` (the reason), and the error is appended, so one bad blob never hides the
    rest: see report_unresolved."""
    if b'"$blob"' not in body:
        return [event_json_bytes(seq, eid, body)]
    import msgspec

    from ..events.blobs import check_object, is_ref

    payload = msgspec.json.decode(body)["payload"]
    if not is_ref(payload):
        return [event_json_bytes(seq, eid, body)]
    from ..events.errors import IntegrityError, NotFound

    ref = payload["$blob"]
    try:
        data = blobs.read(ref)
        from ..events.shapes import MAX_DEPTH, too_deep

        if too_deep(data):
            raise IntegrityError(f"blob {ref} holds JSON nested deeper than {MAX_DEPTH} levels")
        check_object(data, ref)
    except (NotFound, IntegrityError) as e:
        if problems is None:
            raise
        problems.append(e)
        return [
            event_json_bytes(seq, eid, body)[:-1] + b',"blob_error":' + msgspec.json.encode(e.message) + b"}"
        ]
    at = body.rfind(b',"payload":')  # the last member; a reference holds no such text
    return [
        b'{"seq":%d,"id":"%s",' % (seq, eid.encode()) + body[1:at] + b',"payload":',
        data,
        b',"blob":"' + ref.encode() + b'"}',
    ]


def event_json_resolved(blobs, seq: int, eid: str, body: bytes, problems: list | None = None) -> bytes:
    """event_json_parts as one bytes object (for a single event)."""
    parts = event_json_parts(blobs, seq, eid, body, problems)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def report_unresolved(problems: list, fail: bool = True) -> None:
    """After printing everything: each unresolved blob is said on stderr. A missing blob
    (one that has not arrived yet: the contract accepts the reference) leaves the exit
    status alone; a corrupt one (or one that is not a regular file) makes the command
    exit 5 with it as the error, unless fail=False (poll: it delivered and acknowledged,
    so it succeeds)."""
    from ..events.errors import NotFound

    worst = None if not fail else next((e for e in problems if not isinstance(e, NotFound)), None)
    for e in problems:
        if e is not worst:
            warn(f"{e.message}; its event is shown unresolved (`coord verify` lists blob problems)")
    if worst is not None:
        raise worst


BOARD_HEADERS = ("WORKER", "STATE", "HOLDER", "AGE", "HEARTBEAT", "LIVENESS", "SUMMARY")


def _summary_of(d) -> str:
    note = d["task"]
    if d["heartbeat"]["idle_s"] is not None and d["state"] in ("WORKING", "CONFLICTED"):
        note = f"idle {fmt_age(d['heartbeat']['idle_s'])}  " + (d["heartbeat"]["note"] or note)
    elif d["state"] in ("WORKING", "CONFLICTED") and d["heartbeat"]["note"]:
        note = d["heartbeat"]["note"]
    elif d["state"] in ("FAILED", "CANCELED", "ASSIGNED") and d["reason"]:
        note = d["reason"]
    elif d["state"] in ("IN_REVIEW", "APPROVED", "COMPLETED") and d["summary"]:
        note = d["summary"]
    if d["conflicts"]:
        note = f"!{len(d['conflicts'])} conflict(s)  " + (note or "")
    return note or ""


def render_board(items, now: int, width: int = 80) -> list[str]:
    """The board as lines no wider than `width` (at least 80): AGE is time in the state,
    HEARTBEAT the time since the last beat; agent text is escaped and cut to fit."""
    width = max(80, width)
    ww, hw = 12, 10
    fixed = ww + 1 + 10 + 1 + hw + 1 + 6 + 1 + 9 + 1 + 8 + 1
    sw = width - fixed
    fmt = "{:<%d} {:<10} {:<%d} {:>6} {:>9} {:<8} {}" % (ww, hw)
    out = [fmt.format(*BOARD_HEADERS)]
    for d in items:
        age = (now - ts_to_us(d["state_since"])) / 1e6
        active = d["state"] in ("WORKING", "CONFLICTED")
        hb = (now - ts_to_us(d["last_heartbeat"])) / 1e6 if d["last_heartbeat"] and active else None
        out.append(
            fmt.format(
                one_line(d["worker"], ww),
                d["state"],
                one_line(d["holder"] or "-", hw),
                fmt_age(age),
                fmt_age(hb),
                d["liveness"] or "-",
                one_line(_summary_of(d), sw),
            ).rstrip()
        )
    return out


def _board_items(c, worker_id, want, stale, all_, now):
    with c.store.read() as conn:
        if worker_id:
            rows = [board.load(conn, board.resolve(conn, worker_id))]
        else:
            q, args = "SELECT view FROM workers", []
            if want:
                q += f" WHERE state IN ({','.join('?' * len(want))})"
                args = sorted(want)
            elif stale:
                q += " WHERE state IN ('WORKING','CONFLICTED')"
            elif not all_:
                q += " WHERE state NOT IN ('COMPLETED','CANCELED')"
            q += " ORDER BY created, worker"
            rows = [board.decode_view(r[0]) for r in conn.execute(q, args)]
    items = [worker_dict(c, v, now) for v in rows]
    if stale:
        items = [d for d in items if liveness.ORDER.get(d["liveness"], -1) >= 1]
    return items


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="S",
    help="Only workers in state S (repeatable; case-insensitive).",
)
@click.option("--stale", is_flag=True, help="Only active workers whose liveness is WARN or worse.")
@click.option("--all", "all_", is_flag=True, help="Include COMPLETED and CANCELED workers.")
@click.option("-w", "--watch", is_flag=True, help="Refresh the board in place until interrupted.")
@click.option(
    "--interval",
    type=FiniteFloat(min=0.05, max=86400),
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="With --watch: seconds between refreshes.",
)
@click.option(
    "--count",
    type=click.IntRange(min=1, max=MAX_COUNT),
    metavar="N",
    help="With --watch: stop after N refreshes (implies --watch).",
)
@click.option(
    "--branches",
    is_flag=True,
    help="Show each worker's branch and how far it is ahead of/behind its base (asks git).",
)
@global_options
def status(worker_id, states, stale, all_, watch, interval, count, branches):
    """The board: every worker with its state, holder, age and liveness.

    Terminal workers (COMPLETED, CANCELED) are hidden unless --all or --state asks.

    \b
    Example:
      coord status
      coord status --state working --json
      coord status --stale
      coord status --watch --interval 1
      coord status --branches
    """
    st = state()
    c = st.open()
    want = set()
    for s in states:
        s2 = s.upper().replace("-", "_")
        if s2 not in STATES:
            raise UsageError(f"unknown state {s!r} (one of {', '.join(STATES)})")
        want.add(s2)
    if watch or count is not None:
        from .watch import watch_board

        watch_board(
            lambda now: _board_items(c, worker_id, want, stale, all_, now),
            interval,
            count,
            st.json,
            describe_filter=bool(want or stale or worker_id),
        )
        return
    now = now_us()
    items = _board_items(c, worker_id, want, stale, all_, now)
    if branches:
        add_branch_counts(c, items)
    if st.json:
        emit_json(items)
        return
    if not items:
        echo(empty_board_text(bool(want or stale or worker_id)))
        return
    if branches:
        echo(BRANCH_COLS.format("WORKER", "STATE", "BRANCH", "BASE", "AHEAD", "BEHIND"))
        for d in items:
            a, b = d.get("ahead"), d.get("behind")
            echo(
                BRANCH_COLS.format(
                    one_line(d["worker"], 16),
                    d["state"],
                    one_line(d["branch"] or "-", 28),
                    one_line(d["base"] or "-", 16),
                    "-" if a is None else a,
                    "-" if b is None else b,
                )
            )
        return
    echo("\n".join(render_board(items, now)))  # one write: a board of 10,000 rows is one call


def empty_board_text(filtered: bool) -> str:
    return "no workers" + (" match" if filtered else " (coord spawn ID to add one)")


BRANCH_COLS = "{:<16} {:<10} {:<28} {:<16} {:>5} {:>6}"


def add_branch_counts(c, items) -> None:
    """ahead/behind of each worker's branch against its base: one git call per worker,
    only when asked, so a plain `status` never runs git. None where git cannot tell
    (no branch, a branch or base deleted, no repository)."""
    from ..app.gitrepo import repo_of

    repo = repo_of(c.home.project_dir) if any(d["branch"] for d in items) else None
    for d in items:
        counts = repo.ahead_behind(d["branch"], d["base"]) if repo and d["branch"] and d["base"] else None
        d["ahead"], d["behind"] = counts if counts else (None, None)


def _horizon(c) -> str:
    """The latest ts not ahead of this clock by more than max_clock_skew."""
    from ..events.envelope import MAX_US, us_to_ts

    return us_to_ts(min(now_us() + int(c.home.config["max_clock_skew"] * 1e6), MAX_US))


def _history(conn, wid, limit=50):
    rows = conn.execute(
        "SELECT seq, id, ts, \"from\", type, body FROM events WHERE worker = ? AND type != 'worker.heartbeat' "
        "ORDER BY ts DESC, id DESC LIMIT ?",
        (wid, limit),
    ).fetchall()
    return rows[::-1]


def resolve_event(conn, text: str):
    """A full event id or a unique prefix -> (seq, id, body, origin)."""
    p = normalize_event_prefix(text)
    rows = conn.execute(
        "SELECT seq, id, body, origin FROM events WHERE id >= ? AND id < ? ORDER BY id LIMIT 11", (p, p + "g")
    ).fetchall()
    if len(rows) == 1:
        return rows[0]
    if not rows:
        raise UnknownEvent(f"unknown event {text!r}")
    raise Ambiguous(f"event prefix {text!r} is ambiguous: " + ", ".join(r[1][:15] for r in rows[:10]))


@click.command()
@click.argument("ident", metavar="ID|EVENT")
@global_options
def show(ident):
    """One worker with its history and why it is where it is, or one event.

    For a worker: who holds it, its last event and heartbeat, how long it has been in its
    state, and the next action expected, by whom (`expected` in --json).

    \b
    Example:
      coord show w-1
      coord show b3:4f2a
    """
    import msgspec

    st = state()
    c = st.open()
    with c.store.read() as conn:
        try:
            wid = board.resolve(conn, ident)
        except UnknownWorker:
            wid = None
        if wid is None:
            try:
                seq, eid, body, origin = resolve_event(conn, ident)
            except (UsageError, UnknownEvent):
                raise UnknownWorker(f"no worker or event matches {ident!r}") from None
            ahead = msgspec.json.decode(body)["ts"] > _horizon(c)
            problems = []
            form = event_json_resolved(c.blobs, seq, eid, body, problems=problems)
            if st.json:
                emit_raw_json(form[:-1] + b',"ahead":true}' if ahead else form)
            else:
                d = msgspec.json.decode(form)
                echo(
                    f"event  {eid}\nseq    {seq}\nts     {d['ts']}"
                    + (
                        "  (ahead of this clock by more than max_clock_skew: it does not set the ts of new events)"
                        if ahead
                        else ""
                    )
                    + f"\nfrom   {clean(d['from'])}\n"
                    f"to     {clean(d['to'])}\ntype   {d['type']}\norigin {origin}"
                    + (f"\nblob   {d['blob']}" if "blob" in d else "")
                    + (
                        f"\nblob   {d['payload']['$blob']} UNRESOLVED: {clean(d['blob_error'])}"
                        if "blob_error" in d
                        else ""
                    )
                )
                echo(
                    "payload "
                    + clean(msgspec.json.format(msgspec.json.encode(d["payload"]), indent=2).decode())
                )
            report_unresolved(problems)
            return
        v = board.load(conn, wid)
        hist = _history(conn, wid)
        ahead = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM events WHERE worker = ? AND ts > ? ORDER BY ts, id", (wid, _horizon(c))
            )
        ]
    now = now_us()
    d = worker_dict(c, v, now)
    d["ahead"] = ahead
    d["expected"] = expected_next(v, d["liveness"], now)
    d["in_state_s"] = round((now - ts_to_us(v.state_since)) / 1e6, 3)
    last = hist[-1] if hist else None
    d["last"] = {"event": last[1], "type": last[4], "from": last[3], "ts": last[2]} if last else None
    if st.json:
        problems = []
        d["history"] = [
            msgspec.json.decode(event_json_resolved(c.blobs, s, i, b, problems=problems))
            for s, i, _, _, _, b in hist
        ]
        emit_json(d)
        report_unresolved(problems)
        return
    echo(
        f"worker    {clean(v.worker)}\nstate     {v.state} for {fmt_age((now - ts_to_us(v.state_since)) / 1e6)}"
        + (f"  (liveness {d['liveness']})" if d["liveness"] else "")
    )
    echo(f"task      {clean(v.task) or '-'}")
    echo(f"holder    {clean(v.holder) or '-'}" + (f"   assignee {clean(v.assignee)}" if v.assignee else ""))
    if v.branch:
        echo(f"branch    {clean(v.branch)}" + (f" (from {clean(v.base)})" if v.base else ""))
    if v.worktree:
        echo(f"worktree  {clean(v.worktree)}")
    if v.last_heartbeat:
        echo(
            f"heartbeat {fmt_age((now - ts_to_us(v.last_heartbeat)) / 1e6)} ago ({v.heartbeats} beats)"
            + (f", note: {one_line(v.hb_note, 60)}" if v.hb_note else "")
        )
    if v.summary:
        echo(f"summary   {one_line(v.summary, 70)}")
    if v.reason:
        echo(f"reason    {one_line(v.reason, 70)}")
    for cf in v.conflicts:
        echo(f"CONFLICT  {cf['event'][:15]} {cf['type']} by {clean(cf['from'])}: {clean(cf['reason'])}")
    if ahead:
        echo(
            f"ahead     {len(ahead)} event(s) dated more than max_clock_skew ahead of this clock "
            f"(liveness counts them from when they were stored): {', '.join(e[:15] for e in ahead[:5])}"
            + (", …" if len(ahead) > 5 else "")
        )
    if last:
        echo(
            f"last      {last[4]} by {clean(last[3])}, {fmt_age((now - ts_to_us(last[2])) / 1e6)} ago  {last[1][:15]}"
        )
    if v.state in ("WORKING", "CONFLICTED"):
        beat = (
            f"{fmt_age((now - ts_to_us(v.last_heartbeat)) / 1e6)} ago"
            if v.last_heartbeat
            else "never since it was started"
        )
        echo(f"silence   last heartbeat {beat}; liveness {d['liveness']}")
    ex = d["expected"]
    if ex["actions"]:
        echo(f"expected  {' or '.join(ex['actions'])}, by {clean(ex['by'])}")
    echo(f"why       {clean(ex['why'])}")
    echo(f"legal     {', '.join(d['legal']) or 'nothing (terminal)'}")
    echo("history")
    for _seq, eid, ts, frm, typ, _body in hist:
        echo(f"  {ts}  {typ:<26} {one_line(frm, 16):<16} {eid[:11]}")


def _since_clause(conn, text):
    """--since: a time/age, or an event id (events after it)."""
    t = text.strip()
    if t.lower().startswith("b3:"):
        seq, eid, body, _ = resolve_event(conn, t)
        ts = conn.execute("SELECT ts FROM events WHERE seq = ?", (seq,)).fetchone()[0]
        return "(ts, id) > (?, ?)", [ts, eid]
    from ..events.envelope import us_to_ts

    return "ts >= ?", [us_to_ts(parse_time(t))]


def build_log_query(conn, worker=None, types=(), from_=None, since=None):
    where, args = [], []
    if worker:
        where.append("worker = ?")
        args.append(board.resolve(conn, worker))
    if from_:
        where.append('"from" = ?')
        args.append(from_)
    if types:
        ors = []
        for t in types:
            if any(ch in t for ch in "*?["):
                ors.append("type GLOB ?")
            else:
                ors.append("type = ?")
            args.append(t)
        where.append("(" + " OR ".join(ors) + ")")
    if since:
        clause, a = _since_clause(conn, since)
        where.append(clause)
        args += a
    return (" WHERE " + " AND ".join(where)) if where else "", args


def format_event_line(seq, eid, body, blobs=None, problems=None) -> str:
    """One event as a log line. A claim-checked payload is shown from its blob's head
    (BlobStore.summary: bounded memory, whatever the blob's size); an unresolved blob is
    marked, with its reference (problems collects the error, as in event_json_parts)."""
    import msgspec

    from ..events.blobs import is_ref

    d = msgspec.json.decode(body)
    p = d["payload"]
    mark = ""
    if blobs is not None and is_ref(p):
        from ..events.errors import IntegrityError, NotFound

        try:
            p = blobs.summary(p["$blob"])
            p.pop("$head", None)
        except (NotFound, IntegrityError) as e:
            if problems is None:
                raise
            problems.append(e)
            why = (
                "missing"
                if isinstance(e, NotFound)
                else "corrupt"
                if "corrupt" in e.message
                else "unreadable"
            )
            mark = f" [unresolved blob {p['$blob'][:15]}: {why}]"
    ptxt = "" if not p else " " + msgspec.json.encode(p).decode()
    return (
        f"{seq:>6} {d['ts']} {one_line(d['from'], 16):<16} {d['type']:<24} → "
        f"{one_line(d['to'], 16)}{mark}{one_line(ptxt, 60)}"
    )


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they commit.")
@click.option("--worker", metavar="W", help="Only events of worker W.")
@click.option(
    "--type", "types", multiple=True, metavar="T", help="Only type T (glob allowed: 'msg.*'; repeatable)."
)
@click.option("--from", "from_", metavar="A", help="Only events from actor A.")
@click.option(
    "--since", metavar="T", help="Only events at or after T (RFC 3339, an age like 10m, or an event id)."
)
@click.option(
    "--limit", type=click.IntRange(min=1, max=MAX_COUNT), metavar="N", help="Only the last N matching events."
)
@global_options
def log(follow, worker, types, from_, since, limit):
    """The events, oldest first (JSON lines with --json).

    \b
    Example:
      coord log --worker w-1
      coord log --type 'msg.*' --since 1h --json
      coord log -f --worker w-1
    """
    st = state()
    c = st.open()
    with c.store.read() as conn:
        # The snapshot's top seq: -f continues exactly after it (nothing missed or repeated).
        top = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
        where, args = build_log_query(conn, worker, types, from_, since)
        if limit:
            rows = conn.execute(
                f"SELECT seq, id, body FROM events{where} ORDER BY ts DESC, id DESC LIMIT ?", args + [limit]
            ).fetchall()[::-1]
        else:
            rows = conn.execute(f"SELECT seq, id, body FROM events{where} ORDER BY ts, id", args).fetchall()
    from .live import until_interrupted, write

    problems = []  # an unresolved blob shows as its reference: report_unresolved
    with until_interrupted():
        for seq, eid, body in rows:
            if st.json:
                for part in event_json_parts(c.blobs, seq, eid, body, problems=problems):
                    write(part)
                write(b"\n")
            else:
                write((format_event_line(seq, eid, body, c.blobs, problems) + "\n").encode())
        if problems:
            report_unresolved(problems, fail=not follow)
            problems.clear()
        if follow:  # inside: a reader gone during the listing ends the command here
            from .follow import follow_log

            follow_log(c, worker, types, from_, top)
