"""The audit file's after-commit hook (a store's `after_commit`): after each commit that
appended, the dirty events are written to .coord/events.jsonl (coord.events.audit), never
before the commit. Kept apart from the audit file's code so the most frequent action (a
heartbeat that stays out of the file) loads none of it.
"""

from .errors import CoordError
from .records import AUDIT_DIRTY


def export_after_commit(trail, warn):
    """The after-commit hook (a store's `after_commit`): write the dirty events to the
    audit file. `trail(store)` gives the home's AuditTrail. The action has committed, so a
    problem here never fails it: it is a warning, and the events stay dirty for the next
    command (or `coord export`) to write.

    When the transaction appended nothing for the file (heartbeats, with audit_heartbeats
    off) and no event is left dirty by an earlier command, there is nothing to write:
    skip the lock, the file check and the bookkeeping reads (one indexed lookup instead;
    the most frequent action stays cheap)."""

    def hook(store, events):
        if (
            all(e.audit is not None and e.audit != AUDIT_DIRTY for e in events)
            and not store.reader.any_dirty()
        ):
            return
        try:
            trail(store).export()
        except CoordError as e:
            warn(f"audit file not updated: {e.message}")
        except Exception as e:  # the action has committed: nothing here may turn it into a failure
            warn(f"audit file not updated: {type(e).__name__}: {e}")

    return hook
