"""The store interface: exactly the operations the application needs from a home's log, as
abstract classes with one implementation per database (coord.events.sqlite_store,
coord.events.pg_store), chosen in coord.events.home.Home.open_store.

- `Store`: an open home's log. Writes go through `transact(fn)`, reads through `read()`
  (one consistent snapshot) or `reader` (each call its own snapshot).
- `Reader`: the reads. Events (by seq, worker, type, actor, time), views (opaque bytes
  plus the columns the application filters on), request ids, bookkeeping, inboxes
  (notices: coord.events.store_notices), search, audit marks. Types: events/records.py.
- `WriteTx(Reader)`: one write transaction. `append` is the one write path: it encodes,
  checks the shape rules, stamps ts and seq, stores the bytes and runs the registered
  projectors inside the transaction; the after-commit hooks run after COMMIT.

Writes are functions the implementation may run more than once (`transact`): a store may
read without a lock, decide, and find at commit that what it read changed (PostgreSQL's
optimistic append), then run the function again. So a function given to `transact` reads
everything its decision depends on through its tx and has no effect outside the
transaction (blobs before; git steps before or after; output after). SQLite runs it once.
The store never knows what a view holds or how a fold works (coord.projections)."""

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager

from .append import AppendOps
from .records import (
    EventQuery,
    Row,
    SearchHit,
    StoredEvent,
    TypeFilter,
    ViewRow,
)
from .store_graph import GraphReader, GraphWriter
from .store_notices import NoticeReads, NoticeWrites


class Reader(GraphReader, NoticeReads, ABC):
    """The reads. On a WriteTx they see the transaction's own writes; a decision taken in
    a write must read through its tx (see the module's docstring)."""

    # --- events ------------------------------------------------------------------------
    @abstractmethod
    def max_seq(self) -> int:
        """The greatest seq stored (0 when empty). seq is gapless and in commit order."""

    @abstractmethod
    def events(self, q: EventQuery) -> list[Row]:
        """The events `q` selects, in its order."""

    def event_bodies(self, q: EventQuery) -> list[tuple]:
        """(seq, id, ts, body, stored) of the events `q` selects, in its order: what a
        rebuild reads (a store may read just these columns)."""
        return [(r.seq, r.id, r.ts, r.body, r.stored) for r in self.events(q)]

    @abstractmethod
    def count(self, q: EventQuery) -> int:
        """How many events `q` selects (its limit and order ignored)."""

    @abstractmethod
    def event_at(self, seq: int) -> Row | None:
        """The event with this seq."""

    @abstractmethod
    def find_events(self, prefix: str, limit: int = 11, upto_seq: int | None = None) -> list[Row]:
        """Events whose id starts with `prefix` ('b3:…', lower case), by id."""

    @abstractmethod
    def nth_event(self, n: int, upto_seq: int | None = None) -> Row | None:
        """The n-th event (1-based) in (ts, id) order, among seq <= upto_seq."""

    @abstractmethod
    def known_ids(self, ids: list[str]) -> set[str]:
        """Which of these ids are stored."""

    # --- views -------------------------------------------------------------------------
    @abstractmethod
    def view(self, worker: str) -> bytes | None:
        """The stored view of a worker (None when there is none)."""

    @abstractmethod
    def views(
        self,
        states=None,
        holder: str | None = None,
        naming: str | None = None,
        assignable_by: str | None = None,
        limit: int | None = None,
        board: bool = False,
    ) -> list[ViewRow]:
        """Views ordered by (created, worker): in one of `states`, held by `holder`, whose
        branch or base is `naming`, without an assignee or assigned to `assignable_by`;
        with their board's columns if `board`."""

    @abstractmethod
    def board_lines(
        self, states, now: int, interval: float, clone: str | None, special=()
    ) -> list[tuple[str | None, str | None]]:
        """The text board's rows of the views in one of `states` (None: all), ordered by
        (created, worker), at the time `now` (µs; default heartbeat interval `interval`,
        this clone `clone`): each (line, None), rendered from the stored BoardRow as
        cli/render.board_line renders a view, or (None, worker) for the rows left to the
        caller: a worker in `special`, one that waits for others, one stored without the
        columns."""

    @abstractmethod
    def has_views(self, states) -> bool:
        """Whether any view is in one of `states` (one index entry read)."""

    @abstractmethod
    def worker_ids(self, prefix: str, limit: int = 11) -> list[str]:
        """Workers whose id starts with `prefix`, sorted (an exact id sorts first)."""

    @abstractmethod
    def position(self, name: str) -> int:
        """The last seq the projection `name` folded (0 when none)."""

    # --- request ids and bookkeeping ----------------------------------------------------
    @abstractmethod
    def request(self, actor: str, key: str) -> bytes | None:
        """The stored result of a request id (coord.app.requests encodes it)."""

    @abstractmethod
    def meta(self, keys) -> dict[str, str]:
        """Bookkeeping values by key (clone id, the audit file's record, flags)."""

    # --- inboxes -------------------------------------------------------------------------
    @abstractmethod
    def pending_messages(
        self, agent: str, addresses: list[str], types: TypeFilter | None, limit: int | None
    ) -> list[Row]:
        """msg.* events to any of `addresses` not acknowledged by `agent` (no inbox.acked of
        its lists them; to '*', never its own), matching `types`, by seq."""

    @abstractmethod
    def acked(self, agent: str, ids: list[str]) -> set[str]:
        """Which of these event ids `agent` has acknowledged (the inbox projection)."""

    # --- search ------------------------------------------------------------------------
    @abstractmethod
    def search(self, query: str, types: TypeFilter | None, from_, to, limit: int) -> list[SearchHit]:
        """Best matches first. A query the engine cannot read is a UsageError (exit 2)."""

    @abstractmethod
    def search_text(self, seq: int) -> tuple[str, str] | None:
        """(type, text) the index holds for an event."""

    @abstractmethod
    def search_count(self) -> int:
        """How many events the index holds."""

    # --- the audit file's marks --------------------------------------------------------
    @abstractmethod
    def audit_rows(
        self, after_seq: int = 0, upto_seq: int | None = None, dirty_only: bool = False, limit=None
    ) -> list[Row]:
        """Events that belong in the audit file (dirty ones only, if asked), by seq."""

    @abstractmethod
    def audit_marks(self, after_seq: int = 0, limit: int | None = None) -> list[tuple[int, str, int]]:
        """(seq, id, mark) of the events that belong in the audit file, by seq."""

    @abstractmethod
    def any_dirty(self) -> bool:
        """Whether an event waits to be written to the audit file."""


