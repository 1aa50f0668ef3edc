"""`coord status`: the board (or, with --watch, the board redrawn as it changes)."""

import click

from ..app.queries import add_branch_counts, board_items, text_board
from ..events.envelope import now_us
from ..events.errors import UsageError
from ..projections.workers import STATES
from .options import MAX_COUNT, FiniteFloat, global_options, state
from .output import echo, emit_json, one_line
from .render import empty_board_text, render_board, render_stored_board

BRANCH_COLS = "{:<16} {:<10} {:<28} {:<16} {:>5} {:>6}"


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
@click.option(
    "--overlaps",
    is_flag=True,
    help="Also show which live workers would conflict, with each other or their base (asks git; see overlap).",
)
@global_options
def status(worker_id, states, stale, all_, watch, interval, count, branches, overlaps):
    """The board: every worker with its state, holder, age and liveness.

    Terminal workers (COMPLETED, CANCELED) are hidden unless --all or --state asks.

    \b
    Example:
      coord status
      coord status --state working --json
      coord status --stale
      coord status --watch --interval 1
      coord status --branches
      coord status --overlaps
    """
    st = state()
    c = st.open(reading=True)
    want = set()
    for s in states:
        s2 = s.upper().replace("-", "_")
        if s2 not in STATES:
            raise UsageError(f"unknown state {s!r} (one of {', '.join(STATES)})")
        want.add(s2)
    if watch or count is not None:
        from .watch import watch_board

        def fetch(now):
            if c.shared:  # a server store: this checkout's audit file keeps up meanwhile
                c.catch_up()
            return board_items(c, worker_id, want, stale, all_, now, full=st.json)

        watch_board(
            fetch,
            interval,
            count,
            st.json,
            describe_filter=bool(want or stale or worker_id),
        )
        return
    now = now_us()
    if not (st.json or branches or overlaps or stale or worker_id):
        # The plain board: rendered from the columns stored beside the views.
        rows, special, any_active = text_board(c, want, all_, now)
        if not rows:
            echo(empty_board_text(bool(want)))
            return
        echo("\n".join(render_stored_board(rows, special, now)))  # one write
        if any_active:
            _watchdog_line(c, now)
        return
    items = board_items(c, worker_id, want, stale, all_, now, full=st.json or branches)
    from ..app.checks import add_check_status

    add_check_status(c, items)
    if branches:
        add_branch_counts(c, items)
    found = _overlaps(c, items) if overlaps else None
    if st.json:
        emit_json(items)
        return
    if found is not None and items:
        from .checks import overlap_lines

        echo("\n".join(render_board(items, now)) + "\n\noverlaps")
        echo("\n".join("  " + line for line in overlap_lines(found)))
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
    if any(d["liveness"] for d in items):
        _watchdog_line(c, now)


def _watchdog_line(c, now) -> None:
    """When the board has active workers and a watchdog ever ran here: when it was last
    seen (a silent watchdog is itself a failure worth seeing)."""
    from ..app.watchdog import last_seen
    from .watchdog import seen_line

    seen = last_seen(c, now)
    if seen is not None:
        echo(seen_line(seen))


def _overlaps(c, items) -> dict:
    """`overlaps` on each item: [{with (a worker, or base:BRANCH), files, uncommitted}]."""
    from ..app.overlap import overlaps

    found = overlaps(c)
    by = {d["worker"]: d.setdefault("overlaps", []) for d in items}
    for p in found["pairs"]:
        for me, other in ((p["a"], p["b"]), (p["b"], p["a"])):
            if me in by:
                by[me].append({"with": other, "files": p["files"], "uncommitted": p["uncommitted"]})
    for b in found["bases"]:
        if b["worker"] in by:
            by[b["worker"]].append(
                {"with": "base:" + b["base"], "files": b["files"], "uncommitted": b["uncommitted"]}
            )
    return found
