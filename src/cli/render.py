"""How events and the board look: unresolved blobs reported, an event as one log line,
and the board as a table (an event's reading form as JSON: coord.events.forms). Agent
text is escaped; nothing here queries the store."""

from ..events.envelope import ts_to_us
from ..projections.workers import ACTIVE, APPROVED, ASSIGNED, CANCELED, COMPLETED, FAILED, IN_REVIEW
from .output import fmt_age, one_line, warn


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
    if d["heartbeat"]["idle_s"] is not None and d["state"] in ACTIVE:
        note = f"idle {fmt_age(d['heartbeat']['idle_s'])}  " + (d["heartbeat"]["note"] or note)
    elif d["state"] in ACTIVE and d["heartbeat"]["note"]:
        note = d["heartbeat"]["note"]
    elif d["state"] in (FAILED, CANCELED, ASSIGNED) and d["reason"]:
        note = d["reason"]
    elif d["state"] in (IN_REVIEW, APPROVED, COMPLETED) and d["summary"]:
        note = d["summary"]
    if d.get("checks"):
        note = " ".join(f"{k}:{v}" for k, v in d["checks"].items()) + "  " + (note or "")
    if d.get("blocked_by"):
        note = f"blocked by {', '.join(d['blocked_by'])}  " + (note or "")
    elif d.get("waits_for") and d["state"] not in (COMPLETED, CANCELED):
        note = f"waits for {', '.join(w['worker'] for w in d['waits_for'])}  " + (note or "")
    if d.get("priority", 2) != 2 and d["state"] not in (COMPLETED, CANCELED):
        note = f"P{d['priority']} " + (note or "")
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
        active = d["state"] in ACTIVE
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


def empty_board_text(filtered: bool) -> str:
    return "no workers" + (" match" if filtered else " (coord spawn ID to add one)")


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
