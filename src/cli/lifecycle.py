"""Lifecycle commands: spawn, start, heartbeat, done, approve, request-changes, merge,
release, cancel, fail, retry. Each is one use case of coord.app.lifecycle (with its git
step, coord.app.gitsteps)."""

import os

import click

from ..app import lifecycle
from ..app.lifecycle import with_args
from ..app.resolve import worker_arg
from ..events.errors import UsageError
from .options import attempt_option, global_options, request_id_option, state
from .output import echo, emit_json, warn


def report(r, verb: str) -> None:
    st = state()
    if st.json:
        emit_json(r)
    elif r.repeat:
        echo(f"{r.worker}: already {r.state} (nothing appended)")
    else:
        extra = f"  (attempt {r.attempt})" if r.type == "worker.started" and r.attempt else ""
        echo(f"{r.worker}: {verb} → {r.state}  {r.event[:15]}{extra}")


def _stamped(payload, wid, attempt):
    """The payload with `attempt` when --attempt or COORD_ATTEMPT names one (resolved to
    the attempt's id inside the write transaction; coord.app.attempts)."""
    from ..app.attempts import attempt_from_env

    n = attempt_from_env(wid, attempt)
    return payload if n is None else {**payload, "attempt": n}


def _act(action, wid, payload, request_id, explicit_identity=False, verb=None, attempt=None):
    st = state()
    actor = st.identity(explicit_required=explicit_identity)
    c = st.open()
    if action != "spawn":
        wid = worker_arg(c, wid)
    if action in ("heartbeat", "release", "fail"):
        payload = _stamped(payload, wid, attempt)
    r = lifecycle.act(c, action, wid, payload, actor=actor, request_id=_request(request_id, wid, payload))
    report(r, verb or action)
    return r


def _git_act(fn_name, wid, payload, request_id, verb, infer=True, attempt=None, **kw):
    """An action that may touch git (coord.app.gitsteps): the git step, then the record."""
    from ..app import gitsteps

    st = state()
    actor = st.identity()
    c = st.open()
    if infer:
        wid = worker_arg(c, wid)
    if fn_name == "done":
        payload = _stamped(payload, wid, attempt)
    rid = _request(request_id, wid, payload, kw)
    r = getattr(gitsteps, fn_name)(c, wid, payload, actor, request_id=rid, **kw)
    report(r, verb)
    return r


def _request(key, wid, payload, kw=None):
    """--request-id KEY with the arguments the user gave (the worker resolved; a relative
    --worktree made absolute), so a repeat with other arguments is refused."""
    kw = dict(kw or {})
    if kw.get("worktree"):
        kw["worktree"] = os.path.abspath(kw["worktree"])
    return with_args(key, worker=wid, **payload, **kw)


def _drop_none(**kw):
    return {k: v for k, v in kw.items() if v not in (None, False)}


