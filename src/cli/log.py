"""`coord log`: the events with log's filters, oldest first; `-f` keeps printing new ones
as they commit, until interrupted."""

import click

from ..app.queries import follow_log, log_rows
from ..events.forms import event_json_parts
from .live import reader_gone, until_interrupted, write
from .options import MAX_COUNT, global_options, state
from .render import format_event_line, report_unresolved


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
    c = st.open(reading=True)
    top, rows = log_rows(c, worker, types, from_, since, limit)
    problems = []  # an unresolved blob shows as its reference: report_unresolved
    with until_interrupted():
        for r in rows:
            _print(c, r, st.json, problems)
        if problems:
            report_unresolved(problems, fail=not follow)
            problems.clear()
        if follow:  # inside: a reader gone during the listing ends the command here
            _follow(c, top, worker, types, from_, st.json)


def _print(c, r, as_json: bool, problems: list) -> None:
    if as_json:
        for part in event_json_parts(c.blobs, r.seq, r.id, r.body, problems=problems):
            write(part)
        write(b"\n")
    else:
        write((format_event_line(r.seq, r.id, r.body, c.blobs, problems) + "\n").encode())


def _follow(c, last_seq: int, worker, types, from_, as_json: bool) -> None:
    """`log -f`: continue after `last_seq`, the top seq of the snapshot the listing read."""
    for r in follow_log(c, last_seq, worker, types, from_, stop=reader_gone):
        problems = []
        _print(c, r, as_json, problems)
        report_unresolved(problems, fail=False)  # said, and the follow goes on
