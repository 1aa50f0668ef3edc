"""The SQLite store's schema migrations: ordered, named, recorded (sqlite-utils'
Migrations) and skipped quickly once current (PRAGMA user_version holds how many have run).

Append new migrations at the end; never edit or reorder an applied one. Names are
numbered in the order they run. Stores migrated before issue 12 recorded older names
(numbered by issue, out of order): `migrate` renames those records first (RENAMED).
This module imports sqlite_utils, so it is only loaded when a migration must run.
"""

import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("coord")


@migrations(name="0001_events_and_workers")
def m0001(db: sqlite_utils.Database):
    db["events"].create(
        {
            "seq": int,  # gapless, assigned inside the write transaction
            "id": str,  # b3:<hex> of body
            "ts": str,
            "from": str,
            "to": str,
            "type": str,
            "worker": str,  # the worker a worker.* event concerns, else NULL
            "body": bytes,  # the canonical bytes, exactly as hashed
            "origin": str,  # 'local' or 'import'
        },
        pk="seq",
        not_null={"id", "ts", "from", "to", "type", "body", "origin"},
    )
    db["events"].create_index(["id"], unique=True, index_name="events_id")
    db["events"].create_index(["ts", "id"], index_name="events_ts")
    db["events"].create_index(["worker", "ts", "id"], index_name="events_worker")
    db["events"].create_index(["type"], index_name="events_type")
    db["events"].create_index(["from"], index_name="events_from")
    db["events"].create_index(["to"], index_name="events_to")
    db["workers"].create(
        {
            "worker": str,
            "state": str,
            "holder": str,
            "assignee": str,
            "created": str,
            "updated": str,
            "view": bytes,
        },
        pk="worker",
        not_null={"state", "created", "updated", "view"},
    )
    db["workers"].create_index(["state", "created"], index_name="workers_state")
    db["projection_state"].create({"name": str, "last_seq": int}, pk="name")
    db["request_ids"].create({"actor": str, "key": str, "result": bytes}, pk=("actor", "key"))
    db["meta"].create({"key": str, "value": str}, pk="key")


@migrations(name="0002_audit_dirty")
def m0002(db: sqlite_utils.Database):
    # Issue 3, the audit file. events.audit: 0 = not for the file (a heartbeat with
    # audit_heartbeats off), 1 = dirty (committed, not yet in the file), 2 = written.
    # Decided when an event is appended. Events stored before this migration were never
    # exported: they start dirty (the first export's file scan marks those already there).
    db.execute("ALTER TABLE events ADD COLUMN audit INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE events SET audit = 1 WHERE type != 'worker.heartbeat'")
    # The exporter's only per-action query: dirty events in seq order.
    db.execute("CREATE INDEX events_dirty ON events(seq) WHERE audit = 1")


@migrations(name="0003_messages_blobs_search")
def m0003(db: sqlite_utils.Database):
    # Message cursors (issue 5): per reader and per address (the reader's name, '*', or a
    # worker it holds), the seq up to which everything is acknowledged; msg_acks holds
    # messages acknowledged above that watermark (poll --type delivers out of order).
    db["cursors"].create(
        {"agent": str, "address": str, "seq": int}, pk=("agent", "address"), not_null={"seq"}
    )
    db["msg_acks"].create({"agent": str, "address": str, "seq": int}, pk=("agent", "address", "seq"))
    # poll looks up the workers an agent holds.
    db["workers"].create_index(["holder"], index_name="workers_holder")
    # Full-text search over event types and payload text; rowid = events.seq. Kept current
    # by the projector in coord.projections.search; an existing store is indexed the first
    # time it is searched or rebuilt (the flag below), not inside this migration.
    db.execute(
        "CREATE VIRTUAL TABLE search USING fts5(type, text, tokenize = 'unicode61 remove_diacritics 2')"
    )
    if db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('search_rebuild', '1')")


@migrations(name="0004_events_worker_transitions")
def m0004(db: sqlite_utils.Database):
    # A worker's history without its heartbeats (`show`): a partial index, so a worker that
    # beat 60,000 times is read in as many steps as it has transitions, not heartbeats.
    db.execute(
        "CREATE INDEX IF NOT EXISTS events_worker_transitions ON events(worker, ts, id) "
        "WHERE type != 'worker.heartbeat'"
    )


@migrations(name="0005_events_stored")
def m0005(db: sqlite_utils.Database):
    # Issue 11, clock poisoning: the local time (µs since the epoch, this machine's clock)
    # at which this store recorded each event. Liveness takes the earlier of an event's ts
    # and this, so an event dated ahead cannot keep a silent worker alive. Events stored
    # before this migration have NULL (their ts is used).
    db.execute("ALTER TABLE events ADD COLUMN stored INTEGER")


