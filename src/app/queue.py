"""`coord queue`: merge APPROVED workers one at a time. Order: priority (0 first), then
first in first out (the time each entered APPROVED), a worker passed over ten times
moving up one priority (a pass-over is a merge recorded while it waited: counted from
the log, so every queue and every restart agrees). Each merge goes through
`gitsteps.merge` with the queue's verify: the required checks run on the merge commit in
a scratch worktree and are recorded (commit = the merge commit, head = the branch tip)
before the base moves; a failing one appends `worker.check_failed` (APPROVED → WORKING).
"""

from ..events.errors import CoordError, Refused
from ..events.failpoints import failpoint
from ..events.records import EventQuery, TypeFilter
from ..projections.board import decode_view
from ..projections.graph import priority_of
from ..projections.workers import APPROVED
from . import gitsteps
from .checks import Interrupted, drop_scratch, record, required, run_command, scratch_at
from .gitrepo import Conflict
from .lifecycle import act, need_actor

AGING_PASSES = 10  # passed over this many times: one priority up


class CheckFailed(Refused):
    code = "check_failed"


def rank(waiting: list[dict], merged: list[tuple[str, str]]) -> list[dict]:
    """Queue order (pure). waiting: {worker, priority, since}; merged: (ts, worker) of the
    merges recorded since the oldest `since`. A merge of another worker while one waited
    passes it over; every AGING_PASSES of them lift it one priority (never above 0)."""
    out = []
    for w in waiting:
        passed = sum(1 for ts, who in merged if ts > w["since"] and who != w["worker"])
        eff = max(0, w["priority"] - passed // AGING_PASSES)
        out.append({**w, "effective": eff, "passed_over": passed})
    out.sort(key=lambda d: (d["effective"], d["since"], d["worker"]))
    return out


def order(c) -> list[dict]:
    """The APPROVED workers with a branch, in the order the queue takes them."""
    views = [decode_view(r.view) for r in c.store.reader.views(states=[APPROVED])]
    views = [v for v in views if v.branch]
    if not views:
        return []
    since = min(v.state_since for v in views)
    q = EventQuery(types=TypeFilter(("worker.merged",)), since_ts=since)
    merged = [(r.ts, r.to) for r in c.store.reader.events(q)]
    waiting = [{"worker": v.worker, "priority": priority_of(v), "since": v.state_since} for v in views]
    return rank(waiting, merged)


def verifier(c, repo, wid: str, actor: str, out=None, err=None):
    """The queue's verify for gitsteps.merge: each required check on the merge commit, in
    a scratch worktree, recorded; the first failure appends worker.check_failed and stops."""
    need = required(c.home.config)
    timeout = c.home.config["check_timeout"]

    def verify(commit: str, tip: str) -> None:
        if not need:
            return
        path = scratch_at(c, repo, "queue", commit)  # removed at the end of the pass
        failpoint("queue-scratch")
        for name, argv in need.items():
            facts = run_command(argv, path, timeout, out, err)
            facts.update(commit=commit, head=tip, queue=True)
            rec = record(c, wid, actor, name, argv, facts)
            if rec["type"] == "check.failed":
                why = "timed out" if facts.get("timed_out") else f"exit {facts.get('exit')}"
                reason = f"check {name} failed on the merge commit {commit[:12]} ({why})"
                act(
                    c,
                    "worker.check_failed",
                    wid,
                    {"check": name, "commit": commit, "reason": reason},
                    actor=actor,
                )
                raise CheckFailed(f"{wid}: {reason}; back to WORKING", check=name, commit=commit)

    return verify


def merge_one(c, wid: str, actor: str, out=None, err=None) -> dict:
    """One worker through the queue: {worker, outcome, ...}; outcome merged, conflicted,
    check_failed, skipped (not APPROVED any more) or refused (with the reason)."""
    from .worktrees import need_repo

    repo = need_repo(c, wid)
    try:
        r = gitsteps.merge(c, wid, {}, actor, verify=verifier(c, repo, wid, actor, out, err))
    except Conflict as e:
        return {"worker": wid, "outcome": "conflicted", "files": e.extra.get("files"), "reason": str(e)}
    except Interrupted:
        raise  # the queue was told to stop: no verdict on this worker
    except CheckFailed as e:
        return {"worker": wid, "outcome": "check_failed", **e.extra, "reason": str(e)}
    except CoordError as e:
        if e.extra.get("state") not in (None, APPROVED):
            return {"worker": wid, "outcome": "skipped", "reason": str(e)}
        return {"worker": wid, "outcome": "refused", "reason": str(e), "exit": e.exit_code}
    failpoint("queue-after-merge")
    return {"worker": wid, "outcome": "merged", "state": r.state, "event": r.event, "repeat": r.repeat}


def run_once(c, actor=None, out=None, err=None, on_result=None) -> list[dict]:
    """One pass over what is approved now, in queue order ([] when nothing is)."""
    actor = need_actor(c, actor)
    required(c.home.config)  # an undefined required check is exit 2 before anything runs
    results = []
    items = order(c)
    try:
        for item in items:
            failpoint("queue-picked")
            res = {**merge_one(c, item["worker"], actor, out, err), "priority": item["effective"]}
            results.append(res)
            if on_result:
                on_result(res)
    finally:
        if items:
            from .worktrees import home_repo

            repo = home_repo(c)
            if repo is not None:
                drop_scratch(c, repo, "queue")
    return results


def run_forever(c, actor=None, interval: float = 5.0, out=None, err=None, on_result=None, stop=None) -> None:
    """Pass after pass until stop() says so (or a signal ends the process); between passes
    that merged nothing, wait for the next event (or `interval` seconds)."""
    actor = need_actor(c, actor)
    while stop is None or not stop():
        seen = c.store.reader.max_seq()
        results = run_once(c, actor, out, err, on_result)
        if not any(r["outcome"] == "merged" and not r.get("repeat") for r in results):
            c.store.wait_for_new(max(seen, c.store.reader.max_seq()), interval)
