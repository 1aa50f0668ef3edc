"""`coord overlap`: which live workers would conflict, with each other and with their
base, before either is done. Each pair of branch tips is merged in memory (`git
merge-tree --write-tree`: no working tree, no ref touched); a worktree's uncommitted
tracked changes are folded in through a throwaway copy of its index (the worktree and its
index are only read), and files that conflict only because of them are labelled so.
Results are facts about commits, cached per pair (in the repository's common git
directory, `coord-overlap.json`): a rerun after one head moved merges only that head's
pairs. `--notify` sends `msg.coord.overlap` to both workers once per pair of heads.
"""

import json
import os
import tempfile
from pathlib import Path

from ..events.envelope import Envelope
from ..projections.board import decode_view
from ..projections.workers import FAILED, NON_TERMINAL
from .gitrepo import GitError, run
from .lifecycle import need_actor, remember_request, request_result
from .worktrees import home_repo, worker_branch

CACHE = "coord-overlap.json"
NOTIFY_SCOPE = "coord:overlap"  # request ids that make --notify once per pair of heads
LIVE = NON_TERMINAL - {FAILED}


def live_workers(c, repo) -> list[dict]:
    """Live workers with a branch that exists: worker, branch, base, head, and `tree` /
    `work` (the tree and a commit of it) when its worktree has uncommitted tracked changes."""
    out = []
    by_branch = {w["branch"]: w for w in repo.worktrees() if w["branch"] and not w["prunable"]}
    tips = dict(
        line.split(" ", 1)[::-1]
        for line in repo.out(
            "for-each-ref", "--format=%(objectname) %(refname:lstrip=2)", "refs/heads/"
        ).splitlines()
    )
    for row in c.store.reader.views(states=LIVE):
        v = decode_view(row.view)
        if not v.branch:
            continue
        try:
            branch = worker_branch(v)
        except Exception:
            continue
        head = tips.get(branch)
        if head is None:
            continue
        d = {"worker": v.worker, "branch": branch, "base": v.base, "head": head, "holder": v.holder}
        wt = by_branch.get(branch)
        if wt is not None:
            d.update(_uncommitted(repo, Path(wt["path"]), head))
        out.append(d)
    return out


def _uncommitted(repo, path: Path, head: str) -> dict:
    """The worktree's tracked changes as a tree and a commit on its head ({} when none),
    computed in a copy of its index: nothing in the worktree is written."""
    try:
        # One read-only look first (no optional locks: the index is not refreshed).
        clean = _git(
            ["--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=no"], path, None
        )
        if not clean:
            return {}
        index = Path(repo.out("rev-parse", "--path-format=absolute", "--git-path", "index", cwd=path))
        with tempfile.TemporaryDirectory(prefix="coord-overlap-") as tmp:
            copy = Path(tmp) / "index"
            if index.exists():
                copy.write_bytes(index.read_bytes())
            env = {"GIT_INDEX_FILE": str(copy)}
            _git(["add", "-u"], path, env)
            tree = _git(["write-tree"], path, env)
        if tree == repo.out("rev-parse", head + "^{tree}"):
            return {}
        work = repo.out("commit-tree", tree, "-p", head, "-m", "coord overlap: uncommitted changes")
        return {"tree": tree, "work": work}
    except (GitError, OSError):
        return {}


def _git(args, cwd, env) -> str:
    return run(args, cwd, what=f"git {args[0]} in {cwd}", env=env).stdout.strip()


