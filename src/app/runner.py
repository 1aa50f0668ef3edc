"""`coord run`'s protocol: claim the worker, run the child under a supervisor
(coord.app.supervisor) while a heartbeat thread keeps the worker's liveness real
(coord.app.heartbeats: its own Coord, since SQLite connections are per thread, so a store
held locked never stalls the output pump), then record the outcome (done or fail), from
the main thread, after the beat thread stopped.
"""

import os
import signal

import msgspec

from ..events.errors import CoordError, Refused
from ..projections.workers import ACTIVE
from .heartbeats import Beats
from .lifecycle import act, request_result, settle_request, with_args, worker
from .supervisor import DEFAULT_GRACE, Supervisor, check_command, exit_status, signal_name

TAIL_LINES = 20  # lines of output recorded in a fail event
TAIL_MAX_BYTES = 2048  # and at most this many bytes of them, so the event stays inline (under blob_threshold)


# Secrets libpq reads from the environment: never handed to `coord run`'s child (its own
# coord commands authenticate through ~/.pgpass or a service file, as the docs say).
CHILD_SECRETS = ("PGPASSWORD", "PGSSLPASSWORD")


def output_tail_payload(tail: bytes, total: int, blobs=None) -> dict:
    """The child's output as payload fields for the fail event.

    Inline, so `show` and `log` need nothing else: `tail` (the last TAIL_LINES lines, at
    most TAIL_MAX_BYTES bytes, keeping the event under the blob threshold), `output_bytes`
    (all the child printed) and, when the lines were cut, `tail_truncated` (bytes cut).
    When more output was kept than fits inline and a blob store is given, `output` refers
    to a blob of the last TAIL_KEEP bytes (`coord blob cat REF`), written now, before the
    write transaction (an orphan blob is harmless)."""
    lines = tail.decode("utf-8", "replace").splitlines()[-TAIL_LINES:]
    raw = "\n".join(lines).encode()
    out = {"tail": raw.decode(), "output_bytes": total}
    if len(raw) > TAIL_MAX_BYTES:
        out["tail"] = raw[-TAIL_MAX_BYTES:].decode("utf-8", "ignore")
        out["tail_truncated"] = len(raw) - TAIL_MAX_BYTES
    if blobs is not None and len(tail) > len(out["tail"].encode()) + 1:
        ref, size = blobs.put_bytes(bytes(tail))
        out["output"] = {"$blob": ref, "size": size, "name": "output-tail.txt", "first_byte": total - size}
    return out


def last_line(tail: bytes, width: int = 200) -> str:
    for line in reversed(tail.decode("utf-8", "replace").splitlines()):
        if line.strip():
            s = line.strip()
            return s if len(s) <= width else s[: width - 1] + "…"
    return ""


class RunResult(msgspec.Struct):
    worker: str
    exit: int  # what `coord run` exits with
    returncode: int | None = None  # the child's, as subprocess reports it (-N: signal N)
    signal: str | None = None  # the signal that ended the child
    ended_by: str | None = None  # idle-timeout, timeout, lost-claim
    signals: list = []  # signals coord run received and forwarded
    duration_s: float = 0.0
    beats: int = 0
    state: str | None = None  # the worker's state after the outcome was recorded
    event: str | None = None  # the outcome event
    lost_claim: str | None = None
    record_error: str | None = None  # the outcome could not be recorded (why)
    recorded_by_child: bool = False  # the child ran `coord done`/`fail`/`release` itself
    conflict: str | None = None  # done's rebase conflicted: the worker is CONFLICTED
    done_refused: str | None = None  # exit 0, but done was refused (why): FAILED
    heartbeat_error: str | None = None  # the heartbeat thread failed (why): child ended
    repeat: bool = False  # a --request-id used before: the first run's result
    attempt: int | None = None  # the attempt this run opened or adopted
    attempt_of: str | None = None


def run_args(
    wid: str,
    cmd: list[str],
    interval: float | None = None,
    idle_timeout: float | None = None,
    timeout: float | None = None,
    grace: float = DEFAULT_GRACE,
    summary: str | None = None,
    here: bool = False,
) -> dict:
    """The arguments of a run, as compared for --request-id (a default counts as absent)."""
    return {
        "worker": wid,
        "cmd": list(cmd),
        "interval": interval,
        "idle_timeout": idle_timeout,
        "timeout": timeout,
        "grace": None if grace == DEFAULT_GRACE else grace,
        "summary": summary,
        "here": here,
    }


