"""Liveness you can act on: `coord run` (supervise an agent's process, beat for it, record
its outcome) and `coord reap` (fail or requeue DEAD workers)."""

import re
import sys

import click

from ..events.errors import UsageError
from .options import global_options, request_id_option, state
from .output import clean, echo, emit_json


class Duration(click.ParamType):
    """Seconds: '30', '2.5', '30s', '5m', '1h'."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", str(value))
        if not m:
            self.fail(f"{value!r} is not a duration (e.g. 30, 2.5s, 5m, 1h)", param, ctx)
        secs = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]
        return secs


DURATION = Duration()


class CommandAfterDashes(click.Command):
    """Everything after the first `--` is the child's command line, untouched by click."""

    def parse_args(self, ctx, args):
        if "--" in args:
            i = args.index("--")
            ctx.meta["child_argv"] = args[i + 1 :]
            args = args[:i]
        elif not ({"--help", "-h"} & set(args)):
            raise UsageError("put the command after --: coord run [ID] -- CMD [ARGS…]")
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx):
        return ["[OPTIONS] [ID] -- CMD [ARGS]..."]


@click.command("run", cls=CommandAfterDashes)
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option(
    "--interval",
    type=DURATION,
    metavar="SECS",
    help="Seconds between heartbeats, 0.05 to 86400 (default: the heartbeat_interval setting). "
    "Recorded in each beat, so liveness uses it.",
)
@click.option(
    "--idle-timeout",
    type=DURATION,
    metavar="SECS",
    help="End the child when it has printed nothing for this long.",
)
@click.option("--timeout", type=DURATION, metavar="SECS", help="End the child when it has run this long.")
@click.option(
    "--grace",
    type=DURATION,
    default=5.0,
    show_default=True,
    metavar="SECS",
    help="After SIGTERM (a timeout, or SIGTERM/SIGHUP sent to coord run), wait this long, then SIGKILL.",
)
@click.option("--here", is_flag=True, help="Run CMD in the current directory, not in the worker's worktree.")
@click.option(
    "--summary", help="Summary for `done` when the child exits 0 (default: its last line on stdout)."
)
@request_id_option
@global_options
def run_cmd(worker_id, interval, idle_timeout, timeout, grace, here, summary, request_id):
    """Claim a worker, run CMD as its agent, beat while it lives, record the outcome.

    Starts ID (ASSIGNED → WORKING; needs --as or COORD_AGENT) and runs CMD, in the
    worker's worktree if it has one, with COORD_HOME, COORD_AGENT and COORD_WORKER set.
    A dedicated thread appends a heartbeat every interval, recording how long the child
    has been silent (`status` shows `idle 4m`). Exit 0 → `done` (with a branch: rebased,
    as `coord done` does); anything else → `fail` with the exit code or signal and the
    last lines of output. SIGINT, SIGTERM and SIGHUP are forwarded to the child. Exits
    with the child's status (128+N when killed by signal N), 124 when --timeout or
    --idle-timeout ended it, 127 when CMD is not found and 126 when it cannot be executed
    (both checked before claiming: nothing appended); coord's own errors before the child
    starts use coord's exit codes.

    \b
    Example:
      COORD_AGENT=agent-1 coord run w-1 --idle-timeout 10m -- claude -p "fix the parser"
      coord --as agent-2 run w-2 --interval 5 --timeout 2h -- ./agent.sh
    """
    from ..app.lifecycle import with_args
    from ..app.resolve import worker_arg
    from ..app.runner import run_args, run_worker

    st = state()
    ctx = click.get_current_context()
    argv = ctx.meta.get("child_argv")
    if not argv:
        raise UsageError("no command after --")
    from ..projections.liveness import interval_error

    if interval is not None and interval_error(interval):
        raise UsageError(f"--interval {interval_error(interval)}")
    for name, v in (("--idle-timeout", idle_timeout), ("--timeout", timeout)):
        if v is not None and v <= 0:
            raise UsageError(f"{name} must be positive")
    if grace < 0:
        raise UsageError("--grace must not be negative")
    actor = st.identity(explicit_required=True)
    c = st.open()
    wid = worker_arg(c, worker_id)
    given = run_args(wid, argv, interval, idle_timeout, timeout, grace, summary, here)
    if interval is None:
        interval = c.home.config["heartbeat_interval"]
        if interval_error(interval):
            raise UsageError(f"the heartbeat_interval setting {interval_error(interval)}: pass --interval")

    def say(text):
        if not st.json:
            click.echo(f"coord run: {clean(text)}", err=True)

    res = run_worker(
        c,
        wid,
        list(argv),
        actor,
        interval,
        idle_timeout,
        timeout,
        grace,
        summary,
        out=sys.stdout.buffer,
        err=sys.stderr.buffer,
        say=say,
        here=here,
        request_id=with_args(request_id, **given),
    )
    if res.repeat:
        say(
            f"{wid}: request id {request_id!r} was used before and that run is over "
            f"(exit {res.exit}, {res.state}); the command was not run again"
        )
    elif res.ended_by == "exec-failed":
        say(f"{wid}: could not start {argv[0]} (exit {res.exit}) → {res.state}")
    elif res.lost_claim:
        say(f"{wid}: outcome not recorded, the claim was lost ({res.lost_claim})")
    elif res.recorded_by_child:
        say(
            f"{wid}: child exit {res.exit} after {res.duration_s:g}s; it had already moved the worker to {res.state}"
        )
    elif res.conflict:
        say(f"{wid}: child exit 0, but {res.conflict} → {res.state}")
    elif res.done_refused:
        say(f"{wid}: child exit 0, but done was refused: {res.done_refused} → {res.state}")
    elif res.heartbeat_error and res.ended_by == "heartbeat-failed":
        say(f"{wid}: the child was ended because coord run could not beat for it → {res.state}")
    elif res.record_error:
        say(f"{wid}: outcome not recorded: {res.record_error}")
    else:
        how = f"killed by {res.signal}" if res.signal else f"exit {res.returncode}"
        if res.ended_by in ("timeout", "idle-timeout"):
            how = f"ended by --{res.ended_by} ({how})"
        say(f"{wid}: child {how} after {res.duration_s:g}s → {res.state}")
    if st.json:
        emit_json(res)
    return res.exit


@click.command("reap")
@click.option(
    "--requeue", is_flag=True, help="Send DEAD workers back to ASSIGNED (release) instead of failing them."
)
@click.option("--dry-run", is_flag=True, help="List what would be reaped; append nothing.")
@request_id_option
@global_options
def reap_cmd(requeue, dry_run, request_id):
    """Fail every DEAD worker (reason: heartbeat timeout), or requeue it with --requeue.

    DEAD means no heartbeat for 30 intervals. REMOTE workers (held on another clone) are
    left alone. Safe to run from several places at once: one reap event per dead worker.

    \b
    Example:
      coord reap
      coord reap --requeue --json
    """
    st = state()
    actor = st.identity()
    c = st.open()
    from ..app.reaping import reap

    items = reap(c, actor=actor, requeue=requeue, dry_run=dry_run, request_id=request_id)
    if st.json:
        emit_json(items)
        return
    if not items:
        echo("nothing to reap")
        return
    verb = "would reap" if dry_run else "reaped"
    for d in items:
        echo(
            f"{clean(d['worker'])}: {verb} ({d['from_state']}, held by {clean(d['holder']) or '-'}, "
            f"silent {d['silent_s']:g}s) → {d['state']}"
        )
