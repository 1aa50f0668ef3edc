"""`coord sync` (contract: Offline sync): one safe step that shares this clone's events
through git and takes in the others'.

- The checked-out branch (default): commit `.coord/events.jsonl` and new blobs (only
  those paths, from a temporary index: whatever else the person staged stays staged and
  uncommitted), fetch, merge with the union merge, import what arrived, push.
- `sync_branch` (shared setting): the same through that branch with plumbing only:
  the remote's file is checked and imported, the union is written by the exporter, and
  a commit of it is put on the branch with a compare-and-set; the checked-out branch,
  the index and the working tree are never touched.

Safe while agents append: the snapshot (the exporter's last write, then git hashing the
file) is taken under the audit file's lock, so it holds whole lines, every committed
event included. Safe to interrupt and re-run: refs move only by compare-and-set, the
merge into the checked-out branch records its intent first (coord.app.syncgit), and a
re-run converges. It never rewrites or drops a line. A push the remote rejects (another
clone pushed meanwhile) is retried after a new fetch and merge, a few times.
"""

import os
import tempfile

import blake3
import msgspec

from ..events.audit_read import import_bodies, read_checked
from ..events.errors import CoordError, IntegrityError, NotFound, Refused, UsageError
from ..events.home import ensure_gitattributes
from ..events.records import AUDIT_DIRTY
from .gitrepo import DirtyWorktree, repo_of
from .syncgit import PushRejected, SyncGit, deferred_interrupts

ROUNDS = 5  # fetch-merge-push attempts while other clones keep pushing
SYNC_DIR = ".coord"  # where the home's files lie in the sync_branch's tree


class SyncResult(msgspec.Struct):
    mode: str  # "branch" (the checked-out one) or "sync_branch"
    branch: str
    remote: str
    committed: bool = False  # this clone's new lines were committed
    merged: bool = False  # the remote's commits were merged in
    imported: int = 0  # events the remote brought that this store lacked
    pushed: bool = False
    rounds: int = 0
    blobs: int = 0  # blobs committed
    left_out: list = []  # blobs over sync_blob_limit: [ref, size]


def sync(c, remote: str | None = None, push: bool = True, warn=lambda m: None) -> SyncResult:
    """One `coord sync`; an interrupt takes effect between git steps (exit 130). A home
    whose log is on a server has nothing to sync: every machine appends to that log."""
    if c.shared:
        raise UsageError(
            "coord sync shares a SQLite clone's events through git; this home's log is on a "
            "PostgreSQL server every machine already shares (git carries worker branches: "
            "docs/postgres.md)"
        )
    with deferred_interrupts() as check:
        try:
            return _sync(c, remote, push, warn, check)
        except CoordError:
            check()  # a git step the interrupt reached failed: that is the interrupt
            raise


def _sync(c, remote, push, warn, check) -> SyncResult:
    repo = repo_of(c.home.project_dir)
    if repo is None:
        raise NotFound(
            f"no git repository holds {c.home.path}: coord sync needs one (or exchange files "
            "with `coord import`)"
        )
    try:
        rel = c.home.path.resolve().relative_to(repo.root.resolve()).as_posix()
    except ValueError:
        raise UsageError(f"{c.home.path} lies outside the repository {repo.root}") from None
    git = SyncGit(repo, check)
    sb = c.home.config["sync_branch"]
    if sb:
        where = repo.checked_out_at(sb)
        if where is not None:
            raise Refused(
                f"sync_branch {sb} is checked out at {where}: it must be a branch nobody checks "
                "out (coord sync moves it with plumbing)"
            )
        remote = remote or _setting_remote(c)
        git.need_remote(remote)
        res = SyncResult("sync_branch", sb, remote)
        _rounds(git, res, push, lambda: _round_plumbing(c, git, res, warn))
        return res
    branch = repo.current_branch()
    if branch is None:
        raise Refused("HEAD is detached: check out a branch to sync, or set sync_branch")
    busy = repo.operation_in_progress(repo.root)
    if busy:
        raise Refused(f"a git {busy} is in progress in {repo.root}: finish or abort it, then sync")
    remote = remote or _upstream_remote(git, branch) or _setting_remote(c)
    git.need_remote(remote)
    _need_union_merge(c, git, rel)
    git.finish_interrupted(branch)
    res = SyncResult("branch", branch, remote)
    _rounds(git, res, push, lambda: _round_branch(c, git, rel, res, warn))
    return res


