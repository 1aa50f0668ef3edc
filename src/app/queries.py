"""The read use cases, returning plain data for the CLI to render: the board, one worker
with its history and what is expected next, one event, the log with its filters, search
hits with snippets, and the history sources replay, stats and timeline walk."""

from ..events.envelope import MAX_US, now_us, parse_time, ts_to_us, us_to_ts
from ..events.errors import UnknownEvent, UnknownWorker, UsageError
from ..events.records import EventQuery, type_filter
from ..projections import board, liveness
from ..projections.boardview import decode_board_view
from ..projections.explain import expected_next
from ..projections.search import ensure_current, snippet
from ..projections.workers import ACTIVE, NON_TERMINAL, legal_actions
from . import resolve
from .graph import explain_waiting, ready, waits

HISTORY_SHOWN = 50  # transitions in `show`


def view_dict(v, now: int, interval: float, clone: str | None) -> dict:
    """A view in its reading form, liveness computed at `now` (replay passes a past now)."""
    lv = liveness.level(v, now, interval, clone)
    return {
        "worker": v.worker,
        "state": v.state,
        "holder": v.holder,
        "assignee": v.assignee,
        "task": v.task,
        "branch": v.branch,
        "base": v.base,
        "worktree": v.worktree,
        "created": v.created,
        "updated": v.updated,
        "state_since": v.state_since,
        "last_heartbeat": v.last_heartbeat,
        "liveness": lv,
        "attempt": v.attempt or None,
        "attempt_of": v.attempt_of,
        "spawner": v.spawner,
        "heartbeat": {
            "interval": liveness.interval_of(v, interval),
            "note": v.hb_note,
            "idle_s": v.idle_s,
            "count": v.heartbeats,
        },
        "summary": v.summary,
        "reason": v.reason,
        "info": v.info,
        "conflicts": v.conflicts,
        "last_event": v.last_event,
        "legal": legal_actions(v.state),
        "after": list(v.after),
        "priority": v.priority,
    }


def add_graph(reader, items: list[dict], views) -> None:
    """What each worker waits for and is blocked by, and whether it is ready (one read of
    the dependencies' states for all of them)."""
    info = waits(reader, views)
    for d, v in zip(items, views, strict=True):
        i = info.get(v.worker)
        d["ready"] = i["ready"] if i else v.state == "ASSIGNED"
        d["waits_for"] = i["waits_for"] if i else []
        d["blocked_by"] = i["blocked_by"] if i else []
        d["waiting_why"] = explain_waiting(v, i)


def ready_items(c, limit: int | None = None) -> list[dict]:
    """The ready queue in its reading form: highest priority first, then oldest."""
    now = now_us()
    items = []
    for v in ready(c, limit):
        d = worker_dict(c, v, now)
        d.update(ready=True, waits_for=[], blocked_by=[], waiting_why=None)
        items.append(d)
    return items


def board_dict(v, now: int, interval: float, clone: str | None) -> dict:
    """The keys of view_dict the text board reads (cli/render.render_board)."""
    return {
        "worker": v.worker,
        "state": v.state,
        "holder": v.holder,
        "task": v.task,
        "state_since": v.state_since,
        "last_heartbeat": v.last_heartbeat,
        "liveness": liveness.level(v, now, interval, clone),
        "heartbeat": {"note": v.hb_note, "idle_s": v.idle_s},
        "summary": v.summary,
        "reason": v.reason,
        "conflicts": v.conflicts,
        "priority": v.priority,
    }


def worker_dict(c, v, now: int | None = None) -> dict:
    now = now if now is not None else now_us()
    return view_dict(v, now, c.home.config["heartbeat_interval"], c.clone_id)


def board_items(c, worker_id=None, states=(), stale=False, all_=False, now=None, full=True) -> list[dict]:
    """The board's workers, oldest first: one worker, those in `states`, the active ones
    whose liveness is WARN or worse (`stale`), or all but the terminal ones (unless
    `all_`). One short read. `full=False`: only what the text board shows (board_dict),
    decoded from a part of each view (a board of 10,000 workers is read twice as fast)."""
    now = now if now is not None else now_us()
    with c.store.read() as r:
        if worker_id:
            views = [board.load(r, resolve.worker_id(r, worker_id))]
        else:
            pick = set(states) if states else ACTIVE if stale else None if all_ else NON_TERMINAL
            dec = board.decode_view if full else decode_board_view
            views = [dec(row.view) for row in r.views(states=pick)]
        if full or worker_id:
            items = [worker_dict(c, v, now) for v in views]
        else:
            interval, clone = c.home.config["heartbeat_interval"], c.clone_id
            items = [board_dict(v, now, interval, clone) for v in views]
        add_graph(r, items, views)
    if stale:
        items = [d for d in items if liveness.ORDER.get(d["liveness"], -1) >= 1]
    return items