class WriteTx(AppendOps, GraphWriter, NoticeWrites, Reader):
    """One write transaction. Implementations provide `_heads`, `_has_id` and `_insert`
    plus the write operations below; `append`, `next_ts` and `export_pending` are the same
    everywhere (coord.events.append)."""

    def __init__(self, store: "Store"):
        self.store = store
        self.appended: list[StoredEvent] = []
        self.cache: dict = {}  # projectors may keep views here for the transaction's length
        # Callbacks run once each just before COMMIT (e.g. the projector re-folding the
        # workers a batch of imported events touched), keyed so each runs once.
        self.before_commit: dict = {}
        self._seq: int | None = None
        self._last_us: int | None = None

    # --- what an implementation provides --------------------------------------------
    @abstractmethod
    def _heads(self, horizon_ts: str) -> tuple[int, str | None]:
        """(max seq, greatest ts <= horizon_ts) as this transaction sees them."""

    @abstractmethod
    def _has_id(self, eid: str) -> bool:
        """Whether an event with this id is stored."""

    @abstractmethod
    def _insert(self, ev: StoredEvent) -> None:
        """Store one event with its columns (ts, from, to, type, worker_of(env))."""

    @abstractmethod
    def put_view(self, row: ViewRow) -> None:
        """Insert or replace a worker's view."""

    @abstractmethod
    def put_view_blob(self, worker: str, view: bytes, board=None) -> None:
        """Replace only the bytes of a view whose columns did not change (a heartbeat), and
        its board's columns (a BoardRow: columns without an index) if given."""

    @abstractmethod
    def put_board(self, worker: str, board) -> None:
        """Replace a view's board columns (a BoardRow)."""

    @abstractmethod
    def delete_view(self, worker: str) -> None: ...

    @abstractmethod
    def replace_views(self, rows: list[ViewRow]) -> None:
        """Every view at once (rebuild): readers see the old set or the new, never a mix.
        The dependency index is emptied with them (set_deps refills it)."""

    @abstractmethod
    def set_position(self, name: str, seq: int) -> None: ...

    @abstractmethod
    def remember_request(self, actor: str, key: str, result: bytes) -> None:
        """Store a request id's first result (a key used before is an error)."""

    @abstractmethod
    def replace_request(self, actor: str, key: str, result: bytes) -> None: ...

    @abstractmethod
    def set_meta(self, values: dict) -> None: ...

    @abstractmethod
    def delete_meta(self, key: str) -> None: ...

    @abstractmethod
    def record_acks(self, agent: str, ids: list[str]) -> None:
        """The inbox projection: `agent` acknowledged these ids (kept for events not stored
        yet; idempotent)."""

    @abstractmethod
    def reset_acks(self) -> None: ...  # forget every acknowledgement (rebuild replays them)

    @abstractmethod
    def index_text(self, seq: int, etype: str, text: str) -> None:
        """Add one event to the search index."""

    @abstractmethod
    def search_shadow_reset(self) -> None:
        """Start a fresh index beside the live one (rebuild)."""

    @abstractmethod
    def search_shadow_add(self, rows: list[tuple[int, str, str]]) -> None:
        """(seq, type, text) rows into the fresh index."""

    @abstractmethod
    def search_shadow_swap(self) -> None:
        """The fresh index replaces the live one."""

    @abstractmethod
    def set_audit(self, seqs: list[int], mark: int) -> None: ...


