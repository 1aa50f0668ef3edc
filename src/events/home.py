"""Finding and creating a home (.coord/), and its settings (config.toml, local.toml:
coord.events.settings)."""

import os
import stat
from pathlib import Path

from .errors import NoHome, Refused, UsageError
from .files import (
    USER_UMASK,  # noqa: F401  (read before any home sets its umask)
    check_home_dir,
    create_file_in_home,
    ensure_dir_in_home,
    read_file_in_home,
    write_file_in_home,
)
from .settings import load

DB_NAME = "coord.db"
GITIGNORE = (
    "coord.db\ncoord.db-wal\ncoord.db-shm\nworktrees/\nlocal.toml\nserve.token\n"
    "write.lock\nwrite.queue\naudit.lock\nrebuild.lock\ncheckout\n"
)
GITATTRIBUTES_LINE = "events.jsonl merge=union -text"


class Home:
    """A .coord/ directory with its database."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db_path = self.path / DB_NAME
        self.audit_path = self.path / "events.jsonl"
        self.blobs_path = self.path / "blobs"
        self.config_path = self.path / "config.toml"
        self._config = None
        self.config_notes: list[str] = []  # e.g. local settings still read from config.toml

    def __repr__(self):
        return f"Home({str(self.path)!r})"

    def open_store(self, projectors=(), after_commit=()):
        """This home's store (coord.events.store.Store), opened: the one place that names
        the implementations of the store interface, chosen by the `store` setting
        (COORD_STORE overrides it): SQLite, or a PostgreSQL server (psycopg is imported
        only then)."""
        url = self.store_url
        if url:
            from .pg_store import PgStore

            return PgStore(self, projectors, after_commit, url).open()
        from .sqlite_store import SqliteStore

        return SqliteStore(self, projectors, after_commit).open()

    def create_store(self) -> bool:
        """Make this home's store if it does not exist yet (SQLite: coord.db; a server: the
        log's schema, once, however many machines try at once). True when made here."""
        url = self.store_url
        if not url:
            made = not self.db_path.exists()
            self.open_store().close()
            return made
        from .pg_schema import install

        return install(url, self.config["busy_timeout"], self.config["max_clock_skew"])

    def move_store_to(self, url: str) -> dict:
        """Move this SQLite home's log onto the (empty) log of a server, losing nothing
        (coord.events.pg_migrate); the home then names the server."""
        from .pg_migrate import move

        return move(self, url)

    @property
    def store_url(self) -> str:
        """'' for SQLite, else the server's connection string: COORD_STORE, else the local
        `store` setting. One with a password is refused (exit 2), never printed."""
        env = os.environ.get("COORD_STORE")
        if env is None:
            return self.config["store"]
        if env in ("", "sqlite"):
            return ""
        from .store_url import store_problem

        why = store_problem(env)
        if why is not None:
            raise UsageError(f"COORD_STORE {why}")
        return env

    def has_store(self) -> bool:
        """Whether this home's store exists (SQLite: coord.db; or it names a server)."""
        return _is_home(self.path)

    def discard_store(self) -> None:
        """Remove a store that `init` created but could not finish (coord.db, -wal, -shm)."""
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.db_path) + suffix).unlink(missing_ok=True)

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def config(self) -> dict:
        """The settings in force: defaults, then config.toml (shared), then local.toml
        (this machine). An invalid value is exit 2 naming the file, key and repair."""
        if self._config is None:
            self._config, self.config_notes = load(self.path)
        return self._config

    def write_config(self, cfg: dict):
        """Set settings (each checked), each into its own file; with nothing given, write
        config.toml with every shared setting (a new home's)."""
        from .settings_write import SettingsWriter

        s = SettingsWriter(self.path)
        for k, v in cfg.items():
            s.set(k, v if isinstance(v, str) else _text(v))
        if not cfg:
            s.write_shared()
        self._config = None

    def set_umask(self):
        """Files are never world-accessible; group gets access when the home's directory is
        group-writable (a shared home)."""
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            mode = 0
        os.umask(0o007 if mode & stat.S_IWGRP else 0o077)


def _text(v) -> str:
    from .settings import toml_value

    return toml_value(v)


def _git_common_home(start: Path) -> Path | None:
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
            cwd=start,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    common = Path(out.stdout.strip())
    return common.parent / ".coord"


def find_home(explicit: str | None = None, cwd: Path | None = None) -> Home:
    try:
        return _find_home(explicit, cwd)
    except PermissionError as e:
        from .errors import CoordError

        raise CoordError(f"cannot access {e.filename}: permission denied") from None


def _find_home(explicit: str | None, cwd: Path | None) -> Home:
    """--home / COORD_HOME, else walk up from cwd like git. A .coord/ without coord.db is not
    a home; inside a git worktree, the home is the one beside the common git directory."""
    if explicit is None:
        explicit = os.environ.get("COORD_HOME") or None
    if explicit:
        p = Path(explicit).expanduser().absolute()
        if not _is_home(p) and _is_home(p / ".coord"):
            p = p / ".coord"
        if not _is_home(p):
            raise NoHome(f"no coord home at {p} (run `coord init`)")
        return Home(p)
    here = (cwd or Path.cwd()).absolute()
    for d in (here, *here.parents):
        if _is_home(d / ".coord"):
            return Home(d / ".coord")
        if (d / ".git").is_file():  # a git worktree: its home lives beside the common dir
            h = _git_common_home(d)
            if h is not None and _is_home(h):
                return Home(h)
    raise NoHome(f"no coord home found from {here} upwards (run `coord init` or set COORD_HOME)")


