"""Keeping a worker's liveness real while `coord run`'s child works on it: a heartbeat
thread with its own store connection, and the supervisor's watcher (`Beats`) that starts
it with the child, tells it when the child prints and which signals were forwarded, and
ends the child when the claim is lost or the thread fails.

The two threads share no mutable state; they talk through two queues: main → beat
("output", t) / ("note", text) / ("stop", None), beat → main ("refused", message) /
("error", message) / ("crashed", message).
"""

import queue
import threading
import time

from ..events.errors import CoordError, Refused
from .lifecycle import act
from .supervisor import Watcher, signal_name


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds from its own store connection until told to stop."""

    def __init__(
        self,
        open_coord,
        wid: str,
        interval: float,
        started: float,
        inbox: queue.Queue,
        outbox: queue.Queue,
        stamp: dict | None = None,
    ):
        """open_coord() -> Coord is called in this thread (its own SQLite connection).
        `stamp`: the attempt every beat carries; the claim appended the first beat, so
        the next one is due an interval later."""
        super().__init__(name="coord-heartbeat", daemon=True)
        self.open_coord, self.wid, self.interval = open_coord, wid, interval
        self.stamp = stamp or {}
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
            # The claim's transaction appended the first beat (it declares the interval).
            next_beat = time.monotonic() + (self.interval if self.stamp else 0.0)
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
                payload = {"interval": self.interval, "idle_s": round(now - last_output, 1), **self.stamp}
                if kind == "note":
                    payload["note"] = value
                try:
                    act(c, "heartbeat", self.wid, payload)
                    self.beats += 1
                except Refused as e:  # the worker was taken away (reaped, canceled, forced)
                    self.outbox.put(("refused", e.message))
                    return
                except CoordError as e:  # busy: try again at the next beat
                    self.outbox.put(("error", e.message))
                next_beat = now + self.interval


class Beats(Watcher):
    """The supervisor's watcher for `coord run`: a heartbeat thread started with the child,
    told when the child prints and which signals were forwarded, and ending the child when
    its claim is lost or the thread fails."""

    def __init__(self, coord, wid: str, actor: str, interval: float, say, claim_lost, stamp=None):
        self.coord, self.wid, self.actor, self.interval = coord, wid, actor, interval
        self.stamp = stamp
        self.say, self.claim_lost = say, claim_lost
        self.thread = None
        self.lost_claim = None  # why the claim is lost (a heartbeat was refused)
        self.failed = None  # why the heartbeat thread died

    def started(self, t):
        self.inbox, self.outbox = queue.Queue(), queue.Queue()
        self.thread = HeartbeatThread(
            lambda: self.coord.twin(self.actor),
            self.wid,
            self.interval,
            t,
            self.inbox,
            self.outbox,
            self.stamp,
        )
        self.thread.start()

    def output(self, t):
        self.inbox.put(("output", t))

    def signalled(self, signum):
        self.inbox.put(("note", f"coord run got {signal_name(signum)}; forwarded to the child"))

    def poll(self, now, exited):
        if self.thread is None:
            return None
        try:
            kind, msg = self.outbox.get_nowait()
        except queue.Empty:
            return None
        if kind == "refused":
            lost = self.claim_lost(msg)
            if lost:
                self.lost_claim = lost
                self.say(f"heartbeat refused ({lost}); the claim is lost")
                return "lost-claim"
        elif kind == "crashed":
            # No more beats: the worker would go DEAD and be reaped under a live child.
            # End the child now and record why.
            self.failed = msg
            self.say(f"the heartbeat thread failed: {msg}")
            if not exited:
                return "heartbeat-failed"
        else:
            self.say(f"heartbeat not recorded: {msg}")
        return None

    def stop(self):
        if self.thread is not None:
            self.inbox.put(("stop", None))
            self.thread.join(self.coord.home.config["busy_timeout"] + 1)

    @property
    def beats(self) -> int:
        first = 1 if self.stamp else 0  # the claim's beat
        return first + (self.thread.beats if self.thread is not None else 0)
