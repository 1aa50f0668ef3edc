"""Git plumbing for worker branches: runs `git` as a subprocess and turns its failures into
coord errors with one-line messages.

This module knows git, not the log: it never opens the store, so every call here runs
outside the store's write transaction (see coord.app.gitsteps for the order of steps). Merges
are computed with `git merge-tree --write-tree` and installed with a compare-and-set on
the branch ref, so no working tree ever holds a half-done merge.
"""

import fcntl
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

from ..events.errors import CoordError, NotFound, Refused, UsageError
from ..events.files import USER_UMASK
from .gitnames import is_branch_name


class GitError(CoordError):
    """git failed in a way coord did not expect (exit 1)."""

    code = "git"


class GitMissing(GitError):
    code = "git_missing"


class Conflict(Refused):
    """A rebase or merge conflict (exit 4); `files` lists the conflicting paths."""

    code = "conflict"


class DirtyWorktree(Refused):
    code = "dirty_worktree"


class NoSuchBranch(NotFound):
    code = "no_such_branch"


# Variables a git hook (or a caller inside one) may have set that would point our git
# calls at another repository or index.
_SCRUB = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_COMMON_DIR",
    "GIT_PREFIX",
    "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE",
)


def _env(extra=None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update({"LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true", "GIT_MERGE_AUTOEDIT": "no"})
    if extra:
        env.update(extra)
    return env


def first_line(text: str) -> str:
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("hint:"):
            return line.removeprefix("fatal: ").removeprefix("error: ")
    return "no message"


def run(args, cwd, check=True, what=None, env=None) -> subprocess.CompletedProcess:
    """Run `git ARGS` in cwd. check=True raises GitError on a non-zero exit.

    git runs with the umask the user started coord with (not the home's private one): what
    it writes (checkouts, merges) belongs to the user's project, not to the home."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=str(cwd),
            capture_output=True,
            text=True,
            env=_env(env),
            timeout=600,
            umask=USER_UMASK,
        )
    except FileNotFoundError:
        raise GitMissing(
            "git is not installed or not on PATH (use --no-git to work without branches)"
        ) from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} timed out") from None
    if check and out.returncode != 0:
        raise GitError(f"{what or 'git ' + args[0]} failed: {first_line(out.stderr or out.stdout)}")
    return out


class Repo:
    """The git repository that holds a home. `root` is its main working tree."""

    def __init__(self, root: Path, common_dir: Path):
        self.root = Path(root)
        self.common_dir = Path(common_dir)

    def git(self, *args, cwd=None, check=True, what=None):
        return run(args, cwd or self.root, check=check, what=what)

    def out(self, *args, cwd=None, what=None) -> str:
        return self.git(*args, cwd=cwd, what=what).stdout.strip()

    @contextmanager
    def lock(self):
        """Serialise coord's own git steps in this repository (branch/worktree creation,
        merges), so two local merges never race for the same ref."""
        # In the common git directory: never tracked, and shared by all worktrees.
        fd = os.open(str(self.common_dir / "coord.lock"), os.O_RDWR | os.O_CREAT, 0o660)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # --- refs ------------------------------------------------------------------------
    def rev(self, ref: str) -> str | None:
        """The commit a ref names, or None."""
        r = self.git("rev-parse", "--verify", "--quiet", ref + "^{commit}", check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def branch_tip(self, branch: str) -> str | None:
        """The tip of local branch `branch`; None when there is none (or the name is not a
        plain branch name, so no revision expression is ever resolved as a branch)."""
        if not is_branch_name(branch):
            return None
        return self.rev("refs/heads/" + branch)

    def need_branch(self, branch: str, role: str) -> str:
        if not is_branch_name(branch):
            raise NoSuchBranch(f"{role} branch {branch!r} is not a branch name (a revision is not a branch)")
        tip = self.branch_tip(branch)
        if tip is None:
            hint = ""
            if role == "base" and self.rev("HEAD") is None:
                hint = " (the repository has no commits yet: commit once, or spawn with --no-git)"
            raise NoSuchBranch(f"no such {role} branch {branch!r} in {self.root}{hint}")
        return tip

    def current_branch(self, cwd=None) -> str | None:
        """The branch checked out at cwd (default: the main working tree); None if detached."""
        r = self.git("symbolic-ref", "-q", "--short", "HEAD", cwd=cwd, check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def create_branch(self, branch: str, start: str) -> None:
        self.git("branch", "--no-track", branch, start, what=f"creating branch {branch}")

    def delete_branch(self, branch: str, tip: str | None = None) -> None:
        """Delete a branch; with `tip`, only while it still points there (compare-and-set:
        a commit added meanwhile is never deleted with it)."""
        if tip is None:
            tip = self.branch_tip(branch)
            if tip is None:
                return
        self.git("update-ref", "-d", "refs/heads/" + branch, tip, what=f"deleting branch {branch}")

    def unmerged(self, branch: str) -> int:
        """How many commits of `branch` no other branch has (local or remote-tracking):
        what deleting it would lose."""
        return int(
            self.out(
                "rev-list",
                "--count",
                "refs/heads/" + branch,
                "--not",
                "--exclude=" + branch,  # a pattern relative to refs/heads/ (no glob: see is_branch_name)
                "--branches",
                "--remotes",
                what=f"counting the commits of {branch}",
            )
        )

    def count(self, tip: str, base_tip: str) -> int:
        """Commits reachable from tip and not from base_tip."""
        return int(self.out("rev-list", "--count", tip, "--not", base_tip))

    def is_ancestor(self, a: str, b: str) -> bool:
        r = self.git("merge-base", "--is-ancestor", a, b, check=False)
        if r.returncode not in (0, 1):
            raise GitError(f"git merge-base failed: {first_line(r.stderr)}")
        return r.returncode == 0

    def ahead_behind(self, branch: str, base: str) -> tuple[int, int] | None:
        """(ahead, behind) of branch against base; None when either is missing."""
        if not (is_branch_name(branch) and is_branch_name(base)):
            return None
        r = self.git(
            "rev-list", "--left-right", "--count", f"refs/heads/{base}...refs/heads/{branch}", check=False
        )
        if r.returncode != 0:
            return None
        behind, ahead = r.stdout.split()
        return int(ahead), int(behind)

    # --- worktrees -------------------------------------------------------------------
    def worktrees(self) -> list[dict]:
        """`git worktree list --porcelain` as dicts with path, head, branch (short name or
        None when detached), prunable, main (the first: the main working tree)."""
        text = self.out("worktree", "list", "--porcelain")
        items, cur = [], None
        for line in text.splitlines() + [""]:
            if not line:
                if cur:
                    items.append(cur)
                cur = None
                continue
            key, _, val = line.partition(" ")
            if key == "worktree":
                cur = {"path": val, "head": None, "branch": None, "prunable": False, "main": not items}
            elif cur is not None:
                if key == "HEAD":
                    cur["head"] = val
                elif key == "branch":
                    cur["branch"] = val.removeprefix("refs/heads/")
                elif key == "prunable":
                    cur["prunable"] = True
        return items

    def worktree_at(self, path: Path) -> dict | None:
        p = Path(path).resolve()
        for w in self.worktrees():
            if Path(w["path"]).resolve() == p:
                return w
        return None

    def worktree_of(self, branch: str) -> dict | None:
        """The working tree git lists with `branch` checked out (the main one included)."""
        for w in self.worktrees():
            if w["branch"] == branch and not w["prunable"]:
                return w
        return None

    def checked_out_at(self, branch: str) -> Path | None:
        w = self.worktree_of(branch)
        return Path(w["path"]) if w else None

    def add_worktree(self, path: Path, branch: str) -> None:
        self.git("worktree", "add", "--quiet", str(path), branch, what=f"creating worktree {path}")

    def remove_worktree(self, path: Path, force: bool) -> None:
        """Remove a worktree; a directory already gone is pruned (so retries succeed)."""
        path = Path(path)
        if not path.exists():
            self.git("worktree", "prune")
            return
        if self.worktree_at(path) is None:
            return  # not a worktree of this repository (any more): leave it alone
        args = ["worktree", "remove"] + (["--force", "--force"] if force else []) + [str(path)]
        self.git(*args, what=f"removing worktree {path}")

    def dirty_files(self, cwd: Path) -> list[str]:
        """Tracked files with uncommitted changes (staged or not), and unmerged paths."""
        out = self.git("status", "--porcelain=v1", "-z", "--untracked-files=no", cwd=cwd).stdout
        names = []
        for item in out.split("\0"):
            if len(item) > 3:
                names.append(item[3:])
        return names

    def operation_in_progress(self, cwd: Path) -> str | None:
        for name, what in (
            ("rebase-merge", "rebase"),
            ("rebase-apply", "rebase"),
            ("MERGE_HEAD", "merge"),
            ("CHERRY_PICK_HEAD", "cherry-pick"),
        ):
            p = Path(self.out("rev-parse", "--path-format=absolute", "--git-path", name, cwd=cwd))
            if p.exists():
                return what
        return None

    # --- rebase and merge ------------------------------------------------------------
    def rebase(self, cwd: Path, onto: str) -> list[str]:
        """Rebase the branch checked out at cwd onto `onto`. Returns [] when clean; on a
        conflict aborts the rebase (the branch is left as it was) and returns the files."""
        r = self.git(
            "-c", "rebase.autoStash=false", "rebase", "--quiet", "refs/heads/" + onto, cwd=cwd, check=False
        )
        if r.returncode == 0:
            return []
        if self.operation_in_progress(cwd) == "rebase":
            files = self.git("diff", "--name-only", "-z", "--diff-filter=U", cwd=cwd).stdout
            self.git("rebase", "--abort", cwd=cwd, what="aborting the rebase")
            names = sorted({f for f in files.split("\0") if f})
            return names or ["(unknown)"]
        raise GitError(f"git rebase failed: {first_line(r.stderr or r.stdout)}")

    def merge_tree(self, into_tip: str, branch_tip: str) -> tuple[str, list[str]]:
        """Compute a merge without touching any working tree: (tree, conflicting files)."""
        r = self.git(
            "merge-tree",
            "--write-tree",
            "--name-only",
            "--no-messages",
            "-z",
            into_tip,
            branch_tip,
            check=False,
        )
        if r.returncode not in (0, 1):
            raise GitError(f"git merge-tree failed: {first_line(r.stderr)}")
        parts = [p for p in r.stdout.split("\0") if p]
        tree, files = parts[0], sorted(set(parts[1:]))
        if r.returncode == 1 and not files:
            files = ["(unknown)"]
        return tree, files

    def commit_tree(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.out(*args, "-m", message, what="creating the merge commit")

    def install(self, branch: str, old: str, new: str, message: str) -> bool:
        """Move `branch` from old to new (a descendant). Where the branch is checked out,
        fast-forward that working tree (git refuses, changing nothing, if uncommitted
        changes are in the way); elsewhere compare-and-set the ref. False when the branch
        moved from `old` meanwhile (the caller recomputes)."""
        where = self.checked_out_at(branch)
        if where is None:
            r = self.git("update-ref", "-m", message, "refs/heads/" + branch, new, old, check=False)
            if r.returncode != 0:
                if self.branch_tip(branch) != old:
                    return False
                raise GitError(f"git update-ref failed: {first_line(r.stderr)}")
            return True
        if self.branch_tip(branch) != old:
            return False
        r = self.git("merge", "--ff-only", "--quiet", new, cwd=where, check=False)
        if r.returncode == 0:
            return True
        if self.branch_tip(branch) != old:
            return False
        text = r.stderr + r.stdout
        if "would be overwritten" in text:
            files = [ln.strip() for ln in text.splitlines() if ln.startswith("\t")]
            raise DirtyWorktree(
                f"{branch} is checked out at {where} with uncommitted changes to files the merge "
                f"changes ({', '.join(files) or 'see git status'}); commit or stash them, then merge again",
                files=files,
            )
        raise GitError(f"updating {where} failed: {first_line(text)}")

    def find_merge(self, into: str, branch_tip: str, limit: int = 500) -> str | None:
        """The merge commit on into's first-parent line that brought branch_tip in."""
        out = self.out(
            "log", "--first-parent", "--merges", f"-n{limit}", "--format=%H %P", "refs/heads/" + into
        )
        for line in out.splitlines():
            h, *parents = line.split()
            if branch_tip in parents[1:]:
                return h
        return None


def repo_of(project_dir: Path) -> Repo | None:
    """The repository whose main working tree holds project_dir; None outside git. Raises
    GitMissing when git is absent but project_dir looks like it is inside a repository."""
    if not any((d / ".git").exists() for d in (project_dir, *project_dir.parents)):
        return None  # no repository above: skip starting git (a few ms per spawn)
    try:
        r = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=str(project_dir),
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
    except FileNotFoundError:
        for d in (project_dir, *project_dir.parents):
            if (d / ".git").exists():
                raise GitMissing(
                    f"{d} is a git repository but git is not installed or not on PATH "
                    "(use --no-git to work without branches)"
                ) from None
        return None
    if r.returncode != 0:
        return None
    common = Path(r.stdout.strip())
    if common.name != ".git":
        raise UsageError(f"the home's repository {common} is bare or unusual; use --no-git")
    return Repo(common.parent, common)
