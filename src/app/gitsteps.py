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

from ..events.errors import Refused, UsageError
from ..events.failpoints import failpoint
from ..events.files import ensure_dir_in_home
from ..events.ids import check_worker_id
from . import gitremote
from .checks import merge_gate
from .gitnames import check_branch_prefix, is_branch_name
from .gitprotocol import merge_lock
from .gitprotocol import record_conflict as _record_conflict
from .gitprotocol import step as _step
from .gitrepo import DirtyWorktree, Repo
from .lifecycle import Result, act, worker
from .worktrees import (
    Checkout,
    check_worktree_location,
    ensure_worktree,
    guard,
    home_repo,
    need_repo,
    others_naming,
    quietly,
    remove_after_merge,
    worktree_owner,
)

SPAWN_KEYS = ("branch", "base", "worktree", "prefix")
DONE_KEYS = ("head", "rebased")
MERGE_KEYS = ("commit", "into", "worktree_removed")
CANCEL_KEYS = ("worktree_removed", "branch_deleted", "deleted_tip", "unmerged")


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
class Moved(Refused):
    """The base or the branch moved between building a merge commit and installing it."""

    code = "moved"


def merge(
    c, wid: str, payload: dict, actor: str, request_id=None, into=None, no_git=False, verify=None
) -> Result:
    """Merge an APPROVED worker: `coord merge` (verify None: the required checks must have
    passed on the head `done` recorded) and `coord queue` (verify(commit, tip) runs them on
    the merge commit before it is installed, recording them; it raises to stop the merge).
    One code path and one lock (merge_lock) for both: the same merge commit, installed on
    the base with a compare-and-set, recorded in the same step."""
    view = worker(c, wid)
    if no_git or not view.branch:
        if into:
            raise UsageError(
                f"--into needs a worker with a branch ({wid} has none)"
                if not no_git
                else "--into makes no sense with --no-git"
            )
        if view.branch and view.state == "APPROVED":
            merge_gate(c, view)  # merged by hand: still only what passed its checks
        return act(c, "merge", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)
    given = {"into": into} if into else {}
    with merge_lock(repo):
        for _ in range(10):  # the base may move under us: build (and check) again
            built = _build(c, repo, wid, into, actor, verify) if verify is not None else None
            work = _merge_work(c, repo, wid, into, actor, built, gate=verify is None)
            try:
                return _step(c, repo, "merge", wid, payload, actor, request_id, MERGE_KEYS, given, work)
            except Moved:
                continue
    raise Refused(f"the base of {wid} kept moving while merging it; run it again")


def _target(view, into) -> str:
    target = into or view.base
    if not target:
        raise UsageError(f"{view.worker} has no base branch: pass --into BRANCH")
    return target


def _need_unmoved(view, branch: str, tip: str) -> None:
    head = view.info.get("head")
    if head and head != tip:
        raise Refused(
            f"{branch} moved since it was handed in ({head[:12]} → {tip[:12]}): "
            f"to merge what was reviewed, reset the branch to it (`git reset --hard "
            f"{head[:12]}` in its worktree); to have the new commits reviewed, "
            f"`coord fail {view.worker}`, `coord retry {view.worker}`, then start and `coord done` again"
        )


def _merge_commit(c, repo, view, actor, target, branch, tip, into_tip) -> str:
    """The merge commit of the branch into the base (a conflict is recorded, exit 4)."""
    tree, files = repo.merge_tree(into_tip, tip)
    if files:
        _record_conflict(c, view.worker, actor, files, "merge", target)
    msg = f"Merge worker {view.worker} ({branch}) into {target}\n\ncoord-worker: {view.worker}\n"
    return repo.commit_tree(tree, [into_tip, tip], msg)


def _build(c, repo, wid, into, actor, verify):
    """For the queue, before the git lock: the merge commit, checked by verify. None when
    there is nothing to build (already merged, or the step will recognise a repeat)."""
    view = worker(c, wid)
    if view.state != "APPROVED":
        return None  # the step refuses or recognises a repeat
    target = _target(view, into)
    branch = guard(c, view)
    tip = repo.need_branch(branch, "worker")
    _need_unmoved(view, branch, tip)
    into_tip = repo.need_branch(target, "integration")
    if repo.is_ancestor(tip, into_tip):
        return None
    commit = _merge_commit(c, repo, view, actor, target, branch, tip, into_tip)
    failpoint("queue-built")
    verify(commit, tip)
    failpoint("queue-checked")
    return (into_tip, tip, commit)


def _merge_work(c, repo, wid, into, actor, built, gate: bool):
    def work(view):
        target = _target(view, into)
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
        commit = None
        for _ in range(10):  # the integration branch may move under us: recompute
            into_tip = repo.need_branch(target, "integration")
            if repo.is_ancestor(tip, into_tip):
                # Already merged (a retry after a crash, or merged by hand): never twice.
                commit = repo.find_merge(target, tip)
                break
            _need_unmoved(view, branch, tip)
            if built is not None or not gate:  # the queue: only a commit its checks passed
                if built is None or (into_tip, tip) != built[:2]:
                    raise Moved(f"{target} or {branch} moved since the merge commit was checked")
                new = built[2]
            else:
                if gate:
                    merge_gate(c, view)
                new = _merge_commit(c, repo, view, actor, target, branch, tip, into_tip)
            if repo.install(target, into_tip, new, f"coord merge {wid}"):
                commit = new
                break
            if built is not None:
                raise Moved(f"{target} moved while installing the merge of {wid}")
        else:
            raise Refused(f"{target} kept moving while merging {wid}; run merge again")
        shared.push_base()
        added = {"into": target, "worktree_removed": remove_after_merge(c, repo, view, branch)}
        if commit:
            added["commit"] = commit
        return added, None

    return work


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
