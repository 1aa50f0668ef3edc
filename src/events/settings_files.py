"""The settings files as text: TOML values written the way coord writes them, and read
back leniently (every readable `key = value`, each broken line with its number), without
importing tomllib for the flat form coord writes (start-up matters on the per-action path).
"""

import math
import re

from .files import read_file_in_home


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    # A TOML basic string: every control character escaped, so the file stays valid.
    out = []
    for ch in str(v):
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


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
