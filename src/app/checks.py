"""`coord check`: run a check on a worker's commit and record `check.passed` or
`check.failed` with the command (argv), the commit, the exit status, the duration and the
output (a blob). Also what `merge` and `queue` read back: the required checks
(`required_checks`, each a `check.NAME` setting) and whether they passed on a head
(coord.projections.checks decides, purely). A check never runs inside a write transaction
or under the repository's git lock: it may run for `check_timeout` seconds.
"""

import os
from contextlib import contextmanager

from ..events.check_settings import PREFIX, check_name_problem, required_names, split_command
from ..events.envelope import Envelope, decode
from ..events.errors import CoordError, Refused, UnknownWorker, UsageError
from ..events.files import ensure_dir_in_home
from ..events.records import EventQuery, TypeFilter
from ..projections import board
from ..projections.checks import CHECK_TYPES, gate, run_of
from .lifecycle import need_actor, remember_request, request_result, worker
from .supervisor import CommandNotExecutable, CommandNotFound, Supervisor, check_command, exit_status
from .worktrees import guard, need_repo, quietly

TAIL_LINES, TAIL_MAX_BYTES = 20, 2048  # inline in the event (the whole output is a blob)
TIMED_OUT = 124  # the exit status of a check stopped at check_timeout, as timeout(1) has it


# --- reading ---------------------------------------------------------------------------
def runs(reader, wid: str, blobs=None) -> list[dict]:
    """The check runs recorded for a worker, in log order."""
    from ..events.blobs import readable

    rows = reader.events(EventQuery(types=TypeFilter(CHECK_TYPES), to=wid))
    return [run_of(readable(decode(r.body), blobs), r.id) for r in rows]


def runs_by_worker(reader, blobs=None) -> dict[str, list[dict]]:
    """Every worker's check runs (one query, for the board)."""
    from ..events.blobs import readable

    out: dict[str, list[dict]] = {}
    for r in reader.events(EventQuery(types=TypeFilter(CHECK_TYPES))):
        out.setdefault(r.to, []).append(run_of(readable(decode(r.body), blobs), r.id))
    return out


def command_of(config: dict, name: str) -> list[str] | None:
    text = config.get(PREFIX + name)
    return split_command(text) if text else None


def required(config: dict) -> dict[str, list[str]]:
    """The required checks, name → argv now. A name with no check.NAME is exit 2."""
    out = {}
    for name in required_names(config.get("required_checks", "")):
        argv = command_of(config, name)
        if argv is None:
            raise UsageError(
                f"required_checks names {name!r}, but no check.{name} is set: "
                f"`coord config check.{name} COMMAND` or take it out of required_checks"
            )
        out[name] = argv
    return out


def merge_gate(c, view) -> None:
    """`merge`: each required check passed on the head `done` recorded (exit 4 naming the
    missing or failing ones)."""
    need = required(c.home.config)
    if not need:
        return
    head = view.info.get("head")  # recorded by done; approve keeps it
    problems = gate(runs(c.store.reader, view.worker, c.blobs), head, need)
    if problems:
        raise ChecksNotPassed(
            f"cannot merge {view.worker}: required checks have not passed on the head done "
            f"recorded: {'; '.join(problems)} (run `coord check {view.worker} NAME`, or let "
            "`coord queue` run them)",
            checks=problems,
        )


class ChecksNotPassed(Refused):
    code = "checks_not_passed"


class Interrupted(CoordError):
    """A check stopped by a signal sent to coord itself: not a verdict, not recorded."""

    code = "interrupted"

    def __init__(self, message: str, exit: int = 130):
        super().__init__(message)
        self.exit_code = exit


# --- running ---------------------------------------------------------------------------
@contextmanager
def scratch(c, repo, label: str, commit: str):
    """A detached worktree at `commit` under .coord/worktrees/ (outside every person's
    tree), for one label at a time: a leftover of a crashed run is removed first."""
    path = c.home.path / "worktrees" / f".scratch-{label}"
    quietly(repo.remove_worktree, path, True)
    ensure_dir_in_home(path.parent)
    repo.git("worktree", "add", "--quiet", "--detach", str(path), commit, what=f"creating worktree {path}")
    try:
        yield path
    finally:
        quietly(repo.remove_worktree, path, True)


def scratch_at(c, repo, label: str, commit: str):
    """A detached worktree at `commit` kept between uses (the queue: moving it to the next
    merge commit rewrites only the files that differ, where a new worktree would check
    out the whole tree); anything a check left in it is cleaned away first."""
    path = c.home.path / "worktrees" / f".scratch-{label}"
    w = repo.worktree_at(path) if path.exists() else None
    if w is not None and not w["prunable"] and w["branch"] is None:
        try:
            repo.git("checkout", "--quiet", "--detach", "--force", commit, cwd=path)
            repo.git("clean", "--quiet", "-ffdx", cwd=path)
            return path
        except Exception:
            pass
    quietly(repo.remove_worktree, path, True)
    ensure_dir_in_home(path.parent)
    repo.git("worktree", "add", "--quiet", "--detach", str(path), commit, what=f"creating worktree {path}")
    return path


def drop_scratch(c, repo, label: str) -> None:
    quietly(repo.remove_worktree, c.home.path / "worktrees" / f".scratch-{label}", True)