def _rounds(git: SyncGit, res: SyncResult, push: bool, one_round) -> None:
    for n in range(1, ROUNDS + 1):
        res.rounds = n
        ref = one_round()
        if not push:
            return
        try:
            git.push(res.remote, ref, res.branch)
            res.pushed = True
            return
        except PushRejected:
            if n == ROUNDS:
                raise


def _setting_remote(c) -> str:
    return c.home.config.get("git_remote") or "origin"


def _upstream_remote(git: SyncGit, branch: str) -> str | None:
    r = git.git("config", f"branch.{branch}.remote", check=False)
    name = r.stdout.strip()
    return name if r.returncode == 0 and name and name != "." else None


def _need_union_merge(c, git: SyncGit, rel: str) -> None:
    """events.jsonl merges as a union (init's .gitattributes line), or sync would leave
    conflict markers in it: restore the line if it is missing, and check git agrees."""
    ensure_gitattributes(c.home)
    path = f"{rel}/events.jsonl"
    got = git.out("check-attr", "merge", "--", path).rsplit(":", 1)[-1].strip()
    if got != "union":
        raise Refused(
            f"git does not merge {path} as a union (merge attribute: {got}); a higher-priority "
            "attributes file overrides .coord/.gitattributes: remove that override"
        )


def _snapshot_export(c) -> None:
    """Under the audit lock: every committed event written to the file, or refuse (a bad
    line in the file is never shared)."""
    r = c.audit.export_locked()
    if r.refused:
        raise IntegrityError(f"not syncing: {r.refused}")


def _blob_files(c, names, res: SyncResult, warn) -> list[tuple[str, str]]:
    """(blob name, path) of the blobs to commit: intact ones, within sync_blob_limit."""
    limit = c.home.config["sync_blob_limit"]
    out = []
    for name in sorted(names):
        if len(name) != 64 or name.strip("0123456789abcdef"):
            continue  # a temporary file of a blob being written, or something else
        path = os.path.join(c.blobs.path, name)
        try:
            size = c.blobs.check("b3:" + name)
        except Exception as e:  # corrupt or not a file: never shared; `verify` names it
            warn(f"blob b3:{name} not synced: {getattr(e, 'message', e)}")
            continue
        if size > limit:
            res.left_out.append(["b3:" + name, size])
            warn(
                f"blob b3:{name} ({size} bytes) left out of the sync: over sync_blob_limit "
                f"({limit} bytes); events naming it show it unresolved on other clones"
            )
            continue
        out.append((name, path))
    return out


# --- the checked-out branch -------------------------------------------------------------
def _round_branch(c, git: SyncGit, rel: str, res: SyncResult, warn) -> str:
    theirs = git.fetch(res.remote, res.branch)
    with git.repo.lock(), c.audit.lock():
        _snapshot_export(c)
        head = git.repo.rev("HEAD")
        head = _commit_snapshot(c, git, rel, head, res, warn)
        if theirs and not git.repo.is_ancestor(theirs, head):
            _merge(c, git, rel, head, theirs, res)
        res.imported += c.audit.export_locked().imported
    return f"refs/heads/{res.branch}"


