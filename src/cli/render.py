"""How events and the board look: unresolved blobs reported, an event as one log line,
and the board as a table (an event's reading form as JSON: coord.events.forms). Agent
text is escaped; nothing here queries the store."""

from ..events.envelope import ts_to_us
from ..projections.boardtext import (
    AGE_W,
    BEAT_W,
    FIXED_W,
    HOLDER_W,
    LIVE_W,
    STATE_W,
    WIDTH,
    WORKER_W,
    fmt_age,
    note_parts,
    one_line,
)
from ..projections.workers import ACTIVE, CANCELED, COMPLETED
from .output import warn


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
    hb = d["heartbeat"]
    prefix, note = note_parts(
        d["state"],
        d["task"],
        hb["idle_s"],
        hb["note"],
        d["reason"],
        d["summary"],
        d.get("priority", 2),
        d["conflicts"],
    )
    if d.get("checks"):
        note = " ".join(f"{k}:{v}" for k, v in d["checks"].items()) + "  " + note
    if d.get("blocked_by"):
        note = f"blocked by {', '.join(d['blocked_by'])}  " + note
    elif d.get("waits_for") and d["state"] not in (COMPLETED, CANCELED):
        note = f"waits for {', '.join(w['worker'] for w in d['waits_for'])}  " + note
    return prefix + note


def board_format(width: int = WIDTH) -> tuple[str, int]:
    """(the row's format, the width left for SUMMARY) for a board `width` wide (at least 80)."""
    width = max(WIDTH, width)
    fmt = "{:<%d} {:<%d} {:<%d} {:>%d} {:>%d} {:<%d} {}" % (
        WORKER_W,
        STATE_W,
        HOLDER_W,
        AGE_W,
        BEAT_W,
        LIVE_W,
    )
    return fmt, width - FIXED_W


def board_line(d, now: int, fmt: str, sw: int) -> str:
    """One worker's row of the board (d: a board item, coord.app.queries.board_dict)."""
    age = (now - ts_to_us(d["state_since"])) / 1e6
    active = d["state"] in ACTIVE
    hb = (now - ts_to_us(d["last_heartbeat"])) / 1e6 if d["last_heartbeat"] and active else None
    return fmt.format(
        one_line(d["worker"], WORKER_W),
        d["state"],
        one_line(d["holder"] or "-", HOLDER_W),
        fmt_age(age),
        fmt_age(hb),
        d["liveness"] or "-",
        one_line(_summary_of(d), sw),
    ).rstrip()


def render_board(items, now: int, width: int = WIDTH) -> list[str]:
    """The board as lines no wider than `width` (at least 80): AGE is time in the state,
    HEARTBEAT the time since the last beat; agent text is escaped and cut to fit."""
    fmt, sw = board_format(width)
    return [fmt.format(*BOARD_HEADERS)] + [board_line(d, now, fmt, sw) for d in items]


def render_stored_board(rows, special: dict, now: int) -> list[str]:
    """The board at the default width from its stored rows (coord.app.queries.text_board):
    each row's text as the store rendered it, or for a row it left to us (None: it waits
    for others or has checks) the worker's item in `special`, rendered here."""
    fmt, sw = board_format()
    out = [fmt.format(*BOARD_HEADERS)]
    for line, worker in rows:
        out.append(line if line is not None else board_line(special[worker], now, fmt, sw))
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
