"""The web board's one door into coord: every read the board makes, as plain data.

Everything else under coord.web depends on coord only through this module (and msgspec,
which encodes what it returns). It reads through today's library (coord.api.Coord, the
projections, the helpers of the read commands); when the application room lands, only
this file is rewired to it, and a PostgreSQL store then works the same way.

Forms, so a rewiring keeps them:
- a board item is what `coord --json status --all` prints for one worker, plus
  `expected` as `coord --json show W` gives it (why it is there, what is next, by whom);
- a worker's detail is what `coord --json show W` prints, except that claim-checked
  payloads in its history are summarised (a big blob by its head, as `log` shows it), and
  each history entry also says what it changed (`before`, `after`, `conflict`, `change`,
  as `replay --json` does); plus `messages` (to and from it);
- an event is the reading form (`seq`, `id`, then the envelope), its payload summarised;
- errors are coord's CoordError, carrying `code`, `message` and `exit_code` (the
  contract's exit codes); the web room maps them to HTTP statuses.

Every method may be called from any thread: each thread gets its own connection (SQLite
connections are not shared between threads that read at the same time).
"""

from __future__ import annotations

import os
import stat
import threading
import time

import msgspec

from ..events.errors import CoordError, NotFound, Refused, UsageError  # noqa: F401  (re-exported)

# A message is any msg.* type: type >= 'msg.' AND type < 'msg/' (inbox.* never is one).
_MSG = ("msg.", "msg/")
TOKEN_NAME = "serve.token"


