"""Finding and creating a home (.coord/), and its settings (config.toml)."""

import os
import stat
from pathlib import Path

from .errors import NoHome, Refused, UsageError
from .files import USER_UMASK  # noqa: F401  (read before any home sets its umask)

DB_NAME = "coord.db"
GITIGNORE = "coord.db\ncoord.db-wal\ncoord.db-shm\nworktrees/\nwrite.lock\naudit.lock\nrebuild.lock\n"
GITATTRIBUTES_LINE = "events.jsonl merge=union -text"

# name: (type, default, help). config.toml is committed, so clones share these.
SETTINGS = {
    "heartbeat_interval": (float, 10.0, "seconds between heartbeats; liveness levels are multiples of it"),
    "blob_threshold": (int, 4096, "payloads whose encoding exceeds this many bytes are stored as blobs"),
    "audit_heartbeats": (bool, False, "whether worker.heartbeat events go into events.jsonl"),
    "branch_prefix": (str, "coord/", "prefix of worker branches"),
    "synchronous": (str, "FULL", "SQLite synchronous pragma: FULL or NORMAL"),
    "busy_timeout": (float, 10.0, "seconds to wait for the write lock before exiting 7 (busy)"),
    "write_lock": (bool, True, "take an exclusive flock around each write transaction (fair queueing)"),
    "max_clock_skew": (
        float,
        300.0,
        "seconds an event's ts may lie ahead of this clock and still set the ts of new events (local)",
    ),
}


def parse_setting(key: str, value: str):
    if key not in SETTINGS:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
    typ = SETTINGS[key][0]
    try:
        if typ is bool:
            v = value.strip().lower()
            if v not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError
            return v in ("true", "1", "yes", "on")
        out = typ(value)
    except ValueError:
        raise UsageError(f"bad value for {key}: {value!r} (want {typ.__name__})") from None
    if key == "synchronous":
        out = out.upper()
        if out not in ("FULL", "NORMAL", "EXTRA"):
            raise UsageError(f"bad value for synchronous: {value!r} (FULL, NORMAL or EXTRA)")
    if key == "max_clock_skew":
        if not 0 <= out <= 10 * 365 * 86400:  # also refuses nan
            raise UsageError(f"bad value for {key}: {value!r} (seconds, 0 to 315360000)")
    elif typ in (int, float) and out <= 0:
        raise UsageError(f"bad value for {key}: {value!r} (must be positive)")
    return out


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


_SIMPLE_LINE = None


def _parse_simple_toml(data: bytes) -> dict | None:
    """The flat `key = value` form that coord writes, parsed without importing tomllib
    (start-up matters on the per-action path). None when the text is anything else."""
    global _SIMPLE_LINE
    if _SIMPLE_LINE is None:
        import re

        _SIMPLE_LINE = re.compile(
            r'^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(true|false|-?\d+(?:\.\d+)?|"[^"\\]*")\s*$'
        )
    out = {}
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SIMPLE_LINE.match(line)
        if m is None:
            return None
        k, v = m.groups()
        if v in ("true", "false"):
            out[k] = v == "true"
        elif v.startswith('"'):
            out[k] = v[1:-1]
        else:
            out[k] = float(v) if "." in v else int(v)
    return out


class Home:
    """A .coord/ directory with its database."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.db_path = self.path / DB_NAME
        self.audit_path = self.path / "events.jsonl"
        self.blobs_path = self.path / "blobs"
        self.config_path = self.path / "config.toml"
        self._config = None

    def __repr__(self):
        return f"Home({str(self.path)!r})"

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def config(self) -> dict:
        if self._config is None:
            cfg = {k: v[1] for k, v in SETTINGS.items()}
            try:
                data = self.config_path.read_bytes()
            except FileNotFoundError:
                data = b""
            if data.strip():
                loaded = _parse_simple_toml(data)
                if loaded is None:  # not the flat form coord writes: the real parser decides
                    import tomllib

                    try:
                        loaded = tomllib.loads(data.decode())
                    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                        raise UsageError(f"{self.config_path}: not valid TOML: {e}") from None
                for k, v in loaded.items():
                    if k in SETTINGS:
                        cfg[k] = parse_setting(k, str(v).lower() if isinstance(v, bool) else str(v))
            self._config = cfg
        return self._config

    def write_config(self, cfg: dict):
        lines = ["# coord settings (committed: clones share them). `coord config KEY VALUE` sets one.\n"]
        for k, (_typ, default, help_) in SETTINGS.items():
            lines.append(
                f"\n# {help_} (default {_toml_value(default)})\n{k} = {_toml_value(cfg.get(k, default))}\n"
            )
        tmp = self.config_path.with_suffix(".toml.tmp")
        tmp.write_text("".join(lines))
        os.replace(tmp, self.config_path)
        self._config = None

    def set_umask(self):
        """Files are never world-accessible; group gets access when the home's directory is
        group-writable (a shared home)."""
        try:
            mode = self.path.stat().st_mode
        except FileNotFoundError:
            mode = 0
        os.umask(0o007 if mode & stat.S_IWGRP else 0o077)


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
        if not (p / DB_NAME).exists() and (p / ".coord" / DB_NAME).exists():
            p = p / ".coord"
        if not (p / DB_NAME).exists():
            raise NoHome(f"no coord home at {p} (run `coord init`)")
        return Home(p)
    here = (cwd or Path.cwd()).absolute()
    for d in (here, *here.parents):
        if (d / ".coord" / DB_NAME).exists():
            return Home(d / ".coord")
        if (d / ".git").is_file():  # a git worktree: its home lives beside the common dir
            h = _git_common_home(d)
            if h is not None and (h / DB_NAME).exists():
                return Home(h)
    raise NoHome(f"no coord home found from {here} upwards (run `coord init` or set COORD_HOME)")


def _is_home(d: Path) -> bool:
    return (d / DB_NAME).exists()


def _need_directory(path: Path, what: str) -> None:
    """path may be created as a directory: it is one, or its nearest existing ancestor is."""
    for p in (path, *path.parents):
        if p.exists() or p.is_symlink():
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
    home.path.mkdir(parents=True, exist_ok=True)
    home.set_umask()
    home.blobs_path.mkdir(exist_ok=True)
    if not home.config_path.exists():
        home.write_config({})
    gi = home.path / ".gitignore"
    if not gi.exists():
        gi.write_text(GITIGNORE)
    ga = home.path / ".gitattributes"
    text = ga.read_text() if ga.exists() else ""
    if GITATTRIBUTES_LINE not in text:
        ga.write_text(text + ("" if not text or text.endswith("\n") else "\n") + GITATTRIBUTES_LINE + "\n")
    if not home.audit_path.exists():
        home.audit_path.touch()
    return home
