"""Lifecycle actions that touch git: spawn, done, merge and cancel of workers with a branch.

Each runs in the same order: under coord's git lock, check the action against the board
(a read), do the git step, then record the event in one write transaction, which checks
again. Git work never runs inside a write transaction. Every git step is safe to repeat:
a branch or worktree that already exists is reused, a rebase onto a base the branch
already contains does nothing, a branch already merged is recorded without merging again,
and a worktree already gone counts as removed. When the record is refused after spawn
created a branch or worktree, they are removed again.

No git or file step takes a path or a branch name from an event's payload (events may come
from another clone): the worker's branch is the prefix recorded at its spawn plus its id,
its worktree is the one `git worktree list` shows for that branch now, and a step on a
branch that another worker also names is refused (exit 4). See docs/git.md.

Workers without a branch (outside git, or spawned with --no-git) go straight to
`Coord.act`, exactly as before.
"""

import os
from pathlib import Path

import msgspec

from ..events.errors import CoordError, Refused, UsageError
from ..events.failpoints import failpoint
from ..events.files import ensure_dir_in_home
from ..events.ids import check_worker_id
from ..projections.workers import TERMINAL, branch_of
from .gitnames import branch_prefix_problem, check_branch_prefix, checkout_at, is_branch_name
from .gitrepo import Conflict, DirtyWorktree, GitError, Repo, repo_of
from .lifecycle import Coord, Result

SPAWN_KEYS = ("branch", "base", "worktree", "prefix")
DONE_KEYS = ("head", "rebased")
MERGE_KEYS = ("commit", "into", "worktree_removed")
CANCEL_KEYS = ("worktree_removed", "branch_deleted", "deleted_tip", "unmerged")


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


# --- the worker's branch and worktree, never from a payload -----------------------------
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


def _others_naming(c: Coord, wid: str, branch: str) -> list[tuple[str, str, bool]]:
    """Other workers that name `branch`: [(worker, 'branch' or 'base', live)], live meaning
    not COMPLETED or CANCELED."""
    with c.store.read() as conn:
        rows = conn.execute(
            "SELECT worker, state, json_extract(CAST(view AS TEXT), '$.branch') FROM workers "
            "WHERE worker != ?1 AND (json_extract(CAST(view AS TEXT), '$.branch') = ?2 "
            "OR json_extract(CAST(view AS TEXT), '$.base') = ?2)",
            (wid, branch),
        ).fetchall()
    return [(w, "branch" if b == branch else "base", st not in TERMINAL) for w, st, b in rows]


def _worktree_owner(c: Coord, wid: str, path) -> str | None:
    """Another live worker whose spawn recorded `path` as its worktree: coord does not touch
    that directory for this worker (a rebase in it, its removal)."""
    real = os.path.realpath(path)
    with c.store.read() as conn:
        rows = conn.execute(
            "SELECT worker, json_extract(CAST(view AS TEXT), '$.worktree') FROM workers "
            "WHERE worker != ? AND state NOT IN ('COMPLETED', 'CANCELED') "
            "AND json_extract(CAST(view AS TEXT), '$.worktree') IS NOT NULL",
            (wid,),
        ).fetchall()
    for other, recorded in rows:
        if isinstance(recorded, str) and os.path.realpath(recorded) == real:
            return other
    return None


def guard(c: Coord, view, deleting: bool = False) -> str:
    """The worker's branch, when coord may act on it. Refused (exit 4) when the branch is
    its own base, or when another worker names it: as its branch while live (any state for
    a deletion), or as its base while live for a deletion. Two workers naming one branch
    block each other until one of them is canceled (`cancel --no-git`)."""
    branch = worker_branch(view)
    if branch == view.base:
        raise Refused(f"{view.worker}: its branch {branch} is also its base; coord will not touch it")
    for other, role, live in _others_naming(c, view.worker, branch):
        if role == "branch" and (live or deleting):
            raise Refused(
                f"{view.worker}: branch {branch} is also the branch of worker {other}; coord will "
                f"not touch it (act with --no-git, or cancel {other} with --no-git)"
            )
        if role == "base" and live and deleting:
            raise Refused(f"branch {branch} is the base of worker {other}; coord will not delete it")
    return branch


def worktree_path(c: Coord, view) -> str | None:
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


