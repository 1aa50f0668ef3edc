"""The one write path, the same for every store (coord.events.store.WriteTx inherits it):
`append` (encode, check the shape rules, stamp ts and seq, store, run the projectors),
`next_ts`, and `export_pending`, the question the audit hook asks before COMMIT. It calls
what each implementation provides: `_heads`, `_has_id`, `_insert`, `any_dirty`.
"""

import msgspec

from .envelope import MAX_US, Envelope, canonical, decode, event_id, now_us, ts_to_us, us_to_ts
from .errors import IntegrityError, UsageError
from .records import AUDIT_DIRTY, AUDIT_NONE, HEARTBEAT, StoredEvent
from .shapes import local_problem


class AppendOps:
    """Mixed into WriteTx; expects `store`, `appended`, `_seq`, `_last_us` (WriteTx.__init__)."""

    def export_pending(self) -> bool:
        """Whether an event (appended here, or left by an earlier command) waits for the
        audit file: asked before COMMIT, so the after-commit hook needs no read of its own."""
        return any(e.audit == AUDIT_DIRTY for e in self.appended) or self.any_dirty()

    def beats_only(self) -> bool:
        """Whether this transaction appended heartbeats and nothing else, none of them
        for the audit file: the one kind of commit heartbeat_synchronous may make cheaper
        (a heartbeat lost with the machine only makes liveness look older, and every
        process it spoke for stopped with that machine)."""
        return bool(self.appended) and all(
            e.audit == AUDIT_NONE and e.env.type == HEARTBEAT for e in self.appended
        )

    def _clock(self) -> int:
        """Now, in µs: a server store overrides it with the server's clock."""
        return now_us()

    def _horizon(self, now: int) -> int:
        """The latest ts that may set the clock: now + max_clock_skew."""
        return min(now + int(self.store.home.config["max_clock_skew"] * 1_000_000), MAX_US)

    def _load_heads(self) -> None:
        # Events dated further ahead than max_clock_skew are stored and folded, but never
        # set the clock.
        seq, ts = self._heads(us_to_ts(self._horizon(self._clock())))
        self._seq = seq or 0
        try:
            self._last_us = ts_to_us(ts) if ts else 0
        except ValueError:  # a malformed ts stored by an older coord: `verify` reports it
            self._last_us = 0

    def next_ts(self) -> str:
        """max(now, g + 1 µs), g the greatest ts of a stored event (imported ones included)
        no more than max_clock_skew ahead of now (contract: Event envelope)."""
        if self._last_us is None:
            self._load_heads()
        us = max(self._clock(), self._last_us + 1)
        if us > MAX_US:
            raise IntegrityError(
                "cannot stamp a new event: its ts would lie past 9999-12-31T23:59:59.999999Z "
                "(an event that late is within max_clock_skew of this clock: lower max_clock_skew)"
            )
        self._last_us = us
        return us_to_ts(us)

    def _next_seq(self) -> int:
        if self._seq is None:
            self._load_heads()
        self._seq += 1
        return self._seq

    def append(
        self,
        env: Envelope | None = None,
        body: bytes | None = None,
        origin: str = "local",
        audit: int | None = None,
        checked: bool = False,
    ) -> StoredEvent | None:
        """The one way an event enters the store. Given bytes (an import), they are kept
        as they are; given an envelope, it is encoded once. Returns None when the id is
        already stored (set union).

        `audit` says whether the event belongs in the audit file, decided now and never
        again: by default a local event is dirty (to be written) unless it is a heartbeat
        and the audit_heartbeats setting is off; an imported event came from some audit
        file, so it is dirty too (our file becomes the union). An import from our own
        audit file passes AUDIT_WRITTEN (it is already there).

        Shape rules (coord.events.shapes) hold for both: a local event that would break
        one is a usage error (exit 2); given bytes are checked whole (exit 5) unless the
        caller read them through the codec already (`checked`)."""
        cfg = self.store.home.config
        if body is None:
            body = canonical(env)
            if origin == "local" and len(body) > cfg["blob_threshold"]:
                # The claim-check for a local event whose caller did not apply it before
                # the transaction (the use cases do, to keep this one short). A blob is
                # content-addressed: writing it again on a re-run changes nothing.
                stored = self.store.blobs.claim_check(env.payload, cfg["blob_threshold"])
                if stored is not env.payload:
                    env = msgspec.structs.replace(env, payload=stored)
                    body = canonical(env)
            why = local_problem(env, body) if origin == "local" else None
            if why is not None:
                raise UsageError(why)
        elif env is None:
            from .codec import decode_body  # (imports only: off the per-action path)

            env = decode(body) if checked else decode_body(body)
        eid = event_id(body)
        if origin != "local" and self._has_id(eid):
            return None
        now = self._clock()
        if origin != "local" and self._last_us is not None:
            us = ts_to_us(env.ts)
            if us <= self._horizon(now):
                self._last_us = max(self._last_us, us)
        if audit is None:
            audit = AUDIT_DIRTY
            if origin == "local" and env.type == HEARTBEAT and not cfg["audit_heartbeats"]:
                audit = AUDIT_NONE
        ev = StoredEvent(self._next_seq(), eid, body, env, origin, audit, now)
        self._insert(ev)
        self.appended.append(ev)
        for project in self.store.projectors:
            project(self, ev)
        return ev
