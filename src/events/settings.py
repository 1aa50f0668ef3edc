"""Settings: shared ones in `.coord/config.toml` (committed, so clones agree), local ones in
`.coord/local.toml` (git-ignored, mode 0600: the store, timeouts and durability are one
machine's business and do not travel through git).

Every value is checked for type and range when it is set and when it is read: a file that
arrives through git is input like any other. A command that reads an invalid value fails
with exit 2 naming the file, the key, the value and the repair; `coord config` itself reads
leniently (`read_lenient`) so it can show and repair what is there. Adding a setting is one
line in SETTINGS: (type, default, help, scope, check).
"""

import math
import re
from collections import namedtuple

from .check_settings import PREFIX, check_name_problem, command_problem, required_problem
from .errors import UsageError
from .files import read_file_in_home
from .ref_checks import branch_prefix_problem, remote_name_problem, sync_branch_problem
from .store_url import redact, store_problem
from .toml_text import toml_value

SHARED, LOCAL = "shared", "local"

# check(value) -> None when fine, else what the value must be (for the error message).
Setting = namedtuple("Setting", "type default help scope check")


def _num(x) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else f"{x:g}"


def _number(lo: float, hi: float, unit: str, lo_open: bool = False):
    def check(v):
        if isinstance(v, float) and not math.isfinite(v):
            return f"must be a finite number of {unit}"
        if (v <= lo if lo_open else v < lo) or v > hi:
            low = f"more than {_num(lo)}" if lo_open else f"at least {_num(lo)}"
            return f"must be {low} and at most {_num(hi)} {unit}"
        return None

    return check


# Bounds of any heartbeat interval: this setting, and `run`/`heartbeat --interval` (which
# take them from projections/liveness.py, where they are re-exported: the log room never
# imports the projections). Below the floor a supervisor writes hundreds of events a
# second; above the ceiling (a day) nobody would ever be reaped.
MIN_INTERVAL = 0.05
MAX_INTERVAL = 86400.0


def _interval(v):
    return _number(MIN_INTERVAL, MAX_INTERVAL, "seconds")(v)


def _one_of(*choices):
    def check(v):
        return None if v in choices else f"must be one of {', '.join(choices)}"

    check.choices = choices  # values are compared (and stored) in upper case
    return check


SECONDS = "seconds"


# fmt: off
SETTINGS = {
    # shared: config.toml
    "heartbeat_interval": Setting(float, 10.0, "seconds between heartbeats; liveness levels are multiples of it", SHARED, _interval),
    "blob_threshold": Setting(int, 4096, "payloads whose encoding exceeds this many bytes are stored as blobs", SHARED, _number(1, 1 << 20, "bytes")),
    "audit_heartbeats": Setting(bool, False, "whether worker.heartbeat events go into events.jsonl", SHARED, None),
    "branch_prefix": Setting(str, "coord/", "prefix of worker branches", SHARED, branch_prefix_problem),
    "git_remote": Setting(str, "origin", "the git remote worker branches travel through when the store is shared (PostgreSQL)", SHARED, remote_name_problem),
    "max_attempts": Setting(int, 3, "attempts after which the watchdog fails a DEAD worker instead of requeueing it", SHARED, _number(1, 1000, "attempts")),
    "sync_branch": Setting(str, "", "branch `coord sync` works through with git plumbing (empty: the checked-out branch)", SHARED, sync_branch_problem),
    "sync_blob_limit": Setting(int, 10 << 20, "blobs bigger than this many bytes are left out of `coord sync`", SHARED, _number(0, 1 << 40, "bytes")),
    "check_timeout": Setting(float, 1800.0, "seconds a check may run before it is stopped (check, queue)", SHARED, _number(1, 7 * 86400, SECONDS)),
    "required_checks": Setting(str, "", "comma-separated check names that must pass before a merge", SHARED, required_problem),
    # local: local.toml
    "synchronous": Setting(str, "FULL", "SQLite synchronous pragma: FULL, NORMAL or EXTRA", LOCAL, _one_of("FULL", "NORMAL", "EXTRA")),
    "heartbeat_synchronous": Setting(str, "NORMAL", "durability of a commit that appends only heartbeats (kept out of the audit file): NORMAL survives a crash of coord, not of the machine; FULL or EXTRA as synchronous", LOCAL, _one_of("FULL", "NORMAL", "EXTRA")),
    "busy_timeout": Setting(float, 10.0, "seconds to wait for the write lock before exiting 7 (busy)", LOCAL, _number(0, 86400, SECONDS, lo_open=True)),
    "write_lock": Setting(bool, True, "take an exclusive flock around each write transaction (fair queueing)", LOCAL, None),
    "max_clock_skew": Setting(float, 300.0, "seconds an event may lie ahead of this clock and still set it", LOCAL, _number(0, 1e9, SECONDS)),
    "store": Setting(str, "", "where the log lives: empty for SQLite (coord.db), or a postgresql:// URL (no password)", LOCAL, store_problem),
}
SQLITE_ONLY = ("synchronous", "write_lock", "max_clock_skew")  # shown as ignored on a server
# fmt: on

