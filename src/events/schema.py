"""Schema migrations: ordered, named, recorded (sqlite-utils' Migrations) and skipped
quickly once current (PRAGMA user_version holds how many have run).

Append new migrations at the end of MIGRATIONS; never edit or reorder an applied one.
This module imports sqlite_utils, so it is only loaded when a migration must run.
"""
import sqlite_utils
from sqlite_utils.migrations import Migrations

migrations = Migrations("coord")


@migrations(name="0001_events_and_workers")
def m0001(db: sqlite_utils.Database):
    db["events"].create({
        "seq": int,        # gapless, assigned inside the write transaction
        "id": str,         # b3:<hex> of body
        "ts": str,
        "from": str,
        "to": str,
        "type": str,
        "worker": str,     # the worker a worker.* event concerns, else NULL
        "body": bytes,     # the canonical bytes, exactly as hashed
        "origin": str,     # 'local' or 'import'
    }, pk="seq", not_null={"id", "ts", "from", "to", "type", "body", "origin"})
    db["events"].create_index(["id"], unique=True, index_name="events_id")
    db["events"].create_index(["ts", "id"], index_name="events_ts")
    db["events"].create_index(["worker", "ts", "id"], index_name="events_worker")
    db["events"].create_index(["type"], index_name="events_type")
    db["events"].create_index(["from"], index_name="events_from")
    db["events"].create_index(["to"], index_name="events_to")
    db["workers"].create({
        "worker": str, "state": str, "holder": str, "assignee": str,
        "created": str, "updated": str, "view": bytes,
    }, pk="worker", not_null={"state", "created", "updated", "view"})
    db["workers"].create_index(["state", "created"], index_name="workers_state")
    db["projection_state"].create({"name": str, "last_seq": int}, pk="name")
    db["request_ids"].create({"actor": str, "key": str, "result": bytes}, pk=("actor", "key"))
    db["meta"].create({"key": str, "value": str}, pk="key")


@migrations(name="0401_events_worker_transitions")
def m0401(db: sqlite_utils.Database):
    # A worker's history without its heartbeats (`show`): a partial index, so a worker that
    # beat 60,000 times is read in as many steps as it has transitions, not heartbeats.
    db.execute("CREATE INDEX IF NOT EXISTS events_worker_transitions ON events(worker, ts, id) "
               "WHERE type != 'worker.heartbeat'")


MIGRATIONS = migrations
SCHEMA_VERSION = len(migrations._migrations)


def migrate(conn) -> None:
    """Apply pending migrations on an open connection (the caller holds the write lock)."""
    import secrets
    db = sqlite_utils.Database(conn)
    migrations.apply(db)
    conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('clone_id', ?)",
                 (secrets.token_hex(8),))
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