class Store(ABC):
    """An open home's log. `projectors` run inside every append, `(tx, StoredEvent)`;
    `after_commit` hooks run after a COMMIT that appended, `(store, [StoredEvent])`."""

    # Read commands import lines a pull brought into the audit file (a shared server: never).
    imports_pulled_lines = False

    def __init__(self, home, projectors=(), after_commit=()):
        self.home = home
        self.projectors = list(projectors)
        self.after_commit = list(after_commit)
        # After a `transact` that appended: WriteTx.export_pending() asked just before its
        # COMMIT (read by the audit hook; left True, the hook looks for itself).
        self.export_pending = True

    @abstractmethod
    def open(self) -> "Store":
        """Connect (and bring the schema up to date); returns self."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    @property
    @abstractmethod
    def blobs(self):
        """The home's blobs (coord.events.blobs.BlobStore's operations)."""

    @abstractmethod
    def clone_id(self) -> str:
        """This store's identity among clones (recorded at `start`: liveness REMOTE)."""

    @abstractmethod
    def transact(self, fn, hooks: bool = True, durable: bool = True, beats: bool = False):
        """Run fn(tx) in one write transaction and commit; returns fn's result. fn may be
        run more than once (see the module's docstring); an exception rolls back and is
        raised. hooks=False skips the after-commit hooks (bookkeeping, batched imports
        that export once at the end); durable=False allows a cheaper commit for
        bookkeeping that is safe to lose (the audit file's record). beats=True: fn
        appends heartbeats only; when it did (`tx.beats_only()`), the commit is as
        durable as the heartbeat_synchronous setting says, else as any other. When fn
        appended and hooks run, set `self.export_pending = tx.export_pending()` just
        before COMMIT."""

    @abstractmethod
    def read(self) -> AbstractContextManager[Reader]:
        """A short consistent snapshot for several reads."""

    @property
    @abstractmethod
    def reader(self) -> Reader:
        """Reads outside any transaction, each its own snapshot."""

    @abstractmethod
    def wait_for_new(self, after_seq: int, timeout: float) -> bool:
        """Block until an event with seq > after_seq is committed (True) or timeout
        seconds pass (False), cheaply: no busy reading of the table."""

    @abstractmethod
    def rebuild_lock(self, timeout: float = 3600.0) -> AbstractContextManager[None]:
        """Serialises whole rebuilds (views, search index) between processes; appends go
        on meanwhile."""

    @abstractmethod
    def backup(self, dest: str) -> int:
        """A consistent copy of everything into the new file dest, taken while others
        write; returns the number of events in it."""

    @abstractmethod
    def integrity_check(self) -> list[str]:
        """The database's own check of its storage: ['ok'], or what it found."""