def run_command(argv, cwd, timeout: float, out=None, err=None) -> dict:
    """Run one check command to its end: the facts a check event records (its output
    tail, whole, under `$tail`: the recorder turns it into a blob)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COORD_WORKER", "COORD_ATTEMPT")}
    try:
        check_command(list(argv), env, cwd=str(cwd))
    except (CommandNotFound, CommandNotExecutable) as e:
        msg = (str(e) + "\n").encode()
        return {"exit": e.exit_code, "duration_s": 0.0, "$tail": msg, "output_bytes": len(msg)}
    sup = Supervisor(list(argv), env, timeout=timeout, out=out, err=err, cwd=str(cwd), grace=5.0)
    code, duration = sup.run()
    if sup.received:  # we were told to stop (Ctrl-C, SIGTERM): no verdict on the code
        sig = sup.received[0]
        raise Interrupted(
            f"interrupted by signal {sig} while running {argv[0]}: nothing recorded", exit=128 + sig
        )
    facts = {"exit": exit_status(code), "duration_s": round(duration, 3)}
    if sup.ended_by == "timeout":
        facts.update(exit=TIMED_OUT, timed_out=True)
    facts.update({"$tail": bytes(sup.tail), "output_bytes": sup.output_bytes})
    return facts


def record(c, wid: str, actor: str, name: str, argv, facts: dict, request_id=None, args=None) -> dict:
    """Append check.passed or check.failed (the output written as a blob first)."""
    tail = facts.pop("$tail", b"")
    payload = {"name": name, "command": list(argv), **facts}
    lines = tail.decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
    payload["tail"] = "\n".join(lines).encode()[-TAIL_MAX_BYTES:].decode("utf-8", "ignore")
    if tail:
        ref, size = c.blobs.put_bytes(tail)
        payload["output"] = {"$blob": ref, "size": size, "name": f"check-{name}.txt"}
    etype = "check.passed" if facts.get("exit") == 0 else "check.failed"
    stored = c.blobs.claim_check(payload, c.home.config["blob_threshold"])

    def do(tx):
        if board.load_tx(tx, wid) is None:
            raise UnknownWorker(f"unknown worker {wid!r}")
        ev = tx.append(Envelope(tx.next_ts(), actor, wid, etype, stored))
        result = {"worker": wid, "check": name, "type": etype, "event": ev.id, "seq": ev.seq, **facts}
        remember_request(tx, actor, request_id, result, "check", args)
        return result

    return c.store.transact(do)


def check(c, wid: str, name: str, argv=None, actor=None, request_id=None, out=None, err=None) -> dict:
    """`coord check ID NAME [-- CMD…]`: run it on the worker's commit (in its worktree, or
    a scratch one at its branch tip when it has none) and record the outcome."""
    actor = need_actor(c, actor)
    why = check_name_problem(name)
    if why:
        raise UsageError(why)
    if not argv:
        argv = command_of(c.home.config, name)
        if argv is None:
            raise UsageError(f"no check {name!r}: set `coord config check.{name} COMMAND`, or give -- CMD")
    args = {"worker": wid, "name": name, "command": list(argv)}
    earlier = request_result(c.store.reader, actor, request_id, "check", args)
    if earlier is not None:
        return {**earlier, "repeat": True}
    view = worker(c, wid)
    if not view.branch:
        raise Refused(f"{wid} has no branch: a check runs on a commit (spawn it in a git repository)")
    repo = need_repo(c, wid)
    branch = guard(c, view)
    tip = repo.need_branch(branch, "worker")
    where = repo.checked_out_at(branch)
    timeout = c.home.config["check_timeout"]
    if where is not None:
        facts = {"commit": repo.out("rev-parse", "HEAD", cwd=where)}
        facts["dirty"] = bool(repo.dirty_files(where))
        facts.update(run_command(argv, where, timeout, out, err))
    else:
        with scratch(c, repo, f"check-{wid}-{os.getpid()}", tip) as path:
            facts = {"commit": tip, "dirty": False, **run_command(argv, path, timeout, out, err)}
    facts["head"] = facts["commit"]
    if not facts["dirty"]:
        del facts["dirty"]
    return record(c, wid, actor, name, argv, facts, request_id, args)


# --- the board ---------------------------------------------------------------------------
def summary(c, view, worker_runs=None) -> dict:
    """A worker's checks as `show` and `status --json` give them: the latest run of each
    (`runs`), a word per check (`status`: passed, failed, stale, missing), and for an
    APPROVED or IN_REVIEW worker what would stop `merge` (`blocking`)."""
    from ..projections.checks import latest, status_of

    rs = worker_runs if worker_runs is not None else runs(c.store.reader, view.worker, c.blobs)
    try:
        need = required(c.home.config)
    except UsageError:
        need = {}  # `merge` says what is wrong with the setting
    head = view.info.get("head") if view.state in ("IN_REVIEW", "APPROVED") else None
    out = {"runs": list(latest(rs).values()), "status": status_of(rs, head, need if head else {})}
    if head and need:
        out["blocking"] = gate(rs, head, need)
    return out


def add_check_status(c, items: list[dict]) -> None:
    """`checks` ({name: word}) on each board item that has any check run or requirement."""
    from ..projections.checks import status_of

    try:
        need = required(c.home.config)
    except UsageError:
        need = {}
    every = runs_by_worker(c.store.reader, c.blobs)
    for d in items:
        rs = every.get(d["worker"], [])
        if not rs and not (need and d["state"] in ("IN_REVIEW", "APPROVED")):
            continue
        head = (d.get("info") or {}).get("head") if d["state"] in ("IN_REVIEW", "APPROVED") else None
        d["checks"] = status_of(rs, head, need if head else {})
