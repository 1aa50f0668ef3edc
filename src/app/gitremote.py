"""Git across machines (contract: "Git across machines"): with a shared store (PostgreSQL),
git-backed workers travel through one shared remote (the `git_remote` setting, default
`origin`). `spawn` pushes the new branch; `start` and `run` fetch it and create the local
worktree; `done` pushes the rebased branch with a lease; `merge` fetches, merges and pushes
the base with a lease. A lease names the tip this machine fetched: a push over someone
else's newer commits is refused (exit 4), never forced. On a SQLite store, or in a
repository without that remote, nothing here runs.
"""

from pathlib import Path

from ..events.errors import CoordError, Refused
from ..events.files import ensure_dir_in_home
from .gitnames import is_branch_name
from .gitrepo import Repo, first_line


def remote(c, repo: Repo | None) -> str | None:
    """The shared remote, when this home's store is shared and the repository has it."""
    if repo is None or not getattr(c.store, "shared", False):
        return None
    name = c.home.config["git_remote"]
    return name if repo.git("remote", "get-url", name, check=False).returncode == 0 else None


def fetch(repo: Repo, rem: str, branch: str) -> str | None:
    """The remote's tip of `branch` (None when the remote has no such branch)."""
    if not is_branch_name(branch):
        return None
    track = f"refs/remotes/{rem}/{branch}"
    r = repo.git("fetch", "--quiet", "--no-tags", rem, f"+refs/heads/{branch}:{track}", check=False)
    if r.returncode != 0:
        if "couldn't find remote ref" in r.stderr:
            return None
        raise CoordError(f"git fetch {rem} {branch} failed: {first_line(r.stderr)}")
    return repo.rev(track)


def push(repo: Repo, rem: str, branch: str, lease: str | None) -> None:
    """Push `branch` only while the remote still has `lease` (None: while it has none)."""
    r = repo.git(
        "push",
        "--quiet",
        f"--force-with-lease=refs/heads/{branch}:{lease or ''}",
        rem,
        f"refs/heads/{branch}:refs/heads/{branch}",
        check=False,
    )
    if r.returncode != 0:
        raise Refused(
            f"pushing {branch} to {rem} was refused ({first_line(r.stderr)}): the remote moved "
            "meanwhile; nothing was recorded; run the command again"
        )


def push_forward(repo: Repo, rem: str, branch: str) -> None:
    """A base moved here (merge): onto the remote only as a fast-forward of what it has."""
    there = fetch(repo, rem, branch)
    tip = repo.branch_tip(branch)
    if there == tip:
        return
    if there is not None and not repo.is_ancestor(there, tip):
        raise Refused(
            f"{branch} on {rem} has commits this repository lacks: pull them into {branch}, "
            "then run the command again (nothing was recorded)"
        )
    push(repo, rem, branch, there)


class Shared:
    """One step's dealings with the shared remote (nothing without one): on creation the
    base is brought up to the remote's (for `merge`, the worker's branch too, from where
    `done` pushed it); then the branch (`done`, leased on the tip last seen) or the base
    (`merge`, a fast-forward) is pushed."""

    def __init__(self, c, repo: Repo, branch: str, base: str | None, worker_base: str | None = None):
        self.repo, self.branch, self.base = repo, branch, base
        self.rem = remote(c, repo)
        if self.rem is None:
            return
        if base:
            bring(repo, self.rem, base)
        if worker_base is not None:  # merge: the handed-in branch as the remote has it
            bring(repo, self.rem, branch, reset_if_safe_over=worker_base)
        # The lease: the branch's tip on the remote as this machine last saw it (not fetched
        # again now, so commits pushed there meanwhile by someone else refuse the push).
        self.there = repo.rev(f"refs/remotes/{self.rem}/{branch}") if is_branch_name(branch) else None

    def push_branch(self) -> None:
        if self.rem and self.repo.branch_tip(self.branch) != self.there:
            push(self.repo, self.rem, self.branch, self.there)  # the lease: what was fetched

    def push_base(self) -> None:
        if self.rem and self.base:
            push_forward(self.repo, self.rem, self.base)


def publish(c, repo: Repo, branch: str) -> None:
    """After spawn: the new branch on the shared remote (a retry finds it there already)."""
    rem = remote(c, repo)
    if rem is None:
        return
    there = fetch(repo, rem, branch)
    if there != repo.branch_tip(branch):
        push(repo, rem, branch, there)


def bring(repo: Repo, rem: str, branch: str, reset_if_safe_over: str | None = None) -> str | None:
    """The local branch made, or moved forward, to the remote's tip; returns that tip. A
    local branch with commits the remote lacks is left alone, unless every such commit is
    on `reset_if_safe_over` (a worker's branch the spawner never worked on, rebased
    elsewhere): then it is reset to the remote's. A checked-out branch moves its tree."""
    tip = fetch(repo, rem, branch)
    local = repo.branch_tip(branch)
    if tip is None or local == tip:
        return tip
    if local is None:
        repo.create_branch(branch, tip)
        return tip
    forward = repo.is_ancestor(local, tip)
    if not forward:
        base = reset_if_safe_over and repo.branch_tip(reset_if_safe_over)
        own = repo.out("rev-list", "--count", local, "--not", tip, *([base] if base else []))
        if not base or own != "0":
            return tip  # local work the remote lacks: never thrown away
    where = repo.checked_out_at(branch)
    if where is None:
        repo.git("update-ref", "refs/heads/" + branch, tip, local, what=f"updating {branch}")
    elif forward:
        repo.git("merge", "--ff-only", "--quiet", tip, cwd=where, what=f"fast-forwarding {branch}")
    elif not repo.dirty_files(where):
        repo.git("reset", "--hard", "--quiet", tip, cwd=where, what=f"updating {branch}")
    return tip


def check_out_here(c, view) -> None:
    """After start (or before run's child): the worker's branch from the shared remote and
    a local worktree for it (.coord/worktrees/ID), when this machine has neither."""
    from .worktrees import ensure_worktree, home_repo

    if not view.branch:
        return
    repo = home_repo(c)
    rem = remote(c, repo)
    if rem is None:
        return
    with repo.lock():
        if bring(repo, rem, view.branch, reset_if_safe_over=view.base) is None:
            return
        if view.base:
            bring(repo, rem, view.base)
        if repo.worktree_of(view.branch) is None:
            ensure_dir_in_home(c.home.path / "worktrees")
            ensure_worktree(
                repo, Path(c.home.path / "worktrees" / view.worker), view.branch, inside_home=True
            )