def _is_home(d: Path) -> bool:
    """A .coord/ with coord.db, or whose local.toml names a server (`store`)."""
    if (d / DB_NAME).exists():
        return True
    local = d / "local.toml"
    if not local.is_file():
        return False
    try:
        import tomllib

        return bool(tomllib.loads(local.read_text(errors="replace")).get("store"))
    except (OSError, ValueError):
        return False  # an unreadable local.toml: `coord config` shows what is wrong


def _need_directory(path: Path, what: str) -> None:
    """path may be created as a directory: it is one, or its nearest existing ancestor is."""
    for p in (path, *path.parents):
        if p.is_symlink():
            return  # a link is refused (exit 5) by check_home_dir, dangling or not
        if p.exists():
            if not p.is_dir():
                raise UsageError(f"{what} {path}: {p} exists and is not a directory")
            return


def init_target(explicit: str | None = None, cwd: Path | None = None) -> Path:
    """Where `coord init` creates (or finds) the home, checked against the homes around it
    so that one project never gets a second, silently split log (docs/architecture.md,
    "Where the home is").

    Without --home or COORD_HOME: inside a linked git worktree, the repository's home (the
    `.coord/` beside its common git directory), created there if missing; else `./.coord`,
    refused (exit 4) when the current directory lies inside an existing home or inside the
    project of a home found above it (walking up to the root of the git repository that
    holds the current directory: homes above a repository belong to other projects).

    With an explicit path (a separate home is legitimate: another log for the same tree, a
    home outside any project): refused only when it lies inside another home's directory,
    or inside a linked worktree of a repository that has a home. Anything in the way that
    is not a directory: exit 2."""
    if explicit is None:
        explicit = os.environ.get("COORD_HOME") or None
    if explicit:
        t = Path(explicit).expanduser().absolute()
        _need_directory(t, "--home")
        for a in t.parents:
            if _is_home(a):
                raise Refused(f"{t} lies inside the home {a}: a home inside another home is refused")
            if (a / ".git").is_file():
                h = _git_common_home(a)
                if h is not None and h != t and _is_home(h):
                    raise Refused(
                        f"{t} lies in a git worktree ({a}) whose home is {h}: use that home "
                        "(a worktree's home is its repository's)"
                    )
        return t
    here = (cwd or Path.cwd()).absolute()
    target = here / ".coord"
    for d in (here, *here.parents):
        if _is_home(d):
            raise Refused(f"{here} lies inside the home {d}: a home inside another home is refused")
        if _is_home(d / ".coord"):
            if d == here:
                return target  # already a home
            raise Refused(
                f"{here} is inside the project of the home {d / '.coord'} (commands here use it): "
                f"a second home would split its log; pass --home {target} for a separate one anyway"
            )
        g = d / ".git"
        if g.is_file():  # a linked worktree: its home is its repository's
            h = _git_common_home(d)
            if h is not None:
                _need_directory(h, "home")
                return h
        if _checked_out_home(d / ".coord"):
            if d == here:
                break  # a clone's home, its database not built yet: init builds it
            raise Refused(
                f"{here} is inside the project of {d / '.coord'} (a home checked out without its "
                f"database): run `coord init` in {d}, or pass --home {target} for a separate home"
            )
        if g.is_dir():
            break  # the root of a repository: homes above it belong to other projects
    _need_directory(target, "home")
    return target


def _checked_out_home(d: Path) -> bool:
    """A .coord/ that git checked out (its committed files) but that has no database yet."""
    return (d / "events.jsonl").is_file() or (d / "config.toml").is_file()


def init_home_dirs(path: Path) -> Home:
    home = Home(path)
    check_home_dir(home.path)
    home.path.mkdir(parents=True, exist_ok=True)
    home.set_umask()
    ensure_dir_in_home(home.blobs_path)
    if not home.config_path.exists() and not home.config_path.is_symlink():
        home.write_config({})
    gi = home.path / ".gitignore"
    if not create_file_in_home(gi, GITIGNORE.encode()):
        # A home made by an older coord: add the names it lacks (local.toml, serve.token).
        text = read_file_in_home(gi).decode(errors="replace")
        missing = [n for n in GITIGNORE.split() if n not in text.split()]
        if missing:
            sep = "" if not text or text.endswith("\n") else "\n"
            write_file_in_home(gi, (text + sep + "\n".join(missing) + "\n").encode())
    ensure_gitattributes(home)
    create_file_in_home(home.audit_path)
    return home


def ensure_gitattributes(home: Home) -> None:
    """`.coord/.gitattributes` names the union merge for events.jsonl (added if missing)."""
    ga = home.path / ".gitattributes"
    data = read_file_in_home(ga)
    text = data.decode(errors="replace") if data is not None else ""
    if GITATTRIBUTES_LINE not in text:
        sep = "" if not text or text.endswith("\n") else "\n"
        write_file_in_home(ga, (text + sep + GITATTRIBUTES_LINE + "\n").encode())
