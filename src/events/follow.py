"""Following the log: yield events as they commit, never missing or repeating one.

`seq` is assigned inside the single write transaction, so commit order is seq order and a
committed seq means every lower seq is committed too. A follower therefore only needs
"seq > the last seq I looked at". Each poll is one short read transaction; between polls
the follower sleeps, and wakes early only when `PRAGMA data_version` says another
connection committed (it also re-checks once a second, in case a change was missed).
"""

import time


def follow(
    store,
    after_seq: int,
    where: str = "",
    args=(),
    poll: float = 0.05,
    batch: int = 1000,
    recheck: float = 1.0,
    stop=None,
):
    """Yield (seq, id, body) for events with seq > after_seq that match the SQL condition
    `where` (over the events table, with `args`), in seq order, until the caller stops or
    `stop()` (checked once per poll) returns true."""
    cond = f" AND ({where})" if where else ""
    last = after_seq
    seen_version = None
    checked = 0.0
    conn = store.conn
    while stop is None or not stop():
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        clock = time.monotonic()
        if version != seen_version or clock - checked >= recheck:
            seen_version, checked = version, clock
            while True:
                with store.read() as c:  # one short snapshot: the top seq, then the page
                    top = c.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                    hi = min(top, last + batch)
                    rows = (
                        c.execute(
                            f"SELECT seq, id, body FROM events WHERE seq > ? AND seq <= ?{cond} ORDER BY seq",
                            (last, hi, *args),
                        ).fetchall()
                        if hi > last
                        else []
                    )
                last = max(last, hi)
                yield from rows
                if last >= top:
                    break
        time.sleep(poll)