class Cache:
    """Conflicting files per pair of commits (a fact about the commits: never stale)."""

    def __init__(self, repo):
        self.path = repo.common_dir / CACHE
        try:
            self.old = json.loads(self.path.read_text())
            if not isinstance(self.old, dict):
                self.old = {}
        except (OSError, ValueError):
            self.old = {}
        self.used: dict = {}
        self.hits = self.misses = 0

    def files(self, repo, a: str, b: str, key: str) -> list[str]:
        hit = self.old.get(key)
        if isinstance(hit, list) and all(isinstance(f, str) for f in hit):
            self.hits += 1
        else:
            self.misses += 1
            hit = repo.merge_tree(a, b)[1]
        self.used[key] = hit
        return hit

    def save(self) -> None:
        if self.used == self.old:
            return
        tmp = self.path.with_name(f"{CACHE}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(self.used, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache: the next run computes again


def _compare(cache, repo, x: dict, y: dict) -> dict | None:
    """{files, uncommitted} when x and y would conflict, else None. x/y: head, and tree +
    work when uncommitted changes exist."""
    k = "|".join(sorted((x["head"], y["head"])))
    files = cache.files(repo, x["head"], y["head"], k)
    extra = []
    if x.get("work") or y.get("work"):
        ka = "|".join(sorted((f"{x['head']}:{x.get('tree', '')}", f"{y['head']}:{y.get('tree', '')}")))
        both = cache.files(repo, x.get("work") or x["head"], y.get("work") or y["head"], ka)
        extra = sorted(set(both) - set(files))
    if not files and not extra:
        return None
    return {"files": files, "uncommitted": extra}


def overlaps(c) -> dict:
    """Every pair of live workers, and each against its base: what would conflict."""
    repo = home_repo(c)
    if repo is None:
        return {"workers": [], "pairs": [], "bases": [], "checked": 0, "cached": 0}
    ws = live_workers(c, repo)
    tips = {w["branch"]: w["head"] for w in ws}
    for w in ws:
        if w["base"] and w["base"] not in tips:
            tips[w["base"]] = repo.branch_tip(w["base"])
    cache = Cache(repo)
    pairs, bases = [], []
    for i, a in enumerate(ws):
        for b in ws[i + 1 :]:
            hit = _compare(cache, repo, a, b)
            if hit:
                pairs.append({"a": a["worker"], "b": b["worker"], "heads": [a["head"], b["head"]], **hit})
        base_tip = tips.get(a["base"]) if a["base"] else None
        if base_tip and base_tip != a["head"]:
            hit = _compare(cache, repo, a, {"head": base_tip})
            if hit:
                bases.append(
                    {"worker": a["worker"], "base": a["base"], "heads": [a["head"], base_tip], **hit}
                )
    cache.save()
    workers = [
        {"worker": w["worker"], "branch": w["branch"], "head": w["head"], "uncommitted": bool(w.get("work"))}
        for w in ws
    ]
    return {
        "workers": workers,
        "pairs": pairs,
        "bases": bases,
        "checked": cache.hits + cache.misses,
        "cached": cache.hits,
        "_holders": {w["worker"]: w["holder"] for w in ws},
    }


def notify(c, result: dict, actor=None) -> list[dict]:
    """msg.coord.overlap to each worker of a conflicting pair (and to a worker that
    conflicts with its base), once per pair of heads; reaches whoever holds the worker."""
    actor = need_actor(c, actor)
    holders = result.get("_holders", {})
    todo = []
    for p in result["pairs"]:
        for me, other, mine, theirs in (
            (p["a"], p["b"], *p["heads"]),
            (p["b"], p["a"], *reversed(p["heads"])),
        ):
            todo.append((me, {"worker": me, "with": other, "heads": [mine, theirs], **_facts(p)}))
    for b in result["bases"]:
        todo.append(
            (b["worker"], {"worker": b["worker"], "base": b["base"], "heads": b["heads"], **_facts(b)})
        )
    sent = []
    for wid, payload in todo:
        if not holders.get(wid):
            continue
        key = f"{wid}>{payload.get('with') or 'base:' + payload['base']}@{'|'.join(payload['heads'])}"

        def do(tx, wid=wid, payload=payload, key=key):
            if request_result(tx, NOTIFY_SCOPE, key, "overlap", None) is not None:
                return None
            ev = tx.append(Envelope(tx.next_ts(), actor, wid, "msg.coord.overlap", payload))
            remember_request(tx, NOTIFY_SCOPE, key, {"event": ev.id}, "overlap", None)
            return {"to": wid, "event": ev.id}

        r = c.store.transact(do)
        if r is not None:
            sent.append(r)
    return sent


def _facts(p: dict) -> dict:
    return {"files": p["files"], "uncommitted": p["uncommitted"]}
