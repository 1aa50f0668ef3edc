"""Server-sent events from the log: one follower thread for the whole server, fanned out to
every open page, each page resuming after the last `seq` it saw.

`seq` is assigned inside the single write transaction, so "seq greater than the last one
seen" never misses or repeats an event (docs/observability.md, `log -f`). The follower
waits for new commits (Source.wait_for_new), reads what committed, encodes each event
once as an SSE frame (`id: <seq>`), and hands the frames to every subscriber on the event
loop. A page that connects (or reconnects: EventSource sends `Last-Event-ID`) first gets
what it missed, read from the store, then the live frames after that point; frames it
already has are skipped by seq. A page further behind than RESET_GAP gets one `reset`
frame and reloads its data instead of replaying. A page that cannot keep up (QUEUE_MAX
frames waiting, or one write blocked for SEND_TIMEOUT) is cut off; it reconnects and
resumes from its last seq, so nothing is lost and no slow page holds memory or the others.

Frames (docs/web.md):
    retry: 1000                          once, first: reconnect after a second
    id: 42 / event: coord / data: {...}   one per event: the event's reading form, plus
                                          `item`, the worker's board item now (worker.*)
    event: liveness / data: {...}         {"full": bool, "workers": {id: level|null}}: every
                                          active worker's liveness on connect, then changes
    id: 42 / event: reset / data: {...}   {"seq": 42}: reload your data, continue from 42
    : ping                                a comment every PING_S seconds (finds dead peers)
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import time

import anyio
import msgspec

from .responses import error_response

RETRY_MS = 1000
PING_S = 15.0
RESET_GAP = 5000
QUEUE_MAX = 5000
SEND_TIMEOUT = 30.0
LIVENESS_EVERY = 2.0
BATCH = 500
MAX_STREAMS = 256

_enc = msgspec.json.Encoder()


def event_frame(d: dict) -> bytes:
    return b"id: %d\nevent: coord\ndata: " % d["seq"] + _enc.encode(d) + b"\n\n"


def liveness_frame(workers: dict, full: bool) -> bytes:
    return b"event: liveness\ndata: " + _enc.encode({"full": full, "workers": workers}) + b"\n\n"


def reset_frame(seq: int, why: str) -> bytes:
    return b"id: %d\nevent: reset\ndata: " % seq + _enc.encode({"seq": seq, "why": why}) + b"\n\n"


def frames_for(source, events: list[dict]) -> list[tuple[int, bytes]]:
    """(seq, frame) per event; a lifecycle event carries its worker's board item as it is
    now (a page patches its row with it: applying it twice changes nothing)."""
    ids = sorted({e["to"] for e in events if e["type"].startswith("worker.")})
    items = {}
    if ids:
        _, _, got = source.board(workers=ids)
        items = {d["worker"]: d for d in got}
    out = []
    for e in events:
        e["item"] = items.get(e["to"]) if e["type"].startswith("worker.") else None
        out.append((e["seq"], event_frame(e)))
    return out


class Subscriber:
    """One open page's queue of frames (touched on the event loop only)."""

    __slots__ = ("pending", "wake", "overflow", "closed")

    def __init__(self):
        self.pending: collections.deque = collections.deque()
        self.wake = asyncio.Event()
        self.overflow = False
        self.closed = False

    def push(self, frames) -> None:
        if self.overflow or self.closed:
            return
        if len(self.pending) + len(frames) > QUEUE_MAX:
            self.overflow = True  # cut off: it resumes from the store when it reconnects
            self.pending.clear()
        else:
            self.pending.extend(frames)
        self.wake.set()


