"""`coord watchdog`: nudge, report and requeue silent workers (coord.app.watchdog)."""

import sys
import time

import click

from ..events.errors import Busy
from .options import global_options, state
from .output import clean, echo, emit_json, fmt_age, warn


def describe(d: dict) -> str:
    who = clean(d["worker"]) + (f" attempt {d['attempt']}" if d.get("attempt") else "")
    what = {
        "nudge": f"nudged {clean(d['to'])} (msg.coord.nudge)",
        "stale": f"told {clean(d['to'])} (msg.coord.stale)",
        "requeue": f"requeued → {d['state']}",
        "fail": f"failed after its last attempt → {d['state']}",
    }[d["action"]]
    return f"{who}: {d['liveness']}, silent {d['silent_s']:g}s: {what}  {d['event'][:15]}"


def seen_line(seen: dict | None) -> str:
    """The watchdog's own liveness in one line (status prints it under the board)."""
    if seen is None:
        return "watchdog  never seen in this home (start one: coord --as NAME watchdog)"
    age = fmt_age(seen["silent_s"])
    if seen["liveness"] == "OK":
        return f"watchdog  {clean(seen['watchdog'])} last seen {age} ago (every {seen['interval']:g}s)"
    return (
        f"watchdog  {clean(seen['watchdog'])} SILENT for {age} ({seen['liveness']}; it beats every "
        f"{seen['interval']:g}s): nothing nudges or requeues silent workers"
    )


@click.command("watchdog")
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option(
    "--interval",
    type=float,
    metavar="SECS",
    help="Seconds between rounds, 0.05 to 86400 (default: the heartbeat_interval setting).",
)
@click.option("--status", "show_status", is_flag=True, help="Only say when a watchdog was last seen here.")
@global_options
def watchdog_cmd(once, interval, show_status):
    """Act on liveness: WARN → nudge the holder, STALE → tell the spawner, DEAD → requeue.

    Each round records a `watchdog.heartbeat` (not in the audit file; `status` shows when
    the watchdog was last seen) and, for each active worker: WARN → `msg.coord.nudge` to
    its holder, STALE → `msg.coord.stale` to whoever spawned it, DEAD → requeue it (as
    `reap --requeue`), or fail it when its attempt is the `max_attempts`-th. Each
    (worker, attempt, level) is acted on once per store, however many watchdogs run.
    Needs an explicit identity. With --json, one line per action.

    \b
    Example:
      coord --as watchdog-1 watchdog --interval 10
      coord --as watchdog-1 --json watchdog --once
      coord watchdog --status
    """
    from ..app.watchdog import check_interval, last_seen, round_

    st = state()
    if show_status:
        c = st.open()
        seen = last_seen(c)
        emit_json(seen) if st.json else echo(seen_line(seen))
        return
    actor = st.identity(explicit_required=True)
    c = st.open()
    interval = check_interval(interval if interval is not None else c.home.config["heartbeat_interval"])
    if not once and not st.json:
        click.echo(f"coord watchdog: {clean(actor)}, a round every {interval:g}s (Ctrl-C to stop)", err=True)
    while True:
        began = time.monotonic()
        try:
            items = round_(c, actor, interval)
        except Busy as e:  # the store stayed locked: try again next round
            if once:
                raise
            warn(f"round skipped: {e.message}")
            items = []
        for d in items:
            emit_json(d) if st.json else echo(describe(d))
        if c.shared and not once:  # a server store: this checkout's audit file keeps up
            c.catch_up()
        sys.stdout.flush()
        sys.stdout.buffer.flush()
        if once:
            return
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
