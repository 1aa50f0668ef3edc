"""The one codec of an event's audit line, and the one streaming reader of an audit file:
every reader (export and its reconcile, import, init, verify, `replay --from-file`) reads
lines through here and applies the shape rules of coord.events.shapes to each.
"""

import re

import msgspec

from .envelope import Envelope, canonical, event_id
from .errors import IntegrityError
from .shapes import MAX_DEPTH, MAX_LINE, envelope_problem, too_deep

READ_CHUNK = 1 << 20

_ID_MEMBER = re.compile(rb'\{"id":"(b3:[0-9a-f]{64})",')
_CONFLICT_MARKERS = (b"<<<<<<<", b"=======", b">>>>>>>", b"|||||||")
_FIELDS = ("ts", "from", "to", "type", "payload")
_decoder = msgspec.json.Decoder(Envelope)


def decode_body(body: bytes) -> Envelope:
    """Stored or pulled canonical bytes -> Envelope, with every shape rule: IntegrityError
    (exit 5) naming the first one broken. The bytes are not re-encoded into the store:
    re-encoding is only the check that they are coord's canonical form."""
    if too_deep(body, MAX_DEPTH + 1):
        raise IntegrityError(f"payload nested deeper than {MAX_DEPTH} levels")
    try:
        env = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise IntegrityError(f"not an event envelope: {e}") from None
    if canonical(env) != body:
        raise IntegrityError(_why_not_canonical(body))
    why = envelope_problem(env, body)
    if why:
        raise IntegrityError(why)
    return env


def _why_not_canonical(body: bytes) -> str:
    try:
        keys = list(msgspec.json.decode(body))
    except (msgspec.DecodeError, RecursionError):
        keys = None
    if keys is not None and keys != list(_FIELDS):
        return (
            f"envelope fields are {', '.join(keys)}; want exactly ts, from, to, type, payload in that order"
        )
    return (
        "not in canonical form (compact JSON, payload keys sorted, coord's escapes and "
        "number forms): the id is defined over those bytes"
    )


# --- the audit line ----------------------------------------------------------------------------
def audit_line(eid: str, body: bytes) -> bytes:
    """The audit-file line for stored canonical bytes: the id member spliced in front."""
    return b'{"id":"' + eid.encode() + b'",' + body[1:] + b"\n"


def split_line(line: bytes) -> tuple[str, bytes]:
    """The contract's check of one line (with or without its newline): the id member,
    then the hash of the rest. Returns (id, canonical bytes); IntegrityError otherwise."""
    if line.endswith(b"\n"):
        line = line[:-1]
    if not line:
        raise IntegrityError("empty line")
    m = _ID_MEMBER.match(line)
    if not m:
        if line.startswith(_CONFLICT_MARKERS):
            raise IntegrityError("git conflict marker")
        raise IntegrityError("does not start with an id member")
    eid = m.group(1).decode()
    body = b"{" + line[m.end() :]
    if event_id(body) != eid:
        raise IntegrityError("hash does not match the line's bytes")
    return eid, body


def check_line(line: bytes) -> tuple[str, bytes]:
    """split_line plus every shape rule: (id, canonical bytes) of a good line."""
    eid, body = split_line(line)
    decode_body(body)
    return eid, body


class Line(msgspec.Struct):
    """One line of an audit file, checked. `bad` is None for a good line (then id, body
    and env are set), else the reason. `end` is the offset just past the line."""

    lineno: int
    end: int
    id: str = ""
    body: bytes = b""
    env: Envelope | None = None
    bad: str | None = None


def read_lines(f, hasher=None):
    """(lineno, bytes without the newline or None when too long, complete, end offset)
    for each line of a binary file, split on the byte \\n only. Memory stays bounded by
    READ_CHUNK plus one line of at most MAX_LINE bytes: a longer line is skipped, not
    buffered. The last line is incomplete when the file does not end in \\n. Every byte
    read is also fed to `hasher` when given."""
    buf = bytearray()
    lineno = 0
    pos = 0  # offset of buf[0] in the file
    skipping = False  # inside a line longer than MAX_LINE
    while True:
        chunk = f.read(READ_CHUNK)
        if not chunk:
            break
        if hasher is not None:
            hasher.update(chunk)
        start = 0
        while True:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                rest = chunk[start:]
                if skipping:
                    pos += len(rest)
                else:
                    buf += rest
                    if len(buf) > MAX_LINE:
                        pos += len(buf)
                        buf.clear()
                        skipping = True
                break
            lineno += 1
            piece = chunk[start:nl]
            if skipping:
                pos += len(piece) + 1
                skipping = False
                yield lineno, None, True, pos
            else:
                line = bytes(buf + piece) if buf else piece
                buf.clear()
                pos += len(line) + 1
                if len(line) > MAX_LINE:
                    yield lineno, None, True, pos
                else:
                    yield lineno, line, True, pos
            start = nl + 1
    if skipping:
        yield lineno + 1, None, False, pos
    elif buf:
        yield lineno + 1, bytes(buf), False, pos + len(buf)


def read_events(f, hasher=None):
    """Every line of an audit file as a checked Line, in file order (the one reader:
    export and its reconcile, import, init, verify and `replay --from-file` use it). An
    empty line is a bad line, as is an incomplete last line: a file coord writes has
    neither, and every reader applies the same rule."""
    for lineno, data, complete, end in read_lines(f, hasher):
        if data is None:
            yield Line(lineno, end, bad=f"line longer than {MAX_LINE} bytes")
            continue
        if not complete:
            yield Line(lineno, end, bad="partial line (no newline at the end of the file)")
            continue
        try:
            eid, body = split_line(data)
            env = decode_body(body)
        except IntegrityError as e:
            yield Line(lineno, end, bad=e.message)
            continue
        yield Line(lineno, end, eid, body, env)
