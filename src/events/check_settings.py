"""The settings that name checks: `check.NAME` (a command the check runs, split like a
shell would split it, run without a shell) and `required_checks` (the names that must
pass before a merge). Both are shared: they travel through git, so they are input, and
they name commands that run only when someone runs `coord check` or `coord queue`
(docs/reliability.md)."""

import re

CHECK_NAME_RE = re.compile(r"[a-z0-9_-]{1,64}")
PREFIX = "check."


def check_name_problem(name: str) -> str | None:
    if not CHECK_NAME_RE.fullmatch(name):
        return f"bad check name {name!r} (want [a-z0-9_-], 1 to 64 characters)"
    return None


def split_command(text: str) -> list[str]:
    """A check.NAME value as argv (shell words, no shell): ValueError saying why not."""
    import shlex

    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise ValueError(f"is not a command line ({e})") from None
    if not argv:
        raise ValueError("is empty")
    return argv


def command_problem(v: str) -> str | None:
    """A check's command: non-empty shell words (an empty value removes the check)."""
    try:
        split_command(v)
    except ValueError as e:
        return f"must be a command line; it {e}"
    return None


def required_names(v: str) -> list[str]:
    return [n.strip() for n in v.split(",") if n.strip()]


def required_problem(v: str) -> str | None:
    """`required_checks`: comma-separated check names, each once (may be empty)."""
    names = required_names(v)
    for n in names:
        why = check_name_problem(n)
        if why:
            return f"must be comma-separated check names: {why}"
    if len(set(names)) != len(names):
        return "must name each check once"
    return None
