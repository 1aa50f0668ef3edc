"""Worker ids, audit-file lines, and id prefixes."""

import re

from .envelope import ID_RE, event_id
from .errors import IntegrityError, UsageError

WORKER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_ID_MEMBER = re.compile(rb'^\{"id":"(b3:[0-9a-f]{64})",')


def check_worker_id(wid: str) -> str:
    if not WORKER_ID_RE.match(wid or ""):
        raise UsageError(
            f"bad worker id {wid!r}: use 1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    return wid


def audit_line(eid: str, body: bytes) -> bytes:
    """The audit-file line for stored canonical bytes: the id member spliced in front."""
    return b'{"id":"' + eid.encode() + b'",' + body[1:] + b"\n"


def check_line(line: bytes) -> tuple[str, bytes]:
    """Check one audit line (with or without its trailing newline) the contract's way.
    Returns (id, canonical bytes); raises IntegrityError saying why it is not valid."""
    if line.endswith(b"\n"):
        line = line[:-1]
    m = _ID_MEMBER.match(line)
    if not m:
        if line.startswith((b"<<<<<<<", b"=======", b">>>>>>>", b"|||||||")):
            raise IntegrityError("git conflict marker")
        raise IntegrityError("does not start with an id member")
    eid = m.group(1).decode()
    body = b"{" + line[m.end() :]
    if event_id(body) != eid:
        raise IntegrityError("hash does not match the line's bytes")
    return eid, body


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
