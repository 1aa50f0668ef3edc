"""Home administration: init, config, rebuild."""

import click

from ..events.home import find_home
from .options import global_options, state
from .output import clean, echo, emit_json, warn


@click.command("init")
@click.option(
    "--store",
    "store",
    metavar="URL",
    help="Keep the log on this PostgreSQL server (postgresql://…, no password).",
)
@click.option(
    "--import",
    "do_import",
    is_flag=True,
    help="With --store: add the lines of events.jsonl the server lacks.",
)
@global_options
def init_cmd(store, do_import):
    """Create a home (.coord/) here, or at --home / COORD_HOME. Safe to repeat.

    Inside a git worktree the home is the repository's (it says "already a home: PATH").
    In a subdirectory of a project that has a home, or inside a home, it refuses (exit 4)
    and names that home; an explicit --home makes a separate home anywhere else.

    With --store URL (or COORD_STORE) the home joins the log on a PostgreSQL server that
    homes on other machines share (the local `store` setting; the log is created there
    once). A URL holding a password is refused (exit 2): use ~/.pgpass, PGPASSWORD or a
    service= name. events.jsonl is written from the shared log; lines in it the server
    lacks are added only with --import. See docs/postgres.md.

    \b
    Example:
      cd my-repo && coord init
      coord init --store postgresql://coord@db.internal/coord
    """
    import os

    st = state()
    env = os.environ.get("COORD_STORE")
    url = store if store is not None else (env if env not in (None, "", "sqlite") else None)
    if url is not None:
        from ..app.fleet import join

        out = join(url, st.home, do_import=do_import)
        if st.json:
            emit_json(out)
        else:
            verb = "created the log on" if out["created"] else "joined the log on"
            echo(f"{out['home']}: {verb if out['joined'] else 'already on'} {out['store']}")
            if out["imported"]:
                echo(f"imported {out['imported']} event(s) from events.jsonl")
        return
    if do_import:
        from ..events.errors import UsageError

        raise UsageError("--import goes with --store URL")
    from ..app.admin import init

    home, created = init(st.home)
    if st.json:
        emit_json({"home": str(home.path), "created": created})
    else:
        echo(f"{'created' if created else 'already a home:'} {home.path}")


@click.command("config")
@click.argument("key", required=False)
@click.argument("value", required=False)
@global_options
def config_cmd(key, value):
    """Show all settings, one setting, or set one.

    Shared settings (heartbeat_interval, blob_threshold, audit_heartbeats, branch_prefix,
    check.NAME, required_checks, check_timeout) live in .coord/config.toml, committed so
    clones agree (an empty check.NAME removes that check); local ones (synchronous,
    busy_timeout, write_lock, max_clock_skew) in .coord/local.toml, git-ignored, mode 0600.
    Every value is checked when set and when read (other commands exit 2 on an invalid
    one); this command still reads an invalid file, marks what is wrong, and repairs it
    when you set the value again.

    \b
    Example:
      coord config
      coord config heartbeat_interval 5
      coord config busy_timeout 30
      coord config check.tests "pytest -q" && coord config required_checks tests
    """
    from ..events.files import check_home_dir
    from ..events.settings import SQLITE_ONLY, Settings, known
    from ..events.settings_write import SettingsWriter

    st = state()
    home = _settings_home(st.home)
    check_home_dir(home.path)
    if key is not None:
        known(key)
    s = SettingsWriter(home.path) if value is not None else Settings(home.path)
    if value is not None:
        home.set_umask()
        for note in s.set(key, value):
            warn(note)
    else:
        for note in s.notes:
            warn(note)
    if key and key not in s.entries:  # a check.NAME that is not (or no longer) defined
        emit_json({key: None}) if st.json else echo("")
        return
    entries = [s.entries[key]] if key else list(s.entries.values())
    problems = [p for p in s.problems() if not key or f": {key} = " in p]
    if st.json:
        out = {e.key: e.value for e in entries}
        if problems:
            out["$problems"] = problems
        emit_json(out)
        return
    if key:
        e = entries[0]
        echo(
            _shown(e.value)
            if e.problem is None
            else f"{e.raw}  # INVALID: {e.problem}; in force: {_shown(e.value)}"
        )
        return
    ignored = ""
    if _on_server(home):
        ignored = "  # ignored: this home's log is on a PostgreSQL server (SQLite only)"
    for scope, title in (
        ("shared", "committed: clones share them"),
        ("local", "this machine only, git-ignored"),
    ):
        echo(f"# {scope}: {home.path / ('config.toml' if scope == 'shared' else 'local.toml')} ({title})")
        for e in entries:
            if e.setting.scope != scope:
                continue
            if e.problem is None:
                echo(f"{e.key} = {_shown(e.value)}{ignored if e.key in SQLITE_ONLY else ''}")
            else:
                echo(
                    f"{e.key} = {e.raw}  # INVALID: {e.problem}; in force: {_shown(e.value)}; "
                    f"repair: coord config {e.key} VALUE"
                )
    for fname, k in s.unknown:
        echo(f"# {fname}: {k} is not a setting this coord knows (kept, ignored)")
    for f in s.files.values():
        for no, k, reason in f.broken:
            if k not in s.entries:
                echo(f"# {f.path}{f' line {no}' if no else ''}: {reason}")


