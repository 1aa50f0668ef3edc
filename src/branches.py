"""Lifecycle actions that touch git: spawn, done, merge and cancel of workers with a branch.

Each runs in the same order: under coord's git lock, check the action against the board
(a read), do the git step, then record the event in one write transaction, which checks
again. Git work never runs inside a write transaction. Every git step is safe to repeat:
a branch or worktree that already exists is reused, a rebase onto a base the branch
already contains does nothing, a branch already merged is recorded without merging again,
and a worktree already gone counts as removed. When the record is refused after spawn
created a branch or worktree, they are removed again.

Workers without a branch (outside git, or spawned with --no-git) go straight to
`Coord.act`, exactly as before.
"""

import os
from pathlib import Path

import msgspec

from .api import Coord, Result
from .events.errors import Refused, UsageError
from .events.failpoints import failpoint
from .events.files import ensure_dir_in_home
from .events.ids import check_worker_id
from .gitops import Conflict, DirtyWorktree, GitError, Repo, repo_of

SPAWN_KEYS = ("branch", "base", "worktree")
DONE_KEYS = ("head", "rebased")
MERGE_KEYS = ("commit", "into", "worktree_removed")
CANCEL_KEYS = ("worktree_removed", "branch_deleted")


def home_repo(c: Coord) -> Repo | None:
    return repo_of(c.home.project_dir)


def need_repo(c: Coord, wid: str) -> Repo:
    repo = home_repo(c)
    if repo is None:
        raise GitError(
            f"{wid} has a branch but the home {c.home.path} is not inside a git repository "
            "any more (use --no-git to act without git)"
        )
    return repo


def _as_before(view, etype: str, payload: dict, keys) -> dict:
    """The payload a repeat would carry: the caller's arguments plus the git fields the
    last transition recorded (so an idempotent repeat is recognised without git work)."""
    if view is None or view.last_type != etype:
        return dict(payload)
    last = msgspec.json.decode(view.last_args)
    return {**{k: last[k] for k in keys if k in last}, **payload}


def _record_conflict(c, wid, actor, files, stage, onto) -> None:
    c.act("worker.conflicted", wid, {"files": files, "stage": stage, "onto": onto}, actor=actor)
    raise Conflict(
        f"{wid}: {stage} onto {onto} conflicts in {', '.join(files)}; "
        f"resolve in the worker's branch and run `coord done` again",
        files=files,
        stage=stage,
        onto=onto,
    )


