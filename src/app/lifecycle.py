"""The library API: one place that wires the store (coord.events) to the projections.

Each action is one write transaction: look up the request id, load the view, check the
action against the state machine, append, fold (the projector), commit. The CLI is a thin
layer over this module; benchmarks and tests call it directly.
"""

import os
from pathlib import Path

import msgspec

from ..events.envelope import Envelope
from ..events.errors import (
    BadPayload,
    IllegalTransition,
    NothingToClaim,
    NotYours,
    Refused,
    UnknownWorker,
    UsageError,
)
from ..events.home import Home, find_home
from ..events.ids import check_worker_id
from ..events.sqlite_store import AUDIT_DIRTY, Store
from ..projections import board, search
from ..projections.workers import ACTIONS, ASSIGNED, Worker, check, is_repeat, legal_actions


def request_key(command: str, key: str) -> str:
    """Request ids are per actor and per command: a key reused by another command is a
    new request, never a replay of a result of another shape."""
    return f"{command}\x1f{key}"


class RequestIdReused(Refused):
    code = "request_id_reused"


class RequestId(str):
    """A request id (`--request-id KEY`) that carries the arguments of the request, as the
    caller sees them (the CLI: the options the user gave, the worker resolved). A repeat
    with the same key and other arguments is refused (exit 4). A plain str key works too:
    each API call then compares the arguments it was given (see `Coord.act`)."""

    args: dict | None = None


def with_args(key: str | None, **args) -> "RequestId | None":
    """KEY with the request's arguments attached (None stays None)."""
    if key is None:
        return None
    r = RequestId(key)
    r.args = args
    return r


def args_digest(args: dict) -> dict:
    """One short digest per argument (so a mismatch can be named without storing the
    values): canonical JSON, BLAKE3. Absent, None and False are the same (no digest), so
    an option added later does not change the digest of requests that do not use it."""
    import blake3

    from ..events.envelope import encode_json

    return {
        k: blake3.blake3(encode_json(v)).hexdigest()[:32]
        for k, v in sorted(args.items())
        if v is not None and v is not False
    }


def _request_args(request_id, default: dict | None) -> dict | None:
    """The digests to compare: the arguments the RequestId carries, else the call's own."""
    args = getattr(request_id, "args", None)
    if args is None:
        args = default
    return None if args is None else args_digest(args)


def _stored_request(raw: bytes) -> tuple[dict | None, object]:
    """(argument digests, result) of a stored request-id row. Rows written before digests
    were kept (a bare result) have no arguments to compare: they match any arguments."""
    data = msgspec.json.decode(raw)
    if isinstance(data, dict) and "$result" in data:
        return data.get("$args"), data["$result"]
    return None, data


def _same_args(command: str, request_id: str, stored: dict | None, given: dict | None) -> None:
    if stored is None or given is None:
        return
    differ = sorted(k for k in stored.keys() | given.keys() if stored.get(k) != given.get(k))
    if differ:
        raise RequestIdReused(
            f"request id {str(request_id)!r} was already used for {command} with other arguments "
            f"({', '.join(differ)} {'differs' if len(differ) == 1 else 'differ'}); "
            "nothing was done: use a new key for a new request",
            differ=differ,
        )


# Payload keys the steps around a transition add (the clone at start; the git fields of
# spawn, done, merge and cancel): not the caller's arguments, so a plain-str request id
# does not compare them. The CLI attaches the arguments the user gave instead.
_ADDED_BY_STEPS = frozenset(
    {
        "clone",
        "branch",
        "base",
        "worktree",
        "head",
        "rebased",
        "commit",
        "into",
        "worktree_removed",
        "branch_deleted",
        "prefix",
        "deleted_tip",
        "unmerged",
    }
)


class Result(msgspec.Struct):
    worker: str
    state: str
    event: str | None  # id of the appended event; None when nothing was appended
    type: str | None = None
    repeat: bool = False  # an idempotent repeat or a reused --request-id
    seq: int | None = None


