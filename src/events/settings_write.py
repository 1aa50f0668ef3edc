"""Writing the settings files (`coord config KEY VALUE`, a new home's config.toml): each
value checked, each setting into the file of its scope, local.toml git-ignored and mode
0600, unknown keys kept. Reading them: coord.events.settings (on every command)."""

from .check_settings import PREFIX, required_names
from .errors import UsageError
from .files import check_regular, read_file_in_home, write_file_in_home
from .settings import (
    FILES,
    HEADERS,
    LOCAL,
    SETTINGS,
    SHARED,
    Entry,
    Settings,
    known,
    parse_setting,
    shown,
    toml_value,
)


class SettingsWriter(Settings):
    """Both files, read leniently, to be changed and written back."""

    def set(self, key: str, text: str) -> list[str]:
        """Set one setting (checked) and rewrite the file(s) it concerns: its own file, and
        config.toml when local settings are still there (moved to local.toml). Invalid
        values and broken lines in a rewritten file are dropped (back to their default),
        each with a note. Returns the notes."""
        s = known(key)
        if key.startswith(PREFIX) and key not in SETTINGS and not text.strip():
            return self._remove_check(key)
        value = parse_setting(key, text)
        if key == "required_checks":
            self._need_checks(required_names(value))
            value = ",".join(required_names(value))
        e = self.entries.setdefault(key, Entry(key, s))
        e.value, e.raw, e.problem, e.source = value, None, None, FILES[s.scope]
        shared = self.files[SHARED]
        moving = [k for k in shared.values if k in SETTINGS and SETTINGS[k].scope == LOCAL]
        rewrite = {s.scope} | ({SHARED, LOCAL} if moving else set())
        notes = []
        if LOCAL in rewrite:
            notes += [f"{self.files[LOCAL].path}: dropped {k} (a shared setting)" for _, k in self.misplaced]
        for scope in (SHARED, LOCAL):
            if scope not in rewrite:
                continue
            f = self.files[scope]
            for no, _k, reason in f.broken:
                notes.append(f"{f.path}: dropped {'line ' + str(no) if no else 'its content'} ({reason})")
            for k, en in self.entries.items():
                if en.setting.scope == scope and en.problem is not None and k != key:
                    notes.append(
                        f"{f.path}: {k} = {en.raw} was invalid; reset to {shown(en.setting.default)}"
                    )
                    en.value, en.raw, en.problem = en.setting.default, None, None
            self._write(scope)
        if moving:
            notes.append(f"moved local settings from config.toml to local.toml: {', '.join(moving)}")
        return notes

    def _need_checks(self, names) -> None:
        """Every name in required_checks is a defined check (exit 2 naming the first not)."""
        for n in names:
            e = self.entries.get(PREFIX + n)
            if e is None or e.problem is not None:
                raise UsageError(
                    f"required_checks: no check {n!r} is defined: set it first with "
                    f"`coord config {PREFIX}{n} COMMAND`"
                )

    def _remove_check(self, key: str) -> list[str]:
        """`coord config check.NAME ""`: the check goes (refused while it is required)."""
        name = key[len(PREFIX) :]
        req = self.entries["required_checks"]
        if req.problem is None and name in required_names(req.value):
            raise UsageError(f"{key} is listed in required_checks ({req.value}): remove it there first")
        self.entries.pop(key, None)
        self.unknown.pop((FILES[SHARED], key), None)
        self._write(SHARED)
        return []

    def write_shared(self) -> None:
        """config.toml with every shared setting (a new home's)."""
        self._write(SHARED)

    def _write(self, scope: str) -> None:
        name = FILES[scope]
        lines = [HEADERS[scope]]
        for k, e in self.entries.items():
            s = e.setting
            if s.scope != scope:
                continue
            if scope == LOCAL and e.source == "default" and not e.legacy:
                continue  # local.toml holds only what was set on this machine
            lines.append(f"\n# {s.help} (default {shown(s.default)})\n{k} = {toml_value(e.value)}\n")
        kept = [(k, v) for (fname, k), v in self.unknown.items() if fname == name and _encodable(v)]
        if kept:
            lines.append("\n# not known to this version of coord (kept as they were)\n")
            lines.extend(f"{k} = {toml_value(v)}\n" for k, v in kept)
        if scope == LOCAL:
            ensure_ignored(self.home_path, name)  # before the file exists: never committed
        path = self.home_path / name
        write_file_in_home(path, "".join(lines).encode(), mode=0o600 if scope == LOCAL else None)


def _encodable(v) -> bool:
    if isinstance(v, list):
        return all(_encodable(x) for x in v)
    return isinstance(v, (bool, int, float, str))


def ensure_ignored(home_path, name: str) -> None:
    """A home made by an older coord has a .gitignore without local.toml: add it, so a
    machine's settings are never committed by accident."""
    gi = home_path / ".gitignore"
    if not check_regular(gi):
        return
    text = read_file_in_home(gi).decode(errors="replace")
    if name in text.split():
        return
    sep = "" if not text or text.endswith("\n") else "\n"
    write_file_in_home(gi, (text + sep + name + "\n").encode())