@click.command()
@click.argument("worker_id", metavar="ID")
@click.option("--task", default="", help="What the worker is to do.")
@click.option("--assignee", metavar="AGENT", help="Only this agent may start it.")
@click.option(
    "--base", metavar="BRANCH", help="Branch to start from and merge into (default: the current branch)."
)
@click.option(
    "--worktree",
    "worktree",
    metavar="PATH",
    help="Where to check the branch out, outside the home and every worktree (default: .coord/worktrees/ID).",
)
@click.option("--no-worktree", is_flag=True, help="Create the branch only, no worktree.")
@click.option("--no-git", is_flag=True, help="No branch or worktree, even inside a git repository.")
@click.option(
    "--after", "after", multiple=True, metavar="A", help="Wait for worker A to be COMPLETED (repeatable)."
)
@click.option(
    "--priority", type=click.IntRange(0, 4), metavar="N", help="0 (highest) … 4 (lowest); default 2."
)
@request_id_option
@global_options
def spawn(worker_id, task, assignee, base, worktree, no_worktree, no_git, after, priority, request_id):
    """Create worker ID in state ASSIGNED.

    --after A makes it wait for A (docs/graph.md): it is not ready, and `start` refuses
    it, until A is COMPLETED; A must exist (exit 3). --priority orders `ready`.

    Inside a git repository it also creates branch coord/ID (the branch_prefix setting plus
    ID) from --base and a worktree at .coord/worktrees/ID (see docs/git.md). An existing
    branch of that name is refused (exit 4) unless it is the leftover of a spawn that died
    before recording it (at the tip of the base). --base must name a local branch.

    \b
    Example:
      coord spawn w-1 --task "add retries to the fetcher" --assignee agent-2
      coord spawn w-2 --base develop --no-worktree
      coord spawn w-3 --after w-1 --after w-2 --priority 1
    """
    if after:
        c = state().open()
        after = list(dict.fromkeys(worker_arg(c, a) if a != worker_id else a for a in after))
    r = _git_act(
        "spawn",
        worker_id,
        {
            **_drop_none(task=task or None, assignee=assignee, after=list(after) or None),
            **({} if priority is None else {"priority": priority}),  # 0 is a priority
        },
        request_id,
        "spawned",
        infer=False,
        base=base,
        worktree=worktree,
        no_worktree=no_worktree,
        no_git=no_git,
    )
    if not state().json and not r.repeat:
        v = lifecycle.worker(state().open(), r.worker)
        if v.branch:
            echo(f"branch: {v.branch} (from {v.base})" + (f"\nworktree: {v.worktree}" if v.worktree else ""))


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option(
    "--next", "next_", is_flag=True, help="Claim the first ready worker you may take (priority, then oldest)."
)
@click.option("--force", is_flag=True, help="Start a worker that waits for others or is blocked (recorded).")
@request_id_option
@global_options
def start(worker_id, next_, force, request_id):
    """Claim a worker: ASSIGNED → WORKING. Needs an explicit identity (--as or COORD_AGENT).

    A worker that waits for unfinished workers, or is blocked by a CANCELED or FAILED one,
    is refused (exit 4, naming them) unless --force. --next takes the first ready worker
    (as `coord ready` lists them), never a waiting or blocked one.

    \b
    Example:
      COORD_AGENT=agent-2 coord start w-1
      coord --as agent-3 start --next
    """
    st = state()
    if next_:
        if worker_id:
            raise UsageError("give an ID or --next, not both")
        if force:
            raise UsageError("--force starts a named worker: give an ID, not --next")
        actor = st.identity(explicit_required=True)
        r = lifecycle.start_next(st.open(), actor=actor, request_id=request_id)
        report(r, "started")
    else:
        r = _act(
            "start", worker_id, _drop_none(force=force), request_id, explicit_identity=True, verb="started"
        )
    if not r.repeat:
        from ..app.gitremote import check_out_here

        check_out_here(st.open(), lifecycle.worker(st.open(), r.worker))  # a shared store
    if not st.json and not r.repeat:
        from ..app.worktrees import worktree_path

        c = st.open()
        where = worktree_path(c, lifecycle.worker(c, r.worker))
        if where:
            echo(f"worktree: {where}")


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option("--note", help="What the agent is doing now.")
@click.option(
    "--interval", type=float, help="Declare this worker's heartbeat interval (seconds, 0.05 to 86400)."
)
@click.option("--force", is_flag=True, help="Beat for a worker you do not hold (recorded).")
@attempt_option
@request_id_option
@global_options
def heartbeat(worker_id, note, interval, force, attempt, request_id):
    """Record that the holder is alive (WORKING or CONFLICTED; no state change).

    \b
    Example:
      coord heartbeat w-1 --note "running tests"
    """
    if interval is not None:
        from ..projections.liveness import interval_error

        if interval_error(interval):
            raise UsageError(f"--interval {interval_error(interval)}")
    _act(
        "heartbeat",
        worker_id,
        _drop_none(note=note, interval=interval, force=force),
        request_id,
        verb="beat",
        attempt=attempt,
    )


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option("--summary", help="What was done.")
@click.option("--force", is_flag=True, help="Act for a worker you do not hold (recorded).")
@click.option("--no-rebase", is_flag=True, help="Do not rebase the branch onto its base first.")
@click.option("--no-git", is_flag=True, help="Skip all git steps (no rebase, no checks).")
@attempt_option
@request_id_option
@global_options
def done(worker_id, summary, force, no_rebase, no_git, attempt, request_id):
    """Hand the work in for review: WORKING or CONFLICTED → IN_REVIEW.

    With a branch, first rebases it onto its base; a conflict aborts the rebase, moves the
    worker to CONFLICTED (exit 4) and lists the files: resolve, then run done again.

    \b
    Example:
      coord done w-1 --summary "retries with backoff, tests added"
      cd .coord/worktrees/w-1 && coord done
    """
    _git_act(
        "done",
        worker_id,
        _drop_none(summary=summary, force=force),
        request_id,
        "done",
        attempt=attempt,
        rebase=not no_rebase,
        no_git=no_git,
    )


