"""`coord timeline`: each worker's states over time, as text for the terminal or as one
self-contained HTML page (--html FILE)."""

import os
import shutil
import sys

import click

from ..events.envelope import ts_to_us
from ..events.errors import UsageError
from ..projections.workers import (
    APPROVED,
    ASSIGNED,
    CANCELED,
    COMPLETED,
    CONFLICTED,
    FAILED,
    IN_REVIEW,
    TERMINAL,
    WORKING,
)
from .options import MAX_WIDTH, current_home_path, global_options, state
from .output import echo, emit_json, one_line

# One character per state in the text timeline; a terminal state shows once, then blank.
GLYPH = {
    ASSIGNED: ".",
    WORKING: "W",
    CONFLICTED: "C",
    IN_REVIEW: "R",
    APPROVED: "A",
    COMPLETED: "M",
    FAILED: "F",
    CANCELED: "x",
}


def text_lines(data: dict, width: int) -> list[str]:
    if not data["lanes"]:
        return ["no workers"]
    t0, t1 = ts_to_us(data["start"]), ts_to_us(data["end"])
    t1 = max(t1, t0 + 1)
    name_w = 12
    cells = max(10, width - name_w - 2)
    step = (t1 - t0) / cells
    out = [f"{'':<{name_w}}  {data['start'][:16]}Z" + f"{data['end'][:16]}Z".rjust(cells - 17)]
    for lane in data["lanes"]:
        segs = [
            (ts_to_us(s["start"]), ts_to_us(s["end"]) if s["end"] else t1 + 1, s["state"])
            for s in lane["segments"]
        ]
        row = []
        for i in range(cells):
            a, b = t0 + i * step, t0 + (i + 1) * step
            ch = " "
            last = i == cells - 1
            for s0, s1, st in segs:  # the state that starts latest within or before the cell wins
                # the last cell is closed at the end: a state entered at the newest event shows
                if (s0 < b or (last and s0 <= b)) and s1 > a:
                    ch = GLYPH.get(st, "?")
                    if st in TERMINAL and s0 < a:
                        ch = " "
            row.append(ch)
        for m in lane.get("checks", ()):  # a check run: + passed, ! failed
            i = min(cells - 1, max(0, int((ts_to_us(m["ts"]) - t0) / step)))
            row[i] = "+" if m["passed"] else "!"
        out.append(f"{one_line(lane['worker'], name_w):<{name_w}}  {''.join(row)}")
    out.append("")
    waits = [
        f"{one_line(lane['worker'], 24)} waits for {one_line(', '.join(lane['after']), 60)}"
        for lane in data["lanes"]
        if lane.get("after")
    ]
    if waits:
        out += ["dependencies:", *(f"  {w}" for w in waits), ""]
    legend, line = [], ""
    for s, g in GLYPH.items():  # the legend, wrapped to the width
        item = f"{g}={s}"
        if line and len(line) + 2 + len(item) > width:
            legend.append(line)
            line = ""
        line = f"{line}  {item}" if line else item
    if any(lane.get("checks") for lane in data["lanes"]):
        line += "  +=check passed  !=check failed"
    return out + legend + [line]


@click.command()
@click.option(
    "--html",
    "html",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write one self-contained HTML page (swimlanes, hover details) to FILE.",
)
@click.option("--worker", "workers", multiple=True, metavar="W", help="Only worker W (repeatable).")
@click.option("--since", metavar="POINT", help="Start at POINT (a time, an age, an event id or N).")
@click.option("--until", metavar="POINT", help="End at POINT (same forms).")
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Read an audit file instead of the store.",
)
@click.option(
    "--width",
    type=click.IntRange(min=40, max=MAX_WIDTH),
    metavar="COLS",
    help="Text width (default: the terminal's, else 80).",
)
@click.option("--force", is_flag=True, help="With --html: overwrite FILE if it exists.")
@global_options
def timeline(html, workers, since, until, from_file, width, force):
    """Each worker's states over time: text here, or an HTML page with --html.

    The page draws one lane per worker (state segments, heartbeats as circles, messages as
    diamonds, conflicts as crosses) with details on hover; it needs no network. FILE is
    written with your umask; an existing FILE needs --force, and a FILE inside a coord
    home is refused (exit 4).

    \b
    Example:
      coord timeline
      coord timeline --html timeline.html --since 1d
    """
    from ..app import reports
    from ..app.queries import open_history

    st = state()
    if force and not html:
        raise UsageError("--force only applies to --html FILE")
    history, _, _ = open_history(from_file, st.open_reading)
    out_path = None
    if html:  # refused before any work: an existing file (without --force), the home
        from ..events.files import check_output_path

        out_path = check_output_path(html, current_home_path(), force)
    data, count = reports.timeline(history, since, until, workers)
    if html:
        from ..events.files import write_output
        from .timeline_page import render

        page = render(data, count).encode()
        write_output(out_path, lambda fd: _write_all(fd, page), force)
        if st.json:
            emit_json({"file": out_path, "workers": len(data["lanes"]), "events": count})
        else:
            echo(f"wrote {html}: {len(data['lanes'])} workers, {count} events")
        return
    if st.json:
        emit_json(data)
        return
    if width is None:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
    for line in text_lines(data, width):
        echo(line)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
