"""The web board's one door into coord: every read the board makes, as plain data.

Everything else under coord.web depends on coord only through this module (and the
token's, token.py). The web board is a presentation room beside the CLI: it reads through
the application room (coord.app: the open home, the read use cases and their forms), the
projections and the store interface (coord.events.store: a Reader's operations, never SQL,
never a store implementation), so it works on any store a home opens.

Forms, so that the board says what the CLI says:
- a board item is what `coord --json status --all` prints for one worker (app.queries'
  worker_dict), plus `expected` as `coord --json show W` gives it;
- a worker's detail is what `coord --json show W` prints, except that claim-checked
  payloads in its history are summarised (a big blob by its head, as `log` shows it), and
  each history entry also says what it changed (`before`, `after`, `conflict`, `change`,
  as `replay --json` does); plus `messages` (to and from it);
- an event is the reading form (`seq`, `id`, then the envelope), its payload summarised;
- errors are coord's CoordError, carrying `code`, `message` and `exit_code` (the
  contract's exit codes); the web room maps them to HTTP statuses.

Each read that returns a `seq` reads it in the same snapshot as the data, so a page that
applies the stream's events after that seq misses nothing and repeats nothing. Every
method may be called from any thread: each thread opens its own Coord (a store connection
is not shared between threads that read at the same time).
"""

from __future__ import annotations

import os
import threading

import msgspec

from ..app import queries, reports
from ..app.context import Coord
from ..app.resolve import event as resolve_event
from ..app.resolve import worker_id
from ..events.envelope import now_us, ts_to_us, us_to_ts
from ..events.errors import CoordError, NotFound, Refused, UsageError  # noqa: F401  (re-exported)
from ..events.forms import event_json_resolved
from ..events.history import StoreHistory
from ..events.home import find_home
from ..events.records import EventQuery, TypeFilter, type_filter
from ..projections import board, liveness
from ..projections.replay import describe, steps
from ..projections.workers import ACTIVE, NON_TERMINAL, STATES
from .token import serve_token

MESSAGES = TypeFilter(("msg.*",))  # every message type (inbox.* never is one)


