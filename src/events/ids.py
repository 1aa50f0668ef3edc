"""Worker ids, event id prefixes, and the one rule for "an id or a unique prefix of one"
(workers, events and blobs all resolve through `one_of`). The audit line lives in
coord.events.codec."""

import re

from .errors import Ambiguous, UsageError
from .shapes import WORKER_ID_RE

SHOWN = 10  # candidates named in an "ambiguous" error


def check_worker_id(wid: str) -> str:
    if not isinstance(wid, str) or not WORKER_ID_RE.fullmatch(wid):
        raise UsageError(
            f"bad worker id {wid!r}: use 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return wid


def normalize_event_prefix(text: str) -> str:
    """'b3:abc', 'abc' -> 'b3:abc' (lower case)."""
    t = text.strip().lower()
    if not t.startswith("b3:"):
        t = "b3:" + t
    if not re.fullmatch(r"b3:[0-9a-f]{1,64}", t):
        raise UsageError(f"not an event id or prefix: {text!r}")
    return t


def one_of(
    candidates: list[str], text: str, what: str, not_found, exact: str | None = None, shown=str
) -> str:
    """The one id that `text` names among `candidates` (the ids starting with its prefix,
    sorted, at most SHOWN + 1 of them): an exact id (`exact`, default `text`) wins; else
    the only candidate. None is `not_found` (exit 3); several are Ambiguous (exit 2),
    listing them (each through `shown`)."""
    exact = text if exact is None else exact
    if exact in candidates:
        return exact
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise not_found(f"unknown {what} {text!r}")
    more = ", …" if len(candidates) > SHOWN else ""
    listed = ", ".join(shown(c) for c in candidates[:SHOWN])
    raise Ambiguous(f"{what} prefix {text!r} is ambiguous: {listed}{more}", candidates=candidates[:SHOWN])
