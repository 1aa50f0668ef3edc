"""`coord status --watch`: the board redrawn in place on a terminal; on a pipe or file, one
plain board per refresh (no escape codes), separated by a header line and a blank line."""

import shutil
import sys
import time

from ..events.envelope import now_us, us_to_ts
from .live import until_interrupted, write
from .output import one_line

HIDE, SHOW, HOME_, CLEAR_EOL, CLEAR_EOS, CLEAR = (
    "\x1b[?25l",
    "\x1b[?25h",
    "\x1b[H",
    "\x1b[K",
    "\x1b[J",
    "\x1b[2J",
)


def frame_lines(items, now, interval, width, filtered) -> list[str]:
    from .render import empty_board_text, render_board

    head = f"coord status  {us_to_ts(now)[:19]}Z  every {interval:g}s  (Ctrl-C to stop)"
    body = render_board(items, now, width) if items else [empty_board_text(filtered)]
    return [one_line(head, width)] + body


def watch_board(fetch, interval: float, count: int | None, as_json: bool, describe_filter: bool = False):
    """Refresh until interrupted (or `count` refreshes). `fetch(now)` returns board items
    from one short read transaction."""
    tty = sys.stdout.isatty() and not as_json
    n = 0
    with until_interrupted():
        try:
            if tty:
                write((HIDE + CLEAR).encode())
            while True:
                now = now_us()
                items = fetch(now)
                n += 1
                if as_json:
                    import msgspec

                    write(msgspec.json.encode({"at": us_to_ts(now), "workers": items}) + b"\n")
                elif tty:
                    size = shutil.get_terminal_size((80, 24))
                    lines = frame_lines(items, now, interval, size.columns, describe_filter)
                    if len(lines) > size.lines - 1:  # keep the header visible: cut the tail
                        cut = len(lines) - (size.lines - 2)
                        lines = lines[: size.lines - 2] + [f"… {cut} more (widen the window or use --state)"]
                    lines = [ln[: size.columns] for ln in lines]
                    write((HOME_ + "".join(ln + CLEAR_EOL + "\n" for ln in lines) + CLEAR_EOS).encode())
                else:
                    lines = frame_lines(items, now, interval, 80, describe_filter)
                    write(("\n".join(lines) + "\n\n").encode())
                if count is not None and n >= count:
                    break
                time.sleep(interval)
        finally:
            if tty:
                try:
                    write(SHOW.encode())
                except BrokenPipeError:
                    pass
