"""An open home for the use cases: its store (with the projectors and the audit file's
after-commit hook registered), its settings, the acting identity, its blobs and its
audit file. The CLI opens one per command; benchmarks and tests use it directly.
"""

from pathlib import Path

from ..events.audit_hook import export_after_commit
from ..events.home import Home, find_home
from ..projections import board, inbox, search


class Coord:
    """An open home. Use as a context manager, or call close()."""

    def __init__(self, home: Home | str | Path | None = None, actor: str | None = None, on_warning=None):
        if not isinstance(home, Home):
            home = find_home(str(home) if home is not None else None)
        self.home = home
        self.actor = actor
        # Warnings that must not fail the action (the audit file refused, lines restored).
        self.on_warning = on_warning or _stderr_warning
        self._audit = None
        self._clone = None
        self.store = None
        self.store = home.open_store(
            projectors=[board.project, search.project, inbox.project],
            after_commit=[export_after_commit(self._trail, lambda m: self.on_warning(m))],
        )
        if getattr(self.store, "migrated", False):  # a store that applied a migration now
            board.ensure_views_current(self.store)

    @property
    def audit(self):
        """The home's audit file (coord.events.audit.AuditTrail), opened on first use."""
        return self._trail(self.store)

    def _trail(self, store):
        # `store`: the hook may run while the store opens (a migration that appended).
        if self._audit is None:
            from ..events.audit import AuditTrail

            self._audit = AuditTrail(store, warn=lambda m: self.on_warning(m))
        return self._audit

    @property
    def blobs(self):
        return self.store.blobs

    @property
    def clone_id(self) -> str:
        if self._clone is None:
            self._clone = self.store.clone_id()
        return self._clone

    @property
    def shared(self) -> bool:
        """Whether other machines append to this home's log (a server store)."""
        return getattr(self.store, "shared", False)

    def close(self):
        if self.shared and self.store.conn is not None:
            self.catch_up()
        if self._audit is not None:
            self._audit.close()
        self.store.close()

    def catch_up(self) -> None:
        """On a store that other machines write (PostgreSQL), this checkout's audit file
        takes the lines appended elsewhere: at the end of every command (and in loops that
        follow the log). A problem is a warning: the lines stay due for the next command."""
        from ..events.errors import CoordError

        try:
            if self.store.reader.any_dirty():
                self.audit.export()
        except CoordError as e:
            self.on_warning(f"audit file not updated: {e.message}")

    def twin(self, actor: str | None = None) -> "Coord":
        """Another Coord on the same home, with its own connection. Open it in the thread
        that will use it (coord run's heartbeat thread does)."""
        return Coord(self.home, actor=actor or self.actor, on_warning=self.on_warning)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _stderr_warning(msg: str) -> None:
    import sys

    sys.stderr.write(f"warning: {msg}\n")
