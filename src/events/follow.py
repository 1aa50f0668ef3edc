"""Following the log: yield events as they commit, never missing or repeating one.

`seq` is assigned inside the single write transaction, so commit order is seq order and a
committed seq means every lower seq is committed too. A follower therefore only needs
"seq > the last seq I looked at". Each look is one short read transaction; between looks
the follower waits on the store (`wait_for_new`), and looks again at least every
`recheck` seconds in case a wake-up was missed.
"""

import msgspec

from .records import EventQuery, Row


def follow(
    store,
    after_seq: int,
    query: EventQuery | None = None,
    batch: int = 1000,
    recheck=0.2,
    stop=None,
    idle=None,
):
    """Yield Rows with seq > after_seq that `query` selects (its filters; seq order), until
    the caller stops or `stop()` (checked at least every `recheck` seconds) returns true.
    `idle()`, if given, runs each time the follower has caught up, before it waits."""
    base = query or EventQuery()
    last = after_seq
    while stop is None or not stop():
        while True:
            with store.read() as r:  # one short snapshot: the top seq, then the page
                top = r.max_seq()
                hi = min(top, last + batch)
                rows: list[Row] = (
                    r.events(msgspec.structs.replace(base, after_seq=last, upto_seq=hi, by="seq", limit=None))
                    if hi > last
                    else []
                )
            last = max(last, hi)
            yield from rows
            if last >= top:
                break
        if idle is not None:
            idle()
        store.wait_for_new(last, recheck)
