"""The SQLite store's notice writes (coord.events.store_notices), mixed into its write
transaction (the reads are in sqlite_reads, but for a rebuild's bulk read, here): the
`notices` table (migration 0007), one row per (agent, seq) with the worker, the attempt,
the reason and whether the agent acknowledged it. Pending notices are read through a
partial index (acked = 0)."""

from .records import Notice

NOTICE_COLS = "seq, agent, worker, attempt, reason"


class SqliteNoticeReads:
    """Needs `_all` (SqliteReader): the one notice read a rebuild makes in bulk."""

    def notices_by_worker(self, workers):
        want, out = set(workers), {}
        for t in self._all(f"SELECT {NOTICE_COLS} FROM notices ORDER BY seq"):
            if t[2] in want:
                out.setdefault(t[2], []).append(Notice(*t))
        return out


class SqliteNoticeWrites:
    """Needs `conn` and `_x` (SqliteTx)."""

    def put_notices(self, rows):
        self.conn.executemany(
            f"INSERT OR IGNORE INTO notices({NOTICE_COLS}) VALUES (?,?,?,?,?)",
            [(n.seq, n.agent, n.worker, n.attempt, n.reason) for n in rows],
        )

    def drop_notices(self, keys):
        self.conn.executemany("DELETE FROM notices WHERE agent = ? AND seq = ?", keys)

    def ack_notices(self, agent, seqs=None, through=None):
        if seqs:
            self.conn.executemany(
                "UPDATE notices SET acked = 1 WHERE agent = ? AND seq = ?", [(agent, s) for s in seqs]
            )
        if through is not None:
            self._x(
                "UPDATE notices SET acked = 1 WHERE agent = ? AND seq <= ? AND acked = 0", (agent, through)
            )