FILES = {SHARED: "config.toml", LOCAL: "local.toml"}
HEADERS = {
    SHARED: "# coord's shared settings (committed: clones share them). `coord config KEY VALUE` sets one.\n",
    LOCAL: "# coord's local settings (this machine only; git-ignored). `coord config KEY VALUE` sets one.\n",
}


CHECK = Setting(
    str, "", "the command of a check (coord check ID NAME); empty removes it", SHARED, command_problem
)


def setting_of(key: str) -> Setting | None:
    """One of SETTINGS, or `check.NAME` (a check's command; any number of them)."""
    s = SETTINGS.get(key)
    if s is None and key.startswith(PREFIX) and check_name_problem(key[len(PREFIX) :]) is None:
        return CHECK
    return s


def known(key: str) -> Setting:
    s = setting_of(key)
    if s is None:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(SETTINGS)}, check.NAME)")
    return s


def parse_setting(key: str, text: str):
    """A value given as text (`coord config KEY VALUE`): converted and checked, or exit 2."""
    s = known(key)
    value = _convert(s, text)
    if isinstance(value, Problem):
        raise UsageError(f"bad value for {key}: {shown(text)} ({value.reason})")
    return value


class Problem:
    """Why a value read from a file cannot be used."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _convert(s: Setting, v):
    """A value from text or from TOML -> the setting's type, checked; or a Problem."""
    typ = s.type
    if typ is bool:
        if isinstance(v, str):
            t = v.strip().lower()
            if t not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                return Problem("want true or false")
            v = t in ("true", "1", "yes", "on")
        elif not isinstance(v, bool):
            return Problem("want true or false")
    elif typ is int:
        if isinstance(v, str):
            try:
                v = int(v.strip())
            except ValueError:
                return Problem("want a whole number")
        elif isinstance(v, bool) or not isinstance(v, int):
            return Problem("want a whole number")
    elif typ is float:
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                return Problem("want a number")
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            return Problem("want a number")
        v = float(v)
    elif typ is str:
        if not isinstance(v, str):
            return Problem("want a string")
        if getattr(s.check, "choices", None):  # an enumeration (synchronous)
            v = v.strip().upper()
        if re.search(r"[\x00-\x1f\x7f]", v):
            return Problem("must not contain control characters or newlines")
    why = s.check(v) if s.check is not None else None
    return Problem(why) if why else v


def shown(v) -> str:
    """A value as it would appear in the file, escaped (never a raw newline, never a
    password)."""
    if isinstance(v, str):
        return toml_value(redact(v))
    return toml_value(v) if isinstance(v, (bool, int, float)) else repr(v)


# --- the files, read ---------------------------------------------------------------
_SIMPLE_LINE = None
_KEY_OF_LINE = re.compile(r"^\s*([A-Za-z0-9_.-]+)\s*=")


def _simple_line():
    global _SIMPLE_LINE
    if _SIMPLE_LINE is None:
        _SIMPLE_LINE = re.compile(
            r'^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(true|false|-?\d+(?:\.\d+)?|"[^"\\\x00-\x1f\x7f]*")\s*$'
        )
    return _SIMPLE_LINE


def _parse_simple(text: str) -> dict | None:
    """The flat `key = value` form coord writes, parsed without importing tomllib (start-up
    matters on the per-action path). None when the text is anything else."""
    rx = _simple_line()
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = rx.match(line)
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


