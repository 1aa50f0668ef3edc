"""The text board's words, shared by the projector (which stores each row's fixed text
beside its view: coord.events.records.BoardRow) and the CLI (which renders rows from
views): agent text made safe for a terminal, ages, and a worker's note.

The board (cli/render.render_board) is, per row, at the default width of 80:

    WORKER(12) STATE(10) HOLDER(10) AGE(>6) HEARTBEAT(>9) LIVENESS(8) SUMMARY(19)

with the line's trailing whitespace stripped. AGE, HEARTBEAT and LIVENESS depend on the
time the board is read; the rest depends on the view alone, except the parts of SUMMARY
read from elsewhere (what the worker waits for, its checks)."""

import re

import msgspec

from ..events.envelope import ts_to_us
from ..events.records import BoardRow
from .liveness import since_us
from .workers import ACTIVE, APPROVED, ASSIGNED, CANCELED, COMPLETED, FAILED, IN_REVIEW, Worker

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")

WORKER_W, STATE_W, HOLDER_W, AGE_W, BEAT_W, LIVE_W = 12, 10, 10, 6, 9, 8
FIXED_W = WORKER_W + 1 + STATE_W + 1 + HOLDER_W + 1 + AGE_W + 1 + BEAT_W + 1 + LIVE_W + 1
WIDTH = 80  # the board's default width (`status`); the stored note is cut for it
NOTE_W = WIDTH - FIXED_W


def clean(text) -> str:
    """Text agents wrote, made safe for a terminal: control characters escaped."""
    if text is None:
        return ""
    s = str(text)
    if s.isprintable():  # nothing to escape (every character _CTRL matches is unprintable)
        return s
    return _CTRL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), s)


def one_line(text, width: int) -> str:
    if text.__class__ is str and text.isprintable():  # the usual case: no escaping, no newline
        return text if len(text) <= width else text[: max(0, width - 1)] + "…"
    s = clean(text).replace("\n", "\\n").replace("\t", " ")
    return s if len(s) <= width else s[: max(0, width - 1)] + "…"


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


def note_parts(state, task, idle_s, hb_note, reason, summary, priority, conflicts) -> tuple[str, str]:
    """A worker's SUMMARY around what is read elsewhere: (prefix, note), the board showing
    prefix + [blocked by/waits for …] + [checks] + note."""
    note = task or ""
    if idle_s is not None and state in ACTIVE:
        note = f"idle {fmt_age(idle_s)}  " + (hb_note or note)
    elif state in ACTIVE and hb_note:
        note = hb_note
    elif state in (FAILED, CANCELED, ASSIGNED) and reason:
        note = reason
    elif state in (IN_REVIEW, APPROVED, COMPLETED) and summary:
        note = summary
    prefix = ""
    if priority != 2 and state not in (COMPLETED, CANCELED):
        prefix = f"P{priority} "
    if conflicts:
        prefix = f"!{len(conflicts)} conflict(s)  " + prefix
    return prefix, note


def board_columns(v) -> BoardRow:
    """The text board's stored columns of a view (a Worker)."""
    prefix, note = note_parts(
        v.state, v.task, v.idle_s, v.hb_note, v.reason, v.summary, v.priority, v.conflicts
    )
    head = (
        f"{one_line(v.worker, WORKER_W):<{WORKER_W}} {v.state:<{STATE_W}} "
        f"{one_line(v.holder or '-', HOLDER_W):<{HOLDER_W}} "
    )
    since = ts_to_us(v.state_since)
    if v.state not in ACTIVE:
        return BoardRow(
            head,
            one_line(prefix + note, NOTE_W).rstrip(),
            since,
            None,
            None,
            v.hb_interval or None,
            v.holder_clone or None,
        )
    beat = ts_to_us(v.last_heartbeat) if v.last_heartbeat else None
    return BoardRow(
        head,
        one_line(prefix + note, NOTE_W).rstrip(),
        since,
        beat,
        since_us(v, since, beat),
        v.hb_interval or None,
        v.holder_clone or None,
    )


BOARD_FLAG = "board_columns"  # meta: views stored without the board's columns (migration 0012)
_dec = msgspec.json.Decoder(Worker)


def fill_board_columns(tx) -> None:
    """The board's columns of every stored view, computed from it (a store that migrated
    to 0012), once: the flag goes with them."""
    if tx.meta([BOARD_FLAG]):
        for r in tx.views(board=True):
            want = board_columns(_dec.decode(r.view))
            if r.board != want:
                tx.put_board(r.worker, want)
        tx.delete_meta(BOARD_FLAG)
