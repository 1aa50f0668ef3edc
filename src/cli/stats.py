"""`coord stats`: time per state (median, p90), per-agent outcomes, throughput per hour."""

import click

from .options import global_options, state
from .output import echo, emit_json, fmt_age, one_line


def _dur(s):
    return "-" if s is None else fmt_age(s)


@click.command()
@click.option(
    "--since",
    metavar="POINT",
    help="Count only from POINT (a time, an age, an event id or N); earlier events are still folded.",
)
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Read an audit file instead of the store.",
)
@global_options
def stats(since, from_file):
    """Figures from the history: per state, the median and p90 time spent in it; per agent,
    workers started, done, completed (merged), failed and reviewed; throughput per hour.

    A spell in a state counts once it ends; the current state of each worker is open
    and reported as a count only.

    \b
    Example:
      coord stats
      coord stats --since 24h --json
    """
    from ..app import reports
    from ..app.queries import open_history

    st = state()
    history, _, _ = open_history(from_file, st.open_reading)
    out = reports.stats(history, since)
    if st.json:
        emit_json(out)
        return
    tp = out["throughput"]
    echo(f"{out['events']} events from {out['first'] or '-'} to {out['last'] or '-'} ({out['span_hours']} h)")
    echo("")
    echo(f"{'STATE':<12} {'SPELLS':>6} {'MEDIAN':>8} {'P90':>8} {'MAX':>8}")
    for name, f in out["states"].items():
        echo(
            f"{name:<12} {f['spells']:>6} {_dur(f['median_s']):>8} {_dur(f['p90_s']):>8} {_dur(f['max_s']):>8}"
        )
    echo("")
    echo(f"{'AGENT':<20} {'STARTED':>7} {'DONE':>5} {'MERGED':>6} {'FAILED':>6} {'REVIEWED':>8}")
    for name, a in out["agents"].items():
        echo(
            f"{one_line(name, 20):<20} {a['started']:>7} {a['done']:>5} {a['completed']:>6} "
            f"{a['failed']:>6} {a['reviewed']:>8}"
        )
    echo("")
    rate = lambda x: "-" if x is None else f"{x:g}"  # noqa: E731
    echo(
        f"throughput: {tp['completed']} merged ({rate(tp['completed_per_hour'])}/h), "
        f"{tp['done']} done ({rate(tp['done_per_hour'])}/h)"
    )
    for h in tp["hours"]:
        echo(
            f"  {h['hour']}  merged {h['completed']:>3}  done {h['done']:>3}  "
            + "#" * min(h["completed"] + h["done"], 40)
        )
