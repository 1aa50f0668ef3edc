"""Home administration: init, config, rebuild."""

import click

from ..events.errors import UsageError
from ..events.home import SETTINGS, find_home, parse_setting
from .common import echo, emit_json, global_options, state


@click.command("init")
@global_options
def init_cmd():
    """Create a home (.coord/) here, or at --home / COORD_HOME. Safe to repeat.

    Inside a git worktree the home is the repository's (it says "already a home: PATH").
    In a subdirectory of a project that has a home, or inside a home, it refuses (exit 4)
    and names that home; an explicit --home makes a separate home anywhere else.

    \b
    Example:
      cd my-repo && coord init
    """
    from ..api import init

    st = state()
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
    """Show all settings, one setting, or set one (in .coord/config.toml).

    \b
    Example:
      coord config
      coord config heartbeat_interval 5
    """
    st = state()
    home = find_home(st.home)
    cfg = dict(home.config)
    if key is not None and key not in SETTINGS:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
    if value is not None:
        cfg[key] = parse_setting(key, value)
        home.set_umask()
        home.write_config(cfg)
    if st.json:
        emit_json({key: cfg[key]} if key else cfg)
    elif key:
        echo(str(cfg[key]).lower() if isinstance(cfg[key], bool) else str(cfg[key]))
    else:
        for k, v in cfg.items():
            echo(f"{k} = {str(v).lower() if isinstance(v, bool) else v}")


@click.command("rebuild")
@global_options
def rebuild_cmd():
    """Fold every event from zero into fresh views and swap them in; rebuild the search index.

    \b
    Example:
      coord rebuild
    """
    from .progress import bar

    st = state()
    c = st.open()
    b = bar("rebuild")
    cb = None
    if b is not None:  # the total costs one count, so only when a bar is drawn
        with c.store.read() as conn:
            total = conn.execute("SELECT count(*) FROM events WHERE worker IS NOT NULL").fetchone()[0]
        cb = lambda done: b(done, total)  # noqa: E731
    try:
        n = c.rebuild(progress=cb)
    finally:
        if b is not None:
            b.close()
    from ..projections import search

    with c.store.read() as conn:
        indexed = search.count(conn)
    if st.json:
        emit_json({"events": n, "indexed": indexed})
    else:
        echo(f"rebuilt views from {n} lifecycle events; search index holds {indexed} events")


@click.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite FILE if it exists.")
@global_options
def backup_cmd(file, force):
    """Write a consistent copy of the database to FILE (SQLite `VACUUM INTO`).

    Safe while agents keep writing: the copy is one read snapshot. Never copy coord.db
    with cp, which can catch it mid-write. To restore, stop writers and put the file at
    .coord/coord.db (events appended after the backup are in events.jsonl: `coord import`).

    \b
    Example:
      coord backup /backups/coord-$(date +%F).db
    """
    from pathlib import Path

    st = state()
    c = st.open()
    n = c.backup(Path(file), force=force)
    if st.json:
        emit_json({"file": str(Path(file).absolute()), "events": n})
    else:
        echo(f"backed up {n} events to {file}")
