"""Branch names and checkouts read without a git process: what a branch name may be, the
rules of a worker branch prefix, and which checkout (and branch) holds a directory, read
from git's own files (commands given without a worker id run this on every action).
"""

from pathlib import Path

from ..events.errors import UsageError

_REF_FORBIDDEN = frozenset(" ~^:?*[\\")


def is_branch_name(name) -> bool:
    """A plain branch name: what git accepts as refs/heads/NAME (the rules of `git
    check-ref-format`), never a revision (`main~1`, `HEAD^`, `@{-1}`), an option (`-x`) or
    `HEAD`. Checked without running git."""
    if not isinstance(name, str) or not name or name in ("HEAD", "@") or name.startswith("-"):
        return False
    if name.startswith("/") or name.endswith(("/", ".")) or ".." in name or "//" in name or "@{" in name:
        return False
    if any(ch in _REF_FORBIDDEN or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return False
    return not any(part.startswith(".") or part.endswith(".lock") for part in name.split("/"))


_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/")
PREFIX_RULE = (
    "1 to 64 of letters, digits, '.', '_', '-' and '/', starting with a letter or digit and "
    "ending with '/', '-', '_' or '.' (e.g. coord/ or agents-)"
)


def branch_prefix_problem(prefix, recorded: bool = False) -> str | None:
    """Why `prefix` cannot be a branch prefix (None when it can). A worker's branch is the
    prefix plus its id, and the prefix must keep that a branch of coord's own: never empty
    (any branch, `main` or `dev`, would be some worker's), never path-like (`/x/`, `../`,
    `refs/heads/`), and ending with a separator so the id stays visible. A prefix
    `recorded` in an older spawn event is held to the first two rules only (it was valid
    then; a name it shares with another worker is refused where it is used)."""
    if not isinstance(prefix, str):
        return "not a string"
    if not prefix:
        return "it is empty: every branch name (main, dev, ...) would be some worker's branch"
    if prefix.startswith(("/", ".", "~")) or ".." in prefix or "//" in prefix or "\\" in prefix:
        return "it is path-like (a leading '/', '.' or '~', or '..', '//', '\\')"
    if prefix.startswith("refs/"):
        return "it starts with refs/ (branch names are under refs/heads/ already)"
    if not recorded:
        ok = len(prefix) <= 64 and set(prefix) <= _PREFIX_CHARS
        if not (ok and prefix[0].isalnum() and prefix[-1] in "/-_."):
            return "want " + PREFIX_RULE
    if not is_branch_name(prefix + "x"):
        return "worker branches would not be valid branch names"
    return None


def check_branch_prefix(prefix, what: str = "branch_prefix") -> str:
    """The prefix when usable; else UsageError (exit 2) naming why (for settings checks)."""
    problem = branch_prefix_problem(prefix)
    if problem is not None:
        raise UsageError(f"{what} {prefix!r} is not usable: {problem}")
    return prefix


def checkout_at(cwd: Path) -> tuple[Path, Path, str | None] | None:
    """(working tree root, common git directory, branch) of the git checkout that holds cwd,
    read from git's own files (no git process: this runs on commands given without a worker
    id). The branch is None on a detached HEAD, except in a rebase, where it is the branch
    being rebased. None outside git."""
    for d in (cwd, *cwd.parents):
        g = d / ".git"
        try:
            if g.is_dir():
                gitdir = common = g
            elif g.is_file():
                text = g.read_text(errors="replace").strip()
                if not text.startswith("gitdir:"):
                    return None
                gitdir = d / text.removeprefix("gitdir:").strip()
                try:
                    common = gitdir / (gitdir / "commondir").read_text().strip()
                except FileNotFoundError:
                    common = gitdir
            else:
                continue
            return d, common.resolve(), _head_branch(gitdir)
        except OSError:
            return None
    return None


def _head_branch(gitdir: Path) -> str | None:
    for name in ("HEAD", "rebase-merge/head-name", "rebase-apply/head-name"):
        try:
            text = (gitdir / name).read_text(errors="replace").strip()
        except OSError:
            continue
        text = text.removeprefix("ref:").strip()
        if text.startswith("refs/heads/"):
            return text.removeprefix("refs/heads/")
    return None
