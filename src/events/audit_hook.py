"""The audit file's after-commit hook (a store's `after_commit`): after each commit that
appended, the dirty events are written to .coord/events.jsonl (coord.events.audit), never
before the commit. Kept apart from the audit file's code so the most frequent action (a
heartbeat that stays out of the file) loads none of it.
"""

from .errors import CoordError


def export_after_commit(trail, warn):
    """The after-commit hook (a store's `after_commit`): write the dirty events to the
    audit file. `trail(store)` gives the home's AuditTrail. The action has committed, so a
    problem here never fails it: it is a warning, and the events stay dirty for the next
    command (or `coord export`) to write.

    When the transaction appended nothing for the file (heartbeats, with audit_heartbeats
    off) and no event is left dirty by an earlier command, there is nothing to write:
    skip the lock, the file check and the bookkeeping reads. The store answered that
    inside the write transaction, just before COMMIT (`store.export_pending`), so the most
    frequent action opens no read transaction after its commit."""

    def hook(store, events):
        if not store.export_pending:
            return
        try:
            trail(store).export()
        except CoordError as e:
            warn(f"audit file not updated: {e.message}")
        except Exception as e:  # the action has committed: nothing here may turn it into a failure
            warn(f"audit file not updated: {type(e).__name__}: {e}")

    return hook