def _commit_snapshot(c, git: SyncGit, rel: str, head: str | None, res: SyncResult, warn) -> str | None:
    blobs = _blob_files(c, git.untracked_under(f"{rel}/blobs/"), res, warn)
    files = [(f"{rel}/events.jsonl", str(c.home.audit_path))] + [(f"{rel}/blobs/{n}", p) for n, p in blobs]
    tree = git.build_tree(head, files)
    if head and tree == git.tree_of(head):
        return head
    new = git.commit(tree, [head] if head else [], f"coord sync: events of {c.clone_id}")
    # The person's index gets the same content first (else `git status` would show the
    # lines as staged for removal); whatever else is staged stays staged.
    git.git("add", "-f", "--", *[p for p, _ in files])
    if not git.set_ref(f"refs/heads/{res.branch}", new, head):
        raise Refused(f"{res.branch} moved while coord sync committed; run `coord sync` again")
    res.committed, res.blobs = True, res.blobs + len(blobs)
    return new


def _merge(c, git: SyncGit, rel: str, head: str, theirs: str, res: SyncResult) -> None:
    if git.repo.is_ancestor(head, theirs):
        new = theirs  # a fast-forward
        tree = git.tree_of(theirs)
    else:
        tree, conflicts = git.repo.merge_tree(head, theirs)
        if conflicts:
            raise Refused(
                f"the pull from {res.remote}/{res.branch} would conflict in {', '.join(conflicts[:10])}; "
                "nothing merged (coord's lines are committed): merge with git, then run `coord sync` again"
            )
        new = None
    inside = rel + "/"
    outside = [p for p in git.changed(head, tree) if not p.startswith(inside)]
    dirty = [p for p in git.repo.dirty_files(git.root) if not p.startswith(inside)]
    if outside and dirty:
        raise DirtyWorktree(
            f"the pull from {res.remote}/{res.branch} changes files outside {rel}/ "
            f"({', '.join(outside[:5])}) and the working tree has uncommitted changes "
            f"({', '.join(dirty[:5])}); nothing merged: commit or stash them, then run `coord sync` again",
            files=dirty,
        )
    _check_incoming(c, git, tree, f"{rel}/events.jsonl", res)
    if new is None:
        new = git.commit(tree, [head, theirs], f"coord sync: merge {res.remote}/{res.branch}")
    git.install_merge(res.branch, head, new)
    res.merged = True
    _home_modes(git, rel, head, new)


def _check_incoming(c, git: SyncGit, tree: str, path: str, res: SyncResult) -> None:
    """The merged file is input: every line checked before it lands in the working tree
    (one bad line and nothing is merged, exit 5); the lines this store lacks are imported
    now, dirty, so the export after the merge finds them in the file (and, were the merge
    not installed, writes them there itself)."""
    sha = git.blob_at(tree, path)
    if sha is None:
        return
    scan = _checked_file(c, git, sha, f"{res.remote}/{res.branch}:{path}", "not merging")
    res.imported += import_bodies(c.store, scan.new, AUDIT_DIRTY)


def _home_modes(git: SyncGit, rel: str, head: str, new: str) -> None:
    """Files git wrote into the home get the home's modes (never world-readable)."""
    mask = os.umask(0)
    os.umask(mask)
    for p in git.changed(head, new):
        if p.startswith(rel + "/"):
            try:
                os.chmod(git.root / p, 0o666 & ~mask, follow_symlinks=False)
            except (FileNotFoundError, NotImplementedError, OSError):
                pass


