"""Skips under CI. With CI=true (set by .ci/run) a skipped test fails the run: a real
component that is missing (PostgreSQL, chromium, tmux, git, the MCP SDK, psycopg...) must
never pass unnoticed. tests/conftest.py applies the rule to every test and every module.

Two kinds of skip stay skips:
- a `slow` test in a run without --runslow;
- a test that does not apply to one of its cases (a SQLite-only setting in a suite run on
  both stores), skipped through not_applicable(reason) or a skip whose reason starts with
  NOT_APPLICABLE. It must be no way around a missing component: name the case, not a tool."""

import os

import pytest

NOT_APPLICABLE = "not applicable: "


def not_applicable(reason: str):
    """Skip this test for this case; CI keeps it a skip."""
    pytest.skip(NOT_APPLICABLE + reason)


def ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def skip_reason(longrepr) -> str:
    """The reason of a skip report: pytest keeps (path, line, 'Skipped: reason')."""
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ")


def ci_fails(reason: str, *, slow_skipped: bool) -> bool:
    """Whether CI turns this skip into a failure."""
    if not ci() or slow_skipped:
        return False
    return not reason.startswith(NOT_APPLICABLE)
