"""A fleet on a PostgreSQL server: joining a home to the server's log (`init --store`) and
moving an existing SQLite home onto a server (`migrate --to`), losing nothing."""

from pathlib import Path

from ..events.audit_read import import_bodies, read_checked
from ..events.errors import Refused, UsageError
from ..events.files import check_home_dir, check_regular
from ..events.home import Home, init_home_dirs, init_target
from ..events.records import AUDIT_WRITTEN
from ..events.store_url import shown_url, store_problem
from .context import Coord


def check_url(url: str, what: str = "--store") -> None:
    """A connection string with a password is refused (exit 2), and never repeated."""
    why = store_problem(url)
    if why is not None or not url:
        raise UsageError(f"{what} {why or 'must name a PostgreSQL server (postgresql://…)'}")


def join(url: str, path: str | Path | None = None, do_import: bool = False, cwd: Path | None = None) -> dict:
    """`coord init --store URL`: this checkout's home keeps its log on the server (the
    local `store` setting), made there once. Its events.jsonl is written from the shared
    log; lines in it that the server lacks are imported only with `do_import` (otherwise
    refused, exit 4, nothing changed on the server)."""
    check_url(url)
    p = init_target(str(path) if path is not None else None, cwd)
    check_home_dir(p)
    h = Home(p)
    if h.db_path.exists():
        raise Refused(
            f"{p} keeps its log in coord.db: move it onto the server with `coord migrate --to URL` "
            "(nothing lost), or pass --home for a separate home"
        )
    if h.has_store() and h.config["store"] not in ("", url):
        raise Refused(f"{p} already names another server ({shown_url(h.config['store'])})")
    joined = h.has_store()
    home = init_home_dirs(p)
    home.write_config({"store": url})
    try:
        created = home.create_store()
        imported = 0
        with Coord(home) as c:
            pairs = []
            if check_regular(home.audit_path) and home.audit_path.stat().st_size:
                pairs = read_checked(home.audit_path, c.store, in_home=True).new
            if pairs and not do_import:
                raise Refused(
                    f"{home.audit_path} holds {len(pairs)} event(s) the server's log lacks: pass "
                    "--import to add them (nothing was changed on the server)"
                )
            if pairs:
                imported = import_bodies(c.store, pairs, AUDIT_WRITTEN)
            written = c.audit.export().written
    except BaseException:
        if not joined:
            home.write_config({"store": ""})  # not a home until it has joined
        raise
    return {
        "home": str(home.path),
        "store": shown_url(url),
        "created": created,
        "joined": not joined,
        "imported": imported,
        "written": written,
    }


def migrate(home: Home, url: str) -> dict:
    """`coord migrate --to URL`: move a SQLite home onto a server's empty log (events,
    views, blobs, acknowledgements, request ids, the search index, the audit file's record).
    Run it while no agent of this home is running (a writer holding the store open would
    keep writing to the old file); the move itself holds the write lock."""
    check_url(url, "--to")
    if home.store_url:
        raise Refused(f"{home.path} already keeps its log on {shown_url(home.store_url)}")
    out = home.move_store_to(url)
    with Coord(home) as c:  # the checkout's audit file, checked against the moved log
        c.audit.export()
    return {"home": str(home.path), "store": shown_url(url), **out}
