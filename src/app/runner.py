"""`coord run`: supervise an agent's process and keep its worker's liveness real.

Three parties, no shared mutable state between threads:
- the main thread runs the child, pumps its stdout/stderr to ours as they arrive (so it
  knows when the child went silent), enforces --idle-timeout/--timeout, forwards signals;
- a heartbeat thread owns its own Coord (SQLite connections are per thread) and appends
  `worker.heartbeat` every interval, so a store held locked never stalls the output pump;
- they talk through two queues: main → beat ("output", t) / ("note", text) / ("stop", None),
  beat → main ("refused", message) / ("error", message).
The outcome (done or fail) is appended by the main thread after the beat thread stopped.
"""

import os
import queue
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time

import msgspec

from ..events.errors import CoordError, Refused, UsageError
from ..events.files import USER_UMASK
from ..projections.workers import ACTIVE

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A forwarded SIGTERM/SIGHUP means "stop": after the grace period the child is SIGKILLed.
# A forwarded SIGINT only interrupts (agents use it to cancel one step), so it never escalates.
ESCALATE = (signal.SIGTERM, signal.SIGHUP)
TAIL_KEEP = 256 * 1024  # bytes of recent output kept for the fail event (a blob)
TAIL_LINES = 20  # lines of output recorded in a fail event
TAIL_MAX_BYTES = 2048  # and at most this many bytes of them (until blobs exist)
DRAIN_AFTER_EXIT = 0.5  # s to keep reading pipes that grandchildren hold open
DEFAULT_GRACE = 5.0


def signal_name(n: int) -> str:
    try:
        return signal.Signals(n).name
    except ValueError:
        return f"signal {n}"