@migrations(name="0006_workers_branch_columns")
def m0006(db: sqlite_utils.Database):
    # Issue 12, the store interface: the columns git steps look views up by (which worker
    # names a branch, as its branch or its base; which records a worktree) are stored
    # beside the view, so no query reads inside the view's bytes.
    for col in ("branch", "base", "worktree"):
        db.execute(f"ALTER TABLE workers ADD COLUMN {col} TEXT")
    db.execute(
        "UPDATE workers SET branch = json_extract(CAST(view AS TEXT), '$.branch'), "
        "base = json_extract(CAST(view AS TEXT), '$.base'), "
        "worktree = json_extract(CAST(view AS TEXT), '$.worktree')"
    )
    db.execute("CREATE INDEX workers_branch ON workers(branch)")
    db.execute("CREATE INDEX workers_base ON workers(base)")


@migrations(name="0007_views_refold")
def m0007(db: sqlite_utils.Database):
    # Issue 16, attempts: the views gained fields (attempt, attempt_of, spawner, supervised)
    # and a start now clears the previous holder's heartbeat, so views folded before are
    # folded again from the events, once, on first use (coord.projections.board
    # .ensure_views_current), not inside this migration.
    if db.execute("SELECT 1 FROM events LIMIT 1").fetchone():
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('views_refold', '1')")


@migrations(name="0008_work_graph")
def m0008(db: sqlite_utils.Database):
    # Issue 14, the work graph: readiness and priority beside the view (the projector
    # computes them), the ready queue as one partial index, and the dependency index with
    # its reverse (who waits for X). Views stored before have no dependencies: an ASSIGNED
    # one is ready.
    db.execute("ALTER TABLE workers ADD COLUMN ready INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE workers ADD COLUMN priority INTEGER NOT NULL DEFAULT 2")
    db.execute("ALTER TABLE workers ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0")
    db.execute("UPDATE workers SET ready = (state = 'ASSIGNED')")
    db.execute("CREATE INDEX workers_ready ON workers(priority, created, worker) WHERE ready = 1")
    db.execute(
        "CREATE TABLE deps(worker TEXT NOT NULL, after TEXT NOT NULL, PRIMARY KEY (worker, after)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX deps_after ON deps(after, worker)")


@migrations(name="0009_notices")
def m0009(db: sqlite_utils.Database):
    # Issue 15, notices: a lifecycle event that changed or ended an attempt an agent held,
    # delivered by `poll` (coord.projections.notices keeps the rows inside each append).
    # Events stored before this migration give none (an upgrade must not flood every
    # inbox with old news): `notices_from` records where notices begin.
    db.execute(
        "CREATE TABLE notices(agent TEXT NOT NULL, seq INTEGER NOT NULL, worker TEXT NOT NULL, "
        "attempt INTEGER NOT NULL, reason TEXT NOT NULL, acked INTEGER NOT NULL DEFAULT 0, "
        "PRIMARY KEY (agent, seq))"
    )
    db.execute("CREATE INDEX notices_pending ON notices(agent, seq) WHERE acked = 0")
    db.execute("CREATE INDEX notices_worker ON notices(worker)")
    top = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    if top:
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('notices_from', ?)", (str(top),))


@migrations(name="0010_inbox_acks")
def m0010(db: sqlite_utils.Database):
    # Issue 20, acknowledgements that travel: an acknowledgement is an `inbox.acked` event;
    # `acks` is its projection (which ids each agent acknowledged), `cursors` stays as a
    # watermark beside it. What this store had acknowledged per clone (the cursors and
    # msg_acks of 0003) carries over as inbox.acked events appended here, one set per agent,
    # so it travels like any acknowledgement from now on (docs/messages.md).
    db["acks"].create({"agent": str, "id": str}, pk=("agent", "id"), not_null={"agent", "id"})
    old: dict[str, list[str]] = {}
    for agent, eid in db.execute(
        'SELECT c.agent, e.id FROM cursors c JOIN events e ON e."to" = c.address AND e.seq <= c.seq '
        "AND e.type >= 'msg.' AND e.type < 'msg/' AND NOT (e.\"to\" = '*' AND e.\"from\" = c.agent) "
        "UNION SELECT k.agent, e.id FROM msg_acks k JOIN events e ON e.seq = k.seq "
        "ORDER BY 1, 2"
    ).fetchall():
        old.setdefault(agent, []).append(eid)
    db.execute("DROP TABLE msg_acks")
    if old:
        _append_acks(db.conn, old)


