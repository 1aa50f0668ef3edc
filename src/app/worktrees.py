"""Which branch and worktree a worker's git steps may touch, never taken from a payload
(events may come from another clone): the worker's branch is the prefix recorded at its
spawn plus its id, its worktree is the one `git worktree list` shows for that branch now,
and a branch or worktree that another worker names is refused (exit 4). See docs/git.md.
"""

import os
from pathlib import Path

from ..events.errors import CoordError, Refused, UsageError
from ..events.files import ensure_dir_in_home
from ..projections.board import decode_view
from ..projections.workers import NON_TERMINAL, TERMINAL, branch_of
from .gitnames import branch_prefix_problem, checkout_at
from .gitrepo import GitError, Repo, repo_of


def home_repo(c) -> Repo | None:
    return repo_of(c.home.project_dir)


def need_repo(c, wid: str) -> Repo:
    repo = home_repo(c)
    if repo is None:
        raise GitError(
            f"{wid} has a branch but the home {c.home.path} is not inside a git repository "
            "any more (use --no-git to act without git)"
        )
    return repo


def worker_branch(view) -> str:
    """The worker's branch: the prefix recorded at its spawn plus its id. Refused (exit 4)
    when the recorded prefix is unusable, or when an old spawn event (before `prefix` was
    recorded) names a `branch` that is not some prefix plus the id."""
    prefix = view.prefix
    if prefix is None and view.branch:
        prefix = branch_of(view.worker, {"branch": view.branch})[0]  # a view stored before
    if prefix is None:
        raise Refused(
            f"{view.worker}: its spawn event names branch {view.branch!r}, which is not a prefix "
            "plus its id; coord will not touch that branch (act with --no-git)"
        )
    problem = branch_prefix_problem(prefix, recorded=True)
    if problem is not None:
        raise Refused(
            f"{view.worker}: the branch prefix {prefix!r} recorded at its spawn is not usable "
            f"({problem}); coord will not touch {prefix + view.worker!r} (act with --no-git)"
        )
    return prefix + view.worker


def others_naming(c, wid: str, branch: str) -> list[tuple[str, str, bool]]:
    """Other workers that name `branch`: [(worker, 'branch' or 'base', live)], live meaning
    not COMPLETED or CANCELED."""
    rows = c.store.reader.views(naming=branch)
    return [
        (r.worker, "branch" if r.branch == branch else "base", r.state not in TERMINAL)
        for r in rows
        if r.worker != wid
    ]


def worktree_owner(c, wid: str, path) -> str | None:
    """Another live worker whose spawn recorded `path` as its worktree: coord does not touch
    that directory for this worker (a rebase in it, its removal)."""
    real = os.path.realpath(path)
    for r in c.store.reader.views(states=NON_TERMINAL):
        if r.worker != wid and isinstance(r.worktree, str) and os.path.realpath(r.worktree) == real:
            return r.worker
    return None


def guard(c, view, deleting: bool = False) -> str:
    """The worker's branch, when coord may act on it. Refused (exit 4) when the branch is
    its own base, or when another worker names it: as its branch while live (any state for
    a deletion), or as its base while live for a deletion. Two workers naming one branch
    block each other until one of them is canceled (`cancel --no-git`)."""
    branch = worker_branch(view)
    if branch == view.base:
        raise Refused(f"{view.worker}: its branch {branch} is also its base; coord will not touch it")
    for other, role, live in others_naming(c, view.worker, branch):
        if role == "branch" and (live or deleting):
            raise Refused(
                f"{view.worker}: branch {branch} is also the branch of worker {other}; coord will "
                f"not touch it (act with --no-git, or cancel {other} with --no-git)"
            )
        if role == "base" and live and deleting:
            raise Refused(f"branch {branch} is the base of worker {other}; coord will not delete it")
    return branch


def worktree_path(c, view) -> str | None:
    """Where the worker's branch is checked out now, as git lists it (None without a branch,
    a checkout, or a branch coord may act on). For `start`'s output and `run`'s directory."""
    if not view.branch:
        return None
    try:
        repo = home_repo(c)
        if repo is None:
            return None
        w = repo.worktree_of(guard(c, view))
    except CoordError:
        return None
    return w["path"] if w else None