def exit_status(returncode: int) -> int:
    """A child's status as a shell reports it: 128+N for a child killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


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


class CommandNotFound(CoordError):
    """CMD (or its #! interpreter) does not exist: exit 127, as shells, env and timeout
    report it."""

    exit_code = 127
    code = "command_not_found"


class CommandNotExecutable(CoordError):
    """CMD exists but cannot be executed (a directory, no execute permission, not an
    executable format): exit 126."""

    exit_code = 126
    code = "not_executable"


def check_command(cmd: list[str], env: dict, cwd: str | None = None) -> str:
    """Fail before claiming when CMD cannot be run (exit 127 or 126, nothing appended).
    Checks what exec would: the file (a relative path with a slash is looked up from the
    directory the child will run in, a bare name on PATH), its execute permission, and its
    format (a #! line naming an interpreter that exists, or an ELF binary)."""
    if not cmd:
        raise UsageError("no command: coord run [ID] -- CMD [ARGS…]")
    name = cmd[0]
    what = f"cannot run {name!r}" + (f" (from {cwd})" if cwd and "/" in name else "")
    if "/" in name:
        path = os.path.join(cwd or os.getcwd(), name)
        if not os.path.exists(path):
            raise CommandNotFound(f"{what}: no such file")
    else:
        search = env.get("PATH", os.defpath)
        path = shutil.which(name, path=search)
        if path is None:
            there = [
                os.path.join(d, name)
                for d in search.split(os.pathsep)
                if os.path.isfile(os.path.join(d or ".", name))
            ]
            if there:
                raise CommandNotExecutable(f"{what}: {there[0]} is not executable")
            raise CommandNotFound(f"{what}: command not found on PATH")
    if os.path.isdir(path):
        raise CommandNotExecutable(f"{what}: {path} is a directory")
    if not os.access(path, os.X_OK):
        raise CommandNotExecutable(f"{what}: {path} is not executable (permission denied)")
    _check_format(what, path)
    return path


def _check_format(what: str, path: str) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError:
        return  # execute-only: exec will tell
    if head.startswith(b"#!"):
        words = head[2:].split(b"\n", 1)[0].split()
        interp = os.fsdecode(words[0]) if words else ""
        if not interp:
            raise CommandNotExecutable(f"{what}: its #! line names no interpreter")
        if os.path.isabs(interp):
            if not os.path.exists(interp):
                raise CommandNotFound(f"{what}: its interpreter {interp} (#! line) does not exist")
            if os.path.isdir(interp) or not os.access(interp, os.X_OK):
                raise CommandNotExecutable(f"{what}: its interpreter {interp} (#! line) is not executable")
        return
    if sys.platform == "linux" and not head.startswith(b"\x7fELF") and not _binfmt_misc_in_use():
        raise CommandNotExecutable(f"{what}: not an executable format (a script needs a #! line)")


def _binfmt_misc_in_use() -> bool:
    """Linux runs other formats when binfmt_misc has entries: then exec decides."""
    try:
        names = os.listdir("/proc/sys/fs/binfmt_misc")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return bool(set(names) - {"register", "status"})


def _die_with_parent():  # runs in the child between fork and exec
    """Linux: the child gets SIGTERM if `coord run` dies (e.g. SIGKILLed), so no orphan
    keeps working on a worker that is about to be reaped."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds from its own store connection until told to stop."""

    def __init__(
        self, open_coord, wid: str, interval: float, started: float, inbox: queue.Queue, outbox: queue.Queue
    ):
        """open_coord() -> Coord is called in this thread (its own SQLite connection)."""
        super().__init__(name="coord-heartbeat", daemon=True)
        self.open_coord, self.wid, self.interval = open_coord, wid, interval
        self.started, self.inbox, self.outbox = started, inbox, outbox
        self.beats = 0

    def run(self):
        try:
            self._beat()
        except BaseException as e:  # never die unnoticed: the main thread ends the run
            self.outbox.put(("crashed", getattr(e, "message", None) or f"{type(e).__name__}: {e}"))

    def _beat(self):
        with self.open_coord() as c:  # a store that cannot be opened here is fatal too
            last_output = self.started
            next_beat = time.monotonic()  # beat at once: it declares the interval
            while True:
                try:
                    kind, value = self.inbox.get(timeout=max(0.0, next_beat - time.monotonic()))
                except queue.Empty:
                    kind, value = "beat", None
                if kind == "stop":
                    return
                if kind == "output":
                    last_output = max(last_output, value)
                    continue
                now = time.monotonic()
                payload = {"interval": self.interval, "idle_s": round(now - last_output, 1)}
                if kind == "note":
                    payload["note"] = value
                try:
                    c.act("heartbeat", self.wid, payload)
                    self.beats += 1
                except Refused as e:  # the worker was taken away (reaped, canceled, forced)
                    self.outbox.put(("refused", e.message))
                    return
                except CoordError as e:  # busy: try again at the next beat
                    self.outbox.put(("error", e.message))
                next_beat = now + self.interval


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


class Supervisor:
    """Runs one child to its end. Output goes to `out`/`err` (binary files) as it comes."""

    def __init__(
        self,
        cmd,
        env,
        interval,
        idle_timeout=None,
        timeout=None,
        grace=DEFAULT_GRACE,
        out=None,
        err=None,
        say=None,
        claim_lost=None,
        cwd=None,
    ):
        self.cmd, self.env, self.interval, self.cwd = cmd, env, interval, cwd
        self.idle_timeout, self.timeout, self.grace = idle_timeout, timeout, grace
        self.sinks = {"out": out, "err": err}
        self.say = say or (lambda text: None)
        # called when a heartbeat is refused: returns why the claim is lost, or None when
        # the child itself moved the worker on (e.g. ran `coord done`)
        self.claim_lost = claim_lost or (lambda msg: msg)
        self.tail = bytearray()
        self.output_bytes = 0
        self.stdout_tail = bytearray()  # the summary comes from stdout's last line
        self.received: list[int] = []
        self.ended_by = None
        self.lost_claim = None
        self.beat_failed = None
        self.kill_at = None
        self.proc = None

    # --- the child's process group -------------------------------------------------
    def _signal_group(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _on_signal(self, signum, frame):
        # Only async-signal-safe work here: forward, and remember for the main loop.
        self.received.append(signum)
        if self.proc is not None:
            self._signal_group(signum)

    def _write(self, key, data):
        sink = self.sinks.get(key)
        if sink is None:
            return
        try:
            sink.write(data)
            sink.flush()
        except (BrokenPipeError, OSError, ValueError):
            self.sinks[key] = None  # our reader went away: keep draining the child anyway

    def run(self, start_beats) -> tuple[int, float]:
        """Start the child, then `start_beats(started)` -> (inbox, outbox); returns
        (returncode, duration)."""
        sel = selectors.DefaultSelector()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        in_main = threading.current_thread() is threading.main_thread()
        old = {}
        old_wakeup = None
        if in_main:
            old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
            for s in FORWARDED:
                old[s] = signal.signal(s, self._on_signal)
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                umask=USER_UMASK,  # the agent writes the user's files: not the home's umask
            )
            for s in list(self.received):  # arrived before the child existed
                self._signal_group(s)
            return self._pump(sel, wake_r, start_beats)
        except BaseException:
            if self.proc is not None and self.proc.poll() is None:  # never leave it unsupervised
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
            raise
        finally:
            if in_main:
                for s, h in old.items():
                    signal.signal(s, h)
                signal.set_wakeup_fd(old_wakeup if old_wakeup is not None else -1)
            sel.close()
            os.close(wake_r)
            os.close(wake_w)

    def _end(self, why, now):
        if self.ended_by is None:
            self.ended_by = why
            self.say(f"ending the child: {why}; SIGTERM, SIGKILL in {self.grace:g}s")
            self._signal_group(signal.SIGTERM)
            self.kill_at = now + self.grace

    def _pump(self, sel, wake_r, start_beats):
        p = self.proc
        sel.register(p.stdout, selectors.EVENT_READ, "out")
        sel.register(p.stderr, selectors.EVENT_READ, "err")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        started = time.monotonic()
        inbox, outbox = start_beats(started)
        flush_every = min(1.0, self.interval / 4)
        last_out = last_sent = started
        unsent = False
        handled = 0
        exited_at = None
        open_pipes = 2
        while True:
            now = time.monotonic()
            if self.ended_by is None and exited_at is None:
                if self.timeout is not None and now - started >= self.timeout:
                    self._end("timeout", now)
                elif self.idle_timeout is not None and now - last_out >= self.idle_timeout:
                    self._end("idle-timeout", now)
            if self.kill_at is not None and now >= self.kill_at:
                self.say(f"still running after {self.grace:g}s grace: SIGKILL")
                self._signal_group(signal.SIGKILL)
                self.kill_at = None
            while handled < len(self.received):
                s = self.received[handled]
                handled += 1
                inbox.put(("note", f"coord run got {signal_name(s)}; forwarded to the child"))
                if s in ESCALATE and self.kill_at is None and exited_at is None:
                    self.kill_at = now + self.grace
            try:
                kind, msg = outbox.get_nowait()
                if kind == "refused":
                    lost = self.claim_lost(msg)
                    if lost:
                        self.lost_claim = lost
                        self.say(f"heartbeat refused ({lost}); the claim is lost")
                        self._end("lost-claim", now)
                elif kind == "crashed":
                    # No more beats: the worker would go DEAD and be reaped under a live
                    # child. End the child now and record why.
                    self.beat_failed = msg
                    self.say(f"the heartbeat thread failed: {msg}")
                    if exited_at is None:
                        self._end("heartbeat-failed", now)
                else:
                    self.say(f"heartbeat not recorded: {msg}")
            except queue.Empty:
                pass
            if unsent and now - last_sent >= flush_every:
                inbox.put(("output", last_out))
                unsent, last_sent = False, now
            if exited_at is None and p.poll() is not None:
                exited_at = now
            if exited_at is not None and (open_pipes == 0 or now - exited_at >= DRAIN_AFTER_EXIT):
                break
            wait = [0.5, flush_every if unsent else 0.5]
            if self.ended_by is None:
                if self.timeout is not None:
                    wait.append(started + self.timeout - now)
                if self.idle_timeout is not None:
                    wait.append(last_out + self.idle_timeout - now)
            if self.kill_at is not None:
                wait.append(self.kill_at - now)
            if exited_at is not None:
                wait.append(exited_at + DRAIN_AFTER_EXIT - now)
            elif open_pipes == 0:
                wait.append(0.1)  # pipes closed, child not yet reaped: poll soon
            for key, _ in sel.select(max(0.0, min(wait))):
                if key.data == "wake":
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                    continue
                try:
                    data = os.read(key.fileobj.fileno(), 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    open_pipes -= 1
                    continue
                self._write(key.data, data)
                self.tail += data
                self.output_bytes += len(data)
                if key.data == "out":
                    self.stdout_tail += data
                    if len(self.stdout_tail) > 4096:
                        del self.stdout_tail[: len(self.stdout_tail) - 4096]
                if len(self.tail) > TAIL_KEEP:
                    del self.tail[: len(self.tail) - TAIL_KEEP]
                last_out = time.monotonic()
                unsent = True
        for f in (p.stdout, p.stderr):
            if not f.closed:
                f.close()
        return p.wait(), time.monotonic() - started


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
    from .lifecycle import with_args

    say = say or (lambda text: None)
    if request_id is not None and getattr(request_id, "args", None) is None:
        request_id = with_args(
            request_id, **run_args(wid, cmd, interval, idle_timeout, timeout, grace, summary, here)
        )
    first = coord.used_request(actor, request_id, "run")
    if isinstance(first, dict) and "exit" in first:
        res = msgspec.convert(first, RunResult)
        res.repeat = True
        return res
    env = dict(os.environ if env is None else env)
    env.update(COORD_HOME=str(coord.home.path), COORD_AGENT=actor, COORD_WORKER=wid)
    view = coord.worker(wid)
    cwd = None
    if view.branch and not here:
        from .gitsteps import worktree_path

        cwd = worktree_path(coord, view)  # where git has its branch, never a recorded path
    check_command(cmd, env, cwd)
    claim = coord.act("start", wid, {}, actor=actor, request_id=request_id, request_command="run")
    if claim.repeat:
        v = coord.worker(wid)
        if v.state not in ACTIVE or v.holder != actor:
            # This key's claim was made by a run that ended before it stored its result
            # (killed between the outcome and the request id's update, say).
            return _result_of_outcome(v, actor, request_id)
        say(f"{wid}: already started by {actor}; running it, heartbeat every {interval:g}s")
    else:
        say(f"{wid}: started as {actor}; heartbeat every {interval:g}s")
    res = _supervise(
        coord, wid, cmd, actor, interval, idle_timeout, timeout, grace, summary, out, err, say, env, cwd
    )
    try:
        coord.settle_request(actor, request_id, "run", res)
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
    coord, wid, cmd, actor, interval, idle_timeout, timeout, grace, summary, out, err, say, env, cwd
):
    beat = None

    def start_beats(started):
        nonlocal beat
        inbox, outbox = queue.Queue(), queue.Queue()
        beat = HeartbeatThread(lambda: coord.twin(actor), wid, interval, started, inbox, outbox)
        beat.start()
        return inbox, outbox

    def moved_on_by_child():
        """The worker left WORKING/CONFLICTED by this actor's own action (the child ran
        `coord done`, `fail` or `release` itself): its outcome stands, nothing is lost."""
        v = coord.worker(wid)
        return v if v.state not in ACTIVE and v.last_from == actor else None

    def claim_lost(msg):
        if moved_on_by_child() is not None:
            return None
        v = coord.worker(wid)
        return f"{wid} is {v.state}, last by {v.last_from}" if v.state not in ACTIVE else msg

    sup = Supervisor(cmd, env, interval, idle_timeout, timeout, grace, out, err, say, claim_lost, cwd)
    try:
        returncode, duration = sup.run(start_beats)
    except OSError as e:
        if sup.proc is not None:
            raise
        # exec failed although check_command passed: the file changed in between, or a
        # format the check cannot see (another architecture, say). The claim is already
        # recorded, so the failure is too.
        code = 127 if isinstance(e, FileNotFoundError) else 126  # as shells report them
        res = RunResult(wid, code, returncode=code, ended_by="exec-failed")
        try:
            r = coord.act(
                "fail", wid, {"reason": f"cannot run {cmd[0]}: {e.strerror}", "exit": code}, actor=actor
            )
            res.state, res.event = r.state, r.event
        except CoordError as ce:
            res.record_error = ce.message
        return res
    finally:
        if beat is not None:
            beat.inbox.put(("stop", None))
            beat.join(coord.home.config["busy_timeout"] + 1)

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
        beats=beat.beats if beat else 0,
        lost_claim=sup.lost_claim,
        heartbeat_error=sup.beat_failed,
    )
    if sup.lost_claim:
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
            r = coord.act(
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
    if not coord.worker(wid).branch:
        return coord.act("done", wid, payload, actor=actor)
    from .gitrepo import Conflict
    from .gitsteps import done as git_done

    try:
        return git_done(coord, wid, payload, actor)
    except Conflict as e:
        res.conflict = e.message
        return _Recorded(coord.worker(wid))
    except Refused as e:
        res.done_refused = e.message
        return coord.act(
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
