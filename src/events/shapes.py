"""The shape rules of an event, whether it was typed here or pulled from another clone
(contract: "What an import checks"), checked once, here: a real ts, names and ids matching
their patterns, no control characters where names are, nesting depth, and the payload
schema of the type (the types of the fields coord knows; unknown extra fields are
accepted, since shapes evolve by adding optional fields). Problems are returned as
one-line reasons: a pulled line that breaks a rule is a bad line (exit 5), a local event
that would break one is a usage error (exit 2); callers decide which. The audit line and
its reader are coord.events.codec.
"""

import re

import msgspec

from .envelope import ID_RE, Envelope

# --- limits ------------------------------------------------------------------------------
MAX_DEPTH = 100  # JSON nesting inside a payload (the payload object itself is level 1)
MAX_LINE = 64 << 20  # bytes in one audit line; a longer line is bad and never buffered whole
MAX_NAME = 128  # characters in an actor name, a recipient, a type

# --- patterns (always fullmatch: `$` would let a trailing newline through) -----------------
WORKER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# An agent name or worker id as an address: the worker-id charset plus ':' and '@', so that
# 'human:alice' and 'agent@host' are addressable. No spaces, slashes or control characters.
RECIPIENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
TYPE_RE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")
TS_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
HEX64_RE = re.compile(r"[0-9a-f]{64}")
# Control characters (C0, DEL, C1) and the Unicode line/paragraph separators: never in a
# name, since names are printed on one line and used as addresses.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
BROADCAST = "*"


# --- values --------------------------------------------------------------------------------
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def ts_problem(ts: str) -> str | None:
    """A real UTC time in the contract's form: six fractional digits and Z, a date that
    exists (no Feb 30), hours 0-23, no second 60, years 0001-9999."""
    if not TS_RE.fullmatch(ts):
        return f"bad ts {ts!r} (want YYYY-MM-DDTHH:MM:SS.ffffffZ)"
    y, mo, d = int(ts[0:4]), int(ts[5:7]), int(ts[8:10])
    if y == 0:
        return f"bad ts {ts!r}: year 0000 does not exist"
    days = _MONTH_DAYS[mo] if 1 <= mo <= 12 else 0
    if mo == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        days = 29
    if not (1 <= d <= days and int(ts[11:13]) < 24 and int(ts[14:16]) < 60 and int(ts[17:19]) < 60):
        return f"bad ts {ts!r}: not a real date and time"
    return None


def name_problem(name, what: str = "actor name") -> str | None:
    """An actor name (`from`): non-empty, at most 128 characters, no control characters."""
    if not isinstance(name, str) or not name.strip():
        return f"bad {what} {name!r}: empty"
    if len(name) > MAX_NAME:
        return f"bad {what} {name[:20]!r}…: longer than {MAX_NAME} characters"
    if _CONTROL.search(name):
        return f"bad {what} {name!r}: control characters"
    return None


def worker_id_ok(wid) -> bool:
    return isinstance(wid, str) and WORKER_ID_RE.fullmatch(wid) is not None


def recipient_ok(to) -> bool:
    return isinstance(to, str) and (to == BROADCAST or RECIPIENT_RE.fullmatch(to) is not None)


def type_problem(etype: str) -> str | None:
    if len(etype) > MAX_NAME or not TYPE_RE.fullmatch(etype):
        return f"bad type {etype[:60]!r} (lower-case dotted words, at most {MAX_NAME} characters)"
    return None


def to_problem(etype: str, to: str) -> str | None:
    """`to` by type: a worker id for worker.*, an address or '*' for msg.*, and for any
    other type a name (as `from`) or '*'."""
    if etype.startswith("worker."):
        return None if worker_id_ok(to) else f"bad worker id {to!r} in `to` of {etype}"
    if etype.startswith("msg."):
        return None if recipient_ok(to) else f"bad recipient {to!r}"
    if to == BROADCAST:
        return None
    return name_problem(to, "recipient")


