"""Event type filters (`--type T`, repeatable): exact names or globs (`*`, `?`, `[...]`,
`[^...]`, case-sensitive, as SQLite's GLOB reads them). One filter type for `log`, `poll`,
`search` and `replay`: a store turns it into its own query, and `matches` applies the same
rule in Python (replay of an audit file, where there is no database)."""

import re

import msgspec

GLOB_CHARS = frozenset("*?[")


def is_glob(pattern: str) -> bool:
    return any(ch in GLOB_CHARS for ch in pattern)


class TypeFilter(msgspec.Struct, frozen=True):
    """Event types matching any of `patterns` (an empty tuple matches nothing)."""

    patterns: tuple[str, ...]

    def matches(self, etype: str) -> bool:
        return any(_regex(p).fullmatch(etype) is not None for p in self.patterns)


def type_filter(types, prefix: str | None = None) -> TypeFilter | None:
    """The filter for `--type` values (None when none were given). With `prefix` (poll's
    'msg.'), a value without it gets it: `review` and `msg.review` are the same type."""
    if not types:
        return None
    if prefix:
        types = [t if t.startswith(prefix) else prefix + t for t in types]
    return TypeFilter(tuple(dict.fromkeys(types)))


_cache: dict = {}


def _regex(pattern: str):
    """A glob as SQLite's GLOB reads it: `*` any run, `?` one character, `[abc]`, `[a-z]`
    and `[^abc]` one character of (or not of) a set; everything else literal."""
    rx = _cache.get(pattern)
    if rx is not None:
        return rx
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[":
            j = i + 1
            if j < n and pattern[j] == "^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: SQLite matches nothing for it
                out.append("(?!)")
                break
            body = pattern[i + 1 : j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            out.append(re.escape(ch))
        i += 1
    rx = re.compile("".join(out), re.S)
    if len(_cache) < 256:
        _cache[pattern] = rx
    return rx
