"""Lifecycle actions that touch git: spawn, done, merge and cancel of workers with a branch.

Each follows one protocol (`_step`): under coord's git lock, check the action against the
board (a read), do the git step, then record the event in one write transaction, which
checks again. Git work never runs inside a write transaction. Every git step is safe to
repeat: a branch or worktree that already exists is reused, a rebase onto a base the
branch already contains does nothing, a branch already merged is recorded without merging
again, and a worktree already gone counts as removed. When the record is refused after
spawn created a branch or worktree, they are removed again.

Which branch and worktree a step may touch: coord.app.worktrees (never from a payload).
Workers without a branch (outside git, or spawned with --no-git) go straight to
`lifecycle.act`, exactly as before.
"""

import os
from pathlib import Path

import msgspec

from ..events.errors import Refused, UsageError
from ..events.failpoints import failpoint
from ..events.files import ensure_dir_in_home
from ..events.ids import check_worker_id
from ..projections import board
from ..projections.workers import ACTIONS
from . import gitremote
from .gitnames import check_branch_prefix, is_branch_name
from .gitrepo import Conflict, DirtyWorktree, Repo
from .lifecycle import Result, act, precheck, worker
from .worktrees import (
    Checkout,
    check_worktree_location,
    ensure_worktree,
    guard,
    home_repo,
    need_repo,
    others_naming,
    quietly,
    worktree_owner,
)

SPAWN_KEYS = ("branch", "base", "worktree", "prefix")
DONE_KEYS = ("head", "rebased")
MERGE_KEYS = ("commit", "into", "worktree_removed")
CANCEL_KEYS = ("worktree_removed", "branch_deleted", "deleted_tip", "unmerged")


