"""The checks of the settings that name git things (coord.events.settings): the branch
prefix, the remote, the sync branch. None when a value is fine, else what is wrong."""

import re

_REF_BAD = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//|/\.|\.lock(/|$)|^[/.-]|^@$")


def branch_prefix_problem(v: str):
    """A prefix that makes every `<prefix><worker id>` a valid branch name (the rules of
    git check-ref-format), and never an empty one: a bare worker id could be any branch."""
    if not v:
        return "must not be empty (a worker's branch would be its bare id, which any branch may already be)"
    if len(v) > 100:
        return "must be at most 100 characters"
    if v.startswith("refs/"):
        return "must not start with refs/ (branch names are under refs/heads/ already)"
    if _REF_BAD.search(v + "x"):
        return (
            "must make a valid git branch name with the worker id after it: no spaces, control "
            "characters, ~ ^ : ? * [ \\, '..', '//', '@{', and no leading '/', '.' or '-'"
        )
    return None


def remote_name_problem(v: str):
    return None if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", v) else "must be a git remote's name"


def sync_branch_problem(v: str):
    """Empty (sync the checked-out branch), or a branch name git accepts."""
    bad = v and (len(v) > 200 or v.startswith("refs/") or v.endswith(("/", ".")) or _REF_BAD.search(v))
    return "must be empty or a valid git branch name (see branch_prefix's rules)" if bad else None
