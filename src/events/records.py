"""The plain types the store interface (coord.events.store) reads and writes: a stored
event as appended and as read back, a query over events and its type filter, a stored
view, a search hit, and the audit marks.

Type filters (`--type T`, repeatable) are exact names or globs (`*`, `?`, `[...]`,
`[^...]`, case-sensitive, as SQLite's GLOB reads them): one filter type for `log`, `poll`,
`search` and `replay`. A store turns it into its own query; `matches` applies the same
rule in Python (replay of an audit file, where there is no database).
"""

import re

import msgspec

from .envelope import Envelope, decode

# --- type filters -------------------------------------------------------------------
GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(ch in GLOB_CHARS for ch in pattern)


class TypeFilter(msgspec.Struct, frozen=True):
    """Event types matching any of `patterns` (an empty tuple matches nothing)."""

    patterns: tuple[str, ...]

    def matches(self, etype: str) -> bool:
        return any(_regex(p).fullmatch(etype) is not None for p in self.patterns)


def type_filter(types, prefix: str | None = None) -> TypeFilter | None:
    """The filter for `--type` values (None when none were given). With `prefix` (poll's
    'msg.'), a value without it gets it: `review` and `msg.review` are the same type."""
    if not types:
        return None
    if prefix:
        types = [t if t.startswith(prefix) else prefix + t for t in types]
    return TypeFilter(tuple(dict.fromkeys(types)))


_cache: dict = {}


def _regex(pattern: str):
    """A glob as SQLite's GLOB reads it: `*` any run, `?` one character, `[abc]`, `[a-z]`
    and `[^abc]` one character of (or not of) a set; everything else literal."""
    rx = _cache.get(pattern)
    if rx is not None:
        return rx
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: SQLite matches nothing for it
                out.append("(?!)")
                break
            body = pattern[i + 1 : j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    rx = re.compile("".join(out), re.S)
    if len(_cache) < 256:
        _cache[pattern] = rx
    return rx


# Whether an event belongs in the audit file, decided when it is appended: not for the
# file (a heartbeat with audit_heartbeats off), dirty (to be written), written.
AUDIT_NONE, AUDIT_DIRTY, AUDIT_WRITTEN = 0, 1, 2
HEARTBEAT = "worker.heartbeat"
# The version of the folds (coord.projections): bump it when a fold's result changes (the
# stored views must then be rebuilt). A server store records it and refuses another.
# 2: attempts (issue 16), the work graph's columns (14), notices (15), acks as events (20).
FOLD_VERSION = 2


class StoredEvent(msgspec.Struct):
    """An event as `append` stored it (what projectors and after-commit hooks see)."""

    seq: int
    id: str
    body: bytes
    env: Envelope
    origin: str = "local"  # 'local' or 'import'
    audit: int | None = None  # the audit mark given at append (None: not known here)
    stored: int | None = None  # local clock (µs) when this store recorded it (None: not known)


class Row(msgspec.Struct, frozen=True, gc=False):
    """A stored event as read back: its columns (copies of what the hashed body says, kept
    for queries: `verify` compares them with the body), the canonical bytes, and this
    store's own marks."""

    seq: int
    id: str
    ts: str
    from_: str
    to: str
    type: str
    worker: str | None  # the worker a worker.* event concerns, else None
    body: bytes
    origin: str = "local"
    audit: int = AUDIT_NONE
    stored: int | None = None

    @property
    def env(self) -> Envelope:
        return decode(self.body)


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    """Which events to read; every field narrows, the defaults read everything."""

    worker: str | None = None  # worker.* events of this worker
    types: TypeFilter | None = None  # exact names or globs
    from_: str | None = None
    to: str | None = None
    after_seq: int = 0  # seq > after_seq
    upto_seq: int | None = None  # seq <= upto_seq
    after_key: tuple[str, str] | None = None  # (ts, id) > after_key
    upto_key: tuple[str, str] | None = None  # (ts, id) <= upto_key
    since_ts: str | None = None  # ts >= since_ts
    later_than_ts: str | None = None  # ts > later_than_ts (events dated ahead)
    lifecycle: bool = False  # only worker.* events
    heartbeats: bool = True  # False: leave worker.heartbeat out
    blob_refs: bool = False  # only events whose bytes name a blob ("$blob")
    by: str = "seq"  # the order: "seq", or "ts" for (ts, id)
    last: bool = False  # with limit: the last `limit` in that order (returned in order)
    limit: int | None = None


class BoardRow(msgspec.Struct, frozen=True, gc=False):
    """The text board's columns beside a view, computed by the projector from it
    (coord.projections.boardtext): the row's fixed text, and the times its AGE, HEARTBEAT
    and LIVENESS are computed from when the board is read, so `status` reads plain columns
    instead of decoding 10,000 views."""

    head: str  # WORKER STATE HOLDER, padded to their columns, escaped, cut to fit
    note: str  # SUMMARY without what is read elsewhere (dependencies, checks), cut to fit
    since: int  # µs: the state's start (AGE)
    beat: int | None = None  # µs: the last heartbeat of an active worker (HEARTBEAT)
    live: int | None = None  # µs: what an active worker's liveness is measured from
    interval: float | None = None  # the worker's own heartbeat interval, if any
    clone: str | None = None  # the holder's clone (REMOTE when it is not this one)


# The board's columns as both stores name them (board_<field of BoardRow>), their values
# for a view that has none, and the row read back.
BOARD_COLUMNS = tuple("board_" + f for f in BoardRow.__struct_fields__)


def board_values(board: BoardRow | None) -> tuple:
    return msgspec.structs.astuple(board) if board is not None else (None,) * len(BOARD_COLUMNS)


def board_row(t) -> BoardRow | None:
    return BoardRow(*t) if t[0] is not None else None


class ViewRow(msgspec.Struct, frozen=True, gc=False):
    """A worker's view as stored: opaque bytes (the projector's encoding) plus the columns
    the application filters and orders on."""

    worker: str
    state: str
    holder: str | None
    assignee: str | None
    created: str
    updated: str
    branch: str | None
    base: str | None
    worktree: str | None
    view: bytes
    # The work graph (coord.projections.graph): ready = ASSIGNED with every dependency
    # COMPLETED; waiting = how many dependencies are not; priority 0 (highest) … 4.
    ready: bool = False
    priority: int = 2
    waiting: int = 0
    # The text board's columns (BoardRow), written with the view; read back only when
    # asked (views(board=True)).
    board: BoardRow | None = None


class SearchHit(msgspec.Struct, frozen=True):
    seq: int
    id: str
    ts: str
    from_: str
    to: str
    type: str
    rank: float


def worker_of(env: Envelope) -> str | None:
    return env.to if env.type.startswith("worker.") else None


class Notice(msgspec.Struct, frozen=True, gc=False):
    """A lifecycle event delivered to an agent's inbox (coord.projections.notices): the
    event at `seq` changed or ended attempt `attempt` of `worker`, which `agent` held."""

    seq: int
    agent: str
    worker: str
    attempt: int
    reason: str