def text_board(c, states=(), all_=False, now=None) -> tuple[list, dict, bool]:
    """The text board at its default width (cli/render.render_stored_board), read from the
    columns stored beside the views: (rows, special, any_active). rows: (line, None) as
    the store rendered it, or (None, worker) for a row whose SUMMARY reads what the views'
    columns do not hold (what it waits for, its checks): `special` maps those workers to
    their board items (board_dict with graph and checks), to render from. any_active:
    whether a shown worker has a liveness. The same board as render_board(board_items(…,
    full=False)), without decoding a view per row."""
    from ..events.records import TypeFilter
    from ..projections.checks import CHECK_TYPES

    now = now if now is not None else now_us()
    pick = set(states) if states else None if all_ else NON_TERMINAL
    interval, clone = c.home.config["heartbeat_interval"], c.clone_id
    with c.store.read() as r:
        checked = {row.to for row in r.events(EventQuery(types=TypeFilter(CHECK_TYPES)))}
        rows = r.board_lines(pick, now, interval, clone, sorted(checked))
        left = {w for line, w in rows if line is None}
        if len(left) > 100:  # one read of them all rather than a read each
            views = [decode_board_view(v.view) for v in r.views(states=pick) if v.worker in left]
        else:
            views = [decode_board_view(r.view(w)) for w in sorted(left)]
        items = [board_dict(v, now, interval, clone) for v in views]
        add_graph(r, items, views)
        any_active = r.has_views(ACTIVE if pick is None else ACTIVE & pick)
    if left & checked:
        from .checks import add_check_status

        add_check_status(c, items)
    return rows, {d["worker"]: d for d in items}, any_active


def add_branch_counts(c, items) -> None:
    """ahead/behind of each worker's branch against its base: one git call per worker,
    only when asked, so a plain `status` never runs git. None where git cannot tell
    (no branch, a branch or base deleted, no repository)."""
    from .gitrepo import repo_of

    repo = repo_of(c.home.project_dir) if any(d["branch"] for d in items) else None
    for d in items:
        counts = repo.ahead_behind(d["branch"], d["base"]) if repo and d["branch"] and d["base"] else None
        d["ahead"], d["behind"] = counts if counts else (None, None)


def horizon(c) -> str:
    """The latest ts not ahead of this clock by more than max_clock_skew."""
    return us_to_ts(min(now_us() + int(c.home.config["max_clock_skew"] * 1e6), MAX_US))


def lookup(c, ident: str):
    """`show`'s argument: ("worker", id) or ("event", Row). A worker id or prefix first;
    an ambiguous prefix of either is exit 2 listing the candidates."""
    r = c.store.reader
    try:
        return "worker", resolve.worker_id(r, ident)
    except UnknownWorker:
        pass
    try:
        return "event", resolve.event(r, ident)
    except UnknownEvent:
        raise UnknownWorker(f"no worker or event matches {ident!r}") from None
    except UsageError as e:
        if e.code == "ambiguous":
            raise
        raise UnknownWorker(f"no worker or event matches {ident!r}") from None


def worker_detail(c, wid: str, now: int) -> tuple[dict, object, list]:
    """(reading form with `ahead`, `expected`, `in_state_s`, `last`; the view; its last
    HISTORY_SHOWN transitions as Rows, oldest first), from one snapshot."""
    with c.store.read() as r:
        v = board.load(r, wid)
        hist = r.events(EventQuery(worker=wid, heartbeats=False, by="ts", last=True, limit=HISTORY_SHOWN))
        ahead = [row.id for row in r.events(EventQuery(worker=wid, later_than_ts=horizon(c), by="ts"))]
        d = worker_dict(c, v, now)
        add_graph(r, [d], [v])
        d["waited_by"] = r.dependents(wid)
    d["ahead"] = ahead
    d["expected"] = expected(c, v, d, now)
    d["in_state_s"] = round((now - ts_to_us(v.state_since)) / 1e6, 3)
    last = hist[-1] if hist else None
    d["last"] = {"event": last.id, "type": last.type, "from": last.from_, "ts": last.ts} if last else None
    return d, v, hist