# --- spawn ---------------------------------------------------------------------------
def spawn(
    c: Coord,
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
        return c.act("spawn", wid, payload, actor=actor, request_id=request_id)
    with repo.lock():
        guess = _as_before(_peek(c, wid), "worker.spawned", payload, SPAWN_KEYS)
        # Git arguments given now are arguments too: a repeat must match them.
        if base is not None:
            guess["base"] = base
        if worktree:
            guess["worktree"] = str(Path(os.path.abspath(worktree)))
        if no_worktree:
            guess.pop("worktree", None)
        repeat, _ = c.precheck("spawn", wid, guess, actor, request_id)
        if repeat:
            return c.act("spawn", wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        if base is None:
            base = repo.current_branch()
            if base is None:
                raise UsageError(f"{repo.root} is on a detached HEAD: pass --base BRANCH")
        repo.need_branch(base, "base")
        branch = c.home.config["branch_prefix"] + wid
        if not repo.valid_branch_name(branch):
            raise UsageError(f"{branch!r} is not a valid branch name (check the branch_prefix setting)")
        path = None
        if not no_worktree:
            path = Path(os.path.abspath(worktree)) if worktree else c.home.path / "worktrees" / wid
            if not worktree:
                ensure_dir_in_home(c.home.path / "worktrees")  # never a symlink out of the home
        made_branch = made_tree = False
        try:
            if repo.branch_tip(branch) is None:
                repo.create_branch(branch, "refs/heads/" + base)
                made_branch = True
            if path is not None:
                made_tree = _ensure_worktree(repo, path, branch)
            failpoint("spawn-after-git")
            full = {**payload, "branch": branch, "base": base}
            if path is not None:
                full["worktree"] = str(path)
            return c.act("spawn", wid, full, actor=actor, request_id=request_id)
        except BaseException:
            # Undo only what this call created: a branch or worktree found in place (a
            # retry after a crash, or the user's own) stays.
            if made_tree:
                _quietly(repo.remove_worktree, path, True)
            if made_branch:
                _quietly(repo.delete_branch, branch)
            raise


def _peek(c, wid):
    from .projections import board

    with c.store.read() as conn:
        return board.load(conn, wid)


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


def _ensure_worktree(repo: Repo, path: Path, branch: str) -> bool:
    """A worktree of `branch` at path; reuses one already there. True when created."""
    w = repo.worktree_at(path)
    if w is not None and w["prunable"]:
        repo.git("worktree", "prune")
        w = None
    if w is not None:
        if w["branch"] != branch:
            raise Refused(f"{path} is already a worktree of {w['branch'] or 'a detached HEAD'}, not {branch}")
        return False
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise Refused(f"{path} already exists and is not an empty directory")
    where = repo.checked_out_at(branch)
    if where is not None:
        raise Refused(f"branch {branch} is already checked out at {where}")
    path.parent.mkdir(parents=True, exist_ok=True)
    repo.add_worktree(path, branch)
    return True


# --- done ----------------------------------------------------------------------------
class _Checkout:
    """Where the worker's branch is checked out: its worktree, another worktree that has
    it, or a temporary worktree made for this command and removed afterwards."""

    def __init__(self, repo: Repo, view, home_path: Path):
        self.repo, self.view, self.home_path = repo, view, home_path
        self.temp = None

    def __enter__(self) -> Path:
        where = None
        if self.view.worktree:
            w = self.repo.worktree_at(Path(self.view.worktree))
            if w is not None and not w["prunable"]:
                if w["branch"] != self.view.branch:
                    raise Refused(
                        f"worktree {self.view.worktree} is on {w['branch'] or 'a detached HEAD'}, "
                        f"not {self.view.branch}: run `git switch {self.view.branch}` there"
                    )
                where = Path(w["path"])
        if where is None:
            where = self.repo.checked_out_at(self.view.branch)
        if where is None:
            self.temp = self.home_path / "worktrees" / f".tmp-{self.view.worker}-{os.getpid()}"
            _quietly(self.repo.remove_worktree, self.temp, True)
            ensure_dir_in_home(self.temp.parent)
            self.repo.add_worktree(self.temp, self.view.branch)
            where = self.temp
        return where

    def __exit__(self, *exc):
        if self.temp is not None:
            _quietly(self.repo.remove_worktree, self.temp, True)


def done(c: Coord, wid: str, payload: dict, actor: str, request_id=None, rebase=True, no_git=False) -> Result:
    view = c.worker(wid)
    if no_git or not view.branch:
        return c.act("done", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)
    with repo.lock():
        guess = _as_before(_peek(c, wid), "worker.done", payload, DONE_KEYS)
        repeat, view = c.precheck("done", wid, guess, actor, request_id)
        if repeat:
            return c.act("done", wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        repo.need_branch(view.branch, "worker")
        onto = view.base
        rebased = False
        with _Checkout(repo, view, c.home.path) as wt:
            if repo.current_branch(cwd=wt) != view.branch:
                raise Refused(
                    f"{wt} is on a detached HEAD, not {view.branch}: run `git switch {view.branch}` there"
                )
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
            if rebase and onto:
                onto_tip = repo.need_branch(onto, "base")
                if not repo.is_ancestor(onto_tip, repo.branch_tip(view.branch)):
                    files = repo.rebase(wt, onto)
                    if files:
                        _record_conflict(c, wid, actor, files, "rebase", onto)
                    rebased = True
        failpoint("done-after-git")
        full = {**payload, "head": repo.branch_tip(view.branch), "rebased": rebased}
        return c.act("done", wid, full, actor=actor, request_id=request_id)


# --- merge ---------------------------------------------------------------------------
def merge(c: Coord, wid: str, payload: dict, actor: str, request_id=None, into=None, no_git=False) -> Result:
    view = c.worker(wid)
    if no_git or not view.branch:
        if into:
            raise UsageError(
                f"--into needs a worker with a branch ({wid} has none)"
                if not no_git
                else "--into makes no sense with --no-git"
            )
        return c.act("merge", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)
    with repo.lock():
        guess = _as_before(_peek(c, wid), "worker.merged", payload, MERGE_KEYS)
        if into:
            guess["into"] = into
        repeat, view = c.precheck("merge", wid, guess, actor, request_id)
        if repeat:
            return c.act("merge", wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        into = into or view.base
        if not into:
            raise UsageError(f"{wid} has no base branch: pass --into BRANCH")
        tip = repo.need_branch(view.branch, "worker")
        head = view.info.get("head")
        commit = None
        for _ in range(10):  # the integration branch may move under us: recompute
            into_tip = repo.need_branch(into, "integration")
            if repo.is_ancestor(tip, into_tip):
                # Already merged (a retry after a crash, or merged by hand): never twice.
                commit = repo.find_merge(into, tip)
                break
            if head and head != tip:
                raise Refused(
                    f"{view.branch} moved since it was handed in ({head[:12]} → {tip[:12]}): "
                    f"to merge what was reviewed, reset the branch to it (`git reset --hard "
                    f"{head[:12]}` in its worktree); to have the new commits reviewed, "
                    f"`coord fail {wid}`, `coord retry {wid}`, then start and `coord done` again"
                )
            tree, files = repo.merge_tree(into_tip, tip)
            if files:
                _record_conflict(c, wid, actor, files, "merge", into)
            msg = f"Merge worker {wid} ({view.branch}) into {into}\n\ncoord-worker: {wid}\n"
            new = repo.commit_tree(tree, [into_tip, tip], msg)
            if repo.install(into, into_tip, new, f"coord merge {wid}"):
                commit = new
                break
        else:
            raise Refused(f"{into} kept moving while merging {wid}; run merge again")
        failpoint("merge-after-git")
        removed = _remove_after_merge(repo, view)
        full = {**payload, "into": into, "worktree_removed": removed}
        if commit:
            full["commit"] = commit
        return c.act("merge", wid, full, actor=actor, request_id=request_id)


def _remove_after_merge(repo: Repo, view) -> bool:
    """Remove the worker's worktree unless it holds uncommitted work (ignored files such
    as build output do not count). True when it no longer exists."""
    if not view.worktree:
        return False
    path = Path(view.worktree)
    w = repo.worktree_at(path)
    if w is None or w["prunable"] or not path.exists():
        _quietly(repo.git, "worktree", "prune")
        return True
    status = repo.git("status", "--porcelain", "-z", cwd=path).stdout
    if status.strip("\0"):
        return False  # the CLI says it kept the worktree
    repo.remove_worktree(path, force=True)
    return True


# --- cancel --------------------------------------------------------------------------
def cancel(
    c: Coord, wid: str, payload: dict, actor: str, request_id=None, delete_branch=False, no_git=False
) -> Result:
    view = c.worker(wid)
    if no_git or not view.branch:
        if delete_branch:
            raise UsageError(
                f"--delete-branch: {wid} has no branch"
                if not no_git
                else "--delete-branch makes no sense with --no-git"
            )
        return c.act("cancel", wid, payload, actor=actor, request_id=request_id)
    repo = need_repo(c, wid)
    with repo.lock():
        guess = _as_before(_peek(c, wid), "worker.canceled", payload, CANCEL_KEYS)
        if delete_branch:
            guess["branch_deleted"] = True
        repeat, view = c.precheck("cancel", wid, guess, actor, request_id)
        if repeat:
            return c.act("cancel", wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        full = dict(payload)
        if view.worktree:
            # Cancel discards the work in progress: the worktree goes even when dirty
            # (committed work stays on the branch).
            repo.remove_worktree(Path(view.worktree), force=True)
            full["worktree_removed"] = True
        if delete_branch:
            where = repo.checked_out_at(view.branch)
            if where is not None:
                raise Refused(f"branch {view.branch} is checked out at {where}; switch away first")
            repo.delete_branch(view.branch)
            full["branch_deleted"] = True
        return c.act("cancel", wid, full, actor=actor, request_id=request_id)