class Hub:
    """The follower thread and the set of open streams."""

    def __init__(self, source):
        self.source = source
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subs: set[Subscriber] = set()
        self.last = 0  # the greatest seq handed to subscribers (event loop only)
        self.live: dict[str, str] = {}  # liveness as last published (event loop only)
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life ---------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last = self.source.max_seq()
        self.live = {w: lv for w, lv in self.source.liveness().items() if lv}
        self._thread = threading.Thread(target=self._follow, name="coord-serve-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the follower and every open stream (safe from any thread, and twice)."""
        self._stop.set()
        if self.loop is not None and not self.loop.is_closed():
            try:
                self.loop.call_soon_threadsafe(self._close_all)
            except RuntimeError:  # the loop has just closed
                pass

    def join(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _close_all(self) -> None:
        for sub in self.subs:
            sub.closed = True
            sub.wake.set()

    # --- the follower thread --------------------------------------------------------------
    def _follow(self) -> None:
        last = self.last
        live = dict(self.live)
        next_live = time.monotonic() + LIVENESS_EVERY
        while not self._stop.is_set():
            try:
                wait = max(0.0, min(0.5, next_live - time.monotonic()))
                top = self.source.wait_for_new(last, timeout=wait)
                while top > last and not self._stop.is_set():
                    events = self.source.events_after(last, BATCH)
                    if not events:
                        break
                    frames = frames_for(self.source, events)
                    last = events[-1]["seq"]
                    self.loop.call_soon_threadsafe(self._publish, frames, last)
                if time.monotonic() >= next_live:
                    now = {w: lv for w, lv in self.source.liveness().items() if lv}
                    changed = {w: lv for w, lv in now.items() if live.get(w) != lv}
                    changed.update({w: None for w in live if w not in now})
                    live = now
                    if changed:
                        self.loop.call_soon_threadsafe(self._publish_live, changed)
                    next_live = time.monotonic() + LIVENESS_EVERY
            except RuntimeError:
                if self._stop.is_set() or self.loop.is_closed():
                    return
                raise
            except Exception as e:  # a busy or damaged store: say so, keep following
                self.errors += 1
                print(f"coord serve: following the log: {type(e).__name__}: {e}", file=sys.stderr)
                self._stop.wait(1.0)

    def _publish(self, frames, last: int) -> None:
        self.last = max(self.last, last)
        for sub in self.subs:
            sub.push(frames)

    def _publish_live(self, changed: dict) -> None:
        for w, lv in changed.items():
            if lv is None:
                self.live.pop(w, None)
            else:
                self.live[w] = lv
        frame = [(None, liveness_frame(changed, full=False))]
        for sub in self.subs:
            sub.push(frame)

    # --- streams ------------------------------------------------------------------------------
    def subscribe(self) -> tuple[Subscriber, int, bytes]:
        """(subscriber, the seq it gets live frames after, the full liveness frame)."""
        sub = Subscriber()
        self.subs.add(sub)
        return sub, self.last, liveness_frame(dict(self.live), full=True)

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subs.discard(sub)


class EventStream:
    """The ASGI endpoint GET /api/stream[?after=SEQ] (Last-Event-ID wins over after)."""

    def __init__(self, hub: Hub):
        self.hub = hub

    async def __call__(self, scope, receive, send):
        if scope["method"] != "GET":
            await error_response(405, "method", "GET the event stream", 2)(scope, receive, send)
            return
        after = _start_seq(scope)
        if isinstance(after, str):
            await error_response(400, "usage", after, 2)(scope, receive, send)
            return
        if len(self.hub.subs) >= MAX_STREAMS:
            await error_response(503, "busy", f"more than {MAX_STREAMS} open streams; retry later", 7)(
                scope, receive, send
            )
            return
        sub, position, live = self.hub.subscribe()
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream; charset=utf-8"),
                        (b"cache-control", b"no-store"),
                        (b"x-accel-buffering", b"no"),
                    ],
                }
            )
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch_disconnect, receive, tg.cancel_scope)
                try:
                    await self._stream(send, sub, after, position, live)
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                except (TimeoutError, OSError):
                    pass  # a peer that stopped reading, or is gone: it resumes when it reconnects
                tg.cancel_scope.cancel()
        finally:
            self.hub.unsubscribe(sub)

    async def _stream(self, send, sub: Subscriber, after: int, position: int, live: bytes) -> None:
        source = self.hub.source

        async def write(data: bytes) -> None:
            with anyio.fail_after(SEND_TIMEOUT):
                await send({"type": "http.response.body", "body": data, "more_body": True})

        await write(b"retry: %d\n\n" % RETRY_MS + live)
        last = after
        if after > position:
            top = await anyio.to_thread.run_sync(source.max_seq)
            if after > top:  # a seq this store never had (another home, a rebuilt one)
                await write(reset_frame(top, "the page is ahead of this store"))
                last = top
        elif position - after > RESET_GAP:
            await write(reset_frame(position, f"more than {RESET_GAP} events behind"))
            last = position
        while last < position:  # what the page missed, from the store
            frames = await anyio.to_thread.run_sync(_read_frames, source, last, min(BATCH, position - last))
            if not frames:
                break
            await write(b"".join(f for _, f in frames))
            last = frames[-1][0]
        while not (sub.closed or sub.overflow):
            sub.wake.clear()
            if not sub.pending:
                with anyio.move_on_after(PING_S):
                    await sub.wake.wait()
                if not sub.pending:
                    if not (sub.closed or sub.overflow):
                        await write(b": ping\n\n")
                    continue
            chunks = []
            while sub.pending:
                seq, frame = sub.pending.popleft()
                if seq is not None:
                    if seq <= last:
                        continue  # already sent from the store
                    last = seq
                chunks.append(frame)
            if chunks:
                await write(b"".join(chunks))


def _read_frames(source, after: int, limit: int):
    return frames_for(source, source.events_after(after, limit))


async def _watch_disconnect(receive, scope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return


def _start_seq(scope) -> int | str:
    """The seq a stream starts after: Last-Event-ID (a reconnecting EventSource sends the
    last id it saw), else ?after=, else 0. A string is the error."""
    from urllib.parse import parse_qs

    last_id = None
    for k, v in scope.get("headers", []):
        if k == b"last-event-id":
            last_id = v.decode("latin-1").strip()
    if last_id:
        text, what = last_id, "Last-Event-ID"
    else:
        qs = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        text, what = (qs.get("after") or ["0"])[-1], "after"
    if not text.isdigit() or len(text) > 18:
        return f"{what} must be a seq (a whole number), not {text[:40]!r}"
    return int(text)