@click.command()
@click.argument("worker_id", metavar="ID")
@click.option("--note", help="A note for the record.")
@request_id_option
@global_options
def approve(worker_id, note, request_id):
    """Approve reviewed work: IN_REVIEW → APPROVED. Not by the holder.

    \b
    Example:
      coord --as reviewer approve w-1 --note "looks good"
    """
    _act("approve", worker_id, _drop_none(note=note), request_id, verb="approved")


@click.command("request-changes")
@click.argument("worker_id", metavar="ID")
@click.option("--reason", required=True, help="What must change.")
@request_id_option
@global_options
def request_changes(worker_id, reason, request_id):
    """Send work back: IN_REVIEW → WORKING. Not by the holder.

    \b
    Example:
      coord --as reviewer request-changes w-1 --reason "missing tests"
    """
    _act("request-changes", worker_id, {"reason": reason}, request_id, verb="changes requested")


@click.command()
@click.argument("worker_id", metavar="ID")
@click.option(
    "--into", metavar="BRANCH", help="Integration branch to merge into (default: the worker's base)."
)
@click.option("--no-git", is_flag=True, help="Only record the merge (you merged by hand).")
@request_id_option
@global_options
def merge(worker_id, into, no_git, request_id):
    """Merge the worker's branch and record it: APPROVED → COMPLETED.

    A merge commit naming the worker goes onto the integration branch; a conflict leaves
    that branch as it was, moves the worker to CONFLICTED and exits 4. A completed merge
    removes the worker's worktree (the branch stays).

    \b
    Example:
      coord merge w-1
      coord merge w-1 --into release-2
    """
    had = None
    if not no_git:
        c = state().open()
        had = lifecycle.worker(c, worker_arg(c, worker_id)).worktree
    r = _git_act("merge", worker_id, {}, request_id, "merged", into=into, no_git=no_git)
    if had and not r.repeat:
        v = lifecycle.worker(state().open(), r.worker)
        if v.worktree:
            warn(
                f"kept worktree {v.worktree}: it has uncommitted changes, or another worker "
                "records it (remove it with `git worktree remove`)"
            )


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option("--force", is_flag=True, help="Release a worker you do not hold (recorded).")
@attempt_option
@request_id_option
@global_options
def release(worker_id, force, attempt, request_id):
    """Give a worker back: WORKING or CONFLICTED → ASSIGNED.

    \b
    Example:
      coord release w-1
    """
    _act("release", worker_id, _drop_none(force=force), request_id, verb="released", attempt=attempt)


@click.command()
@click.argument("worker_id", metavar="ID")
@click.option("--reason", help="Why.")
@click.option("--delete-branch", is_flag=True, help="Also delete the worker's branch.")
@click.option(
    "--force", is_flag=True, help="With --delete-branch: delete it even with commits no other branch has."
)
@click.option("--no-git", is_flag=True, help="Leave the worktree and branch alone.")
@request_id_option
@global_options
def cancel(worker_id, reason, delete_branch, force, no_git, request_id):
    """Cancel a worker (any non-terminal state → CANCELED, terminal).

    Removes the worker's worktree, uncommitted changes included; the branch stays unless
    --delete-branch. A branch with commits that no other branch has is deleted only with
    --force (exit 4 otherwise: they would be lost).

    \b
    Example:
      coord cancel w-1 --reason "superseded by w-2"
    """
    _git_act(
        "cancel",
        worker_id,
        _drop_none(reason=reason),
        request_id,
        "canceled",
        delete_branch=delete_branch,
        no_git=no_git,
        force=force,
    )


@click.command()
@click.argument("worker_id", metavar="[ID]", required=False)
@click.option("--reason", help="Why it failed.")
@click.option("--force", is_flag=True, help="Fail a worker you do not hold (recorded).")
@attempt_option
@request_id_option
@global_options
def fail(worker_id, reason, force, attempt, request_id):
    """Mark a worker FAILED (any non-terminal state). `retry` brings it back.

    \b
    Example:
      coord fail w-1 --reason "cannot reproduce the bug"
    """
    _act(
        "fail", worker_id, _drop_none(reason=reason, force=force), request_id, verb="failed", attempt=attempt
    )


@click.command()
@click.argument("worker_id", metavar="ID")
@request_id_option
@global_options
def retry(worker_id, request_id):
    """Give a failed worker another go: FAILED → ASSIGNED.

    \b
    Example:
      coord retry w-1
    """
    _act("retry", worker_id, {}, request_id, verb="retried")