# --- through sync_branch, with plumbing only ---------------------------------------------
def _round_plumbing(c, git: SyncGit, res: SyncResult, warn) -> str:
    ref = f"refs/heads/{res.branch}"
    theirs = git.fetch(res.remote, res.branch)
    theirs_file, theirs_ids = (git.blob_at(theirs, f"{SYNC_DIR}/events.jsonl") if theirs else None), set()
    if theirs:
        n, theirs_ids = _take_theirs(c, git, theirs, theirs_file, warn)
        res.imported += n
    with c.audit.lock(), tempfile.NamedTemporaryFile(prefix="coord-sync-", suffix=".jsonl") as union:
        _snapshot_export(c)
        # The file to commit: the remote's, as it is, plus our lines it lacks (so a clone
        # with nothing new commits nothing, whatever order its own file holds them in).
        if theirs_file:
            git.cat_to(theirs_file, union)
            union.seek(0, os.SEEK_END)  # git wrote through the descriptor
        added = _append_missing(c.home.audit_path, union, theirs_ids)
        union.flush()
        local = git.repo.rev(ref)
        base = theirs or local
        have = git.names_under(base, f"{SYNC_DIR}/blobs/")
        blobs = _blob_files(c, set(c.blobs.names()) - have, res, warn)
        files = [(f"{SYNC_DIR}/events.jsonl", union.name if theirs_file else str(c.home.audit_path))]
        files += [(f"{SYNC_DIR}/blobs/{n}", p) for n, p in blobs]
        tree = git.build_tree(base, files) if (added or blobs or not theirs_file) else git.tree_of(base)
        parents = [p for p in (local, theirs) if p]
        if local and theirs:
            if git.repo.is_ancestor(theirs, local):
                parents = [local]
            elif git.repo.is_ancestor(local, theirs):
                parents = [theirs]
        if len(parents) == 1 and tree == git.tree_of(parents[0]):
            new = parents[0]
        else:
            new = git.commit(tree, parents, f"coord sync: events of {c.clone_id}")
            res.committed, res.blobs = True, len(blobs)
        res.merged = bool(local and theirs and len(parents) == 2)
        if new != local and not git.set_ref(ref, new, local):
            raise Refused(f"{res.branch} moved while coord sync committed; run `coord sync` again")
    return ref


def _append_missing(ours, out, known: set) -> int:
    """Append to `out` the lines of our audit file whose id is not in `known`."""
    from ..events.files import open_file_in_home

    n = 0
    with open_file_in_home(ours, "rb") as f:
        for line in f:
            if line.endswith(b"\n") and line[7:74].decode("ascii", "replace") not in known:
                out.write(line)
                n += 1
    return n


def _checked_file(c, git: SyncGit, sha: str, where: str, verb: str):
    """An events file from git (blob `sha`), every line checked (one bad line: exit 5,
    naming `where`); the scan's `new` holds the lines this store lacks."""
    with tempfile.NamedTemporaryFile(prefix="coord-sync-", suffix=".jsonl") as tmp:
        git.cat_to(sha, tmp)
        tmp.flush()
        try:
            return read_checked(tmp.name, c.store)
        except IntegrityError as e:
            raise IntegrityError(f"{verb}: {e.message.replace(tmp.name, where)}") from None


def _take_theirs(c, git: SyncGit, theirs: str, sha: str | None, warn) -> tuple[int, set]:
    """The remote's file, checked (one bad line and nothing is imported, exit 5), imported
    as another clone's events (dirty: the exporter writes them to our file); the blobs it
    has that we lack, each checked against its name. Returns (events added, its ids)."""
    added, ids = 0, set()
    if sha is not None:
        where = f"the sync branch's {SYNC_DIR}/events.jsonl ({theirs[:12]})"
        scan = _checked_file(c, git, sha, where, "not syncing")
        added, ids = import_bodies(c.store, scan.new, AUDIT_DIRTY), set(scan.ids)
    have = set(c.blobs.names())
    for name in sorted(git.names_under(theirs, f"{SYNC_DIR}/blobs/") - have):
        bsha = git.blob_at(theirs, f"{SYNC_DIR}/blobs/{name}")
        with tempfile.TemporaryFile() as tmp:
            git.cat_to(bsha, tmp)
            tmp.seek(0)
            h = blake3.blake3()
            while chunk := tmp.read(1 << 20):
                h.update(chunk)
            if h.hexdigest() != name:
                warn(
                    f"blob {name} on {SYNC_DIR}/blobs of the sync branch does not hash to its name: not taken"
                )
                continue
            tmp.seek(0)
            c.blobs.put_stream(tmp)
    return added, ids