def _append_acks(conn, acked: dict) -> None:
    """Append inbox.acked events for what each agent acknowledged before 0010 (in chunks
    that stay under the blob threshold) and project them: local events, for the audit file."""
    from .envelope import Envelope, canonical, event_id, now_us, ts_to_us, us_to_ts

    seq, last = conn.execute(
        "SELECT coalesce(max(seq), 0), (SELECT max(ts) FROM events WHERE ts <= ?) FROM events",
        (us_to_ts(now_us() + int(CONTEXT.get("max_clock_skew", 300) * 1_000_000)),),
    ).fetchone()
    us = max(now_us(), (ts_to_us(last) + 1) if last else 0)
    per = max(1, (CONTEXT.get("blob_threshold", 4096) - 16) // 70)
    rows = []
    for agent, ids in sorted(acked.items()):
        for i in range(0, len(ids), per):
            env = Envelope(us_to_ts(us), agent, agent, "inbox.acked", {"ids": ids[i : i + per]})
            body = canonical(env)
            seq += 1
            us += 1
            rows.append(
                (seq, event_id(body), env.ts, agent, agent, env.type, None, body, "local", 1, now_us())
            )
        conn.executemany("INSERT OR IGNORE INTO acks(agent, id) VALUES (?, ?)", [(agent, i) for i in ids])
    conn.executemany(
        'INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin, audit, stored) '
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        rows,
    )
    conn.execute("UPDATE projection_state SET last_seq = ? WHERE name = 'workers'", (seq,))


@migrations(name="0011_heartbeats_out_of_actor_indexes")
def m0011(db: sqlite_utils.Database):
    # Issue 19, the append: a heartbeat wrote a page in each of the type, from and to
    # indexes. They leave heartbeats out now (partial: the reads that may include
    # heartbeats ask for them in a second arm, coord.events.sqlite_reads.event_query_sql),
    # and heartbeats by actor have one index of their own, so a heartbeat touches the
    # events table, events_id, events_ts, events_worker and events_beats: two pages fewer.
    for col, name in (("type", "events_type"), ('"from"', "events_from"), ('"to"', "events_to")):
        db.execute(f"DROP INDEX IF EXISTS {name}")
        db.execute(f"CREATE INDEX {name} ON events({col}) WHERE type != 'worker.heartbeat'")
    db.execute("CREATE INDEX events_beats ON events(\"from\") WHERE type = 'worker.heartbeat'")


@migrations(name="0012_workers_board_columns")
def m0012(db: sqlite_utils.Database):
    # Issue 19, `status` at 10,000 workers: the text board's columns beside each view
    # (coord.events.records.BoardRow, kept by the projector; no index holds them, so a
    # heartbeat still rewrites no index entry). Views stored before get them computed from
    # their bytes, once, by the first process that opens the store
    # (coord.projections.boardtext.fill_board_columns); until then the board renders
    # those rows from the views.
    for col, kind in (
        ("board_head", "TEXT"),
        ("board_note", "TEXT"),
        ("board_since", "INTEGER"),
        ("board_beat", "INTEGER"),
        ("board_live", "INTEGER"),
        ("board_interval", "REAL"),
        ("board_clone", "TEXT"),
    ):
        db.execute(f"ALTER TABLE workers ADD COLUMN {col} {kind}")
    if db.execute("SELECT 1 FROM workers LIMIT 1").fetchone():
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('board_columns', '1')")


# Settings a migration may need (migrate() sets them from the home's settings).
CONTEXT: dict = {}

# Names recorded by stores migrated before issue 12 -> the names they run under now.
RENAMED = {
    "0301_audit_dirty": "0002_audit_dirty",
    "0501_messages_blobs_search": "0003_messages_blobs_search",
    "0401_events_worker_transitions": "0004_events_worker_transitions",
    "1101_events_stored": "0005_events_stored",
}
SCHEMA_VERSION = len(migrations._migrations)


def migrate(conn, settings: dict | None = None) -> None:
    """Apply pending migrations on an open connection (the caller holds the write lock).
    `settings`: the home's (blob_threshold, max_clock_skew), for migrations that append."""
    import secrets

    CONTEXT.update(settings or {})

    db = sqlite_utils.Database(conn)
    if db[migrations.migrations_table].exists():
        with db.atomic():
            for old, new in RENAMED.items():
                conn.execute(
                    f"UPDATE {migrations.migrations_table} SET name = ? WHERE migration_set = ? AND name = ?",
                    (new, migrations.name, old),
                )
    migrations.apply(db)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('clone_id', ?)", (secrets.token_hex(8),))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