def worker_here(c, cwd: Path) -> str | None:
    """The live worker whose branch is checked out where cwd is (read from git's files, no
    git process), for commands given without an id inside a worktree."""
    found = checkout_at(cwd)
    if found is None or found[2] is None:
        return None
    _root, common, branch = found
    home_checkout = checkout_at(c.home.project_dir.absolute())
    if home_checkout is None or home_checkout[1] != common:
        return None  # not a checkout of the home's repository
    names = []
    for r in c.store.reader.views(states=NON_TERMINAL, naming=branch):
        if r.branch != branch:
            continue
        try:
            if worker_branch(decode_view(r.view)) == branch:
                names.append(r.worker)
        except Refused:
            continue
    if len(names) > 1:
        raise UsageError(f"several workers name branch {branch} ({', '.join(sorted(names))}): pass ID")
    return names[0] if names else None


# --- checkouts the steps make or reuse ------------------------------------------------
def check_worktree_location(c, repo: Repo, path: Path, branch: str) -> None:
    """`--worktree PATH` lies outside the home and outside every working tree of the
    repository, the main one included (a worktree inside another is deleted with it, and
    shows as untracked files there). A worktree of this very branch at exactly PATH is a
    leftover of this spawn and is reused."""
    real = Path(os.path.realpath(path))
    home = Path(os.path.realpath(c.home.path))
    if real == home or home in real.parents:
        raise Refused(
            f"--worktree {path} lies inside the home {c.home.path}: give a path outside it "
            "(without --worktree coord uses its own .coord/worktrees/ID)"
        )
    for w in repo.worktrees():
        if w["prunable"]:
            continue
        there = Path(os.path.realpath(w["path"]))
        if real == there and w["branch"] == branch:
            continue
        if real == there or there in real.parents:
            what = (
                "the main working tree"
                if w["main"]
                else f"the worktree of {w['branch'] or 'a detached HEAD'}"
            )
            raise Refused(
                f"--worktree {path} lies inside {what} at {w['path']}: give a path outside every "
                "working tree of the repository (beside it, say)"
            )


def quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


def ensure_worktree(repo: Repo, path: Path, branch: str, inside_home: bool) -> bool:
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
    if inside_home:
        path.parent.mkdir(parents=True, exist_ok=True)  # .coord/worktrees: the home's own
    # Elsewhere git creates the missing directories itself, with the user's umask.
    repo.add_worktree(path, branch)
    return True


class Checkout:
    """Where the worker's branch is checked out (git's list, never a recorded path), or a
    temporary worktree made for this command and removed afterwards."""

    def __init__(self, c, repo: Repo, view, branch: str):
        self.c, self.repo, self.view, self.branch = c, repo, view, branch
        self.home_path = c.home.path
        self.temp = None

    def __enter__(self) -> Path:
        where = self.repo.checked_out_at(self.branch)
        if where is not None:
            other = worktree_owner(self.c, self.view.worker, where)
            if other is not None:
                raise Refused(
                    f"{self.branch} is checked out at {where}, the worktree of worker {other}: "
                    "coord will not work there (check the branch out elsewhere)"
                )
        if where is None and self.view.worktree:
            # The worktree recorded at spawn is on another branch (or detached): say so
            # rather than rebasing elsewhere. The recorded path only ever refuses.
            w = self.repo.worktree_at(Path(self.view.worktree))
            if w is not None and not w["prunable"]:
                if self.repo.operation_in_progress(Path(w["path"])) == "rebase":
                    raise Refused(
                        f"a rebase is in progress in {w['path']}: `git rebase --continue` or "
                        "`git rebase --abort` there, then run it again"
                    )
                raise Refused(
                    f"worktree {self.view.worktree} is on {w['branch'] or 'a detached HEAD'}, "
                    f"not {self.branch}: run `git switch {self.branch}` there"
                )
        if where is None:
            self.temp = self.home_path / "worktrees" / f".tmp-{self.view.worker}-{os.getpid()}"
            quietly(self.repo.remove_worktree, self.temp, True)
            ensure_dir_in_home(self.temp.parent)
            self.repo.add_worktree(self.temp, self.branch)
            where = self.temp
        return where

    def __exit__(self, *exc):
        if self.temp is not None:
            quietly(self.repo.remove_worktree, self.temp, True)


def remove_after_merge(c, repo: Repo, view, branch: str) -> bool:
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