# --- nesting -------------------------------------------------------------------------------
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"{}[]")
_INNERMOST = re.compile(rb"\{\}|\[\]")


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON text nests objects/arrays more than `limit` levels, found without
    recursion (a decoder recursing 1,000 levels raises RecursionError). Cheap when the
    text holds at most `limit` brackets; else each pass removes the innermost pairs, so
    at most limit + 1 passes over the brackets alone."""
    if data.count(b"{") + data.count(b"[") <= limit:
        return False
    s = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    for _ in range(limit):
        if not s:
            return False
        t = _INNERMOST.sub(b"", s)
        if len(t) == len(s):
            return False  # unbalanced: not JSON, the decoder says why
        s = t
    return bool(s)


def loads_object(data: bytes) -> dict:
    """JSON text that must be an object (a payload typed by a user): ValueError saying why
    not. Depth is checked before decoding, so no input can exhaust the stack."""
    if too_deep(data):
        raise ValueError(f"is nested deeper than {MAX_DEPTH} levels")
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError) as e:
        raise ValueError(f"is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"must be a JSON object, not {type(obj).__name__}")
    return obj


# --- payload schemas -------------------------------------------------------------------------
def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _ref_problem(v) -> str | None:
    """A blob reference: {"$blob": "b3:<64 hex>", "size": N, ...}."""
    if not isinstance(v, dict):
        return "must be a blob reference object"
    ref = v.get("$blob")
    if not (isinstance(ref, str) and ref.startswith("b3:") and HEX64_RE.fullmatch(ref[3:])):
        return f"bad blob reference {str(ref)[:80]!r} (want b3:<64 hex>)"
    if "size" in v and not (_is_int(v["size"]) and v["size"] >= 0):
        return "blob size must be a non-negative integer"
    return None


# checker: (test, description)
STR = (lambda v: isinstance(v, str), "a string")
OPT_STR = (lambda v: v is None or isinstance(v, str), "a string or null")
BOOL = (lambda v: isinstance(v, bool), "true or false")
INT = (_is_int, "an integer")
OPT_INT = (lambda v: v is None or _is_int(v), "an integer or null")
OPT_NUM = (lambda v: v is None or _is_num(v), "a number or null")
STRS = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings")
OPT_NAME = (lambda v: v is None or name_problem(v) is None, "a name (no control characters) or null")
EVENT_ID = (lambda v: isinstance(v, str) and ID_RE.match(v) is not None and len(v) == 67, "an event id")
EVENT_IDS = (
    lambda v: isinstance(v, list) and all(EVENT_ID[0](x) for x in v),
    "a list of event ids",
)
WORKER_IDS = (lambda v: isinstance(v, list) and all(worker_id_ok(x) for x in v), "a list of worker ids")
REF = (lambda v: _ref_problem(v) is None, "a blob reference")
WORKER_ID = (worker_id_ok, "a worker id")
PRIORITY = (lambda v: _is_int(v) and 0 <= v <= 4, "an integer from 0 to 4")

_RUN_FACTS = {
    "exit": OPT_INT,
    "duration_s": OPT_NUM,
    "signal": OPT_STR,
    "ended_by": OPT_STR,
    "signals": STRS,
}
# check.passed / check.failed (coord check, coord queue)
_CHECK = {
    "name": STR,
    "command": STRS,
    "commit": OPT_STR,
    "head": OPT_STR,
    "exit": OPT_INT,
    "duration_s": OPT_NUM,
    "timed_out": BOOL,
    "dirty": BOOL,
    "queue": BOOL,
    "tail": STR,
    "output_bytes": INT,
    "output": REF,
}
# Fields every lifecycle event may carry (the contract's attempts stamp it on actions).
_LIFECYCLE_COMMON = {"force": BOOL, "reap": BOOL, "attempt": INT, "attempt_of": EVENT_ID}
SCHEMAS = {
    "worker.spawned": {
        "task": STR,
        "assignee": OPT_NAME,
        "branch": OPT_STR,
        "base": OPT_STR,
        "worktree": OPT_STR,
        "prefix": STR,
        "after": WORKER_IDS,
        "priority": PRIORITY,
    },
    "worker.started": {"clone": OPT_STR, "worktree": OPT_STR},
    "worker.heartbeat": {"interval": OPT_NUM, "note": OPT_STR, "idle_s": OPT_NUM},
    "worker.done": {"summary": OPT_STR, "head": OPT_STR, "rebased": BOOL, **_RUN_FACTS},
    "worker.conflicted": {"files": STRS, "stage": OPT_STR, "onto": OPT_STR},
    "worker.approved": {"note": OPT_STR},
    "worker.changes_requested": {"reason": OPT_STR},
    "worker.merged": {"commit": OPT_STR, "into": OPT_STR, "worktree_removed": BOOL},
    "worker.released": {"reason": OPT_STR, "holder": OPT_NAME, "silent_s": OPT_NUM},
    "worker.canceled": {"reason": OPT_STR, "worktree_removed": BOOL, "branch_deleted": BOOL},
    "worker.failed": {
        "reason": OPT_STR,
        "holder": OPT_NAME,
        "silent_s": OPT_NUM,
        "tail": STR,
        "output_bytes": INT,
        "tail_truncated": INT,
        "output": REF,
        **_RUN_FACTS,
    },
    "worker.retried": {"reason": OPT_STR},
    "worker.dep_added": {"after": WORKER_ID},
    "worker.dep_removed": {"after": WORKER_ID},
    "worker.prioritized": {"priority": PRIORITY},
    "worker.check_failed": {"check": STR, "commit": OPT_STR, "reason": OPT_STR},
    "inbox.acked": {"ids": EVENT_IDS},
    "check.passed": _CHECK,
    "check.failed": _CHECK,
}
for _t in list(SCHEMAS):
    if _t.startswith("worker."):
        SCHEMAS[_t] = {**_LIFECYCLE_COMMON, **SCHEMAS[_t]}
# Fields a type cannot do without (its event means nothing without them).
REQUIRED = {
    "worker.dep_added": ("after",),
    "worker.dep_removed": ("after",),
    "worker.prioritized": ("priority",),
}


def payload_problem(etype: str, payload) -> str | None:
    """The payload rules of the type: an object; top-level `$` keys reserved (only the
    claim-check form {"$blob", "size"}); every blob reference inside well formed; the
    known fields of the type of the right JSON type. A claim-checked payload is checked as
    a reference here; the payload it stands for is checked when it is resolved."""
    if not isinstance(payload, dict):
        return "payload is not a JSON object"
    if "$blob" in payload:
        why = _ref_problem(payload)
        if why is None and "size" not in payload:
            why = "a claim-check reference needs a size"
        if why is not None:
            return f"payload: {why}"
        bad = [k for k in payload if k.startswith("$") and k != "$blob"]
        return f"payload key {bad[0]!r} is reserved" if bad else None
    for k in payload:
        if k.startswith("$"):
            return f"payload key {k!r} is reserved (keys starting with $)"
    schema = SCHEMAS.get(etype)  # a message's payload is its sender's: no schema
    for k in REQUIRED.get(etype, ()):
        if k not in payload:
            return f"payload of {etype} needs the field {k!r}"
    if schema:
        for k, v in payload.items():
            rule = schema.get(k)
            if rule is not None and not rule[0](v):
                return f"payload field {k!r} of {etype} must be {rule[1]}, not {_json_type(v)}"
    return None


def nested_refs_problem(payload) -> str | None:
    """Blob references below the top level (attachments): well formed where they claim
    to be one (a `$blob` string starting with b3:). Walked without recursion."""
    stack = [payload]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            ref = v.get("$blob")
            if isinstance(ref, str) and ref.startswith("b3:"):
                why = _ref_problem(v)
                if why:
                    return f"payload: {why}"
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _json_type(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


# --- the envelope ----------------------------------------------------------------------------
def envelope_problem(env: Envelope, body: bytes | None = None, check_ts: bool = True) -> str | None:
    """Every field rule of an envelope (the ts, the names, the type, the payload)."""
    if check_ts:
        why = ts_problem(env.ts)
        if why:
            return why
    why = type_problem(env.type) or name_problem(env.from_) or to_problem(env.type, env.to)
    if why:
        return why
    why = payload_problem(env.type, env.payload)
    if why:
        return why
    if body is None or b'"$blob"' in body:
        return nested_refs_problem(env.payload)
    return None


_SEEN_OK: set = set()  # (type, from, to) triples already found good in this process


def local_problem(env: Envelope, body: bytes) -> str | None:
    """The shape rules a locally built event can break (its ts and encoding are coord's
    own): names, type, payload schema, nesting, size. Cheap on the per-action path: the
    names of a (type, from, to) seen good before are not matched again."""
    if len(body) > MAX_LINE - 80:
        return f"event of {len(body)} bytes is too large for one audit line"
    if too_deep(body, MAX_DEPTH + 1):
        return f"payload nested deeper than {MAX_DEPTH} levels"
    key = (env.type, env.from_, env.to)
    if key not in _SEEN_OK:
        why = type_problem(env.type) or name_problem(env.from_) or to_problem(env.type, env.to)
        if why:
            return why
        if len(_SEEN_OK) < 4096:
            _SEEN_OK.add(key)
    why = payload_problem(env.type, env.payload)
    if why is None and b'"$blob"' in body:
        why = nested_refs_problem(env.payload)
    return why
