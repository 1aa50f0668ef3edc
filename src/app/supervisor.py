"""A generic process supervisor: runs one child command to its end in its own process
group, pumps its stdout and stderr to ours as they arrive (keeping the last bytes),
enforces a timeout and an idle timeout, forwards SIGINT, SIGTERM and SIGHUP (the last two
escalate to SIGKILL after a grace period), and checks beforehand that the command can be
run at all. It knows nothing of coord's log: `coord run` (coord.app.runner) watches it
through a small watcher object.
"""

import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time

from ..events.errors import CoordError, UsageError
from ..events.files import USER_UMASK

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# A forwarded SIGTERM/SIGHUP means "stop": after the grace period the child is SIGKILLed.
# A forwarded SIGINT only interrupts (agents use it to cancel one step), so it never escalates.
ESCALATE = (signal.SIGTERM, signal.SIGHUP)
TAIL_KEEP = 256 * 1024  # bytes of recent output kept for the fail event (a blob)
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


class Watcher:
    """What a supervisor tells its watcher, and how the watcher can end the child. The
    default does nothing; `coord run` beats for its worker from these (coord.app.runner)."""

    def started(self, t: float) -> None:
        """The child runs (t: time.monotonic())."""

    def output(self, t: float) -> None:
        """The child printed something, last at t (said at most every `report_every` s)."""

    def signalled(self, signum: int) -> None:
        """A signal sent to the supervisor was forwarded to the child."""

    def poll(self, now: float, exited: bool) -> str | None:
        """Called on every turn of the loop: a reason to end the child (SIGTERM, then
        SIGKILL after the grace period), or None."""
        return None

    def stop(self) -> None:
        """The child has ended (or could not be started)."""


class Supervisor:
    """Runs one child to its end. Output goes to `out`/`err` (binary files) as it comes."""

    def __init__(
        self,
        cmd,
        env,
        idle_timeout=None,
        timeout=None,
        grace=DEFAULT_GRACE,
        out=None,
        err=None,
        say=None,
        watcher=None,
        report_every=0.5,
        cwd=None,
    ):
        self.cmd, self.env, self.cwd = cmd, env, cwd
        self.idle_timeout, self.timeout, self.grace = idle_timeout, timeout, grace
        self.sinks = {"out": out, "err": err}
        self.say = say or (lambda text: None)
        self.watcher = watcher or Watcher()
        self.report_every = report_every
        self.tail = bytearray()
        self.output_bytes = 0
        self.stdout_tail = bytearray()  # the summary comes from stdout's last line
        self.received: list[int] = []
        self.ended_by = None
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

    def run(self) -> tuple[int, float]:
        """Start the child and supervise it to its end: (returncode, duration)."""
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
            return self._pump(sel, wake_r)
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
            self.watcher.stop()

    def _end(self, why, now):
        if self.ended_by is None:
            self.ended_by = why
            self.say(f"ending the child: {why}; SIGTERM, SIGKILL in {self.grace:g}s")
            self._signal_group(signal.SIGTERM)
            self.kill_at = now + self.grace

    def _pump(self, sel, wake_r):
        p = self.proc
        sel.register(p.stdout, selectors.EVENT_READ, "out")
        sel.register(p.stderr, selectors.EVENT_READ, "err")
        sel.register(wake_r, selectors.EVENT_READ, "wake")
        started = time.monotonic()
        self.watcher.started(started)
        flush_every = self.report_every
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
                self.watcher.signalled(s)
                if s in ESCALATE and self.kill_at is None and exited_at is None:
                    self.kill_at = now + self.grace
            why = self.watcher.poll(now, exited_at is not None)
            if why is not None:
                self._end(why, now)
            if unsent and now - last_sent >= flush_every:
                self.watcher.output(last_out)
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