def run_worker(
    coord,
    wid: str,
    cmd: list[str],
    actor: str,
    interval: float,
    idle_timeout: float | None = None,
    timeout: float | None = None,
    grace: float = DEFAULT_GRACE,
    summary: str | None = None,
    out=None,
    err=None,
    say=None,
    env: dict | None = None,
    here: bool = False,
    request_id: str | None = None,
) -> RunResult:
    """Claim `wid` (start), run CMD under supervision, record the outcome (done/fail).

    The child runs in the worker's worktree when it has one (unless `here`), else in the
    current directory.

    A request id belongs to the command `run`: the claim stores its result under it, and
    the run's own result (its exit status included) replaces it once the outcome is
    recorded. A repeat after that returns the first result without running CMD again; a
    repeat with other arguments is refused (exit 4). A plain-str key is compared with
    run_args() of this call; the CLI attaches the arguments as the user gave them."""
    say = say or (lambda text: None)
    if request_id is not None and getattr(request_id, "args", None) is None:
        request_id = with_args(
            request_id, **run_args(wid, cmd, interval, idle_timeout, timeout, grace, summary, here)
        )
    first = request_result(coord.store.reader, actor, request_id, "run")
    if isinstance(first, dict) and "exit" in first:
        res = msgspec.convert(first, RunResult)
        res.repeat = True
        return res
    env = dict(os.environ if env is None else env)
    for name in CHILD_SECRETS:  # the store's credentials are coord's, not the agent's
        env.pop(name, None)
    env.update(COORD_HOME=str(coord.home.path), COORD_AGENT=actor, COORD_WORKER=wid)
    view = worker(coord, wid)
    cwd = None
    if view.branch and not here:
        from .gitremote import check_out_here

        check_out_here(coord, view)  # a shared store: the branch and a worktree on this machine
        from .worktrees import worktree_path

        cwd = worktree_path(coord, view)  # where git has its branch, never a recorded path
    check_command(cmd, env, cwd)
    from .runclaim import claim as claim_worker

    claim, stamp, adopted = claim_worker(coord, wid, actor, interval, request_id)
    if stamp is None:  # this request id's claim was made before: by a run that is over?
        v = worker(coord, wid)
        if v.state not in ACTIVE or v.holder != actor:
            # This key's claim was made by a run that ended before it stored its result
            # (killed between the outcome and the request id's update, say).
            return _result_of_outcome(v, actor, request_id)
        claim, stamp, adopted = claim_worker(coord, wid, actor, interval)  # adopt, if silent
    n = f" (attempt {stamp['attempt']})" if stamp else ""
    if adopted:
        say(f"{wid}: already started by {actor}; running it, heartbeat every {interval:g}s; adopted{n}")
    else:
        say(f"{wid}: started as {actor}; heartbeat every {interval:g}s{n}")
    if stamp:
        env["COORD_ATTEMPT"] = str(stamp["attempt"])
    res = _supervise(
        coord,
        wid,
        cmd,
        actor,
        interval,
        idle_timeout,
        timeout,
        grace,
        summary,
        out,
        err,
        say,
        env,
        cwd,
        stamp,
    )
    res.attempt, res.attempt_of = stamp.get("attempt"), stamp.get("attempt_of")
    try:
        settle_request(coord.store, actor, request_id, "run", res)
    except CoordError as e:  # the outcome is recorded; a repeat reads it back from there
        say(f"request id {str(request_id)!r} not updated: {e.message}")
    return res


def _result_of_outcome(v, actor: str, request_id) -> RunResult:
    """The first result of a run that recorded its outcome but not its request id's
    result, read back from the outcome event; refused when the worker has moved on."""
    import json

    p = json.loads(v.last_args)
    code = None
    if v.last_from == actor and v.last_type in ("worker.done", "worker.conflicted"):
        code = 0
    elif v.last_from == actor and v.last_type == "worker.failed" and ("exit" in p or "signal" in p):
        if p.get("ended_by") in ("timeout", "idle-timeout"):
            code = 124
        elif p.get("ended_by") == "heartbeat-failed":
            code = 1
        elif "signal" in p and hasattr(signal, p["signal"]):
            code = 128 + int(getattr(signal, p["signal"]))
        elif isinstance(p.get("exit"), int):
            code = p["exit"]
    if code is None:
        raise Refused(
            f"request id {str(request_id)!r}: the run of {v.worker} it claimed ended without a result "
            f"({v.worker} is {v.state}, last by {v.last_from}); the command was not run again"
        )
    return RunResult(v.worker, code, state=v.state, event=v.last_event, repeat=True)


