"""`coord mcp`: the actions an agent takes, as MCP tools over stdio (the official MCP
Python SDK, the optional extra `coord[mcp]`; this module is imported only by the command,
so no other command pays for the SDK).

Each tool call is one use case of coord.app on the home, as the actor given with `--as`
(or COORD_AGENT), with the same rules and errors as the CLI: a refused action is a tool
error whose text is `{"error": {"code", "message", "exit"}}`, `exit` being the exit code
the CLI would give. Each call opens the home and closes it, like a CLI process (tool
calls run on worker threads; a store connection never crosses threads).

While the client is connected, the server beats for the worker it started (`start`):
a heartbeat thread with its own connection, every interval, noting how long ago the last
tool call came (`idle_s`); it stops when that worker is handed in, released or failed
through the server, when a beat is refused (the worker moved on), and when the client
disconnects.
"""

import json
import queue
import sys
import threading
import time

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from ..app import lifecycle, messages, queries
from ..app.context import Coord
from ..app.heartbeats import HeartbeatThread
from ..app.prime import prime as build_prime
from ..app.prime import ready_workers
from ..app.resolve import worker_arg
from ..events.envelope import now_us
from ..events.errors import CoordError, TimedOut, UsageError

# A waiting poll holds a worker thread, and the server ends only after it returns: the
# bound keeps a server whose client went away from lingering (and beating) for long.
MAX_WAIT = 60.0
INSTRUCTIONS = (
    "coord: a coordination log for agents. Call `prime` first (and after your context is "
    "compacted): it says who you are, what you hold and what to do next. Claim work with "
    "`start` (next=true for the first ready worker); this server then heartbeats for it while "
    "you are connected. Read messages and notices (changes requested, conflicts, requeued, "
    "canceled) with `poll`; hand work in with `done`. Errors carry the CLI's exit code."
)


class Beater:
    """The heartbeat thread for the worker this server started (at most one at a time)."""

    def __init__(self, open_coord, interval: float):
        self.open_coord, self.interval = open_coord, interval
        self.lock = threading.Lock()
        self.worker = None
        self.thread = None
        self.inbox = None

    def start(self, wid: str) -> None:
        with self.lock:
            self._stop_locked()
            self.worker, self.inbox = wid, queue.Queue()
            self.thread = HeartbeatThread(
                self.open_coord, wid, self.interval, time.monotonic(), self.inbox, queue.Queue()
            )
            self.thread.start()

    def activity(self) -> None:
        """A tool call came: the agent is active (the beat's idle_s counts from here)."""
        with self.lock:
            if self.inbox is not None:
                self.inbox.put(("output", time.monotonic()))

    def stop(self, wid: str | None = None) -> None:
        with self.lock:
            if wid is None or wid == self.worker:
                self._stop_locked()

    def _stop_locked(self) -> None:
        if self.thread is not None:
            self.inbox.put(("stop", None))
            self.thread.join(30)
        self.worker = self.thread = self.inbox = None

    @property
    def beats(self) -> int:
        return self.thread.beats if self.thread is not None else 0


def _fail(e: CoordError):
    raise ToolError(json.dumps({"error": {"code": e.code, "message": e.message, "exit": e.exit_code}}))


