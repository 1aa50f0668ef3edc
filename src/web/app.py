"""The web board's routes: the page (one shell, every view), its two static files, and
the JSON API that mirrors `--json` (docs/web.md lists every endpoint). Every read goes
through the Source (source.py); the Guard (guard.py) wraps the whole application."""

from __future__ import annotations

import contextlib
import sys
import threading

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .guard import Guard
from .pages import SHELL, static_files
from .responses import STATUS_OF_EXIT, error_response, json_response
from .source import CoordError
from .stream import EventStream, Hub

MAX_LIMIT = 10_000
_enc = msgspec.json.Encoder()


class BadParam(Exception):
    pass


def _int(request: Request, name: str, default=None, lo: int = 0, hi: int = 2**62):
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or len(text) > 18 or not lo <= int(text) <= hi:
        raise BadParam(f"{name} must be a whole number from {lo} to {hi}, not {text[:40]!r}")
    return int(text)


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "") not in ("", "0", "false", "no")


def endpoint(fn):
    """A sync endpoint (run in the thread pool) whose coord errors become JSON errors."""

    def run(request: Request):
        try:
            return fn(request)
        except BadParam as e:
            return error_response(400, "usage", str(e), 2)
        except CoordError as e:
            return error_response(STATUS_OF_EXIT.get(e.exit_code, 500), e.code, e.message, e.exit_code)
        except Exception as e:  # a bug: one line on stderr, a 500 to the page
            print(f"coord serve: {request.url.path}: {type(e).__name__}: {e}", file=sys.stderr)
            return error_response(500, "unexpected", f"unexpected {type(e).__name__}", 1)

    run.__name__ = fn.__name__
    return run


class _Cache:
    """Results of whole-history folds (timeline, stats), kept while the log has not moved:
    twenty open pages that refresh after the same commit fold it once."""

    def __init__(self, source, size: int = 16):
        self.source, self.size = source, size
        self.items: dict = {}
        self.locks: dict = {}
        self.lock = threading.Lock()

    def get(self, key, compute):
        top = self.source.max_seq()
        with self.lock:
            lock = self.locks.setdefault(key[0], threading.Lock())
        with lock:  # one fold of a kind at a time; those that waited for it take its result
            hit = self.items.get(key)
            if hit is not None and hit[0] >= top:
                return hit
            seq, value = compute()
            body = _enc.encode(value) + b"\n"
            with self.lock:
                self.items[key] = (seq, body)
                while len(self.items) > self.size:
                    self.items.pop(next(iter(self.items)))
            return seq, body


def create_app(source, *, token: str, host: str, port: int, hub: Hub | None = None):
    """The ASGI application for one Source, bound at host:port."""
    hub = hub or Hub(source)
    statics = static_files()
    cache = _Cache(source)

    async def page(request: Request):
        return Response(SHELL, media_type="text/html; charset=utf-8")

    async def static(request: Request):
        got = statics.get(request.path_params["name"])
        if got is None:
            return error_response(404, "not_found", "no such file", 3)
        return Response(got[0], media_type=got[1])

    @endpoint
    def info(request):
        return json_response({**source.info(), "streams": len(hub.subs)})

    @endpoint
    def status(request):
        states = [s.upper().replace("-", "_") for s in request.query_params.getlist("state")]
        all_ = _flag(request, "all") or bool(states)
        seq, now, items = source.board(all_=all_, states=states)
        return json_response(items, seq=seq, now=now)

    @endpoint
    def worker(request):
        seq, d = source.worker(request.path_params["ident"])
        return json_response(d, seq=seq, now=source.info()["now"])

    @endpoint
    def events(request):
        items = source.log(
            after_seq=_int(request, "after", 0),
            worker=request.query_params.get("worker") or None,
            types=request.query_params.getlist("type"),
            from_=request.query_params.get("from") or None,
            limit=_int(request, "limit", 500, 1, MAX_LIMIT),
        )
        return json_response(items)

    @endpoint
    def event(request):
        return Response(source.event(request.path_params["ident"]) + b"\n", media_type="application/json")

    @endpoint
    def messages(request):
        seq, items = source.messages(
            before_seq=_int(request, "before"),
            limit=_int(request, "limit", 100, 1, MAX_LIMIT),
            to=request.query_params.get("to") or None,
            from_=request.query_params.get("from") or None,
            types=request.query_params.getlist("type"),
        )
        return json_response(items, seq=seq)

    @endpoint
    def search(request):
        items = source.search(
            request.query_params.get("q", ""),
            types=request.query_params.getlist("type"),
            from_=request.query_params.get("from") or None,
            to=request.query_params.get("to") or None,
            limit=_int(request, "limit", 20, 1, MAX_LIMIT),
        )
        return json_response(items)

    @endpoint
    def timeline(request):
        since = request.query_params.get("since") or None
        until = request.query_params.get("until") or None
        workers = tuple(request.query_params.getlist("worker"))
        seq, body = cache.get(
            ("timeline", since, until, workers), lambda: source.timeline(since, until, workers)
        )
        return Response(body, media_type="application/json", headers={"coord-seq": str(seq)})

    @endpoint
    def stats(request):
        since = request.query_params.get("since") or None
        seq, body = cache.get(("stats", since), lambda: source.stats(since))
        return Response(body, media_type="application/json", headers={"coord-seq": str(seq)})

    routes = [
        Route("/", page),
        Route("/workers/{ident}", page),
        Route("/messages", page),
        Route("/timeline", page),
        Route("/stats", page),
        Route("/static/{name}", static),
        Route("/api/info", info),
        Route("/api/status", status),
        Route("/api/workers/{ident}", worker),
        Route("/api/events", events),
        Route("/api/events/{ident}", event),
        Route("/api/stream", EventStream(hub)),
        Route("/api/messages", messages),
        Route("/api/search", search),
        Route("/api/timeline", timeline),
        Route("/api/stats", stats),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        import asyncio

        hub.start(asyncio.get_running_loop())
        try:
            yield
        finally:
            hub.stop()
            hub.join()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.hub = hub
    return Guard(app, token=token, host=host, port=port)