def _step(
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
        guess = {**_as_before(_peek(c, wid), ACTIONS[action], payload, keys), **given}
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


def _peek(c, wid):
    return board.load(c.store.reader, wid)


def _as_before(view, etype: str, payload: dict, keys) -> dict:
    """The payload a repeat would carry: the caller's arguments plus the git fields the
    last transition recorded (so an idempotent repeat is recognised without git work)."""
    if view is None or view.last_type != etype:
        return dict(payload)
    last = msgspec.json.decode(view.last_args)
    return {**{k: last[k] for k in keys if k in last}, **payload}


def _record_conflict(c, wid, actor, files, stage, onto, stamp=None) -> None:
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


# --- spawn ---------------------------------------------------------------------------
def spawn(
    c,
    wid: str,
    payload: dict,
    actor: str,
    request_id=None,
    base=None,
    worktree=None,
    no_worktree=False,
    no_git=False,
) -> Result:
    check_worker_id(wid)
    if worktree and no_worktree:
        raise UsageError("give --worktree PATH or --no-worktree, not both")
    repo = None if no_git else home_repo(c)
    if repo is None:
        if base or worktree or no_worktree:
            why = "with --no-git" if no_git else f"outside a git repository ({c.home.project_dir})"
            raise UsageError(f"--base, --worktree and --no-worktree make no sense {why}")
        return act(c, "spawn", wid, payload, actor=actor, request_id=request_id)
    if base is not None and not is_branch_name(base):
        raise UsageError(
            f"--base {base!r} is not a branch name: give a local branch (to start from another "
            "commit, create a branch there first: git branch NAME COMMIT)"
        )
    # Git arguments given now are arguments too: a repeat must match them.
    given = {}
    if base is not None:
        given["base"] = base
    if worktree:
        given["worktree"] = str(Path(os.path.abspath(worktree)))
    if no_worktree:
        given["worktree"] = None

    def work(_view):
        b = base
        if b is None:
            b = repo.current_branch()
            if b is None:
                raise UsageError(f"{repo.root} is on a detached HEAD: pass --base BRANCH")
        base_tip = repo.need_branch(b, "base")
        prefix = check_branch_prefix(c.home.config["branch_prefix"])
        branch = prefix + wid
        if branch == b:
            raise Refused(f"the worker's branch {branch} would be its own base: pass another --base")
        named = others_naming(c, wid, branch)
        if named:
            other, role, _live = named[0]
            raise Refused(f"branch {branch} is already the {role} of worker {other}: spawn under another id")
        path = None
        if not no_worktree:
            if worktree:
                path = Path(os.path.abspath(worktree))
                check_worktree_location(c, repo, path, branch)
            else:
                path = c.home.path / "worktrees" / wid
                ensure_dir_in_home(c.home.path / "worktrees")  # never a symlink out of the home
        tip = repo.branch_tip(branch)
        if tip is not None and tip != base_tip:
            _refuse_adoption(repo, branch, tip, b, base_tip, wid)
        made = []  # what this call created: a branch or worktree found in place (a retry after a crash) stays

        def undo():
            if "tree" in made:
                quietly(repo.remove_worktree, path, True)
            if "branch" in made:
                quietly(repo.delete_branch, branch, base_tip)

        try:
            if tip is None:
                repo.create_branch(branch, "refs/heads/" + b)
                made.append("branch")
            if path is not None and ensure_worktree(repo, path, branch, inside_home=not worktree):
                made.append("tree")
            gitremote.publish(c, repo, branch)  # a shared store: the branch on the shared remote
        except BaseException:
            undo()
            raise
        added = {"branch": branch, "base": b, "prefix": prefix}
        if path is not None:
            added["worktree"] = str(path)
        return added, undo

    return _step(c, repo, "spawn", wid, payload, actor, request_id, SPAWN_KEYS, given, work)


# --- done ----------------------------------------------------------------------------
def done(c, wid: str, payload: dict, actor: str, request_id=None, rebase=True, no_git=False) -> Result:
    view = worker(c, wid)
    if no_git or not view.branch:
        return act(c, "done", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)

    def work(view):
        branch = guard(c, view)
        repo.need_branch(branch, "worker")
        onto = view.base
        rebased = False
        with Checkout(c, repo, view, branch) as wt:
            if repo.current_branch(cwd=wt) != branch:
                raise Refused(f"{wt} is on a detached HEAD, not {branch}: run `git switch {branch}` there")
            op = repo.operation_in_progress(wt)
            if op:
                raise Refused(f"a {op} is in progress in {wt}: finish or abort it first")
            dirty = repo.dirty_files(wt)
            if dirty:
                raise DirtyWorktree(
                    f"{wt} has uncommitted changes ({', '.join(dirty[:5])}"
                    f"{', …' if len(dirty) > 5 else ''}): commit them first",
                    files=dirty,
                )
            shared = gitremote.Shared(c, repo, branch, onto)  # fetches the branch, brings the base
            if rebase and onto:
                onto_tip = repo.need_branch(onto, "base")
                if not repo.is_ancestor(onto_tip, repo.branch_tip(branch)):
                    files = repo.rebase(wt, onto)
                    if files:
                        stamp = {k: payload[k] for k in ("attempt", "attempt_of") if k in payload}
                        _record_conflict(c, wid, actor, files, "rebase", onto, stamp)
                    rebased = True
            shared.push_branch()
        return {"head": repo.branch_tip(branch), "rebased": rebased}, None

    return _step(c, repo, "done", wid, payload, actor, request_id, DONE_KEYS, {}, work)


# --- merge ---------------------------------------------------------------------------
def merge(c, wid: str, payload: dict, actor: str, request_id=None, into=None, no_git=False) -> Result:
    view = worker(c, wid)
    if no_git or not view.branch:
        if into:
            raise UsageError(
                f"--into needs a worker with a branch ({wid} has none)"
                if not no_git
                else "--into makes no sense with --no-git"
            )
        return act(c, "merge", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)

    def work(view):
        target = into or view.base
        if not target:
            raise UsageError(f"{wid} has no base branch: pass --into BRANCH")
        branch = guard(c, view)
        if branch == target:
            raise Refused(f"{wid}: cannot merge branch {branch} into itself")
        owners = [w for w, role, live in others_naming(c, wid, target) if role == "branch" and live]
        if owners:
            raise Refused(
                f"{target} is the branch of worker {owners[0]}: coord merges into it only through "
                f"that worker (merge {wid} with --into another branch)"
            )
        shared = gitremote.Shared(c, repo, branch, target, view.base)
        tip = repo.need_branch(branch, "worker")
        head = view.info.get("head")
        commit = None
        for _ in range(10):  # the integration branch may move under us: recompute
            into_tip = repo.need_branch(target, "integration")
            if repo.is_ancestor(tip, into_tip):
                # Already merged (a retry after a crash, or merged by hand): never twice.
                commit = repo.find_merge(target, tip)
                break
            if head and head != tip:
                raise Refused(
                    f"{branch} moved since it was handed in ({head[:12]} → {tip[:12]}): "
                    f"to merge what was reviewed, reset the branch to it (`git reset --hard "
                    f"{head[:12]}` in its worktree); to have the new commits reviewed, "
                    f"`coord fail {wid}`, `coord retry {wid}`, then start and `coord done` again"
                )
            tree, files = repo.merge_tree(into_tip, tip)
            if files:
                _record_conflict(c, wid, actor, files, "merge", target)
            msg = f"Merge worker {wid} ({branch}) into {target}\n\ncoord-worker: {wid}\n"
            new = repo.commit_tree(tree, [into_tip, tip], msg)
            if repo.install(target, into_tip, new, f"coord merge {wid}"):
                commit = new
                break
        else:
            raise Refused(f"{target} kept moving while merging {wid}; run merge again")
        shared.push_base()
        added = {"into": target, "worktree_removed": _remove_after_merge(c, repo, view, branch)}
        if commit:
            added["commit"] = commit
        return added, None

    given = {"into": into} if into else {}
    return _step(c, repo, "merge", wid, payload, actor, request_id, MERGE_KEYS, given, work)


# --- cancel --------------------------------------------------------------------------
def cancel(
    c, wid: str, payload: dict, actor: str, request_id=None, delete_branch=False, no_git=False, force=False
) -> Result:
    view = worker(c, wid)
    if force and not delete_branch:
        raise UsageError("--force goes with --delete-branch (it deletes commits no other branch has)")
    if no_git or not view.branch:
        if delete_branch:
            raise UsageError(
                f"--delete-branch: {wid} has no branch"
                if not no_git
                else "--delete-branch makes no sense with --no-git"
            )
        return act(c, "cancel", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)
    given = {}
    if delete_branch:
        given["branch_deleted"] = True
    if force:
        given["force"] = True

    def work(view):
        branch = guard(c, view, deleting=delete_branch)
        # Everything is checked before anything is removed.
        w = repo.worktree_of(branch)
        removable = w is not None and not w["main"] and bool(view.worktree)
        if removable:
            other = worktree_owner(c, wid, w["path"])
            if other is not None:
                raise Refused(
                    f"{branch} is checked out at {w['path']}, the worktree of worker {other}: "
                    "coord will not remove it (cancel with --no-git, or check the branch out elsewhere)"
                )
        tip = repo.branch_tip(branch) if delete_branch else None
        unmerged = 0
        if tip is not None:
            if w is not None and not removable:
                raise Refused(f"branch {branch} is checked out at {w['path']}; switch away first")
            unmerged = repo.unmerged(branch)
            if unmerged and not force:
                raise Refused(
                    f"branch {branch} has {unmerged} commit{'s' if unmerged != 1 else ''} that no other "
                    f"branch has (tip {tip[:12]}): deleting it loses them; pass --force to delete "
                    "it anyway, or cancel without --delete-branch to keep it"
                )
        added = {}
        if view.worktree:
            # Cancel discards the work in progress: the worktree goes even when dirty
            # (committed work stays on the branch). The main working tree never goes.
            if removable:
                repo.remove_worktree(Path(w["path"]), force=True)
                added["worktree_removed"] = True
            elif w is None:
                quietly(repo.git, "worktree", "prune")
                added["worktree_removed"] = True
        if delete_branch:
            if tip is not None:
                repo.delete_branch(branch, tip)
                added["deleted_tip"] = tip
                if unmerged:
                    added["unmerged"] = unmerged
                    c.on_warning(
                        f"deleted branch {branch} with {unmerged} commit{'s' if unmerged != 1 else ''} "
                        f"no other branch has (tip {tip[:12]}); `git branch {branch} {tip}` brings it "
                        "back while git still has them"
                    )
            added["branch_deleted"] = True
        if force:
            added["force"] = True
        return added, None

    return _step(c, repo, "cancel", wid, payload, actor, request_id, CANCEL_KEYS, given, work)


# --- helpers -------------------------------------------------------------------------
def _refuse_adoption(repo: Repo, branch, tip, base, base_tip, wid) -> None:
    """An existing branch is adopted only as the leftover of a spawn of this id that died
    before recording it: no worker names it and it points at the base's tip (no commits of
    its own). Anything else may be someone's work: refused, nothing changed."""
    own = repo.count(tip, base_tip)
    what = f"{own} commit{'s' if own != 1 else ''} not on {base}" if own else f"behind {base}"
    raise Refused(
        f"branch {branch} already exists ({what}, tip {tip[:12]}) and no worker records it; "
        f"coord adopts only a leftover of an unrecorded spawn (at the tip of {base}): rename or "
        f"delete that branch, or spawn under another id than {wid}"
    )


def _remove_after_merge(c, repo: Repo, view, branch: str) -> bool:
    """Remove the worker's worktree (the one git lists for its branch; never the main
    working tree, nor one another live worker records) unless it holds uncommitted work
    (ignored files such as build output do not count). True when it no longer exists."""
    if not view.worktree:
        return False
    w = repo.worktree_of(branch)
    if w is None or not Path(w["path"]).exists():
        quietly(repo.git, "worktree", "prune")
        return True
    if w["main"] or worktree_owner(c, view.worker, w["path"]) is not None:
        return False
    path = Path(w["path"])
    status = repo.git("status", "--porcelain", "-z", cwd=path).stdout
    if status.strip("\0"):
        return False  # the CLI says it kept the worktree
    repo.remove_worktree(path, force=True)
    return True