def _supervise(
    coord, wid, cmd, actor, interval, idle_timeout, timeout, grace, summary, out, err, say, env, cwd, stamp
):
    def moved_on_by_child():
        """The worker left WORKING/CONFLICTED by this actor's own action in this attempt
        (the child ran `coord done`, `fail` or `release` itself): its outcome stands."""
        v = worker(coord, wid)
        ours = not stamp or v.attempt_of == stamp["attempt_of"]
        return v if ours and v.state not in ACTIVE and v.last_from == actor else None

    def claim_lost(msg):
        if moved_on_by_child() is not None:
            return None
        v = worker(coord, wid)
        return f"{wid} is {v.state}, last by {v.last_from}" if v.state not in ACTIVE else msg

    beats = Beats(coord, wid, actor, interval, say, claim_lost, stamp)
    sup = Supervisor(
        cmd, env, idle_timeout, timeout, grace, out, err, say, beats, min(1.0, interval / 4), cwd
    )
    try:
        returncode, duration = sup.run()
    except OSError as e:
        if sup.proc is not None:
            raise
        # exec failed although check_command passed: the file changed in between, or a
        # format the check cannot see (another architecture, say). The claim is already
        # recorded, so the failure is too.
        code = 127 if isinstance(e, FileNotFoundError) else 126  # as shells report them
        res = RunResult(wid, code, returncode=code, ended_by="exec-failed")
        try:
            r = act(
                coord,
                "fail",
                wid,
                {"reason": f"cannot run {cmd[0]}: {e.strerror}", "exit": code, **stamp},
                actor=actor,
            )
            res.state, res.event = r.state, r.event
        except CoordError as ce:
            res.record_error = ce.message
        return res

    # A child ended by --timeout/--idle-timeout failed, whatever it exited with: coord run
    # exits 124, as timeout(1) does. One ended because coord run could not keep beating
    # for it exits 1 (coord's own unexpected error).
    timed_out = sup.ended_by in ("timeout", "idle-timeout")
    beat_failed = sup.ended_by == "heartbeat-failed"
    res = RunResult(
        wid,
        124 if timed_out else 1 if beat_failed else exit_status(returncode),
        returncode=returncode,
        signal=signal_name(-returncode) if returncode < 0 else None,
        ended_by=sup.ended_by,
        signals=[signal_name(s) for s in sup.received],
        duration_s=round(duration, 3),
        beats=beats.beats,
        lost_claim=beats.lost_claim,
        heartbeat_error=beats.failed,
    )
    if beats.lost_claim:
        return res  # not ours any more: the new state says what happened
    own = moved_on_by_child()
    if own is not None:
        res.state, res.event, res.recorded_by_child = own.state, own.last_event, True
        return res
    tail = bytes(sup.tail)
    facts = {"exit": returncode if returncode >= 0 else None, "duration_s": res.duration_s}
    if res.signal:
        facts["signal"] = res.signal
    if res.ended_by:
        facts["ended_by"] = res.ended_by
    if res.signals:
        facts["signals"] = res.signals
    facts = {k: v for k, v in facts.items() if v is not None}
    facts.update(stamp)  # every event the run appends carries its attempt
    try:
        if returncode == 0 and not timed_out and not beat_failed:
            text = (
                summary
                or last_line(bytes(sup.stdout_tail))
                or last_line(tail)
                or f"{os.path.basename(cmd[0])} exited 0"
            )
            r = _record_done(coord, wid, {"summary": text, **facts}, actor, res)
        else:
            r = act(
                coord,
                "fail",
                wid,
                {
                    "reason": fail_reason(res, idle_timeout, timeout, tail),
                    **facts,
                    **output_tail_payload(tail, sup.output_bytes, coord.blobs),
                },
                actor=actor,
            )
        res.state, res.event = r.state, r.event
    except CoordError as e:
        res.record_error = e.message
    return res


def _record_done(coord, wid, payload, actor, res: RunResult):
    """`done` as `coord done` does it: with a branch, rebase onto its base first
    (coord.app.gitsteps). A rebase conflict is recorded there (CONFLICTED: the agent resolves,
    then runs `coord done`). When done is refused otherwise (uncommitted changes, say), the
    worker is failed with the reason, so it does not sit WORKING without a heartbeat."""
    if not worker(coord, wid).branch:
        return act(coord, "done", wid, payload, actor=actor)
    from .gitrepo import Conflict
    from .gitsteps import done as git_done

    try:
        return git_done(coord, wid, payload, actor)
    except Conflict as e:
        res.conflict = e.message
        return _Recorded(worker(coord, wid))
    except Refused as e:
        res.done_refused = e.message
        return act(
            coord,
            "fail",
            wid,
            {
                "reason": f"exit 0, but done was refused: {e.message}",
                **{k: v for k, v in payload.items() if k != "summary"},
            },
            actor=actor,
        )


class _Recorded:
    """The state a git step already recorded (a conflict), shaped like a Result."""

    def __init__(self, view):
        self.state, self.event = view.state, view.last_event


def fail_reason(res: RunResult, idle_timeout, timeout, tail: bytes) -> str:
    if res.ended_by == "idle-timeout":
        why = f"no output for {idle_timeout:g}s (--idle-timeout); "
    elif res.ended_by == "timeout":
        why = f"ran longer than {timeout:g}s (--timeout); "
    elif res.ended_by == "heartbeat-failed":
        why = f"coord run could not beat ({res.heartbeat_error}); "
    elif res.signals:
        why = f"coord run got {', '.join(res.signals)}; "
    else:
        why = ""
    how = f"killed by {res.signal}" if res.signal else f"exit {res.returncode}"
    line = last_line(tail)
    return why + how + (f": {line}" if line else "")