def _flatten(d: dict, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    for k, v in d.items():
        if isinstance(v, dict):
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[prefix + k] = v
    return out


class FileRead:
    """What one settings file holds: values by key, and the lines that could not be read."""

    def __init__(self, path, name: str):
        self.path = path
        self.name = name  # config.toml / local.toml
        self.values: dict = {}
        self.broken: list = []  # (line number, key or None, reason)
        self.exists = False


def read_file(path, name: str) -> FileRead:
    """Read a settings file leniently: every readable `key = value`, and each broken line
    with its number. Never through a symlink (exit 5)."""
    r = FileRead(path, name)
    data = read_file_in_home(path)
    if data is None:
        return r
    r.exists = True
    try:
        text = data.decode()
    except UnicodeDecodeError as e:
        r.broken.append((None, None, f"not UTF-8 ({e.reason} at byte {e.start})"))
        return r
    simple = _parse_simple(text)
    if simple is not None:
        r.values = simple
        return r
    import tomllib

    try:
        r.values = _flatten(tomllib.loads(text))
        return r
    except tomllib.TOMLDecodeError:
        pass
    # Not valid TOML as a whole: take it line by line, so one broken line (a newline an
    # older coord let into a value) does not hide the others.
    for no, line in enumerate(text.split("\n"), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        try:
            r.values.update(_flatten(tomllib.loads(s)))
        except tomllib.TOMLDecodeError as e:
            m = _KEY_OF_LINE.match(s)
            r.broken.append((no, m.group(1) if m else None, f"not valid TOML: {e}"))
    return r


class Entry:
    """One setting as `coord config` shows it."""

    def __init__(self, key, setting):
        self.key = key
        self.setting = setting
        self.value = setting.default  # the value in force (the default while invalid)
        self.source = "default"  # config.toml, local.toml, or default
        self.raw = None  # the invalid value as read (shown escaped)
        self.problem = None  # why it is invalid
        self.legacy = False  # a local setting still read from config.toml


class Settings:
    """Both files read leniently: the values in force, what is invalid, and notes."""

    def __init__(self, home_path):
        from pathlib import Path

        self.home_path = Path(home_path)
        self.files = {scope: read_file(self.home_path / name, name) for scope, name in FILES.items()}
        self.entries = {k: Entry(k, s) for k, s in SETTINGS.items()}
        self.unknown: dict = {}  # (file name, key) -> value: kept when the file is rewritten
        self.notes: list[str] = []
        self.misplaced: list[tuple] = []  # (file name, key): a shared setting in local.toml
        shared, local = self.files[SHARED], self.files[LOCAL]
        for f in (shared, local):
            for _no, key, reason in f.broken:
                if key in self.entries:
                    e = self.entries[key]
                    e.raw, e.problem, e.source = f"<line {_no}>", reason, f.name
        for f in (shared, local):
            for key, v in f.values.items():
                s = setting_of(key)
                if s is None:
                    self.unknown[(f.name, key)] = v
                    continue
                self.entries.setdefault(key, Entry(key, s))  # a check.NAME
                if s.scope == SHARED and f is local:
                    self.misplaced.append((f.name, key))
                    self.notes.append(
                        f"{local.path}: {key} is a shared setting and is ignored there "
                        f"(set it with `coord config {key} VALUE`, which writes config.toml)"
                    )
                    continue
                if s.scope == LOCAL and f is shared:
                    if key in local.values or any(b[1] == key for b in local.broken):
                        continue  # local.toml decides
                    self.entries[key].legacy = True
                e = self.entries[key]
                value = _convert(s, v)
                if isinstance(value, Problem):
                    e.raw, e.problem, e.source = shown(v), value.reason, f.name
                else:
                    e.value, e.source, e.raw, e.problem = value, f.name, None, None
                    if e.legacy and value != s.default:
                        self.notes.append(
                            f"{shared.path}: the local setting {key} = {shown(value)} is read from "
                            "config.toml, where an older coord wrote it; the next `coord config` "
                            "write moves it to local.toml"
                        )

    def problems(self) -> list[str]:
        """Each invalid value or unreadable line, as the one-line error a command gives."""
        out = []
        for e in self.entries.values():
            if e.problem is not None:
                path = self.home_path / e.source
                out.append(
                    f"{path}: {e.key} = {e.raw} is invalid ({e.problem}); repair it with "
                    f"`coord config {e.key} VALUE` (default {shown(e.setting.default)})"
                )
        for f in self.files.values():
            for no, key, reason in f.broken:
                if key in self.entries:
                    continue  # reported with its setting above
                where = f"line {no}" if no else "the file"
                out.append(
                    f"{f.path}: {where} is {reason if reason.startswith('not') else 'invalid: ' + reason}; "
                    "`coord config` shows what can be read, and `coord config KEY VALUE` rewrites "
                    "the file without the broken line"
                )
        return out

    def values(self) -> dict:
        return {k: e.value for k, e in self.entries.items()}


def load(home_path) -> tuple[dict, list[str]]:
    """The values in force, strictly: the first invalid value or broken line is exit 2
    (one line naming the file, key, value and repair). Returns (values, notes)."""
    s = Settings(home_path)
    bad = s.problems()
    if bad:
        more = f" (and {len(bad) - 1} more problem(s): `coord config` lists them)" if len(bad) > 1 else ""
        raise UsageError(bad[0] + more)
    return s.values(), s.notes