def worker_here(c: Coord, cwd: Path) -> str | None:
    """The live worker whose branch is checked out where cwd is (read from git's files, no
    git process), for commands given without an id inside a worktree."""
    found = checkout_at(cwd)
    if found is None or found[2] is None:
        return None
    _root, common, branch = found
    home_checkout = checkout_at(c.home.project_dir.absolute())
    if home_checkout is None or home_checkout[1] != common:
        return None  # not a checkout of the home's repository
    from ..projections.board import decode_view

    with c.store.read() as conn:
        rows = conn.execute(
            "SELECT view FROM workers WHERE json_extract(CAST(view AS TEXT), '$.branch') = ?", (branch,)
        ).fetchall()
    names = []
    for (blob,) in rows:
        v = decode_view(blob)
        if v.state in TERMINAL:
            continue
        try:
            if worker_branch(v) == branch:
                names.append(v.worker)
        except Refused:
            continue
    if len(names) > 1:
        raise UsageError(f"several workers name branch {branch} ({', '.join(sorted(names))}): pass ID")
    return names[0] if names else None


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
    if base is not None and not is_branch_name(base):
        raise UsageError(
            f"--base {base!r} is not a branch name: give a local branch (to start from another "
            "commit, create a branch there first: git branch NAME COMMIT)"
        )
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
        base_tip = repo.need_branch(base, "base")
        prefix = check_branch_prefix(c.home.config["branch_prefix"])
        branch = prefix + wid
        if branch == base:
            raise Refused(f"the worker's branch {branch} would be its own base: pass another --base")
        named = _others_naming(c, wid, branch)
        if named:
            other, role, _live = named[0]
            raise Refused(f"branch {branch} is already the {role} of worker {other}: spawn under another id")
        path = None
        if not no_worktree:
            if worktree:
                path = Path(os.path.abspath(worktree))
                _check_worktree_location(c, repo, path, branch)
            else:
                path = c.home.path / "worktrees" / wid
                ensure_dir_in_home(c.home.path / "worktrees")  # never a symlink out of the home
        tip = repo.branch_tip(branch)
        if tip is not None and tip != base_tip:
            _refuse_adoption(repo, branch, tip, base, base_tip, wid)
        made_branch = made_tree = False
        try:
            if tip is None:
                repo.create_branch(branch, "refs/heads/" + base)
                made_branch = True
            if path is not None:
                made_tree = _ensure_worktree(repo, path, branch, inside_home=not worktree)
            failpoint("spawn-after-git")
            full = {**payload, "branch": branch, "base": base, "prefix": prefix}
            if path is not None:
                full["worktree"] = str(path)
            return c.act("spawn", wid, full, actor=actor, request_id=request_id)
        except BaseException:
            # Undo only what this call created: a branch or worktree found in place (a
            # retry after a crash) stays.
            if made_tree:
                _quietly(repo.remove_worktree, path, True)
            if made_branch:
                _quietly(repo.delete_branch, branch, base_tip)
            raise


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


def _check_worktree_location(c: Coord, repo: Repo, path: Path, branch: str) -> None:
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


def _peek(c, wid):
    from ..projections import board

    with c.store.read() as conn:
        return board.load(conn, wid)


def _quietly(fn, *args):
    try:
        fn(*args)
    except Exception:
        pass


def _ensure_worktree(repo: Repo, path: Path, branch: str, inside_home: bool) -> bool:
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


