"""Envelope, canonical bytes, ids, ts, and the audit-line form (pure; the ts rule of new
events is a store tier test: tests/store/test_store.py)."""

import json

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coord.events.codec import audit_line, check_line
from coord.events.envelope import Envelope, canonical, decode, event_id, ts_to_us, us_to_ts
from coord.events.errors import IntegrityError


def test_canonical_bytes_are_the_five_fields_in_order_compact():
    env = Envelope("2026-01-02T03:04:05.000006Z", "agent-1", "w-1", "worker.done", {"b": 1, "a": "x"})
    body = canonical(env)
    assert body == (
        b'{"ts":"2026-01-02T03:04:05.000006Z","from":"agent-1","to":"w-1",'
        b'"type":"worker.done","payload":{"a":"x","b":1}}'
    )
    assert list(json.loads(body)) == ["ts", "from", "to", "type", "payload"]
    assert event_id(body) == "b3:" + blake3.blake3(body).hexdigest()


def test_ts_roundtrip_and_format():
    for us in (0, 1, 1_700_000_000_123_456, 4_102_444_799_999_999):
        ts = us_to_ts(us)
        assert len(ts) == 27 and ts.endswith("Z") and ts[19] == "."
        assert ts_to_us(ts) == us


def test_audit_line_passes_the_contract_check_and_tampering_fails():
    env = Envelope("2026-01-02T03:04:05.000006Z", "a", "w", "msg.note", {"text": "line\u2028sep é \n"})
    body = canonical(env)
    eid = event_id(body)
    line = audit_line(eid, body)
    assert line.endswith(b"\n") and line.count(b"\n") == 1  # the \n inside is escaped
    # The contract's check, done by hand: drop \n, remove the id member, keep "{", hash.
    raw = line[:-1]
    prefix = b'{"id":"' + eid.encode() + b'",'
    assert raw.startswith(prefix)
    assert "b3:" + blake3.blake3(b"{" + raw[len(prefix) :]).hexdigest() == eid
    assert check_line(line) == (eid, body)
    json.loads(line)  # parses as JSON (jq-able)
    tampered = line.replace(b"sep", b"seP")
    with pytest.raises(IntegrityError, match="hash"):
        check_line(tampered)
    with pytest.raises(IntegrityError, match="conflict marker"):
        check_line(b"<<<<<<< HEAD\n")


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.text(max_size=8).filter(lambda k: not k.startswith("$")),
        st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans(), st.none()),
        max_size=5,
    )
)
def test_any_payload_roundtrips_through_the_audit_line(payload):
    env = Envelope("2026-01-02T03:04:05.000006Z", "a", "w", "msg.x", payload)
    body = canonical(env)
    eid, got = check_line(audit_line(event_id(body), body))
    assert got == body and decode(got) == decode(body)
