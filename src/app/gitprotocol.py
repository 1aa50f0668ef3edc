"""The protocol every git-backed step follows (`step`), a conflict recorded, and the lock
that makes `merge` and `queue` one at a time (coord.app.gitsteps uses them all)."""

import fcntl
import os
from contextlib import contextmanager

import msgspec

from ..events.failpoints import failpoint
from ..projections import board
from ..projections.workers import ACTIONS
from .gitrepo import Conflict, Repo
from .lifecycle import Result, act, precheck


@contextmanager
def merge_lock(repo: Repo):
    """One merge at a time in this repository, `merge` or `queue`, held from building the
    merge commit through its checks to recording it (the git lock is taken only around
    the short git steps inside, so spawn and done are not held up by a check)."""
    fd = os.open(str(repo.common_dir / "coord-merge.lock"), os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def step(
    c, repo: Repo, action: str, wid: str, payload: dict, actor, request_id, keys, given: dict, work
) -> Result:
    """The git protocol of a step. Under the repository's git lock: what a repeat would
    carry (the caller's arguments, the git fields the last transition recorded, and the git
    arguments `given` now, None removing one) is checked first, so an idempotent repeat or
    a used request id is recorded without git work. Otherwise `work(view)` does the git
    part and returns (the fields it adds to the payload, an undo for what it created or
    None); then `act` records the event, checking again inside its transaction; if that
    fails, the undo runs."""
    with repo.lock():
        guess = {**as_before(peek(c, wid), ACTIONS[action], payload, keys), **given}
        for k in [k for k, v in given.items() if v is None]:
            del guess[k]
        repeat, view = precheck(c, action, wid, guess, actor, request_id)
        if repeat:
            return act(c, action, wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        added, undo = work(view)
        try:
            failpoint(f"{action}-after-git")
            return act(c, action, wid, {**payload, **added}, actor=actor, request_id=request_id)
        except BaseException:
            if undo is not None:
                undo()
            raise


def peek(c, wid):
    return board.load(c.store.reader, wid)


def as_before(view, etype: str, payload: dict, keys) -> dict:
    """The payload a repeat would carry: the caller's arguments plus the git fields the
    last transition recorded (so an idempotent repeat is recognised without git work)."""
    if view is None or view.last_type != etype:
        return dict(payload)
    last = msgspec.json.decode(view.last_args)
    return {**{k: last[k] for k in keys if k in last}, **payload}


def record_conflict(c, wid, actor, files, stage, onto, stamp=None) -> None:
    """`stamp`: the attempt fields of the action that met the conflict (coord run's done)."""
    payload = {"files": files, "stage": stage, "onto": onto, **(stamp or {})}
    act(c, "worker.conflicted", wid, payload, actor=actor)
    raise Conflict(
        f"{wid}: {stage} onto {onto} conflicts in {', '.join(files)}; "
        f"resolve in the worker's branch and run `coord done` again",
        files=files,
        stage=stage,
        onto=onto,
    )
