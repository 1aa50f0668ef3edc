"""The SQLite store's notice writes (coord.events.store_notices), mixed into its write
transaction (the reads are in sqlite_reads): the `notices` table (migration 0007), one row per
(agent, seq) with the worker, the attempt, the reason and whether the agent
acknowledged it. Pending notices are read through a partial index (acked = 0)."""

NOTICE_COLS = "seq, agent, worker, attempt, reason"


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
