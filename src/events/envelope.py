"""The event envelope, its canonical bytes and its content-hash id.

The canonical bytes are the compact JSON object of ts, from, to, type, payload, in that
order (payload keys sorted). They are hashed once, stored, and never re-encoded.
"""

import re
import time
from datetime import UTC

import blake3
import msgspec

from .errors import BadPayload, IntegrityError


class Envelope(msgspec.Struct, frozen=True):
    # Field order is the canonical order of the contract; do not reorder.
    ts: str
    from_: str = msgspec.field(name="from")
    to: str
    type: str
    payload: dict


_encoder = msgspec.json.Encoder(order="deterministic")
_decoder = msgspec.json.Decoder(Envelope)
encode_json = _encoder.encode

# \Z, not $: `$` also matches before a trailing newline.
TS_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z\Z")
TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+\Z")
ID_RE = re.compile(r"^b3:[0-9a-f]{64}\Z")


def canonical(env: Envelope) -> bytes:
    return _encoder.encode(env)


def decode(body: bytes) -> Envelope:
    """Stored bytes -> Envelope (they were checked by the codec when they came in; `verify`
    checks them again with every shape rule, coord.events.codec.decode_body)."""
    try:
        env = _decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as e:
        raise IntegrityError(f"not an event envelope: {e}") from None
    if not TS_RE.match(env.ts.encode()):
        raise IntegrityError(f"bad ts {env.ts!r}")
    if not TYPE_RE.match(env.type):
        raise IntegrityError(f"bad type {env.type!r}")
    return env


def event_id(body: bytes) -> str:
    return "b3:" + blake3.blake3(body).hexdigest()


# --- time ------------------------------------------------------------------------------


def now_us() -> int:
    return time.time_ns() // 1000


# The range of the ts format: 0001-01-01T00:00:00.000000Z .. 9999-12-31T23:59:59.999999Z.
MIN_US = -62_135_596_800_000_000
MAX_US = 253_402_300_799_999_999


def us_to_ts(us: int) -> str:
    """Microseconds since the epoch -> ts. ValueError outside years 0001-9999: a ts that
    breaks the format is never produced."""
    if not MIN_US <= us <= MAX_US:
        raise ValueError(f"time out of range (years 0001-9999): {us} µs since the epoch")
    secs, frac = divmod(us, 1_000_000)
    t = time.gmtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (
        t.tm_year,
        t.tm_mon,
        t.tm_mday,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
        frac,
    )


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm; avoids importing calendar on the per-action path.
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_DAY_US: dict = {}  # 'YYYY-MM-DD' -> µs of its midnight (a board of 10,000 rows has few dates)


def ts_to_us(ts: str) -> int:
    day = _DAY_US.get(ts[0:10])
    if day is None:
        if len(_DAY_US) > 4096:
            _DAY_US.clear()
        day = _DAY_US[ts[0:10]] = _days_from_civil(int(ts[0:4]), int(ts[5:7]), int(ts[8:10])) * 86_400_000_000
    return day + (int(ts[11:13]) * 3600 + int(ts[14:16]) * 60 + int(ts[17:19])) * 1_000_000 + int(ts[20:26])


def parse_time(text: str, now: int | None = None) -> int:
    """A user-given time: RFC 3339 (any precision, Z or offset), a date, or an age like
    '10m', '2h', '3d' meaning that long ago. Returns microseconds since the epoch."""
    from datetime import datetime

    t = text.strip()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)", t)
    if m:
        mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
        try:
            ago = int(float(m.group(1)) * mult * 1_000_000)
        except OverflowError:
            ago = MAX_US - MIN_US + 1
        return _in_range((now if now is not None else now_us()) - ago, text)
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise BadPayload(f"not a time: {text!r} (use RFC 3339, a date, or an age like 10m)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return _in_range((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds, text)


def _in_range(us: int, text: str) -> int:
    if not MIN_US <= us <= MAX_US:
        raise BadPayload(f"time out of range: {text!r} (years 0001-9999)")
    return us
