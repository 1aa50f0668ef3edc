"""Evidence before merge: `coord check` (run a check, record it), `coord queue` (merge
APPROVED workers one at a time, checks run on the merge commit) and `coord overlap`
(which live workers would conflict, before either is done)."""

import sys

import click

from ..events.errors import UsageError
from .options import FiniteFloat, global_options, request_id_option, state
from .output import clean, echo, emit_json, one_line


class OptionalDashes(click.Command):
    """Everything after the first `--` is the check's command line, untouched by click."""

    def parse_args(self, ctx, args):
        if "--" in args:
            i = args.index("--")
            ctx.meta["check_argv"] = args[i + 1 :]
            if not ctx.meta["check_argv"]:
                raise UsageError("no command after --")
            args = args[:i]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx):
        return ["[OPTIONS] ID NAME [-- CMD [ARGS]...]"]


@click.command("check", cls=OptionalDashes)
@click.argument("worker_id", metavar="ID")
@click.argument("name", metavar="NAME")
@request_id_option
@global_options
def check_cmd(worker_id, name, request_id):
    """Run a check on a worker's commit and record it (check.passed / check.failed).

    Runs the shared setting check.NAME (or CMD after --, an ad-hoc run: evidence, never a
    gate) in the worker's worktree, or in a scratch worktree at its branch tip when it has
    none, bounded by check_timeout. Records the command (argv), the commit, the exit
    status, the duration and the output (a blob); a run on a worktree with uncommitted
    changes is marked dirty and does not count for merge. Exits with the command's
    status (124 when check_timeout stopped it, 127/126 when it cannot be run).

    \b
    Example:
      coord config check.tests "pytest -q"
      coord check w-1 tests
      coord check w-1 lint -- ruff check .
    """
    from ..app.checks import check
    from ..app.lifecycle import with_args
    from ..app.resolve import worker_arg

    st = state()
    argv = click.get_current_context().meta.get("check_argv")
    actor = st.identity()
    c = st.open()
    wid = worker_arg(c, worker_id)
    sink = sys.stderr.buffer
    r = check(
        c,
        wid,
        name,
        argv,
        actor,
        request_id=with_args(request_id, worker=wid, name=name, command=argv),
        out=None if st.json else sys.stdout.buffer,
        err=sink,
    )
    if st.json:
        emit_json(r)
    else:
        verdict = "passed" if r["type"] == "check.passed" else "FAILED"
        again = "  (request id used before: not run again)" if r.get("repeat") else ""
        click.echo(
            f"{wid}: check {name} {verdict} (exit {r.get('exit')}, {r.get('duration_s', 0):g}s) "
            f"on {str(r.get('commit'))[:12]}  {r['event']}{again}",
            err=True,
        )
    return r.get("exit") or 0


@click.command("queue")
@click.option(
    "--once", is_flag=True, help="One pass over what is approved now, then exit (4: nothing to merge)."
)
@click.option(
    "--interval",
    type=FiniteFloat(min=0.05, max=86400),
    default=5.0,
    show_default=True,
    metavar="SECONDS",
    help="Without --once: the longest wait for a new event between passes.",
)
@global_options
def queue_cmd(once, interval):
    """Merge APPROVED workers one at a time, checks run on what is merged.

    Order: priority (0 first), then first approved first; a worker passed over ten
    times moves up one priority. For each: the same merge commit `coord merge` builds (no
    rebase); the required checks run on it in a scratch worktree and are recorded
    (commit = the merge commit, head = the branch tip); only then does the base move
    (compare-and-set). A conflict → CONFLICTED; a failing check → worker.check_failed
    (APPROVED → WORKING, same holder). Nothing is resolved automatically. Safe to kill
    and restart at any point, and to run twice: merges are one at a time.

    \b
    Example:
      coord queue --once
      coord --as merger queue --interval 10
    """
    from ..app import queue

    st = state()
    actor = st.identity()
    c = st.open()

    def show(res):
        if not st.json:
            echo(_outcome_line(res))

    if once:
        results = queue.run_once(c, actor, on_result=show)
        if st.json:
            emit_json(results)
        elif not results:
            click.echo("nothing to merge: no APPROVED worker with a branch", err=True)
        return 0 if results else 4
    queue.run_forever(c, actor, interval, on_result=lambda r: emit_json(r) if st.json else show(r))
    return 0


def _outcome_line(r: dict) -> str:
    w = clean(r["worker"])
    o = r["outcome"]
    if o == "merged":
        return f"{w}: merged → {r['state']}" + (
            "  (already recorded)" if r.get("repeat") else f"  {r['event']}"
        )
    if o == "conflicted":
        return f"{w}: conflict in {', '.join(clean(f) for f in r.get('files') or [])} → CONFLICTED"
    if o == "check_failed":
        return f"{w}: check {clean(r.get('check'))} failed on the merge commit → WORKING"
    return f"{w}: {o}: {clean(r.get('reason', ''))}"


@click.command("overlap")
@click.option(
    "--notify", is_flag=True, help="Message both workers of a conflicting pair, once per pair of heads."
)
@global_options
def overlap_cmd(notify):
    """Which live workers' branches would conflict, with each other or their base.

    Each pair is merged in memory (git merge-tree), worktrees' uncommitted tracked
    changes included (labelled "uncommitted"); no worktree, index or ref is touched.
    Results are cached per pair of heads. --notify sends msg.coord.overlap to each
    worker of a conflicting pair (it reaches the holder), once per pair of heads.

    \b
    Example:
      coord overlap
      coord overlap --notify --json
    """
    from ..app.overlap import notify as send
    from ..app.overlap import overlaps

    st = state()
    c = st.open()
    result = overlaps(c)
    sent = send(c, result, st.identity()) if notify else []
    result.pop("_holders", None)
    if st.json:
        emit_json({**result, "notified": sent} if notify else result)
        return 0
    for line in overlap_lines(result):
        echo(line)
    if notify:
        echo(f"notified: {len(sent)} message(s)")
    return 0


def overlap_lines(result: dict) -> list[str]:
    out = []
    for p in result["pairs"]:
        out.append(f"{one_line(p['a'], 64)} × {one_line(p['b'], 64)}: {_files(p)}")
    for b in result["bases"]:
        out.append(f"{one_line(b['worker'], 64)} × base {one_line(b['base'], 64)}: {_files(b)}")
    n = len(result["workers"])
    if not out:
        out.append(
            f"no overlaps among {n} live worker{'s' if n != 1 else ''} ({result['checked']} merges checked)"
        )
    return out


def _files(p: dict) -> str:
    text = "conflict in " + ", ".join(clean(f) for f in p["files"]) if p["files"] else "conflict"
    if p["uncommitted"]:
        text += (
            ("; " if p["files"] else " only with ")
            + "uncommitted: "
            + ", ".join(clean(f) for f in p["uncommitted"])
        )
    return text