class Source:
    """An open home, read by the web board. close() when done."""

    def __init__(self, home: str | os.PathLike | None = None):
        from ..events.home import find_home

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
    def _coord(self):
        c = getattr(self._local, "coord", None)
        if c is None:
            from ..api import Coord

            if self._closed:
                raise CoordError("the board's store is closed")
            c = Coord(self.home, on_warning=lambda m: None)
            with self._lock:
                self._open.append(c)
            self._local.coord = c
            self._local.version = None
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
        from ..events.envelope import now_us, us_to_ts

        return {
            "project": self.home.project_dir.name,
            "home": str(self.home.path),
            "seq": self.max_seq(),
            "now": us_to_ts(now_us()),
            "heartbeat_interval": self._interval,
            "version": self._version,
        }

    def max_seq(self) -> int:
        c = self._coord()
        with c.store.read() as conn:
            return conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    # --- the board ----------------------------------------------------------------------
    def board(self, all_: bool = True, states=(), workers=None) -> tuple[int, str, list[dict]]:
        """(seq, now, items): the board as `coord --json status` gives it (--all by default;
        `states` keeps those states; `workers` keeps those ids, unknown ones left out), each
        item with `expected`; `seq` is the last event the snapshot includes, `now` the time
        its ages and liveness were computed at."""
        from ..cli.views import worker_dict
        from ..events.envelope import now_us, us_to_ts
        from ..projections import board
        from ..projections.explain import expected_next
        from ..projections.workers import STATES

        bad = [s for s in states if s not in STATES]
        if bad:
            raise UsageError(f"unknown state {bad[0]!r} (one of {', '.join(STATES)})")
        c = self._coord()
        with c.store.read() as conn:
            seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            if workers is not None:
                views = [v for v in (board.load(conn, w) for w in workers) if v is not None]
            else:
                q, args = "SELECT view FROM workers", []
                if states:
                    q += f" WHERE state IN ({','.join('?' * len(states))})"
                    args = sorted(set(states))
                elif not all_:
                    q += " WHERE state NOT IN ('COMPLETED','CANCELED')"
                q += " ORDER BY created, worker"
                views = [board.decode_view(r[0]) for r in conn.execute(q, args)]
        now = now_us()
        items = []
        for v in views:
            d = worker_dict(c, v, now)
            d["expected"] = expected_next(v, d["liveness"], now)
            items.append(d)
        return seq, us_to_ts(now), items

    def liveness(self) -> dict[str, str]:
        """The liveness of every active worker (WORKING, CONFLICTED), computed now."""
        from ..events.envelope import now_us
        from ..projections import board, liveness

        c = self._coord()
        with c.store.read() as conn:
            rows = conn.execute("SELECT view FROM workers WHERE state IN ('WORKING','CONFLICTED')").fetchall()
        now, clone = now_us(), c.clone_id
        out = {}
        for (blob,) in rows:
            v = board.decode_view(blob)
            out[v.worker] = liveness.level(v, now, self._interval, clone)
        return out

    # --- one worker ---------------------------------------------------------------------
    def worker(self, ident: str, history: int = 200, messages: int = 200) -> tuple[int, dict]:
        """(seq, detail) of a worker id or unique prefix: `coord --json show W`, with the
        last `history` transitions (what each changed) and up to `messages` messages to
        and from it (to the worker, and to or from whoever held it while they held it)."""
        from ..cli.views import _horizon, worker_dict
        from ..events.envelope import now_us, ts_to_us
        from ..projections import board
        from ..projections.explain import expected_next

        c = self._coord()
        with c.store.read() as conn:
            seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            wid = board.resolve(conn, ident)
            v = board.load(conn, wid)
            rows = conn.execute(
                'SELECT seq, id, ts, "from", type, body FROM events WHERE worker = ? '
                "AND type != 'worker.heartbeat' ORDER BY ts, id",
                (wid,),
            ).fetchall()
            ahead = [
                r[0]
                for r in conn.execute(
                    "SELECT id FROM events WHERE worker = ? AND ts > ? ORDER BY ts, id", (wid, _horizon(c))
                )
            ]
            steps = self._steps(rows)
            msgs = self._worker_messages(conn, wid, steps, messages)
        now = now_us()
        d = worker_dict(c, v, now)
        d["ahead"] = ahead
        d["expected"] = expected_next(v, d["liveness"], now)
        d["in_state_s"] = round((now - ts_to_us(v.state_since)) / 1e6, 3)
        last = rows[-1] if rows else None
        d["last"] = {"event": last[1], "type": last[4], "from": last[3], "ts": last[2]} if last else None
        d["history"] = steps[-history:] if history else []
        d["messages"] = msgs
        return seq, d

    def _steps(self, rows) -> list[dict]:
        """A worker's transitions, folded from its first, each with what it changed."""
        from ..events.envelope import decode
        from ..projections.replay import describe, steps

        blobs = self._coord().blobs
        by_id = {r[1]: r for r in rows}
        envs = ((r[1], _readable(decode(r[5]), blobs)) for r in rows)
        out = []
        for s in steps(envs):
            r = by_id[s.id]
            e = _event_dict(r[0], r[1], s.env, r[5])
            e["before"] = s.before.state if s.before is not None else None
            e["after"] = s.after.state if s.after is not None else None
            e["holder"] = s.after.holder if s.after is not None else None
            e["conflict"] = s.conflict
            e["change"] = describe(s)
            out.append(e)
        return out

    def _worker_messages(self, conn, wid: str, steps: list[dict], limit: int) -> list[dict]:
        holds, cur = [], None  # (agent, from ts, to ts or None)
        for s in steps:
            h = s["holder"]
            if cur is not None and cur[0] != h:
                holds.append((cur[0], cur[1], s["ts"]))
                cur = None
            if h and cur is None:
                cur = (h, s["ts"])
        if cur is not None:
            holds.append((cur[0], cur[1], None))
        base = "SELECT seq, id, body FROM events WHERE type >= ? AND type < ? AND "
        found = {}
        for row in conn.execute(base + '"to" = ? ORDER BY seq DESC LIMIT ?', (*_MSG, wid, limit)):
            found[row[0]] = row
        for agent, start, end in holds:
            for col in ('"from"', '"to"'):
                sql = base + f"{col} = ? AND ts >= ?" + (" AND ts < ?" if end else "")
                args = [*_MSG, agent, start] + ([end] if end else [])
                for row in conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)):
                    found[row[0]] = row
        rows = [found[k] for k in sorted(found)][-limit:]
        return [self._summarised(*r) for r in rows]

    # --- events ---------------------------------------------------------------------------
    def _summarised(self, seq: int, eid: str, body: bytes) -> dict:
        from ..events.envelope import decode

        env = _readable(decode(body), self._coord().blobs)
        return _event_dict(seq, eid, env, body)

    def events_after(self, after_seq: int, limit: int = 500) -> list[dict]:
        """Events with seq > after_seq, in seq order (commit order), at most `limit`."""
        c = self._coord()
        with c.store.read() as conn:
            rows = conn.execute(
                "SELECT seq, id, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
        return [self._summarised(*r) for r in rows]

    def wait_for_new(self, after_seq: int, timeout: float, poll: float = 0.05) -> int:
        """Block until an event with seq > after_seq has committed, or `timeout` seconds
        passed; returns the greatest committed seq. Waiting costs no transaction: it
        sleeps and looks at SQLite's data_version, which moves when another connection
        commits (and re-reads once a second, in case a change was missed)."""
        c = self._coord()
        deadline = time.monotonic() + timeout
        checked = 0.0
        while True:
            version = c.conn.execute("PRAGMA data_version").fetchone()[0]
            clock = time.monotonic()
            if version != self._local.version or clock - checked >= 1.0:
                self._local.version, checked = version, clock
                top = self.max_seq()
                if top > after_seq:
                    return top
            if clock >= deadline:
                return self.max_seq()
            time.sleep(min(poll, max(0.0, deadline - clock)))

    def event(self, ident: str) -> bytes:
        """`coord --json show EVENT` (a full id or unique prefix): the reading form with a
        claim-checked payload resolved, as JSON bytes."""
        from ..cli.views import _horizon, event_json_resolved, resolve_event

        c = self._coord()
        with c.store.read() as conn:
            seq, eid, body, _ = resolve_event(conn, ident)
        form = event_json_resolved(c.blobs, seq, eid, body, problems=[])
        ahead = msgspec.json.decode(body)["ts"] > _horizon(c)
        return form[:-1] + b',"ahead":true}' if ahead else form

    def log(self, after_seq: int = 0, worker=None, types=(), from_=None, limit: int = 500) -> list[dict]:
        """`coord --json log` from after_seq on, in seq order, at most `limit` events
        (payloads summarised); `worker` an id or unique prefix, `types` names or globs."""
        from ..cli.views import build_log_query

        c = self._coord()
        with c.store.read() as conn:
            where, args = build_log_query(conn, worker, types, from_, None)
            where = (where + " AND" if where else " WHERE") + " seq > ?"
            rows = conn.execute(
                f"SELECT seq, id, body FROM events{where} ORDER BY seq LIMIT ?", [*args, after_seq, limit]
            ).fetchall()
        return [self._summarised(*r) for r in rows]

    # --- messages and search --------------------------------------------------------------
    def messages(self, before_seq=None, limit: int = 100, to=None, from_=None, types=()) -> tuple[int, list]:
        """(seq, messages): msg.* events, newest first, with seq < before_seq when given."""
        from ..projections.inbox import type_filter

        where, args = ["+type >= ?", "+type < ?"], list(_MSG)
        if before_seq is not None:
            where.append("seq < ?")
            args.append(before_seq)
        if to:
            where.append('"to" = ?')
            args.append(to)
        if from_:
            where.append('"from" = ?')
            args.append(from_)
        tsql, targs = type_filter(types)
        c = self._coord()
        with c.store.read() as conn:
            seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
            rows = conn.execute(
                f"SELECT seq, id, body FROM events WHERE {' AND '.join(where)}{tsql} ORDER BY seq DESC LIMIT ?",
                [*args, *targs, limit],
            ).fetchall()
        return seq, [self._summarised(*r) for r in rows]

    def search(self, query: str, types=(), from_=None, to=None, limit: int = 20) -> list[dict]:
        """`coord --json search QUERY`: best matches first."""
        from ..projections import search as fts

        if not query.strip():
            raise UsageError("empty search query")
        c = self._coord()
        fts.ensure_current(c.store)
        with c.store.read() as conn:
            rows = fts.query(conn, query, types, from_, to, limit)
        return [
            {
                "id": eid,
                "seq": seq,
                "ts": ts,
                "from": frm,
                "to": dst,
                "type": typ,
                "snippet": snip,
                "rank": rank,
            }
            for seq, eid, ts, frm, dst, typ, snip, rank in rows
        ]

    # --- history: timeline and stats -------------------------------------------------------
    def timeline(self, since=None, until=None, workers=()) -> tuple[int, dict]:
        """(seq, data): `coord --json timeline [--since] [--until] [--worker W…]`."""
        from ..cli.timeline import clip
        from ..events.history import StoreHistory
        from ..projections import timeline as tl
        from ..projections.replay import steps

        c = self._coord()
        history = StoreHistory(c.store)
        with c.store.read() as conn:
            from ..projections import board

            wanted = {board.resolve(conn, w) for w in workers}
        hi = history.point(until, end=True) if until else None
        lo = history.point(since, end=False) if since else None
        count = 0

        def walk():
            nonlocal count
            for s in steps(history.events(until=hi)):
                count += 1
                yield s

        data = tl.compute(walk())
        if hi is not None and hi[0]:
            data["end"] = hi[0]
        if lo is not None and lo[0] and data["start"] and lo[0] > data["start"]:
            data["start"] = lo[0]
            data["lanes"] = [lane for lane in (clip(x, lo[0]) for x in data["lanes"]) if lane["segments"]]
            data["messages"] = [m for m in data["messages"] if m["ts"] >= lo[0]]
        if wanted:
            data["lanes"] = [lane for lane in data["lanes"] if lane["worker"] in wanted]
        data["events"] = count
        return history.upto, data

    def stats(self, since=None) -> tuple[int, dict]:
        """(seq, figures): `coord --json stats [--since]`."""
        from ..events.history import StoreHistory
        from ..projections import stats as figures
        from ..projections.replay import steps

        history = StoreHistory(self._coord().store)
        lo = history.point(since, end=False) if since else None
        walk = steps(history.events())
        if lo is not None:
            walk = (s for s in walk if (s.env.ts, s.id) >= lo)
        return history.upto, figures.compute(walk)

    # --- the token ------------------------------------------------------------------------
    def serve_token(self, token_file=None) -> tuple[str, str, bool]:
        """(token, where it was read, created): read from `token_file` (a file the user
        names: its first line; at least 16 characters of [A-Za-z0-9._~+/=-]), else from
        .coord/serve.token, created with a new random token (mode 0600, never through a
        link) when missing. A serve.token others may read is refused (exit 4)."""
        if token_file is not None:
            try:
                with open(token_file, "rb") as f:
                    data = f.read(4096)
            except FileNotFoundError:
                raise UsageError(f"no such token file: {token_file}") from None
            except IsADirectoryError:
                raise UsageError(f"{token_file} is a directory, not a token file") from None
            except PermissionError:
                raise UsageError(f"cannot read the token file {token_file}: permission denied") from None
            return _parse_token(data, str(token_file)), str(token_file), False
        from ..events.files import check_regular, open_in_home, read_file_in_home

        path = self.home.path / TOKEN_NAME
        created = False
        try:
            fd = open_in_home(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            fd = None
        if fd is not None:
            import secrets

            token = secrets.token_urlsafe(32)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, token.encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            created = True
        check_regular(path, missing_ok=False)  # a link or a fifo in its place: exit 5
        st = os.lstat(path)
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise Refused(
                f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):04o}); "
                "remove it (a new token is made) or chmod 600 it"
            )
        data = read_file_in_home(path) or b""
        return _parse_token(data, str(path)), str(path), created


def _parse_token(data: bytes, where: str) -> str:
    import re

    line = data.split(b"\n", 1)[0].strip()
    try:
        token = line.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: the token is not ASCII") from None
    if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,512}", token):
        raise UsageError(
            f"{where}: a token is one line of at least 16 characters of letters, digits and ._~+/=-"
        )
    return token


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
