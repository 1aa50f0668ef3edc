"""`coord replay`: walk history event by event, saying what each changed; `--at` shows the
whole board as it was at a moment. Reads the store, or an audit file with no database."""

import sys
import time

import click

from ..app.queries import board_at_items, open_history
from ..app.resolve import worker_in_history
from ..events.errors import UsageError
from ..events.records import type_filter
from .options import FiniteFloat, global_options, state
from .output import one_line


def step_json(s) -> dict:
    import msgspec

    from ..projections.replay import describe

    env = s.env
    return {
        "n": s.n,
        "id": s.id,
        "ts": env.ts,
        "from": env.from_,
        "to": env.to,
        "type": env.type,
        "payload": env.payload,
        "worker": s.worker,
        "before": s.before.state if (s.before is not None and s.worker) else None,
        "after": s.after.state if s.after is not None else None,
        "conflict": s.conflict,
        "change": describe(s),
        "view": msgspec.to_builtins(s.after) if s.after is not None else None,
    }


def step_line(s) -> str:
    from ..projections.replay import describe

    env = s.env
    return (
        f"{s.n:>6} {env.ts[:10]} {env.ts[11:19]}  {one_line(env.from_, 14):<14} "
        f"{env.type:<24} {one_line(describe(s), 200)}"
    )


class Pacer:
    """--step (wait for a key) and --speed N (real time ×N, long gaps cut to --max-gap)."""

    def __init__(self, step, speed, max_gap):
        self.step, self.speed, self.max_gap = step, speed, max_gap
        self.prev_us = None
        self.tty = sys.stdin.isatty()

    def before(self, ts_us) -> None:
        if self.speed and self.prev_us is not None:
            time.sleep(min(max(0, ts_us - self.prev_us) / 1e6 / self.speed, self.max_gap))
        self.prev_us = ts_us

    def after(self) -> bool:
        """False when the user asked to stop (q, or end of input)."""
        if not self.step:
            return True
        if self.tty:
            prompt_tty = sys.stderr.isatty()
            click.echo("-- Enter/space: next, q: quit --", err=True, nl=not prompt_tty)
            ch = click.getchar()
            if prompt_tty:  # erase the prompt; never write escape codes into a file
                click.echo("\r\x1b[K", err=True, nl=False)
            return ch not in ("q", "Q", "\x03", "\x04")
        line = sys.stdin.readline()
        return bool(line) and line.strip().lower() != "q"


@click.command()
@click.option("--worker", metavar="W", help="Only events of worker W (its lifecycle and messages to it).")
@click.option("--from", "from_", metavar="A", help="Only events from actor A.")
@click.option(
    "--type", "types", multiple=True, metavar="T", help="Only type T (glob allowed: 'msg.*'; repeatable)."
)
@click.option(
    "--since", metavar="POINT", help="Start printing at POINT: a time, an age (10m), an event id or N."
)
@click.option("--until", metavar="POINT", help="Stop after POINT (same forms as --since).")
@click.option(
    "--at", "at", metavar="POINT", help="Print the whole board as it was at POINT instead of the events."
)
@click.option("--step", is_flag=True, help="Wait for a key (Enter) between events; q quits.")
@click.option(
    "--speed", type=FiniteFloat(min=0, min_open=True), metavar="N", help="Play back in real time ×N."
)
@click.option(
    "--max-gap",
    type=FiniteFloat(min=0, max=86400),
    default=5.0,
    show_default=True,
    metavar="S",
    help="With --speed: never wait more than S seconds between two events.",
)
@click.option(
    "--from-file",
    "from_file",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Replay an audit file (events.jsonl); no database or home needed.",
)
@global_options
def replay(worker, from_, types, since, until, at, step, speed, max_gap, from_file):
    """Walk history event by event: time, actor, event, and what it changed.

    Events are folded in (ts, id) order with the board's own fold. A POINT is a time
    (RFC 3339 or a date), an age like 10m, an event id (b3:…, a prefix will do) or a
    number N (the Nth event). --json prints one JSON line per event with the worker's
    state and view after it; with --at, one document with the board.

    \b
    Example:
      coord replay --worker w-7
      coord replay --at 2025-01-06T12:00:00Z
      coord replay --type 'msg.*' --since 1h --speed 60
      coord replay --from-file .coord/events.jsonl --at 40
    """
    from ..events.envelope import ts_to_us
    from ..projections.replay import fold_upto, steps

    st = state()
    if at is not None and (step or speed or since or until or types or from_):
        raise UsageError("--at prints a board: it takes only --worker and --from-file")
    if step and speed:
        raise UsageError("give --step or --speed, not both")
    history, interval, _clone = open_history(from_file, st.open_reading)
    wid = worker_in_history(history, worker) if worker else None
    wanted_types = type_filter(types)
    from .live import until_interrupted, write

    if at is not None:
        key = history.point(at, end=True)
        views = fold_upto(history.events(until=key, lifecycle_only=True))
        at_ts = key[0] if key[0] else None
        now = ts_to_us(at_ts) if at_ts else 0
        items = board_at_items(views, now, interval, wid)
        if st.json:
            from .output import emit_json

            emit_json({"at": at_ts, "event": key[1] if key[1].startswith("b3:") else None, "workers": items})
            return
        from .render import render_board

        point = f" (event {key[1][:15]})" if key[1].startswith("b3:") else ""
        lines = [f"board at {at_ts or 'the beginning'}{point}"]
        lines += render_board(items, now) if items else ["no workers yet"]
        with until_interrupted():
            write(("\n".join(lines) + "\n").encode())
        return

    lo = history.point(since, end=False) if since else None
    hi = history.point(until, end=True) if until else None
    pacer = Pacer(step, speed, max_gap)

    def wanted(s) -> bool:
        env = s.env
        if lo is not None and (env.ts, s.id) < lo:
            return False
        if wid and env.to != wid:
            return False
        if from_ and env.from_ != from_:
            return False
        if wanted_types is not None and not wanted_types.matches(env.type):
            return False
        return True

    with until_interrupted():
        for s in steps(history.events(until=hi)):
            if not wanted(s):
                continue
            pacer.before(ts_to_us(s.env.ts))
            if st.json:
                import msgspec

                write(msgspec.json.encode(step_json(s)) + b"\n")
            else:
                write((step_line(s) + "\n").encode())
            if not pacer.after():
                break