class Source:
    """An open home, read by the web board. close() when done."""

    def __init__(self, home: str | os.PathLike | None = None):
        self.home = find_home(None if home is None else str(home))
        self._local = threading.local()
        self._open: list = []
        self._lock = threading.Lock()
        self._closed = False
        self._coord()  # open now: a missing or damaged store fails at start, not on a page
        self._interval = self.home.config["heartbeat_interval"]
        from importlib.metadata import PackageNotFoundError, version

        try:
            self._version = version("coord")
        except PackageNotFoundError:
            self._version = "unknown"

    # --- connections -------------------------------------------------------------------
    def _coord(self) -> Coord:
        c = getattr(self._local, "coord", None)
        if c is None:
            if self._closed:
                raise CoordError("the board's store is closed")
            c = Coord(self.home, on_warning=lambda m: None)
            with self._lock:
                self._open.append(c)
            self._local.coord = c
        return c

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            self._closed = True
            opened, self._open = self._open, []
        for c in opened:
            try:
                c.close()
            except Exception:
                pass

    # --- about the home -----------------------------------------------------------------
    @property
    def path(self) -> str:
        return str(self.home.path)

    def info(self) -> dict:
        """{"project", "home", "seq", "now", "heartbeat_interval", "version"}."""
        return {
            "project": self.home.project_dir.name,
            "home": str(self.home.path),
            "seq": self.max_seq(),
            "now": us_to_ts(now_us()),
            "heartbeat_interval": self._interval,
            "version": self._version,
        }

    def max_seq(self) -> int:
        return self._coord().store.reader.max_seq()

    def serve_token(self, token_file=None) -> tuple[str, str, bool]:
        """The board's token (web/token.py: serve_token)."""
        return serve_token(self.home, token_file)

    # --- the board ----------------------------------------------------------------------
    def board(self, all_: bool = True, states=(), workers=None) -> tuple[int, str, list[dict]]:
        """(seq, now, items): the board as `coord --json status` gives it (--all by default;
        `states` keeps those states; `workers` keeps those ids, unknown ones left out), each
        item with `expected`; `seq` is the last event the snapshot includes, `now` the time
        its ages and liveness were computed at."""
        bad = [s for s in states if s not in STATES]
        if bad:
            raise UsageError(f"unknown state {bad[0]!r} (one of {', '.join(STATES)})")
        c = self._coord()
        with c.store.read() as r:
            seq = r.max_seq()
            if workers is not None:
                views = [v for v in (board.load(r, w) for w in workers) if v is not None]
            else:
                pick = set(states) if states else None if all_ else NON_TERMINAL
                views = [board.decode_view(row.view) for row in r.views(states=pick)]
            now = now_us()
            items = [queries.worker_dict(c, v, now) for v in views]
            queries.add_graph(r, items, views)  # ready, waits_for, blocked_by, as status --json
        for v, d in zip(views, items, strict=True):
            d["expected"] = queries.expected(c, v, d, now)
        return seq, us_to_ts(now), items

    def liveness(self) -> dict[str, str]:
        """The liveness of every active worker (WORKING, CONFLICTED), computed now."""
        c = self._coord()
        rows = c.store.reader.views(states=ACTIVE)
        now, clone = now_us(), c.clone_id
        out = {}
        for row in rows:
            v = board.decode_view(row.view)
            out[v.worker] = liveness.level(v, now, self._interval, clone)
        return out

    # --- one worker ---------------------------------------------------------------------
    def worker(self, ident: str, history: int = 200, messages: int = 200) -> tuple[int, dict]:
        """(seq, detail) of a worker id or unique prefix: `coord --json show W` (as
        app.queries.worker_detail makes it), with the last `history` transitions (what
        each changed) and up to `messages` messages to and from it (to the worker, and to
        or from whoever held it while they held it)."""
        c = self._coord()
        with c.store.read() as r:
            seq = r.max_seq()
            wid = worker_id(r, ident)
            v = board.load(r, wid)
            rows = r.events(EventQuery(worker=wid, heartbeats=False, by="ts"))
            ahead = [
                row.id for row in r.events(EventQuery(worker=wid, later_than_ts=queries.horizon(c), by="ts"))
            ]
            steps_ = self._steps(rows)
            msgs = self._worker_messages(r, wid, steps_, messages)
            now = now_us()
            d = queries.worker_dict(c, v, now)
            queries.add_graph(r, [d], [v])
            d["waited_by"] = r.dependents(wid)
        d["ahead"] = ahead
        d["expected"] = queries.expected(c, v, d, now)
        d["in_state_s"] = round((now - ts_to_us(v.state_since)) / 1e6, 3)
        last = rows[-1] if rows else None
        d["last"] = {"event": last.id, "type": last.type, "from": last.from_, "ts": last.ts} if last else None
        d["history"] = steps_[-history:] if history else []
        d["messages"] = msgs
        return seq, d

    def _steps(self, rows) -> list[dict]:
        """A worker's transitions, folded from its first, each with what it changed."""
        blobs = self._coord().blobs
        by_id = {r.id: r for r in rows}
        envs = ((r.id, _readable(r.env, blobs)) for r in rows)
        out = []
        for s in steps(envs):
            r = by_id[s.id]
            e = _event_dict(r.seq, r.id, s.env, r.body)
            e["before"] = s.before.state if s.before is not None else None
            e["after"] = s.after.state if s.after is not None else None
            e["holder"] = s.after.holder if s.after is not None else None
            e["conflict"] = s.conflict
            e["change"] = describe(s)
            out.append(e)
        return out

    def _worker_messages(self, reader, wid: str, steps_: list[dict], limit: int) -> list[dict]:
        holds, cur = [], None  # (agent, from ts, to ts or None)
        for s in steps_:
            h = s["holder"]
            if cur is not None and cur[0] != h:
                holds.append((cur[0], cur[1], s["ts"]))
                cur = None
            if h and cur is None:
                cur = (h, s["ts"])
        if cur is not None:
            holds.append((cur[0], cur[1], None))
        newest = dict(types=MESSAGES, by="seq", last=True, limit=limit)
        found = {row.seq: row for row in reader.events(EventQuery(to=wid, **newest))}
        for agent, start, end in holds:
            # (ts, id) <= (end, ""): every event stamped before `end` (no id is empty)
            window = dict(since_ts=start, upto_key=(end, "") if end else None, **newest)
            for q in (EventQuery(from_=agent, **window), EventQuery(to=agent, **window)):
                found.update((row.seq, row) for row in reader.events(q))
        rows = [found[k] for k in sorted(found)][-limit:]
        return [self._summarised(row) for row in rows]

    # --- events ---------------------------------------------------------------------------
    def _summarised(self, row) -> dict:
        return _event_dict(row.seq, row.id, _readable(row.env, self._coord().blobs), row.body)

    def events_after(self, after_seq: int, limit: int = 500) -> list[dict]:
        """Events with seq > after_seq, in seq order (commit order), at most `limit`."""
        rows = self._coord().store.reader.events(EventQuery(after_seq=after_seq, limit=limit))
        return [self._summarised(r) for r in rows]

    def wait_for_new(self, after_seq: int, timeout: float) -> int:
        """Block until an event with seq > after_seq has committed, or `timeout` seconds
        passed; returns the greatest committed seq. The store waits cheaply (no busy
        reading: events.store.Store.wait_for_new); the follower calls this again at least
        every half second, so a wake-up the store missed is made up for."""
        store = self._coord().store
        store.wait_for_new(after_seq, timeout)
        return store.reader.max_seq()

    def event(self, ident: str) -> bytes:
        """`coord --json show EVENT` (a full id or unique prefix): the reading form with a
        claim-checked payload resolved, as JSON bytes."""
        c = self._coord()
        row = resolve_event(c.store.reader, ident)
        form = event_json_resolved(c.blobs, row.seq, row.id, row.body, problems=[])
        ahead = msgspec.json.decode(row.body)["ts"] > queries.horizon(c)  # the hashed bytes' ts
        return form[:-1] + b',"ahead":true}' if ahead else form

    def log(self, after_seq: int = 0, worker=None, types=(), from_=None, limit: int = 500) -> list[dict]:
        """`coord --json log` from after_seq on, in seq order, at most `limit` events
        (payloads summarised); `worker` an id or unique prefix, `types` names or globs."""
        with self._coord().store.read() as r:
            q = queries.log_query(r, worker, types, from_)
            rows = r.events(msgspec.structs.replace(q, after_seq=after_seq, by="seq", limit=limit))
        return [self._summarised(row) for row in rows]

    # --- messages and search --------------------------------------------------------------
    def messages(self, before_seq=None, limit: int = 100, to=None, from_=None, types=()) -> tuple[int, list]:
        """(seq, messages): msg.* events, newest first, with seq < before_seq when given;
        `types` names or globs, with or without the msg. prefix (as `poll --type`)."""
        q = EventQuery(
            types=type_filter(types, prefix="msg.") or MESSAGES,
            to=to or None,
            from_=from_ or None,
            upto_seq=before_seq - 1 if before_seq is not None else None,
            by="seq",
            last=True,
            limit=limit,
        )
        with self._coord().store.read() as r:
            seq = r.max_seq()
            rows = r.events(q)
        return seq, [self._summarised(row) for row in reversed(rows)]

    def search(self, query: str, types=(), from_=None, to=None, limit: int = 20) -> list[dict]:
        """`coord --json search QUERY`: best matches first."""
        return queries.search(self._coord(), query, types, from_, to, limit)

    # --- history: timeline and stats -------------------------------------------------------
    def timeline(self, since=None, until=None, workers=()) -> tuple[int, dict]:
        """(seq, data): `coord --json timeline [--since] [--until] [--worker W…]`, plus
        `events`, how many events were walked."""
        history = StoreHistory(self._coord().store)
        data, count = reports.timeline(history, since, until, workers)
        data["events"] = count
        return history.upto, data

    def stats(self, since=None) -> tuple[int, dict]:
        """(seq, figures): `coord --json stats [--since]`."""
        history = StoreHistory(self._coord().store)
        return history.upto, reports.stats(history, since)


def _readable(env, blobs):
    """A claim-checked payload by its summary (a big blob by its head), leniently: a
    missing or corrupt blob leaves the reference."""
    from ..events.blobs import readable

    return readable(env, blobs, summary=True)


def _event_dict(seq: int, eid: str, env, body: bytes) -> dict:
    d = {"seq": seq, "id": eid, "ts": env.ts, "from": env.from_, "to": env.to, "type": env.type}
    d["payload"] = env.payload
    if b'"$blob"' in body:
        stored = msgspec.json.decode(body)["payload"]
        if "$blob" in stored and "$blob" not in env.payload:
            d["blob"] = stored["$blob"]  # the payload shown is what that blob holds (its head)
    return d
