"""The git plumbing `coord sync` uses (coord.app.sync): fetch one branch, push it, build a
commit from a temporary index (so the person's own index and staged changes are never
part of it), move a ref with a compare-and-set, and finish a merge an interrupted sync
left between updating the working tree and moving the branch. Knows git, not the log.
"""

import json
import os
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from ..events.errors import NotFound, Refused
from .gitrepo import GitError, first_line, run

ZERO = "0" * 40
INTENT = "coord-sync-merge"  # in the common git directory: a merge being installed


class PushRejected(Refused):
    code = "push_rejected"


@contextmanager
def deferred_interrupts():
    """Ctrl-C and SIGTERM during a sync take effect between git steps, never inside one:
    a git killed in the middle of a step can leave its lock files (index.lock, a ref's
    .lock), which git then asks the person to remove. (Python's subprocess would SIGKILL a
    child that has not exited 0.25 s after an interrupt.) Yields `check()`, which raises
    KeyboardInterrupt once a signal came. Outside the main thread: no deferral."""
    caught: list = []

    def check():
        if caught:
            raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield check
        return
    old = {
        s: signal.signal(s, lambda signum, _frame: caught.append(signum))
        for s in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield check
    finally:
        for s, h in old.items():
            signal.signal(s, h)


class SyncGit:
    def __init__(self, repo, check=lambda: None):
        self.repo = repo
        self.root = repo.root
        self.check = check  # raises once an interrupt came (deferred_interrupts)
        self._ident = None

    def git(self, *args, check=True, what=None, env=None):
        self.check()
        r = run(args, self.root, check=False, what=what, env=env)
        self.check()  # a git the interrupt reached exits with an error: that is the interrupt
        if check and r.returncode != 0:
            raise GitError(f"{what or 'git ' + args[0]} failed: {first_line(r.stderr or r.stdout)}")
        return r

    def out(self, *args, what=None, env=None) -> str:
        return self.git(*args, what=what, env=env).stdout.strip()

    # --- remotes ---------------------------------------------------------------------
    def need_remote(self, remote: str) -> None:
        r = self.git("remote", "get-url", remote, check=False)
        if r.returncode != 0:
            raise NotFound(
                f"no git remote {remote!r} in {self.root} (add one with `git remote add {remote} URL`, "
                "or pass --remote NAME)"
            )

    def fetch(self, remote: str, branch: str) -> str | None:
        """Fetch one branch into refs/remotes/REMOTE/BRANCH; its tip, or None when the
        remote has no such branch yet."""
        track = f"refs/remotes/{remote}/{branch}"
        r = self.git("fetch", "--quiet", "--no-tags", remote, f"+refs/heads/{branch}:{track}", check=False)
        if r.returncode != 0:
            if "couldn't find remote ref" in r.stderr:
                return None
            raise GitError(f"git fetch {remote} failed: {first_line(r.stderr)}")
        return self.repo.rev(track)

    def push(self, remote: str, ref: str, branch: str) -> None:
        r = self.git(
            "push", "--quiet", "--porcelain", "--no-verify", remote, f"{ref}:refs/heads/{branch}", check=False
        )
        if r.returncode == 0:
            return
        text = r.stdout + r.stderr
        # The remote moved since our fetch (or another push held its ref's lock): a lost
        # race. A lock file left on the remote by a crashed git is not one: git's error.
        stale = "cannot lock ref" in text and "File exists" in text
        if not stale and any(
            w in text for w in ("[rejected]", "non-fast-forward", "fetch first", "cannot lock ref")
        ):
            raise PushRejected(
                f"push to {remote} rejected: {branch} moved there meanwhile; run `coord sync` again"
            )
        if stale:
            raise GitError(
                f"git push {remote} failed: {first_line(r.stderr)} (a git on the remote crashed earlier)"
            )
        if "[remote rejected]" in text:  # a hook or a protected branch: no retry helps
            why = text.split("[remote rejected]", 1)[1].strip().splitlines()[0]
            raise Refused(f"push to {remote} refused by the remote: {why}; the commits are kept here")
        raise GitError(f"git push {remote} failed: {first_line(r.stderr or r.stdout)}")

    # --- commits from a temporary index ------------------------------------------------
    def ident(self) -> dict:
        """Who the sync commits are by: the user's git identity, else `coord sync`."""
        if self._ident is None:
            have = self.git("config", "user.email", check=False).stdout.strip()
            self._ident = (
                {}
                if have
                else {
                    k: v
                    for n in ("AUTHOR", "COMMITTER")
                    for k, v in ((f"GIT_{n}_NAME", "coord sync"), (f"GIT_{n}_EMAIL", "coord@localhost"))
                }
            )
        return self._ident

    def tree_of(self, commit: str | None) -> str | None:
        return self.out("rev-parse", commit + "^{tree}") if commit else None

    def build_tree(self, base: str | None, files: list[tuple[str, str]]) -> str:
        """A tree: `base`'s (a commit, or empty) with `files` ((path in the tree, file on
        disk) pairs, hashed now) put in; written through a temporary index."""
        fd, index = tempfile.mkstemp(prefix="coord-sync-index-")
        os.close(fd)
        os.unlink(index)  # git creates it
        env = {"GIT_INDEX_FILE": index}
        try:
            if base:
                self.git("read-tree", base, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            if files:
                shas = self.out("hash-object", "-w", "--no-filters", "--", *[f for _, f in files]).split()
                args = []
                for (path, _), sha in zip(files, shas, strict=True):
                    args += ["--cacheinfo", f"100644,{sha},{path}"]
                self.git("update-index", "--add", *args, env=env)
            return self.out("write-tree", env=env)
        finally:
            Path(index).unlink(missing_ok=True)

    def commit(self, tree: str, parents: list[str], message: str) -> str:
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return self.out(*args, "-m", message, env=self.ident(), what="creating the sync commit")

    def set_ref(self, ref: str, new: str, old: str | None) -> bool:
        """Compare-and-set: False when the ref no longer points at `old`; any other
        failure (a lock file left by a killed git) is git's own one-line error."""
        r = self.git("update-ref", "-m", "coord sync", ref, new, old or ZERO, check=False)
        if r.returncode == 0:
            return True
        if self.repo.rev(ref) != old:
            return False
        raise GitError(f"git update-ref {ref} failed: {first_line(r.stderr)}")

    def names_under(self, commit: str | None, prefix: str) -> set[str]:
        if not commit:
            return set()
        out = self.git("ls-tree", "-r", "-z", "--name-only", commit, "--", prefix).stdout
        return {p[len(prefix) :] for p in out.split("\0") if p.startswith(prefix)}

    def untracked_under(self, prefix: str) -> set[str]:
        out = self.git("ls-files", "-z", "--others", "--", prefix).stdout
        return {p[len(prefix) :] for p in out.split("\0") if p.startswith(prefix)}

    def blob_at(self, commit: str, path: str) -> str | None:
        r = self.git("rev-parse", "--verify", "--quiet", f"{commit}:{path}", check=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def cat_to(self, sha: str, out) -> None:
        """A git blob's bytes into the binary file `out`, streamed."""
        import subprocess

        from .gitrepo import _env

        r = subprocess.run(
            ["git", "cat-file", "blob", sha], cwd=self.root, stdout=out, stderr=subprocess.PIPE, env=_env()
        )
        if r.returncode != 0:
            raise GitError(f"git cat-file {sha[:12]} failed: {first_line(r.stderr.decode(errors='replace'))}")

    def changed(self, a: str, b: str) -> list[str]:
        out = self.git("diff-tree", "-r", "-z", "--name-only", "--no-renames", a, b).stdout
        return [p for p in out.split("\0") if p]

    # --- installing a merge in the checked-out branch ----------------------------------
    def _intent(self) -> Path:
        return self.repo.common_dir / INTENT

    def install_merge(self, branch: str, head: str, new: str) -> None:
        """Move the checked-out `branch` from head to new: index and working tree first
        (`read-tree -m -u`, which refuses, changing nothing, where local changes are in
        the way), then the ref. An intent file covers an interruption in between."""
        intent = self._intent()
        intent.write_text(json.dumps({"branch": branch, "head": head, "new": new}))
        r = self.git("read-tree", "-m", "-u", head, new, check=False)
        if r.returncode != 0:
            intent.unlink(missing_ok=True)
            raise Refused(
                f"the pull would overwrite local changes ({first_line(r.stderr)}); nothing merged: "
                "commit or stash them, then run `coord sync` again"
            )
        if not self.set_ref(f"refs/heads/{branch}", new, head):
            raise GitError(f"{branch} moved while coord sync merged into it; see `git status`")
        intent.unlink(missing_ok=True)

    def finish_interrupted(self, branch: str) -> bool:
        """A sync killed between updating the working tree and moving the branch left its
        intent: when the index is exactly the merge, move the branch now."""
        intent = self._intent()
        try:
            data = json.loads(intent.read_text())
        except (FileNotFoundError, ValueError):
            return False
        done = False
        if data.get("branch") == branch and self.repo.rev("HEAD") == data.get("head"):
            r = self.git("write-tree", check=False)
            if r.returncode == 0 and r.stdout.strip() == self.tree_of(data["new"]):
                done = self.set_ref(f"refs/heads/{branch}", data["new"], data["head"])
        intent.unlink(missing_ok=True)
        return done
