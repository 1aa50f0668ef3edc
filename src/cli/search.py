"""`coord search`: full-text search over event types and payload text."""

import click

from ..app.queries import search as find
from ..events.errors import UsageError
from .options import MAX_COUNT, global_options, state
from .output import echo, emit_json, one_line


@click.command()
@click.argument("query", metavar="QUERY")
@click.option(
    "--type", "types", multiple=True, metavar="T", help="Only type T (glob allowed: 'msg.*'; repeatable)."
)
@click.option("--from", "from_", metavar="A", help="Only events from actor A.")
@click.option("--to", "to", metavar="X", help="Only events to X (an agent, a worker, '*').")
@click.option(
    "--limit", type=click.IntRange(min=1, max=MAX_COUNT), default=20, show_default=True, metavar="N"
)
@global_options
def search(query, types, from_, to, limit):
    """Full-text search over event types and payload text (blobs' text included), best
    matches first, with a snippet and the event id. QUERY is SQLite FTS5 syntax: words,
    "a phrase", prefix*, AND / OR / NOT. Heartbeats are not indexed.

    \b
    Example:
      coord search flaky
      coord search '"rate limit" OR throttl*' --type 'msg.*' --limit 5
      coord search parser --from agent-2 --json
    """
    if not query.strip():
        raise UsageError("empty search query")
    st = state()
    items = find(st.open(reading=True), query, types, from_, to, limit)
    if st.json:
        emit_json(items)
        return
    if not items:
        echo("no matches")
        return
    for d in items:
        echo(
            f"{d['id'][:15]} {d['ts']} {one_line(d['from'], 16)} → {one_line(d['to'], 16)} "
            f"{d['type']}  {one_line(d['snippet'], 100)}"
        )
