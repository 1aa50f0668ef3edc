"""Worker ids and id prefixes. (The audit line lives in coord.events.codec.)"""

import re

from .envelope import ID_RE
from .errors import UsageError
from .shapes import WORKER_ID_RE


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


def is_full_event_id(text: str) -> bool:
    return bool(ID_RE.match(text))