def _on_server(home) -> bool:
    """Whether the home's log is on a server (SQLite-only settings are then ignored)."""
    from ..events.errors import CoordError

    try:
        return bool(home.store_url)
    except CoordError:  # an invalid setting: listed with its problem anyway
        return False


def _settings_home(explicit):
    """The home whose settings to show or set. A fresh clone has `.coord/` (with the
    committed config.toml) but no database yet; when that config.toml is invalid, `init`
    refuses (exit 2) until it is repaired, so `config` must work there too."""
    import os
    from pathlib import Path

    from ..events.errors import NoHome
    from ..events.home import Home

    try:
        return find_home(explicit)
    except NoHome:
        explicit = explicit or os.environ.get("COORD_HOME") or None
        if explicit:
            p = Path(explicit).expanduser().absolute()
            candidates = [p, p / ".coord"]
        else:
            here = Path.cwd().absolute()
            candidates = [d / ".coord" for d in (here, *here.parents)]
        for c in candidates:
            if (c / "config.toml").is_file() or (c / "local.toml").is_file():
                return Home(c)
        raise


def _shown(v) -> str:
    return str(v).lower() if isinstance(v, bool) else clean(v)


@click.command("rebuild")
@global_options
def rebuild_cmd():
    """Fold every event from zero into fresh views and swap them in; rebuild the search index.

    \b
    Example:
      coord rebuild
    """
    from ..app import admin
    from .progress import bar

    st = state()
    c = st.open()
    b = bar("rebuild")
    cb = None
    if b is not None:  # the total costs one count, so only when a bar is drawn
        total = admin.lifecycle_events(c)
        cb = lambda done: b(done, total)  # noqa: E731
    try:
        n = admin.rebuild(c, progress=cb)
    finally:
        if b is not None:
            b.close()
    indexed = admin.indexed(c)
    if st.json:
        emit_json({"events": n, "indexed": indexed})
    else:
        echo(f"rebuilt views from {n} lifecycle events; search index holds {indexed} events")


@click.command("migrate")
@click.option(
    "--to", "url", required=True, metavar="URL", help="The PostgreSQL server (postgresql://…, no password)."
)
@global_options
def migrate_cmd(url):
    """Move this SQLite home onto a PostgreSQL server, losing nothing.

    Copies, in one server transaction while the write lock is held: every event (same
    bytes, ids and seqs), the views, request ids, inbox acknowledgements and cursors, the
    search index, and every blob. The server's log must be empty (create it with this
    command; others join it with `coord init --store URL`). The home's audit file is not
    changed; coord.db is kept aside as coord.db.moved-<time>. Stop this home's agents
    first. See docs/postgres.md.

    \b
    Example:
      coord migrate --to postgresql://coord@db.internal/coord
    """
    from ..app.fleet import migrate
    from ..events.home import find_home

    st = state()
    out = migrate(find_home(st.home), url)
    if st.json:
        emit_json(out)
    else:
        echo(f"moved {out['events']} events and {out['blobs']} blobs from {out['home']} to {out['store']}")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@global_options
def backup_cmd(file, force):
    """Write a consistent copy of the database to FILE (SQLite `VACUUM INTO`).

    Safe while agents keep writing: the copy is one read snapshot. Never copy coord.db
    with cp, which can catch it mid-write. To restore, stop writers and put the file at
    .coord/coord.db (events appended after the backup are in events.jsonl: `coord import`).
    FILE is written with your umask; an existing FILE needs --force, and a FILE inside a
    coord home is refused (exit 4).

    \b
    Example:
      coord backup /backups/coord-$(date +%F).db
    """
    from pathlib import Path

    st = state()
    c = st.open()
    from ..app.admin import backup

    n = backup(c, Path(file), force=force)
    if st.json:
        emit_json({"file": str(Path(file).absolute()), "events": n})
    else:
        echo(f"backed up {n} events to {file}")
