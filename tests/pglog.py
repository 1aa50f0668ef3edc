"""Helpers for tests of the PostgreSQL store: empty the session's log between tests."""

import psycopg

from coord.events.pg_schema import SCHEMA_VERSION
from coord.events.records import FOLD_VERSION

KEEP = ("schema_version", "fold_version", "log_id", "created", "max_clock_skew_us", "search_unaccent")


def empty_log(url: str) -> None:
    """End every other session on the database, then truncate coord's tables (the log's
    bookkeeping rows stay)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT format('coord.%I', tablename) FROM pg_tables WHERE schemaname = 'coord' "
                "AND tablename <> 'meta'"
            )
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)}")
        conn.execute("DELETE FROM coord.meta WHERE key <> ALL(%s)", (list(KEEP),))
        for key, value in (
            ("max_clock_skew_us", "300000000"),
            ("schema_version", str(SCHEMA_VERSION)),
            ("fold_version", str(FOLD_VERSION)),
        ):
            conn.execute("UPDATE coord.meta SET value = %s WHERE key = %s", (value, key))