def build(home, actor: str, interval: float | None = None) -> tuple[MCPServer, Beater]:
    """The server for one home and one actor, and its heartbeat keeper."""

    def open_coord():
        return Coord(home, actor=actor, on_warning=lambda m: sys.stderr.write(f"warning: {m}\n"))

    beater = Beater(open_coord, interval or home.config["heartbeat_interval"])
    server = MCPServer("coord", instructions=INSTRUCTIONS)

    def call(fn):
        """Run fn(c) on a fresh connection; domain errors become tool errors."""
        beater.activity()
        try:
            with open_coord() as c:
                return fn(c)
        except CoordError as e:
            _fail(e)

    def result(r) -> dict:
        return {"worker": r.worker, "state": r.state, "event": r.event, "type": r.type, "repeat": r.repeat}

    def target(c, worker):
        return worker_arg(c, worker or beater.worker)

    @server.tool()
    def prime(role: str | None = None) -> dict:
        """Who you are, what you hold and what to do next, your unread messages and notices,
        and the commands you need (call it first, and again after your context is compacted).
        role: agent, lead or reviewer (default: chosen from what you do)."""
        if role is not None and role not in ("agent", "lead", "reviewer"):
            _fail(UsageError(f"bad role {role!r}: agent, lead or reviewer"))
        return call(lambda c: build_prime(c, actor, role))

    @server.tool()
    def status(
        worker: str | None = None, state: list[str] | None = None, stale: bool = False, all: bool = False
    ) -> dict:
        """The board: workers with state, holder and liveness (terminal ones only with all).
        state: only these states; stale: only active workers whose liveness is WARN or worse."""
        want = {s.upper().replace("-", "_") for s in state or ()}

        def fn(c):
            from ..projections.workers import STATES

            bad = sorted(want - set(STATES))
            if bad:
                raise UsageError(f"unknown state {bad[0]!r} (one of {', '.join(STATES)})")
            return {"workers": queries.board_items(c, worker, want, stale, all)}

        return call(fn)

    @server.tool()
    def show(worker: str) -> dict:
        """One worker: state, holder, liveness, what is expected next, its recent history."""

        def fn(c):
            from ..events.forms import event_json_parts

            wid = worker_arg(c, worker)
            d, _v, hist = queries.worker_detail(c, wid, now_us())
            d["history"] = [
                json.loads(b"".join(event_json_parts(c.blobs, r.seq, r.id, r.body, problems=[])))
                for r in hist
            ]
            return d

        return call(fn)

    @server.tool()
    def ready(limit: int = 10) -> dict:
        """Workers ready to start, first to start first."""
        if not 1 <= limit <= 1000:
            _fail(UsageError("limit must be between 1 and 1000"))

        def fn(c):
            now = now_us()
            with c.store.read() as r:
                return {"workers": [queries.worker_dict(c, v, now) for v in ready_workers(r, limit)]}

        return call(fn)

    @server.tool()
    def start(worker: str | None = None, next: bool = False, request_id: str | None = None) -> dict:
        """Claim a worker (ASSIGNED → WORKING), or with next=true the first ready one you may
        take. While you stay connected, this server heartbeats for it."""
        if worker and next:
            _fail(UsageError("give a worker or next, not both"))

        def fn(c):
            if next:
                r = lifecycle.start_next(c, actor=actor, request_id=request_id)
            else:
                r = lifecycle.act(c, "start", worker_arg(c, worker), {}, actor=actor, request_id=request_id)
            out = result(r)
            out["worktree"] = lifecycle.worker(c, r.worker).worktree
            return out

        out = call(fn)
        beater.start(out["worker"])
        out["heartbeats"] = {"by": "this MCP server, while connected", "interval": beater.interval}
        return out

    @server.tool()
    def heartbeat(worker: str | None = None, note: str | None = None, request_id: str | None = None) -> dict:
        """Record that you are alive on a worker you hold (no state change)."""
        payload = {"note": note} if note is not None else {}
        return call(
            lambda c: result(
                lifecycle.act(c, "heartbeat", target(c, worker), payload, actor=actor, request_id=request_id)
            )
        )

    def _ending(fn_name, worker, payload, request_id):
        def fn(c):
            from ..app import gitsteps

            wid = target(c, worker)
            if fn_name == "done":
                r = gitsteps.done(c, wid, payload, actor, request_id=request_id)
            else:
                r = lifecycle.act(c, fn_name, wid, payload, actor=actor, request_id=request_id)
            return wid, result(r)

        wid, out = call(fn)
        if out["state"] not in ("WORKING", "CONFLICTED"):
            beater.stop(wid)
        return out

    @server.tool()
    def done(worker: str | None = None, summary: str | None = None, request_id: str | None = None) -> dict:
        """Hand your work in for review (WORKING/CONFLICTED → IN_REVIEW). With a branch it is
        rebased first; a conflict is an error with exit 4 and the worker is CONFLICTED:
        resolve it in the worktree, then call done again."""
        return _ending("done", worker, {"summary": summary} if summary else {}, request_id)

    @server.tool()
    def fail(worker: str | None = None, reason: str | None = None, request_id: str | None = None) -> dict:
        """Give up on a worker you hold (→ FAILED)."""
        return _ending("fail", worker, {"reason": reason} if reason else {}, request_id)

    @server.tool()
    def release(worker: str | None = None, request_id: str | None = None) -> dict:
        """Give a worker you hold back to the queue (→ ASSIGNED)."""
        return _ending("release", worker, {}, request_id)

    @server.tool()
    def send(
        type: str,
        to: str,
        text: str | None = None,
        payload: dict | None = None,
        request_id: str | None = None,
    ) -> dict:
        """Send a message msg.TYPE to an agent, a worker (reaches its holder) or '*'. Give
        text (payload {"text": ...}) or a payload object. request_id (every acting tool
        takes one): a retry with the same key returns the first result, appends nothing."""

        def fn(c):
            if text is not None and payload is not None:
                raise UsageError("give text or payload, not both")
            body = {"text": text} if text is not None else (payload or {})
            r = messages.send(c, to, type, body, actor=actor, request_id=request_id)
            return {"event": r.event, "type": r.type, "to": to, "repeat": r.repeat}

        return call(fn)

    @server.tool()
    def poll(
        wait: float | None = None,
        limit: int | None = None,
        types: list[str] | None = None,
        peek: bool = False,
    ) -> dict:
        """Your unread messages and notices, oldest first, then acknowledged (unless peek).
        A notice is a lifecycle event that changed or ended an attempt you held (changes
        requested, conflicted, check failed, requeued, canceled, failed) and carries
        "notice": {worker, attempt, reason}. wait: block up to this many seconds for one
        (at most 60; an error with exit 6 if none comes). types: names or globs;
        'worker.*' selects notices."""
        if wait is not None and not 0 <= wait <= MAX_WAIT:
            _fail(UsageError(f"wait must be between 0 and {MAX_WAIT:g} seconds (call again to wait longer)"))
        if limit is not None and limit < 1:
            _fail(UsageError("limit must be at least 1"))

        def fn(c):
            from ..events.forms import event_json_parts

            tt = tuple(types or ())
            if wait is not None:
                rows = messages.wait_pending(c, actor, tt, limit, timeout=wait)
                if not rows:
                    raise TimedOut(f"no message for {actor} within {wait:g}s")
            else:
                rows = messages.pending(c, actor, tt, limit)
            events = []
            for r in rows:
                d = json.loads(b"".join(event_json_parts(c.blobs, r.seq, r.id, r.body, problems=[])))
                n = rows.notices.get(r.seq)
                if n is not None:
                    d["notice"] = {"worker": n.worker, "attempt": n.attempt, "reason": n.reason}
                events.append(d)
            if rows and not peek:
                messages.acknowledge(c, actor, rows)
            return {"events": events, "acknowledged": bool(rows) and not peek}

        return call(fn)

    @server.tool()
    def ack(event: str, request_id: str | None = None) -> dict:
        """Acknowledge your messages and notices up to and including EVENT (an id or prefix)."""

        def fn(c):
            seq, eid, n = messages.ack_event(c, actor, event, request_id=request_id)
            return {"agent": actor, "acked_through": eid, "seq": seq, "acked": n}

        return call(fn)

    @server.tool()
    def search(query: str, limit: int = 20, types: list[str] | None = None) -> dict:
        """Full-text search over event payloads: words, "phrases", prefix*, AND/OR/NOT."""
        if not 1 <= limit <= 1000:
            _fail(UsageError("limit must be between 1 and 1000"))
        return call(lambda c: {"hits": queries.search(c, query, tuple(types or ()), limit=limit)})

    return server, beater


def serve(home, actor: str, interval: float | None = None) -> None:
    """Serve over stdio until the client disconnects; then stop beating."""
    server, beater = build(home, actor, interval)
    try:
        server.run("stdio")
    finally:
        beater.stop()