# --- done ----------------------------------------------------------------------------
class _Checkout:
    """Where the worker's branch is checked out (git's list, never a recorded path), or a
    temporary worktree made for this command and removed afterwards."""

    def __init__(self, c: Coord, repo: Repo, view, branch: str):
        self.c, self.repo, self.view, self.branch = c, repo, view, branch
        self.home_path = c.home.path
        self.temp = None

    def __enter__(self) -> Path:
        where = self.repo.checked_out_at(self.branch)
        if where is not None:
            other = _worktree_owner(self.c, self.view.worker, where)
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
                raise Refused(
                    f"worktree {self.view.worktree} is on {w['branch'] or 'a detached HEAD'}, "
                    f"not {self.branch}: run `git switch {self.branch}` there"
                )
        if where is None:
            self.temp = self.home_path / "worktrees" / f".tmp-{self.view.worker}-{os.getpid()}"
            _quietly(self.repo.remove_worktree, self.temp, True)
            ensure_dir_in_home(self.temp.parent)
            self.repo.add_worktree(self.temp, self.branch)
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
        branch = guard(c, view)
        repo.need_branch(branch, "worker")
        onto = view.base
        rebased = False
        with _Checkout(c, repo, view, branch) as wt:
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
            if rebase and onto:
                onto_tip = repo.need_branch(onto, "base")
                if not repo.is_ancestor(onto_tip, repo.branch_tip(branch)):
                    files = repo.rebase(wt, onto)
                    if files:
                        _record_conflict(c, wid, actor, files, "rebase", onto)
                    rebased = True
        failpoint("done-after-git")
        full = {**payload, "head": repo.branch_tip(branch), "rebased": rebased}
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
        branch = guard(c, view)
        if branch == into:
            raise Refused(f"{wid}: cannot merge branch {branch} into itself")
        owners = [w for w, role, live in _others_naming(c, wid, into) if role == "branch" and live]
        if owners:
            raise Refused(
                f"{into} is the branch of worker {owners[0]}: coord merges into it only through "
                f"that worker (merge {wid} with --into another branch)"
            )
        tip = repo.need_branch(branch, "worker")
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
                    f"{branch} moved since it was handed in ({head[:12]} → {tip[:12]}): "
                    f"to merge what was reviewed, reset the branch to it (`git reset --hard "
                    f"{head[:12]}` in its worktree); to have the new commits reviewed, "
                    f"`coord fail {wid}`, `coord retry {wid}`, then start and `coord done` again"
                )
            tree, files = repo.merge_tree(into_tip, tip)
            if files:
                _record_conflict(c, wid, actor, files, "merge", into)
            msg = f"Merge worker {wid} ({branch}) into {into}\n\ncoord-worker: {wid}\n"
            new = repo.commit_tree(tree, [into_tip, tip], msg)
            if repo.install(into, into_tip, new, f"coord merge {wid}"):
                commit = new
                break
        else:
            raise Refused(f"{into} kept moving while merging {wid}; run merge again")
        failpoint("merge-after-git")
        removed = _remove_after_merge(c, repo, view, branch)
        full = {**payload, "into": into, "worktree_removed": removed}
        if commit:
            full["commit"] = commit
        return c.act("merge", wid, full, actor=actor, request_id=request_id)


def _remove_after_merge(c: Coord, repo: Repo, view, branch: str) -> bool:
    """Remove the worker's worktree (the one git lists for its branch; never the main
    working tree, nor one another live worker records) unless it holds uncommitted work
    (ignored files such as build output do not count). True when it no longer exists."""
    if not view.worktree:
        return False
    w = repo.worktree_of(branch)
    if w is None or not Path(w["path"]).exists():
        _quietly(repo.git, "worktree", "prune")
        return True
    if w["main"] or _worktree_owner(c, view.worker, w["path"]) is not None:
        return False
    path = Path(w["path"])
    status = repo.git("status", "--porcelain", "-z", cwd=path).stdout
    if status.strip("\0"):
        return False  # the CLI says it kept the worktree
    repo.remove_worktree(path, force=True)
    return True


# --- cancel --------------------------------------------------------------------------
def cancel(
    c: Coord,
    wid: str,
    payload: dict,
    actor: str,
    request_id=None,
    delete_branch=False,
    no_git=False,
    force=False,
) -> Result:
    view = c.worker(wid)
    if force and not delete_branch:
        raise UsageError("--force goes with --delete-branch (it deletes commits no other branch has)")
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
        if force:
            guess["force"] = True
        repeat, view = c.precheck("cancel", wid, guess, actor, request_id)
        if repeat:
            return c.act("cancel", wid, guess, actor=actor, request_id=request_id, expect_repeat=True)
        branch = guard(c, view, deleting=delete_branch)
        # Everything is checked before anything is removed.
        w = repo.worktree_of(branch)
        removable = w is not None and not w["main"] and bool(view.worktree)
        if removable:
            other = _worktree_owner(c, wid, w["path"])
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
        full = dict(payload)
        if view.worktree:
            # Cancel discards the work in progress: the worktree goes even when dirty
            # (committed work stays on the branch). The main working tree never goes.
            if removable:
                repo.remove_worktree(Path(w["path"]), force=True)
                full["worktree_removed"] = True
            elif w is None:
                _quietly(repo.git, "worktree", "prune")
                full["worktree_removed"] = True
        if delete_branch:
            if tip is not None:
                repo.delete_branch(branch, tip)
                full["deleted_tip"] = tip
                if unmerged:
                    full["unmerged"] = unmerged
                    c.on_warning(
                        f"deleted branch {branch} with {unmerged} commit{'s' if unmerged != 1 else ''} "
                        f"no other branch has (tip {tip[:12]}); `git branch {branch} {tip}` brings it "
                        "back while git still has them"
                    )
            full["branch_deleted"] = True
        if force:
            full["force"] = True
        return c.act("cancel", wid, full, actor=actor, request_id=request_id)