def check_payload(payload) -> dict:
    """A caller's payload: a JSON object, no reserved `$` keys, nested at most MAX_DEPTH
    levels (checked on its encoding, before any claim-check puts it in a blob). The other
    shape rules are checked on the event in Tx.append."""
    if not isinstance(payload, dict):
        raise BadPayload("payload must be a JSON object")
    bad = [k for k in payload if isinstance(k, str) and k.startswith("$")]
    if bad:
        raise BadPayload(f"payload key {bad[0]!r} is reserved (keys starting with $)")
    for v in payload.values():
        if isinstance(v, (dict, list)):
            break
    else:
        return payload  # flat (a heartbeat's): nothing nests
    from ..events.shapes import MAX_DEPTH, too_deep

    try:
        data = msgspec.json.encode(payload)
    except RecursionError:
        data = None
    except (TypeError, ValueError, OverflowError) as e:
        raise BadPayload(f"payload is not JSON: {e}") from None
    if data is None or too_deep(data):
        raise BadPayload(f"payload nested deeper than {MAX_DEPTH} levels")
    return payload


class Coord:
    """An open home. Use as a context manager, or call close()."""

    def __init__(self, home: Home | str | Path | None = None, actor: str | None = None, on_warning=None):
        if not isinstance(home, Home):
            home = find_home(str(home) if home is not None else None)
        self.home = home
        self.actor = actor
        self.store = Store(home, projector=self._project, after_commit=self._after_commit).open()
        self.conn = self.store.conn
        self._clone = None
        # Extra projectors and after-commit hooks registered by features (audit, search).
        self.projectors = [board.project, search.project]
        self.after_commit_hooks = [export_audit]
        # Warnings that must not fail the action (the audit file refused, lines restored).
        self.on_warning = on_warning or _stderr_warning
        self._audit = None

    @property
    def audit(self):
        """The home's audit file (coord.events.audit.AuditTrail), opened on first use."""
        if self._audit is None:
            from ..events.audit import AuditTrail

            self._audit = AuditTrail(self.store, warn=lambda m: self.on_warning(m))
        return self._audit

    def close(self):
        if self._audit is not None:
            self._audit.close()
        self.store.close()

    def twin(self, actor: str | None = None) -> "Coord":
        """Another Coord on the same home, with its own connection but the same registered
        projectors and after-commit hooks. Open it in the thread that will use it (coord
        run's heartbeat thread does)."""
        c = Coord(self.home, actor=actor or self.actor, on_warning=self.on_warning)
        c.projectors = list(self.projectors)
        c.after_commit_hooks = list(self.after_commit_hooks)
        return c

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _project(self, tx, ev):
        for p in self.projectors:
            p(tx, ev)

    def _after_commit(self, store, events):
        for h in self.after_commit_hooks:
            h(self, events)

    @property
    def clone_id(self) -> str:
        if self._clone is None:
            self._clone = self.store.clone_id()
        return self._clone

    # --- reading ---------------------------------------------------------------------
    def resolve_worker(self, prefix: str) -> str:
        return board.resolve(self.conn, prefix)

    def worker(self, wid: str) -> Worker:
        v = board.load(self.conn, wid)
        if v is None:
            raise UnknownWorker(f"unknown worker {wid!r}")
        return v

    # --- writing ---------------------------------------------------------------------
    def _repeat_of_request(self, tx, actor, request_id, command, args=None):
        """The first Result of a request id this actor already used for this command."""
        earlier = self.earlier_result(tx, actor, request_id, command, args)
        if earlier is None:
            return None
        r = msgspec.convert(earlier, Result)
        r.repeat = True
        return r

    def _remember_request(self, tx, actor, request_id, result: Result, command: str, args=None):
        self.remember_result(tx, actor, request_id, result, command, args)

    def _transition(
        self, tx, action: str, wid: str, actor: str, payload: dict, stored: dict | None = None
    ) -> Result:
        """`payload` is what the rules see; `stored` what the event carries (the payload
        itself, or its claim-check reference when it was too big)."""
        etype = ACTIONS.get(action, action)
        view = board.load_tx(tx, wid)
        if view is None and etype != "worker.spawned":
            raise UnknownWorker(f"unknown worker {wid!r}")
        env = Envelope(tx.next_ts(), actor, wid, etype, payload)
        if is_repeat(view, env):
            return Result(wid, view.state, None, etype, repeat=True)
        _refuse_if_illegal(action, view, env)
        if stored is not None and stored is not payload:
            env = msgspec.structs.replace(env, payload=stored)
        ev = tx.append(env)
        new = board.load_tx(tx, wid)
        return Result(wid, new.state, ev.id, etype, seq=ev.seq)

    def precheck(
        self, action: str, wid: str, payload: dict, actor: str, request_id: str | None = None
    ) -> tuple[bool, Worker | None]:
        """Would `act` append? Read-only, for actions with work to do outside the write
        transaction (git). Returns (repeat, view): repeat is True when `act` would append
        nothing (a used request id, or an idempotent repeat); otherwise the action is legal
        now and view is the worker (None before a spawn). Raises what `act` would raise.
        `act` checks again inside its transaction."""
        actor = actor or self.actor
        if not actor:
            raise UsageError("no actor: pass --as NAME or set COORD_AGENT")
        with self.store.read() as conn:
            if request_id is not None and self._find_request(
                conn, actor, request_id, action, _lifecycle_args(wid, payload)
            ):
                return True, None
            view = board.load(conn, wid)
        etype = ACTIONS.get(action, action)
        if view is None and etype != "worker.spawned":
            raise UnknownWorker(f"unknown worker {wid!r}")
        env = Envelope("", actor, wid, etype, payload)
        if is_repeat(view, env):
            return True, view
        _refuse_if_illegal(action, view, env)
        return False, view

    def act(
        self,
        action: str,
        wid: str,
        payload: dict | None = None,
        actor: str | None = None,
        request_id: str | None = None,
        expect_repeat: bool = False,
        request_command: str | None = None,
    ) -> Result:
        """Run one lifecycle action as one transaction. expect_repeat: the caller skipped
        work outside the transaction because `precheck` saw a repeat; refuse rather than
        append if the worker moved meanwhile. request_command: the command the request id
        belongs to, when it is not the action itself (`run` claims with `start`)."""
        actor = actor or self.actor
        if not actor:
            raise UsageError("no actor: pass --as NAME or set COORD_AGENT")
        payload = check_payload(payload if payload is not None else {})
        if action == "spawn":
            check_worker_id(wid)
        args = _lifecycle_args(wid, payload)
        if action == "start":
            payload = {**payload, "clone": self.clone_id}
        stored = self.claim_check(payload)  # a big payload's blob is written before the lock
        command = request_command or action
        with self.store.write() as tx:
            r = self._repeat_of_request(tx, actor, request_id, command, args)
            if r is None:
                r = self._transition(tx, action, wid, actor, payload, stored)
                if expect_repeat and not r.repeat:
                    raise Refused(f"{wid} changed while {action} ran; run it again")
                self._remember_request(tx, actor, request_id, r, command, args)
        return r

    def start_next(
        self, actor: str | None = None, request_id: str | None = None, payload: dict | None = None
    ) -> Result:
        """Claim the oldest ASSIGNED worker this actor may take: one conditional write."""
        actor = actor or self.actor
        payload = {**check_payload(payload or {}), "clone": self.clone_id}
        stored = self.claim_check(payload)
        with self.store.write() as tx:
            r = self._repeat_of_request(tx, actor, request_id, "start", {"next": True})
            if r is None:
                row = tx.conn.execute(
                    "SELECT worker FROM workers WHERE state = ? AND (assignee IS NULL OR assignee = ?) "
                    "ORDER BY created, worker LIMIT 1",
                    (ASSIGNED, actor),
                ).fetchone()
                if row is None:
                    raise NothingToClaim(f"nothing to claim: no ASSIGNED worker {actor} may start")
                r = self._transition(tx, "start", row[0], actor, payload, stored)
                self._remember_request(tx, actor, request_id, r, "start", {"next": True})
        return r

    def append_raw(
        self, to: str, etype: str, payload: dict, actor: str | None = None, request_id: str | None = None
    ) -> Result:
        """Append a non-lifecycle event (messages)."""
        actor = actor or self.actor
        stored = self.claim_check(check_payload(payload))
        args = {"to": to, "type": etype, "payload": payload}
        with self.store.write() as tx:
            r = self._repeat_of_request(tx, actor, request_id, "send", args)
            if r is None:
                ev = tx.append(Envelope(tx.next_ts(), actor, to, etype, stored))
                r = Result(to, "", ev.id, etype, seq=ev.seq)
                self._remember_request(tx, actor, request_id, r, "send", args)
        return r

    def reap(
        self,
        actor: str | None = None,
        requeue: bool = False,
        dry_run: bool = False,
        request_id: str | None = None,
    ) -> list[dict]:
        """Fail (or, with requeue, release) every DEAD worker, in one transaction."""
        from .reaping import reap

        return reap(self, actor or self.actor, requeue=requeue, dry_run=dry_run, request_id=request_id)

    # --- request ids for results that are not a Result (reap, ack, run) ---------------
    # A row's result is {"$args": {name: digest}, "$result": <the first result>}: the
    # digests of the request's arguments ride inside the stored JSON (no schema change).
    # The arguments compared are the ones a RequestId carries (the CLI attaches what the
    # user gave), else `args` from the API call.
    @staticmethod
    def _find_request(conn, actor: str, request_id, command: str, args: dict | None = None):
        """(True, first result) when this actor used the key for this command with the same
        arguments; None when unused; RequestIdReused (exit 4) when used with others."""
        row = conn.execute(
            "SELECT result FROM request_ids WHERE actor = ? AND key = ?",
            (actor, request_key(command, request_id)),
        ).fetchone()
        if row is None:
            return None
        stored_args, result = _stored_request(row[0])
        _same_args(command, request_id, stored_args, _request_args(request_id, args))
        return True, result

    def earlier_result(self, tx, actor: str, request_id: str | None, command: str, args: dict | None = None):
        """The stored result of a request id this actor already used, decoded; else None.
        The same key with other arguments is refused (RequestIdReused, exit 4)."""
        if request_id is None:
            return None
        found = self._find_request(tx.conn, actor, request_id, command, args)
        return found[1] if found else None

    def used_request(self, actor: str, request_id: str | None, command: str, args: dict | None = None):
        """earlier_result, read-only and outside a write transaction."""
        if request_id is None:
            return None
        with self.store.read() as conn:
            found = self._find_request(conn, actor, request_id, command, args)
        return found[1] if found else None

    def remember_result(
        self, tx, actor: str, request_id: str | None, result, command: str, args: dict | None = None
    ) -> None:
        if request_id is not None:
            tx.conn.execute(
                "INSERT INTO request_ids(actor, key, result) VALUES (?,?,?)",
                (actor, request_key(command, request_id), _request_row(result, request_id, args)),
            )

    def settle_request(self, actor: str, request_id: str | None, command: str, result, args=None) -> None:
        """Replace the stored result of a request id (coord run: the claim's result, kept
        while the child runs, by the run's outcome once it is recorded)."""
        if request_id is None:
            return
        with self.store.write() as tx:
            tx.conn.execute(
                "UPDATE request_ids SET result = ? WHERE actor = ? AND key = ?",
                (_request_row(result, request_id, args), actor, request_key(command, request_id)),
            )

    def backup(self, dest: Path, force: bool = False) -> int:
        """VACUUM INTO dest: a consistent snapshot even while others write. dest is an
        output file: refused inside the home (exit 4, even with force), when it exists
        without force (exit 4) or its directory is missing (exit 2); written with the
        user's umask, to a temporary file renamed into place."""
        import sqlite3

        from ..events.errors import CoordError
        from ..events.files import check_output_path, place, user_umask

        dest = Path(check_output_path(dest, self.home.path, force))
        tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
        try:
            with user_umask():
                self.conn.execute("VACUUM INTO ?", (str(tmp),))
            check = sqlite3.connect(str(tmp))
            try:
                n = check.execute("SELECT count(*) FROM events").fetchone()[0]
            finally:
                check.close()
            place(str(tmp), str(dest), force)
        except sqlite3.DatabaseError as e:
            raise CoordError(f"backup to {dest} failed: {e}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return n

    def rebuild(self, progress=None) -> int:
        """Rebuild every projection from the events: the worker views and the search index.
        Returns the number of lifecycle events folded. Refused (exit 5) while the events
        themselves do not check out (a row deleted or changed behind coord's back): views
        folded from them would bless the damage."""
        from ..events.errors import IntegrityError
        from .verification import damage

        problems = damage(self)
        if problems:
            more = f" (and {len(problems) - 1} more; see `coord verify`)" if len(problems) > 1 else ""
            raise IntegrityError(
                f"not rebuilding: {problems[0]}{more}. The store was changed behind coord's back; "
                "restore a backup, or move coord.db aside and run `coord init` to rebuild it from "
                "events.jsonl"
            )
        n = board.rebuild(self.store, progress=progress)
        search.rebuild(self.store)
        return n

    # --- blobs (claim-check) ---------------------------------------------------------
    @property
    def blobs(self):
        return self.store.blobs

    def claim_check(self, payload: dict) -> dict:
        """The payload an event should carry: itself, or, when its canonical encoding
        exceeds blob_threshold, a reference to a blob holding it (written and fsynced
        now, before any transaction: an orphan blob is harmless, a dangling reference
        is not)."""
        return self.store.blobs.claim_check(payload, self.home.config["blob_threshold"])

    def payload_of(self, payload: dict) -> dict:
        """The payload a stored payload stands for (resolves a claim-check reference)."""
        return self.store.blobs.payload_of(payload)

    def verify_blobs(self) -> list[str]:
        """Problems with blobs: corrupt files and references to missing ones."""
        with self.store.read() as conn:
            return self.store.blobs.verify(conn)

    # --- messages --------------------------------------------------------------------
    def send(
        self,
        to: str,
        name: str,
        payload: dict,
        actor: str | None = None,
        request_id: str | None = None,
        reply_to: str | None = None,
    ) -> Result:
        """Append a msg.<name> event to an agent, a worker or '*'."""
        from ..projections.inbox import check_recipient, message_type

        check_recipient(to)
        etype = message_type(name)
        payload = check_payload(payload)
        if reply_to is not None:
            if "reply_to" in payload:
                raise BadPayload("give the reply's target once: --reply-to or a reply_to key")
            payload = {**payload, "reply_to": reply_to}
        return self.append_raw(to, etype, payload, actor=actor, request_id=request_id)

    def pending(self, actor: str, types=(), limit: int | None = None) -> list[tuple]:
        """Unacknowledged messages for actor, oldest first: (seq, id, body, to) rows."""
        from ..projections import inbox

        with self.store.read() as conn:
            return inbox.pending(conn, actor, types, limit)

    def wait_pending(
        self, actor: str, types=(), limit: int | None = None, timeout: float = 0.0, interval: float = 0.01
    ) -> list[tuple]:
        """pending(), blocking up to timeout seconds for a first message. Between looks it
        sleeps and checks PRAGMA data_version (which changes when another connection
        commits), so waiting costs no transaction and next to no CPU."""
        import time

        deadline = time.monotonic() + timeout
        version = None
        while True:
            v = self.conn.execute("PRAGMA data_version").fetchone()[0]
            if v != version:
                version = v
                rows = self.pending(actor, types, limit)
                if rows or time.monotonic() >= deadline:
                    return rows
            elif time.monotonic() >= deadline:
                return []
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    def acknowledge(self, actor: str, rows) -> None:
        """Move actor's cursors past delivered (seq, …, to) rows."""
        from ..projections import inbox

        with self.store.write() as tx:
            inbox.acknowledge(tx.conn, actor, [(r[0], r[3]) for r in rows])

    def ack_upto(self, actor: str, seq: int, request_id: str | None = None) -> int:
        """Acknowledge through seq; returns the seq acknowledged (the first one, for a
        request id used before)."""
        from ..projections import inbox

        with self.store.write() as tx:
            earlier = self.earlier_result(tx, actor, request_id, "ack", {"through": seq})
            if earlier is not None:
                return earlier["seq"]
            inbox.acknowledge_upto(tx.conn, actor, seq)
            self.remember_result(tx, actor, request_id, {"seq": seq}, "ack", {"through": seq})
        return seq


def _lifecycle_args(wid: str, payload: dict) -> dict:
    """The arguments of a lifecycle action, for a plain-str request id."""
    return {**{k: v for k, v in payload.items() if k not in _ADDED_BY_STEPS}, "worker": wid}


def _request_row(result, request_id, args: dict | None) -> bytes:
    row = {"$result": result}
    given = _request_args(request_id, args)
    if given is not None:
        row["$args"] = given
    return msgspec.json.encode(row)


def _stderr_warning(msg: str) -> None:
    import sys

    sys.stderr.write(f"warning: {msg}\n")


def export_audit(coord: Coord, events) -> None:
    """After-commit hook: write the dirty events to the audit file. The action has
    committed, so a problem here never fails it: it is a warning, and the events stay
    dirty for the next command (or `coord export`) to write.

    When the transaction appended nothing for the file (heartbeats, with audit_heartbeats
    off) and no event is left dirty by an earlier command, there is nothing to write:
    skip the lock, the file check and the bookkeeping reads (one indexed lookup on the
    partial index instead; the most frequent action stays cheap)."""
    if (
        all(e.audit is not None and e.audit != AUDIT_DIRTY for e in events)
        and coord.conn.execute("SELECT 1 FROM events WHERE audit = 1 LIMIT 1").fetchone() is None
    ):
        return
    from ..events.errors import CoordError

    try:
        coord.audit.export()
    except CoordError as e:
        coord.on_warning(f"audit file not updated: {e.message}")
    except Exception as e:  # the action has committed: nothing here may turn it into a failure
        coord.on_warning(f"audit file not updated: {type(e).__name__}: {e}")


def _refuse_if_illegal(action: str, view: Worker | None, env: Envelope) -> None:
    bad = check(view, env)
    if bad is not None:
        state = view.state if view else None
        legal = legal_actions(state)
        if bad[0] == "actor":
            raise NotYours(f"cannot {action}: {bad[1]}")
        raise IllegalTransition(
            f"cannot {action}: {bad[1]}; legal from {state}: "
            f"{', '.join(legal) if legal else 'nothing (terminal)'}",
            state=state,
            legal=legal,
        )


def init(path: str | Path | None = None, cwd: Path | None = None) -> tuple[Home, bool]:
    """Create a home (idempotent). Returns (home, created). Where: `path`, else
    COORD_HOME, else found from cwd (coord.events.home.init_target: inside a worktree, the
    repository's home; a home inside another is refused, exit 4). In a fresh clone whose
    events.jsonl exists without a database, the store is built from that file (every
    line checked first: a bad file is refused with exit 5 and no database is created);
    the file itself is never truncated."""
    from ..events.files import check_home_dir, check_regular
    from ..events.home import Home as _Home
    from ..events.home import init_home_dirs, init_target

    p = init_target(str(path) if path is not None else None, cwd)
    check_home_dir(p)  # a .coord that is a symlink is refused before anything is created
    _ = _Home(p).config  # and so are invalid settings a clone checked out (exit 2)
    created = not (p / "coord.db").exists()
    pairs = []
    if created:
        audit_path = _Home(p).audit_path
        if check_regular(audit_path) and audit_path.stat().st_size:
            from ..events.audit import read_checked

            pairs = read_checked(audit_path, in_home=True).new
    home = init_home_dirs(p)
    if not created:
        Store(home).open().close()  # runs pending migrations
        return home, created
    try:
        with Coord(home) as c:
            if pairs:
                from ..events.audit import AUDIT_WRITTEN, import_bodies

                import_bodies(c.store, pairs, AUDIT_WRITTEN)
                c.audit.adopt()
    except BaseException:
        # A store half-built from the file would pass for a home next time: remove it.
        for suffix in ("", "-wal", "-shm"):
            Path(str(home.db_path) + suffix).unlink(missing_ok=True)
        raise
    return home, created