def expected(c, v, d: dict, now: int) -> dict:
    """What is expected next of a worker, given its reading form d (with the graph's
    fields): `show`'s and the web board's `expected`."""
    if v.state == "ASSIGNED" and d.get("waiting_why") and not v.conflicts:
        first = d["waits_for"][0]["worker"]
        return {
            "actions": ["retry or cancel what blocks it, or dep rm"]
            if d["blocked_by"]
            else [f"finish {first}"],
            "by": "a human" if d["blocked_by"] else "whoever holds what it waits for",
            "waiting_on": first,
            "why": d["waiting_why"],
        }
    return expected_next(v, d["liveness"], now, c.home.config["heartbeat_interval"])


def log_query(reader, worker=None, types=(), from_=None, since=None) -> EventQuery:
    """log's filters: a worker (id or prefix), types (names or globs), an actor, and a
    point to start at (a time, an age, or an event id: the events after it)."""
    q = EventQuery(
        worker=resolve.worker_id(reader, worker) if worker else None,
        types=type_filter(types),
        from_=from_ or None,
        by="ts",
    )
    if since:
        t = since.strip()
        if t.lower().startswith("b3:"):
            row = resolve.event(reader, t)
            return _replace(q, after_key=(row.ts, row.id))
        return _replace(q, since_ts=us_to_ts(parse_time(t)))
    return q


def log_rows(c, worker=None, types=(), from_=None, since=None, limit=None):
    """(the snapshot's top seq, the matching events in (ts, id) order; the last `limit`)."""
    with c.store.read() as r:
        top = r.max_seq()  # `log -f` continues exactly after it: nothing missed or repeated
        q = log_query(r, worker, types, from_, since)
        if limit:
            q = _replace(q, last=True, limit=limit)
        return top, r.events(q)


def follow_log(c, after_seq: int, worker=None, types=(), from_=None, stop=None):
    """`log -f`: the events log's filters select, as they commit after `after_seq` (the top
    seq of the snapshot the listing read: nothing missed or repeated), until `stop()`."""
    from ..events.follow import follow

    idle = c.catch_up if c.shared else None  # the audit file follows too
    yield from follow(
        c.store, after_seq, log_query(c.store.reader, worker, types, from_), stop=stop, idle=idle
    )


def search(c, query: str, types=(), from_=None, to=None, limit=20) -> list[dict]:
    """Best matches first, each with a snippet around its first match."""
    if not query.strip():
        raise UsageError("empty search query")
    ensure_current(c.store)
    items = []
    with c.store.read() as r:
        for h in r.search(query, type_filter(types), from_, to, limit):
            held = r.search_text(h.seq)
            snip = snippet(held[1], held[0], query) if held else ""
            items.append(
                {
                    "id": h.id,
                    "seq": h.seq,
                    "ts": h.ts,
                    "from": h.from_,
                    "to": h.to,
                    "type": h.type,
                    "snippet": snip,
                    "rank": h.rank,
                }
            )
    return items


def open_history(from_file, open_coord):
    """(history, heartbeat interval, local clone id) for replay, stats and timeline. From a
    file: no home is needed; a config.toml beside the file (a committed .coord/) supplies
    the interval if present. Else the store of `open_coord()`."""
    from pathlib import Path

    from ..events.history import FileHistory, StoreHistory
    from ..events.home import Home
    from ..events.settings import SETTINGS

    if from_file:
        h = FileHistory(from_file)
        interval = SETTINGS["heartbeat_interval"][1]
        beside = Path(from_file).absolute().parent
        if (beside / "config.toml").exists():
            interval = Home(beside).config["heartbeat_interval"]
        return h, interval, None
    c = open_coord()
    return StoreHistory(c.store), c.home.config["heartbeat_interval"], c.clone_id


def board_at_items(views: dict, now: int, interval: float, worker=None) -> list[dict]:
    """A board folded from history, as it was at `now`."""
    vs = sorted(views.values(), key=lambda v: (v.created, v.worker))
    if worker:
        vs = [v for v in vs if v.worker == worker]
    # Liveness as the holder's side saw it: a replay has no "local clone" (clone=None).
    return [view_dict(v, now, interval, None) for v in vs]


def _replace(q: EventQuery, **kw) -> EventQuery:
    import msgspec

    return msgspec.structs.replace(q, **kw)
