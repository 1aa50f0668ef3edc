"""The PostgreSQL store's schema (src/events/pg/schema.sql) and connections: creating the
log on a server once, however many machines run `coord init --store` at once; the
session settings every connection gets (timeouts bounded by busy_timeout); this
checkout's name on the server."""

import secrets
from importlib import resources

import psycopg

from .records import FOLD_VERSION

SCHEMA_VERSION = 3  # of src/events/pg/schema.sql (2: the work graph, notices, acks; 3: the board columns)
LOCK_CLASS = 1668247410  # advisory lock keys (LOCK_CLASS, n): 0 install, 1 append, 3 rebuild


def schema_sql() -> str:
    return resources.files("coord.events").joinpath("pg/schema.sql").read_text(encoding="utf-8")


def connect(url: str, busy_timeout: float):
    ms = max(1, int(busy_timeout * 1000))
    opts = (
        f"-c statement_timeout={ms} -c lock_timeout={ms} -c idle_in_transaction_session_timeout={ms} "
        f"-c synchronous_commit=on -c client_connection_check_interval={min(ms, 1000)}"
    )
    return psycopg.connect(
        url,
        autocommit=True,
        prepare_threshold=None,
        application_name="coord",
        options=opts,
        connect_timeout=max(2, int(busy_timeout + 0.999)),
        tcp_user_timeout=ms,
        keepalives=1,
    )


def install(url: str, busy_timeout: float, max_clock_skew: float) -> bool:
    """Create the log on the server once (safe from many machines at once); True when this
    call created it. An unreachable server is exit 7, a refusal (rights) exit 1."""
    from .errors import Busy, CoordError
    from .store_url import redact, shown_url

    try:
        return _install(url, busy_timeout, max_clock_skew)
    except psycopg.OperationalError as e:
        raise Busy(
            f"the server {shown_url(url)} could not be reached ({redact(' '.join(str(e).split()))}); "
            "nothing was created; safe to retry"
        ) from None
    except psycopg.Error as e:
        raise CoordError(
            f"cannot create the log on {shown_url(url)}: {redact(' '.join(str(e).split()))}"
        ) from None


def _install(url: str, busy_timeout: float, max_clock_skew: float) -> bool:
    with connect(url, busy_timeout) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, 0)", (LOCK_CLASS,))
        if conn.execute("SELECT to_regclass('coord.meta') IS NOT NULL").fetchone()[0]:
            return False
        conn.execute(schema_sql())
        from .envelope import now_us, us_to_ts

        conn.execute(
            "INSERT INTO coord.meta (key, value) VALUES ('schema_version', %s), ('fold_version', %s), "
            "('log_id', %s), ('created', %s), ('max_clock_skew_us', %s)",
            (
                str(SCHEMA_VERSION),
                str(FOLD_VERSION),
                secrets.token_hex(8),
                us_to_ts(now_us()),
                str(int(max_clock_skew * 1e6)),
            ),
        )
    return True


def checkout_id(home) -> str:
    """This checkout's name on the server (its audit file's record): a random id kept in
    .coord/checkout (git-ignored), made on first use, whole or not at all (linked into
    place, so a process racing to make it reads the winner's)."""
    import os

    from .files import read_file_in_home, write_file_in_home

    path = home.path / "checkout"
    data = read_file_in_home(path)
    if not data:
        tmp = home.path / f".checkout.{os.getpid()}"
        write_file_in_home(tmp, (secrets.token_hex(8) + "\n").encode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        data = read_file_in_home(path)
    return data.decode("ascii", "replace").strip()
