"""Moving a SQLite home onto a PostgreSQL server (`coord migrate --to URL`): every table
copied as it is, in one server transaction, while the SQLite store's write lock is held
(nothing is appended meanwhile): events with their bytes, seqs, marks and stored times,
the views with their graph columns and dependencies, request ids, acknowledgements and
inbox watermarks, notices, the search index, bookkeeping (a `views_refold` flag too: the
first command on the server folds the views again), and every blob. This checkout's audit
file record moves with it, so the file is not touched by the move. The server's log must
be empty."""

import os
import time

from .errors import Refused
from .pg_schema import install
from .pg_store import PgStore
from .sqlite_store import SqliteStore

BATCH = 5000
COPIES = [  # (SQLite SELECT, PostgreSQL INSERT)
    (
        "SELECT worker, state, holder, assignee, created, updated, branch, base, worktree, view, ready, "
        "priority, waiting, board_head, board_note, board_since, board_beat, board_live, board_interval, "
        "board_clone FROM workers",
        "INSERT INTO coord.workers (worker, state, holder, assignee, created, updated, branch, base, "
        "worktree, view, ready, priority, waiting, board_head, board_note, board_since, board_beat, board_live, "
        "board_interval, board_clone) "
        "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::int::boolean,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
    ),
    ("SELECT worker, after FROM deps", "INSERT INTO coord.deps (worker, after) VALUES (%s, %s)"),
    (
        "SELECT name, last_seq FROM projection_state",
        "INSERT INTO coord.projection_state (name, last_seq) VALUES (%s, %s)",
    ),
    (
        "SELECT actor, key, result FROM request_ids",
        "INSERT INTO coord.request_ids (actor, key, result) VALUES (%s, %s, %s)",
    ),
    ("SELECT agent, id FROM acks", "INSERT INTO coord.acks (agent, id) VALUES (%s, %s)"),
    (
        "SELECT agent, address, seq FROM cursors",
        "INSERT INTO coord.cursors (agent, address, seq) VALUES (%s,%s,%s)",
    ),
    (
        "SELECT agent, seq, worker, attempt, reason, acked FROM notices",
        "INSERT INTO coord.notices (agent, seq, worker, attempt, reason, acked) "
        "VALUES (%s,%s,%s,%s,%s,%s::int::boolean)",
    ),
    (
        "SELECT rowid, type, text, type, text FROM search",
        "INSERT INTO coord.search (seq, type, text, tsv) VALUES (%s,%s,%s, coord.tsv(%s,%s))",
    ),
]


def move(home, url: str) -> dict:
    """Copy the home's SQLite store into the (empty) log on `url`, switch the home over
    (the local `store` setting) and set coord.db aside as coord.db.moved. Returns counts."""
    cfg = home.config
    install(url, cfg["busy_timeout"], cfg["max_clock_skew"])
    src = SqliteStore(home).open()
    dst = PgStore(home, url=url).open()
    try:
        if dst.reader.max_seq() or dst.reader.views(limit=1) or dst.blobs.names():
            raise Refused(
                "the server's log is not empty: a SQLite home moves only into an empty log (join a "
                "shared one with `coord init --store URL --import` instead)"
            )
        with src._flock():  # no writer on this machine appends while we copy
            src.conn.execute("BEGIN IMMEDIATE")
            try:
                counts = _copy(src, dst)
                home.write_config({"store": url})
            finally:
                src.conn.execute("ROLLBACK")
    finally:
        src.close()
        dst.close()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        p = f"{home.db_path}{suffix}"
        if os.path.exists(p):
            os.replace(p, f"{home.db_path}.moved-{stamp}{suffix}")
    return counts


def _copy(src, dst) -> dict:
    blobs = src.blobs.names()
    for name in blobs:  # before the log: an event never names a blob the server lacks
        with open(src.blobs.file_of("b3:" + name), "rb") as f:
            dst.blobs.put_stream(f)
    sq, pg = src.conn, dst.conn
    counts = {"blobs": len(blobs)}
    with pg.transaction(), pg.cursor() as cur:
        rows = sq.execute(
            'SELECT seq, id, ts, "from", "to", type, worker, body, origin, audit, stored FROM events ORDER BY seq'
        )
        n, first_dirty, written = 0, None, []
        while batch := rows.fetchmany(BATCH):
            for r in batch:
                if r[9] == 1 and first_dirty is None:
                    first_dirty = r[0]
                elif r[9] == 2 and first_dirty is not None:
                    written.append(r[0])
            cur.executemany(
                'INSERT INTO coord.events (seq, id, ts, "from", "to", type, worker, body, origin, audit, stored) '
                "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
                [(*r[:9], 1 if r[9] else 0, r[10]) for r in batch],
            )
            n += len(batch)
        counts["events"] = n
        # This checkout's audit file: written up to just before the first dirty event.
        upto = (first_dirty - 1) if first_dirty is not None else n
        cur.execute("INSERT INTO coord.checkouts (checkout, upto) VALUES (%s, %s)", (dst.checkout, upto))
        cur.executemany(
            "INSERT INTO coord.checkout_marks (checkout, seq, mark) VALUES (%s, %s, 2)",
            [(dst.checkout, s) for s in written],
        )
        for select, insert in COPIES:
            data = sq.execute(select).fetchall()
            if data:
                cur.executemany(insert, data)
            counts[select.rsplit(" ", 1)[-1]] = len(data)
        for key, value in sq.execute("SELECT key, value FROM meta").fetchall():
            if key == "clone_id":  # the log keeps the home's identity: its holders stay local
                cur.execute("UPDATE coord.meta SET value = %s WHERE key = 'log_id'", (value,))
            elif key.startswith("audit_"):
                cur.execute(
                    "INSERT INTO coord.checkout_meta (checkout, key, value) VALUES (%s, %s, %s)",
                    (dst.checkout, key, value),
                )
            else:
                cur.execute(
                    "INSERT INTO coord.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                    "SET value = EXCLUDED.value",
                    (key, value),
                )
    return counts
