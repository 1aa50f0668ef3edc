"""The trust boundary of the pulled file (issue 11): what arrives in another clone's
events.jsonl (through `coord import`, or appended by a git pull and taken in by the next
command) is input like any other. Organised by case; each asserts the exit code, the
one-line error and that nothing else in the store changed.

Hostile lines are built here by hand (raw bytes, hashed the contract's way), never with
coord's codec, so the rules are checked against the contract and not against themselves.
"""

import json
import os
import sqlite3
import time

import blake3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.app import lifecycle, messages
from coord.app.context import Coord

# --- building lines the contract's way -----------------------------------------------------


def now_ts(offset_s: float = 0.0) -> str:
    us = time.time_ns() // 1000 + int(offset_s * 1e6)
    secs, frac = divmod(us, 1_000_000)
    t = time.gmtime(secs)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (*t[:6], frac)


def body(ts, frm, to, typ, payload) -> bytes:
    """Canonical bytes by hand: compact JSON, fields in order, payload keys sorted, raw
    UTF-8 (json.dumps with ensure_ascii=False escapes what msgspec escapes for these)."""
    return json.dumps(
        {"ts": ts, "from": frm, "to": to, "type": typ, "payload": payload},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=False,
    ).encode()


def sorted_payload(p):
    return {k: p[k] for k in sorted(p)} if isinstance(p, dict) else p


def line_of(b: bytes) -> bytes:
    """The audit line for any bytes: `{"id":"b3:<hex>",` + bytes without their `{` + \\n."""
    return b'{"id":"b3:' + blake3.blake3(b).hexdigest().encode() + b'",' + b[1:] + b"\n"


def good(ts=None, frm="lead", to="w-x", typ="msg.note", payload=None) -> bytes:
    return line_of(body(ts or now_ts(-60), frm, to, typ, sorted_payload(payload or {})))


def eid_of(line: bytes) -> str:
    return json.loads(line)["id"]


def deep(n: int) -> str:
    return '{"a":' * n + "1" + "}" * n


# --- observing the store ---------------------------------------------------------------------


def snapshot(home):
    """Everything an import could change: the events (every column), the views, the file."""
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        events = con.execute("SELECT * FROM events ORDER BY seq").fetchall()
        views = con.execute("SELECT worker, view FROM workers ORDER BY worker").fetchall()
    finally:
        con.close()
    return events, views, (home / "events.jsonl").read_bytes()


def ids_in_store(home) -> set:
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        return {r[0] for r in con.execute("SELECT id FROM events")}
    finally:
        con.close()


def one_line_error(r, *fragments):
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]


def ts_of(home, where="1") -> list:
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        return [r[0] for r in con.execute(f"SELECT ts FROM events WHERE {where} ORDER BY seq")]
    finally:
        con.close()


# --- 1. shape rules: a bad line refuses the batch ----------------------------------------------

T = "2026-03-01T10:00:00.000000Z"
BAD = {
    # names and ids
    "worker id ../../etc": (body(T, "lead", "../../etc", "worker.spawned", {}), "bad worker id"),
    "worker id --upload-pack=x": (body(T, "lead", "--upload-pack=x", "worker.spawned", {}), "bad worker id"),
    "worker id with newline": (body(T, "lead", "w-1\n", "worker.started", {}), "bad worker id"),
    "worker id too long": (body(T, "lead", "w" * 65, "worker.spawned", {}), "bad worker id"),
    "NUL in from": (body(T, "a\x00b", "w-1", "msg.note", {}), "control characters"),
    "escape sequence in from": (body(T, "a\x1b[31mred", "w-1", "msg.note", {}), "control characters"),
    "C1 control in from": (body(T, "a\x85b", "w-1", "msg.note", {}), "control characters"),
    "line separator in from": (body(T, "a\u2028b", "w-1", "msg.note", {}), "control characters"),
    "empty from": (body(T, "", "w-1", "msg.note", {}), "empty"),
    "blank from": (body(T, "  ", "w-1", "msg.note", {}), "empty"),
    "from longer than 128": (body(T, "a" * 129, "w-1", "msg.note", {}), "longer than 128"),
    "recipient with a space": (body(T, "lead", "bob smith", "msg.note", {}), "bad recipient"),
    "recipient with a newline": (body(T, "lead", "bob\n", "msg.note", {}), "bad recipient"),
    "recipient path": (body(T, "lead", "../bob", "msg.note", {}), "bad recipient"),
    "control char in to of another type": (body(T, "lead", "x\x07", "inbox.acked", {}), "control characters"),
    # the envelope
    "extra field": (
        b'{"ts":"' + T.encode() + b'","from":"a","to":"b","type":"msg.x","payload":{},"extra":1}',
        "want exactly ts, from, to, type, payload",
    ),
    "reordered fields": (
        b'{"from":"a","ts":"' + T.encode() + b'","to":"b","type":"msg.x","payload":{}}',
        "envelope fields are from, ts",
    ),
    "missing payload": (b'{"ts":"' + T.encode() + b'","from":"a","to":"b","type":"msg.x"}', "not an event"),
    "spacing": (
        b'{"ts": "' + T.encode() + b'", "from": "a", "to": "b", "type": "msg.x", "payload": {}}',
        "canonical",
    ),
    "unsorted payload keys": (
        b'{"ts":"' + T.encode() + b'","from":"a","to":"b","type":"msg.x","payload":{"b":1,"a":2}}',
        "canonical",
    ),
    "needless escape": (
        b'{"ts":"' + T.encode() + b'","from":"\\u0061","to":"b","type":"msg.x","payload":{}}',
        "canonical",
    ),
    "number in another form": (
        b'{"ts":"' + T.encode() + b'","from":"a","to":"b","type":"msg.x","payload":{"n":1e2}}',
        "canonical",
    ),
    "payload not an object": (body(T, "a", "b", "msg.x", [1]), "not an event envelope"),
    "not UTF-8": (
        b'{"ts":"' + T.encode() + b'","from":"a\xff","to":"b","type":"msg.x","payload":{}}',
        "not an event",
    ),
    "duplicate key": (
        b'{"ts":"' + T.encode() + b'","from":"a","from":"a","to":"b","type":"msg.x","payload":{}}',
        "canonical",
    ),
    # the ts
    "Feb 30": (body("2026-02-30T10:00:00.000000Z", "a", "b", "msg.x", {}), "not a real date"),
    "Feb 29 of a common year": (
        body("2023-02-29T10:00:00.000000Z", "a", "b", "msg.x", {}),
        "not a real date",
    ),
    "year 0000": (body("0000-01-01T00:00:00.000000Z", "a", "b", "msg.x", {}), "year 0000"),
    "second 60": (body("2026-06-30T23:59:60.000000Z", "a", "b", "msg.x", {}), "not a real date"),
    "hour 24": (body("2026-06-30T24:00:00.000000Z", "a", "b", "msg.x", {}), "not a real date"),
    "month 13": (body("2026-13-01T00:00:00.000000Z", "a", "b", "msg.x", {}), "not a real date"),
    "year 10000": (body("10000-01-01T00:00:00.000000Z", "a", "b", "msg.x", {}), "bad ts"),
    "five fractional digits": (body("2026-01-01T00:00:00.00000Z", "a", "b", "msg.x", {}), "bad ts"),
    "offset instead of Z": (body("2026-01-01T00:00:00.000000+00:00", "a", "b", "msg.x", {}), "bad ts"),
    "non-ASCII digits": (body("２０２６-01-01T00:00:00.000000Z", "a", "b", "msg.x", {}), "bad ts"),
    # the type
    "upper-case type": (body(T, "a", "w-1", "Worker.spawned", {}), "bad type"),
    "undotted type": (body(T, "a", "b", "msg", {}), "bad type"),
    "type longer than 128": (body(T, "a", "b", "msg." + "x" * 130, {}), "bad type"),
    # payload schemas
    "spawn task not a string": (body(T, "lead", "w-1", "worker.spawned", {"task": 5}), "'task'"),
    "spawn assignee with control chars": (
        body(T, "lead", "w-1", "worker.spawned", {"assignee": "a\x00"}),
        "'assignee'",
    ),
    "spawn prefix not a string": (body(T, "lead", "w-1", "worker.spawned", {"prefix": 1}), "'prefix'"),
    "start clone not a string": (body(T, "a1", "w-1", "worker.started", {"clone": ["x"]}), "'clone'"),
    "heartbeat interval a string": (
        body(T, "a1", "w-1", "worker.heartbeat", {"interval": "10"}),
        "'interval'",
    ),
    "heartbeat interval a boolean": (
        body(T, "a1", "w-1", "worker.heartbeat", {"interval": True}),
        "'interval'",
    ),
    "done summary an object": (body(T, "a1", "w-1", "worker.done", {"summary": {}}), "'summary'"),
    "force not a boolean": (body(T, "a1", "w-1", "worker.failed", {"force": "yes"}), "'force'"),
    "conflicted files not strings": (body(T, "a1", "w-1", "worker.conflicted", {"files": [1]}), "'files'"),
    "acked ids not ids": (body(T, "a1", "a1", "inbox.acked", {"ids": ["nope"]}), "'ids'"),
    "reserved payload key": (body(T, "a", "b", "msg.x", {"$x": 1}), "reserved"),
    "bad claim-check reference": (
        body(T, "a", "b", "msg.x", {"$blob": "b3:zz", "size": 1}),
        "blob reference",
    ),
    "claim-check without size": (body(T, "a", "b", "msg.x", {"$blob": "b3:" + "0" * 64}), "size"),
    "bad attachment reference": (
        body(T, "a", "b", "msg.x", {"file": {"$blob": "b3:../../x", "size": 1}}),
        "blob reference",
    ),
    "payload nested 1,000 levels": (
        b'{"ts":"'
        + T.encode()
        + b'","from":"a","to":"b","type":"msg.x","payload":'
        + deep(1000).encode()
        + b"}",
        "nested deeper than",
    ),
    "array nested 5,000 levels": (
        b'{"ts":"'
        + T.encode()
        + b'","from":"a","to":"b","type":"msg.x","payload":{"a":'
        + b"[" * 5000
        + b"]" * 5000
        + b"}}",
        "nested deeper than",
    ),
}
# Lines that are bad before any body can be read.
BAD_LINES = {
    "empty line": (b"\n", "empty line"),
    "upper-case id": (
        b'{"id":"b3:' + b"A" * 64 + b'",' + body(T, "a", "b", "msg.x", {})[1:] + b"\n",
        "does not start with an id member",
    ),
    "hash mismatch": (line_of(body(T, "a", "b", "msg.x", {})).replace(b'"a"', b'"z"'), "hash does not match"),
    "id member with spacing": (
        line_of(body(T, "a", "b", "msg.x", {})).replace(b'"id":"', b'"id": "'),
        "does not start with an id member",
    ),
    "conflict marker": (b"<<<<<<< HEAD\n", "git conflict marker"),
}
ALL_BAD = {**{k: (line_of(b), why) for k, (b, why) in BAD.items()}, **BAD_LINES}


@pytest.mark.parametrize("case", sorted(ALL_BAD))
def test_a_bad_line_refuses_the_whole_import(home, cli, tmp_path, case):
    bad_line, why = ALL_BAD[case]
    assert cli("spawn", "w-0").exit_code == 0
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(to="w-1") + bad_line + good(to="w-2", payload={"n": 2}))
    before = snapshot(home)
    r = cli("import", str(f))
    assert r.exit_code == 5
    one_line_error(r, "line 2", why, "nothing imported")
    assert snapshot(home) == before  # the good lines around it are not imported either
    # `replay --from-file` reads with the same reader and the same rules: it agrees.
    r = cli("replay", "--from-file", str(f))
    assert r.exit_code == 5
    one_line_error(r, ":2:", why)


def test_a_partial_last_line_is_refused_by_import_and_replay_alike(home, cli, tmp_path):
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good() + good(to="w-2")[:-1])
    before = snapshot(home)
    r = cli("import", str(f))
    assert r.exit_code == 5
    one_line_error(r, "line 2", "partial line")
    assert snapshot(home) == before
    r = cli("replay", "--from-file", str(f))
    assert r.exit_code == 5
    one_line_error(r, ":2:", "partial line")


def test_an_overlong_line_is_bad_and_never_buffered_whole(home, cli, tmp_path, monkeypatch):
    from coord.events import codec

    monkeypatch.setattr(codec, "MAX_LINE", 4096)
    monkeypatch.setattr(codec, "READ_CHUNK", 1024)
    f = tmp_path / "theirs.jsonl"
    big = good(payload={"text": "x" * 10_000})
    f.write_bytes(good() + big + good(to="w-3"))
    before = snapshot(home)
    r = cli("import", str(f))
    assert r.exit_code == 5
    one_line_error(r, "line 2", "longer than 4096 bytes")
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "case",
    [
        "year 9999",
        "year 0001",
        "Feb 29 of a leap year",
        "unicode names",
        "unknown payload fields",
        "spawn with a prefix",
        "an unknown event type",
        "a start for a worker never spawned",
        "a reference to a blob not here yet",
        "a name of 128 characters",
    ],
)
def test_unusual_but_valid_lines_are_imported(home, cli, tmp_path, case):
    line = {
        "year 9999": good(ts="9999-12-31T23:59:59.999999Z"),
        "year 0001": good(ts="0001-01-01T00:00:00.000000Z"),
        "Feb 29 of a leap year": good(ts="2024-02-29T12:00:00.000000Z"),
        "unicode names": good(frm="human:José Müller", to="agent-u", payload={"t": "é \u2028"}),
        "unknown payload fields": good(
            to="w-9", typ="worker.spawned", payload={"task": "t", "later": [1, {"x": None}]}
        ),
        "spawn with a prefix": good(to="w-9", typ="worker.spawned", payload={"task": "t", "prefix": "team/"}),
        "an unknown event type": good(to="w-9", typ="check.passed", payload={"name": "tests"}),
        "a start for a worker never spawned": good(frm="a1", to="ghost", typ="worker.started"),
        "a reference to a blob not here yet": good(payload={"$blob": "b3:" + "ab" * 32, "size": 3}),
        "a name of 128 characters": good(frm="a" * 128),
    }[case]
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(line)
    r = cli("import", str(f))
    assert r.exit_code == 0, r.stderr
    assert eid_of(line) in ids_in_store(home)
    assert cli("status", "--all").exit_code == 0


def test_order_rules_never_refuse_an_import(home, cli, tmp_path):
    """An event illegal at its place is kept as a conflict; a misplaced heartbeat skipped."""
    assert cli("spawn", "w-1").exit_code == 0
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(
        good(frm="rev", to="w-1", typ="worker.approved", ts=now_ts(1))  # w-1 is ASSIGNED: illegal
        + good(frm="a9", to="w-1", typ="worker.heartbeat", ts=now_ts(2))
    )
    r = cli("import", str(f))
    assert r.exit_code == 0, r.stderr
    d = cli("status", "w-1", "--json").json()[0]
    assert d["state"] == "ASSIGNED" and [c["type"] for c in d["conflicts"]] == ["worker.approved"]
    assert d["heartbeat"]["count"] == 0
    assert cli("verify").exit_code == 0


def test_a_blob_not_here_yet_is_reported_until_it_arrives(home, cli, tmp_path):
    data = b'{"text":"the big payload"}'
    ref = "b3:" + blake3.blake3(data).hexdigest()
    line = good(to="bob", payload={"$blob": ref, "size": len(data)})
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(line)
    assert cli("import", str(f)).exit_code == 0
    r = cli("verify")
    assert r.exit_code == 5 and "missing blob" in r.stdout
    r = cli("--as", "bob", "poll", "--peek", "--json")
    assert r.exit_code != 1 and "unexpected" not in r.stderr
    (home / "blobs" / ref[3:]).write_bytes(data)
    assert cli("verify").exit_code == 0, cli("verify").stdout
    r = cli("--as", "bob", "poll", "--peek", "--json")
    assert r.exit_code == 0 and r.jsonl()[0]["payload"] == {"text": "the big payload"}


def test_a_blob_that_does_not_fit_its_event_stays_unresolved(home, cli, tmp_path):
    """A claim-checked spawn whose blob holds a task that is not a string would make every
    view unreadable: the fold keeps the reference and verify names it."""
    data = b'{"task":{"not":"a string"}}'
    ref = "b3:" + blake3.blake3(data).hexdigest()
    (home / "blobs" / ref[3:]).write_bytes(data)
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(to="w-b", typ="worker.spawned", payload={"$blob": ref, "size": len(data)}))
    assert cli("import", str(f)).exit_code == 0
    r = cli("status", "--json")
    assert r.exit_code == 0 and r.json()[0]["task"] == ""
    r = cli("verify")
    assert r.exit_code == 5 and "does not fit worker.spawned" in r.stdout


# --- the same lines, appended to our own file as a pull does ----------------------------------


@pytest.mark.parametrize("case", ["payload nested 1,000 levels", "worker id ../../etc", "Feb 30", "spacing"])
def test_a_bad_pulled_line_never_wedges_the_home(home, cli, case):
    """Appended to events.jsonl (a pull): the next command succeeds and warns, `export` and
    `verify` report the line (exit 5, never 1), and `export --rewrite` drops it for good."""
    assert cli("spawn", "w-0").exit_code == 0
    with open(home / "events.jsonl", "ab") as f:
        f.write(ALL_BAD[case][0])
    r = cli("spawn", "w-1")
    assert r.exit_code == 0 and "line 2" in r.stderr and "not touching the file" in r.stderr
    r = cli("export")
    assert r.exit_code == 5
    one_line_error(r, "line 2")
    r = cli("verify")
    assert r.exit_code == 5 and "line 2" in r.stdout
    r = cli("export", "--check")
    assert r.exit_code == 5
    r = cli("export", "--rewrite")
    assert r.exit_code == 0 and "dropped bad line 2" in r.stderr
    assert cli("verify").exit_code == 0
    assert len((home / "events.jsonl").read_bytes().split(b"\n")) == 3  # w-0, w-1, and the end


def test_init_refuses_a_committed_file_with_a_bad_line(tmp_path, cli):
    clone = tmp_path / "clone" / ".coord"
    clone.mkdir(parents=True)
    (clone / "events.jsonl").write_bytes(good() + ALL_BAD["NUL in from"][0])
    r = cli("--home", str(clone), "init")
    assert r.exit_code == 5
    one_line_error(r, "line 2", "control characters")
    assert not (clone / "coord.db").exists()
    assert (clone / "events.jsonl").read_bytes().count(b"\n") == 2  # never truncated


# --- 4. deep nesting, typed here -----------------------------------------------------------------


def test_send_refuses_a_payload_nested_1000_levels(home, cli):
    before = snapshot(home)
    r = cli("--as", "a", "send", "note", deep(1000), "--to", "b")
    assert r.exit_code == 2
    one_line_error(r, "nested deeper than 100 levels")
    r = cli("--as", "a", "send", "note", "-", "--to", "b", input=("[" * 3000 + "]" * 3000))
    assert r.exit_code == 2
    one_line_error(r, "nested deeper than 100 levels")
    assert snapshot(home) == before
    r = cli("--as", "a", "send", "note", deep(99), "--to", "b")  # within the limit
    assert r.exit_code == 0, r.stderr


def test_the_library_refuses_a_deep_payload_and_bad_names(home):
    from coord.events.errors import UsageError

    d = cur = {}
    for _ in range(2000):
        cur["a"] = {}
        cur = cur["a"]
    before = snapshot(home)
    with Coord(home, actor="a") as c:
        for call in (
            lambda: messages.send(c, "b", "note", d),
            lambda: lifecycle.act(c, "spawn", "w-1", {"x": d}),
            lambda: lifecycle.act(c, "spawn", "w-1", {"task": 5}),
            lambda: lifecycle.act(c, "spawn", "w-1", actor="bad\x00actor"),
            lambda: lifecycle.append_raw(c, "bob", "msg.note", {}, actor="\x1b[2J"),
            lambda: lifecycle.append_raw(c, "bob smith", "msg.note", {}),
            lambda: lifecycle.append_raw(c, "bob", "msg." + "x" * 200, {}),
        ):
            with pytest.raises(UsageError):
                call()
    assert snapshot(home) == before


def test_a_deep_blob_never_exits_1(home, cli, tmp_path):
    """A pulled blob holding JSON nested 1,000 levels, referred to by a pulled event."""
    data = deep(1000).encode()
    ref = "b3:" + blake3.blake3(data).hexdigest()
    (home / "blobs" / ref[3:]).write_bytes(data)
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(to="bob", payload={"$blob": ref, "size": len(data)}))
    assert cli("import", str(f)).exit_code == 0
    for args in (
        ("status",),
        ("log",),
        ("log", "--json"),
        ("--as", "bob", "poll", "--peek"),
        ("search", "a"),
    ):
        r = cli(*args)
        assert r.exit_code in (0, 5), (args, r.exit_code, r.stderr)
        assert "unexpected" not in r.stderr and "Traceback" not in r.stderr
    r = cli("verify")
    assert r.exit_code == 5 and "nested deeper than" in r.stdout


# --- 1. clock poisoning ---------------------------------------------------------------------------


def test_a_year_9999_event_imported_does_not_poison_the_clock(home, cli, tmp_path):
    far = good(ts="9999-12-31T23:59:59.999999Z", frm="mallory", to="w-1", typ="worker.heartbeat")
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(to="w-1", typ="worker.spawned", payload={"task": "t"}) + far)
    assert cli("import", str(f)).exit_code == 0
    for args in (("spawn", "w-2"), ("--as", "a1", "start", "w-2"), ("--as", "a1", "heartbeat", "w-2")):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
    local = ts_of(home, "origin = 'local'")
    assert len(local) == 3 and all(t < now_ts(5) for t in local), local  # real time, not 10000-…
    for args in (("status",), ("status", "--json"), ("rebuild",), ("replay",), ("log",), ("show", "w-1")):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
    r = cli("verify")
    assert r.exit_code == 0, r.stdout
    assert "note: 1 event(s) dated more than max_clock_skew" in r.stdout and eid_of(far) in r.stdout
    r = cli("show", eid_of(far)[:20])
    assert r.exit_code == 0 and "ahead of this clock" in r.stdout
    r = cli("show", eid_of(far), "--json")
    assert r.json()["ahead"] is True
    assert cli("show", "w-1", "--json").json()["ahead"] == [eid_of(far)]
    assert "ahead " in cli("show", "w-1").stdout


def test_a_year_9999_line_pulled_into_the_file_is_taken_in_by_the_next_command(home, cli):
    assert cli("spawn", "w-0").exit_code == 0
    far = good(ts="9999-12-31T23:59:59.999999Z", frm="mallory", to="bob")
    with open(home / "events.jsonl", "ab") as f:  # what a git pull does
        f.write(far)
    r = cli("spawn", "w-1")  # the next command imports it, then appends in real time
    assert r.exit_code == 0, r.stderr
    assert eid_of(far) in ids_in_store(home)
    r = cli("spawn", "w-2")
    assert r.exit_code == 0, r.stderr
    local = ts_of(home, "origin = 'local'")
    assert len(local) == 3 and all(t < now_ts(5) for t in local), local
    for args in (
        ("status",),
        ("verify",),
        ("rebuild",),
        ("replay",),
        ("replay", "--from-file", home / "events.jsonl"),
    ):
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stdout, r.stderr)


def test_an_event_within_the_skew_sets_the_clock_and_one_beyond_does_not(home, cli, tmp_path):
    near, beyond = now_ts(120), now_ts(600)  # max_clock_skew defaults to 300 s
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(ts=beyond, to="bob") + good(ts=near, to="carol"))
    assert cli("import", str(f)).exit_code == 0
    assert cli("spawn", "w-1").exit_code == 0
    ts = ts_of(home, "origin = 'local'")[-1]
    assert near < ts < beyond
    assert cli("config", "max_clock_skew", "0").exit_code == 0
    assert cli("spawn", "w-2").exit_code == 0
    assert ts_of(home, "origin = 'local'")[-1] < near  # now even `near` is ahead: real time


def wait_for(pred, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_a_heartbeat_dated_an_hour_ahead_does_not_keep_a_silent_worker_ok(home, cli, tmp_path):
    """Its time for liveness is when it was stored: the worker goes DEAD and reap fires."""
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(
        good(ts=now_ts(3600), frm="a1", to="w-1", typ="worker.heartbeat", payload={"interval": 0.05})
    )
    assert cli("import", str(f)).exit_code == 0
    d = cli("status", "w-1", "--json").json()[0]
    assert d["heartbeat"]["count"] == 1 and d["last_heartbeat"] > now_ts(3000)

    def dead():
        return cli("status", "w-1", "--json").json()[0]["liveness"] == "DEAD"

    assert wait_for(dead), cli("status", "w-1", "--json").stdout
    r = cli("--as", "reaper", "reap")
    assert r.exit_code == 0 and "w-1: reaped" in r.stdout, r.stdout
    assert cli("status", "w-1", "--json", "--all").json()[0]["state"] == "FAILED"


def test_local_events_stamped_ahead_within_the_skew_do_not_keep_a_worker_ok(home, cli, tmp_path):
    """An event 4 minutes ahead (within max_clock_skew) makes new local events take its ts;
    liveness still counts from when they were stored."""
    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(ts=now_ts(240), to="bob"))
    assert cli("import", str(f)).exit_code == 0
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
        lifecycle.act(c, "heartbeat", "w-1", {"interval": 0.05})
    assert ts_of(home, "origin = 'local'")[-1] > now_ts(200)  # stamped ahead, as the rule says

    def dead():
        return cli("status", "w-1", "--json").json()[0]["liveness"] == "DEAD"

    assert wait_for(dead)
    r = cli("--as", "reaper", "reap")
    assert r.exit_code == 0 and "w-1: reaped" in r.stdout, r.stdout
    assert cli("verify").exit_code == 0  # the views fold the stored times the same way


def test_no_ts_past_year_9999_is_ever_emitted(home, cli, tmp_path):
    """Were the year-9999 event within max_clock_skew (a skew no setting allows, forced
    here), a new event is refused rather than stamped 10000-01-01."""
    from coord.events.errors import IntegrityError

    f = tmp_path / "theirs.jsonl"
    f.write_bytes(good(ts="9999-12-31T23:59:59.999999Z", to="bob"))
    assert cli("import", str(f)).exit_code == 0
    assert cli("config", "max_clock_skew", "1e13").exit_code == 2  # the setting has a ceiling
    before = snapshot(home)
    with Coord(home, actor="a") as c:
        c.home.config["max_clock_skew"] = 1e13
        with pytest.raises(IntegrityError, match="past 9999-12-31T23:59:59.999999Z"):
            lifecycle.act(c, "spawn", "w-1")
    assert snapshot(home) == before


# --- 3. verify sees database tampering ---------------------------------------------------------


def run_lifecycle(cli):
    assert cli("spawn", "w-1").exit_code == 0
    assert cli("--as", "a1", "start", "w-1").exit_code == 0
    assert cli("--as", "lead", "send", "note", "--text", "hi", "--to", "a1").exit_code == 0
    assert cli("--as", "a1", "heartbeat", "w-1").exit_code == 0
    assert cli("spawn", "w-2").exit_code == 0


@pytest.mark.parametrize(
    "column,value",
    [
        ("type", "msg.other"),
        ("from", "mallory"),
        ("to", "mallory"),
        ("worker", "w-2"),
        ("ts", "2020-01-01T00:00:00.000000Z"),
    ],
)
def test_verify_checks_each_column_against_the_hashed_bytes(home, cli, column, value):
    run_lifecycle(cli)
    assert cli("verify").exit_code == 0
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute(f'UPDATE events SET "{column}" = ? WHERE seq = 3', (value,))
    con.commit()
    con.close()
    r = cli("verify")
    assert r.exit_code == 5
    assert "event seq 3" in r.stdout and f"stored column {column} is {value!r}" in r.stdout
    one_line_error(r, "verify found")
    before = snapshot(home)
    r = cli("rebuild")
    assert r.exit_code == 5
    one_line_error(r, "not rebuilding", "stored column")
    assert snapshot(home) == before


def test_a_deleted_row_is_an_integrity_error_and_rebuild_refuses_to_bless_it(home, cli):
    run_lifecycle(cli)
    con = sqlite3.connect(str(home / "coord.db"))
    gone = con.execute("SELECT id FROM events WHERE seq = 2").fetchone()[0]
    con.execute("DELETE FROM events WHERE seq = 2")  # w-1's start
    con.commit()
    con.close()
    r = cli("verify")
    assert r.exit_code == 5
    assert "events seq 2 missing" in r.stdout
    assert f"event {gone} was recorded by this store and is no longer in it" in r.stdout
    r = cli("export", "--check")
    assert r.exit_code == 5 and f"{gone} was written by this store" in r.stdout
    one_line_error(r, "1 lost from the store")
    before = snapshot(home)
    r = cli("rebuild")
    assert r.exit_code == 5
    one_line_error(r, "not rebuilding", "events seq 2 missing", "coord init")
    assert snapshot(home) == before
    assert cli("verify").exit_code == 5  # still reported: nothing blessed it


def test_a_deleted_last_row_is_seen_too(home, cli):
    run_lifecycle(cli)
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)")
    con.commit()
    con.close()
    r = cli("verify")
    assert r.exit_code == 5 and "missing at the end" in r.stdout
    assert cli("rebuild").exit_code == 5


def test_a_deleted_row_is_restored_from_the_file_by_the_next_reconcile(home, cli):
    """After a pull changed the file, the scan finds the line this store wrote and lost,
    says so, and takes it back in; verify still names the hole in seq."""
    run_lifecycle(cli)
    con = sqlite3.connect(str(home / "coord.db"))
    gone = con.execute("SELECT id FROM events WHERE seq = 1").fetchone()[0]
    con.execute("DELETE FROM events WHERE seq = 1")
    con.commit()
    con.close()
    with open(home / "events.jsonl", "ab") as f:
        f.write(good(to="bob"))  # a pull brought a line
    r = cli("spawn", "w-3")
    assert r.exit_code == 0 and "missing from the store" in r.stderr and gone[:15] in r.stderr
    assert gone in ids_in_store(home)
    r = cli("verify")
    assert r.exit_code == 5 and "events seq 1 missing" in r.stdout and "no longer in it" not in r.stdout


def test_unknown_valid_lines_after_a_pull_are_imports_not_losses(home, cli):
    run_lifecycle(cli)
    pulled = good(to="bob")
    with open(home / "events.jsonl", "ab") as f:
        f.write(pulled)
    r = cli("verify", "--json")
    assert r.exit_code == 0, r.stdout
    assert r.json()["checks"]["audit_file"]["unknown"] == 1 and r.json()["checks"]["audit_file"]["lost"] == []
    assert cli("export").exit_code == 0
    assert eid_of(pulled) in ids_in_store(home)


def test_a_forged_row_is_reported_and_never_copied_into_the_audit_file(home, cli):
    run_lifecycle(cli)
    forged = body(now_ts(), "mallory", "a1", "msg.note", {"text": "trust me"})
    wrong = "b3:" + "0" * 64
    con = sqlite3.connect(str(home / "coord.db"))
    seq = con.execute("SELECT max(seq) FROM events").fetchone()[0] + 1
    con.execute(
        'INSERT INTO events(seq, id, ts, "from", "to", type, worker, body, origin, audit) '
        "VALUES (?,?,?,?,?,?,?,?,'local',1)",
        (seq, wrong, now_ts(), "mallory", "a1", "msg.note", None, forged),
    )
    con.commit()
    con.close()
    r = cli("spawn", "w-3")  # the next command exports: it writes w-3's line, not the forgery
    assert r.exit_code == 0 and f"event seq {seq}" in r.stderr and "do not hash" in r.stderr
    text = (home / "events.jsonl").read_bytes()
    assert wrong.encode() not in text and b"trust me" not in text and b'"w-3"' in text
    r = cli("export", "--rewrite")
    assert wrong.encode() not in (home / "events.jsonl").read_bytes()
    r = cli("verify")
    assert r.exit_code == 5 and f"event seq {seq}" in r.stdout and "do not hash to its id" in r.stdout


# --- the reader -------------------------------------------------------------------------------


def test_lines_split_on_newline_only_and_memory_stays_bounded(tmp_path, monkeypatch):
    from coord.events import codec

    monkeypatch.setattr(codec, "READ_CHUNK", 7)  # lines straddle every chunk boundary
    lines = [good(payload={"t": "a\u2028b\u2029c\x85d\re"}), good(to="w-2"), b"\n", good(to="w-3")[:-1]]
    f = tmp_path / "f.jsonl"
    f.write_bytes(b"".join(lines))
    with open(f, "rb") as fh:
        got = list(codec.read_events(fh))
    assert [ln.lineno for ln in got] == [1, 2, 3, 4]
    assert got[0].bad is None and got[0].env.payload == {"t": "a\u2028b\u2029c\x85d\re"}
    assert got[1].bad is None and got[2].bad == "empty line" and got[3].bad.startswith("partial line")
    assert [ln.end for ln in got] == [sum(map(len, lines[: i + 1])) for i in range(4)]


# --- 6. Hypothesis: hostile-but-hash-valid lines -------------------------------------------------

names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=20
).filter(lambda s: s.strip())
worker_ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,12}\Z")
recipients = st.one_of(st.just("*"), st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@-]{0,12}\Z"))
valid_ts = st.one_of(
    st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999).map(
        lambda us: "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (*time.gmtime(us // 1_000_000)[:6], us % 1_000_000)
    ),
    st.just("9999-12-31T23:59:59.999999Z"),
    st.just("0001-01-01T00:00:00.000000Z"),
)
scalars = st.one_of(st.text(max_size=10), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none())
payloads = st.dictionaries(st.text(max_size=6).filter(lambda k: not k.startswith("$")), scalars, max_size=4)


@st.composite
def valid_line(draw):
    kind = draw(st.sampled_from(["msg", "spawn", "start", "beat", "other", "future"]))
    if kind == "future":  # far ahead: a valid line, imported and folded, never the clock
        return good("9999-12-31T23:59:59.999999Z", draw(names), draw(worker_ids), "worker.heartbeat")
    ts = draw(valid_ts)
    frm = draw(names)
    if kind == "msg":
        return good(
            ts, frm, draw(recipients), "msg." + draw(st.from_regex(r"\A[a-z0-9_]{1,8}\Z")), draw(payloads)
        )
    if kind == "spawn":
        p = {**draw(payloads), "task": draw(st.text(max_size=10))}
        return good(ts, frm, draw(worker_ids), "worker.spawned", p)
    if kind == "start":
        return good(ts, frm, draw(worker_ids), "worker.started", {"clone": draw(st.text(max_size=5))})
    if kind == "beat":
        return good(ts, frm, draw(worker_ids), "worker.heartbeat", {"interval": draw(st.floats(0.05, 1e6))})
    return good(ts, frm, draw(st.one_of(names, st.just("*"))), "check.passed", draw(payloads))


BAD_TS = [
    "2026-02-30T00:00:00.000000Z",
    "0000-06-01T00:00:00.000000Z",
    "2026-01-01T00:00:60.000000Z",
    "2026-01-01T25:00:00.000000Z",
    "10000-01-01T00:00:00.000000Z",
    "2026-01-01 00:00:00.000000Z",
    "2026-01-01T00:00:00Z",
]


@st.composite
def hostile_line(draw):
    """(line, False): a line, most often hash-valid, with one known defect."""
    base_ts = draw(valid_ts)
    defect = draw(
        st.sampled_from(
            [
                "bad ts",
                "control in from",
                "bad worker id",
                "bad recipient",
                "bad type",
                "extra field",
                "reordered",
                "spacing",
                "unsorted payload",
                "deep",
                "schema",
                "reserved key",
                "bad ref",
                "empty",
                "bad id member",
                "hash mismatch",
            ]
        )
    )
    if defect == "bad ts":
        return good(ts=draw(st.sampled_from(BAD_TS))), False
    if defect == "control in from":
        c = draw(st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x9b", "\u2028", "\n"]))
        return good(base_ts, "a" + c + draw(st.text(max_size=3))), False
    if defect == "bad worker id":
        w = draw(
            st.sampled_from(["../../etc", "--upload-pack=x", "-x", "a/b", "", "w" * 65, "w\n", ".w", "a b"])
        )
        return good(base_ts, "lead", w, draw(st.sampled_from(["worker.spawned", "worker.started"]))), False
    if defect == "bad recipient":
        return good(
            base_ts, "lead", draw(st.sampled_from(["a b", "", "-a", "a\n", "../x", "x" * 129])), "msg.n"
        ), False
    if defect == "bad type":
        return good(
            base_ts, "a", "b", draw(st.sampled_from(["Msg.x", "msg", "msg.", ".x", "msg x", "msg.X"]))
        ), False
    if defect == "extra field":
        b = (
            body(base_ts, "a", "b", "msg.x", {})[:-1]
            + b',"'
            + draw(st.sampled_from([b"x", b"id", b"seq"]))
            + b'":1}'
        )
        return line_of(b), False
    if defect == "reordered":
        return line_of(
            json.dumps(
                {"from": "a", "ts": base_ts, "to": "b", "type": "msg.x", "payload": {}}, separators=(",", ":")
            ).encode()
        ), False
    if defect == "spacing":
        return line_of(body(base_ts, "a", "b", "msg.x", {}).replace(b'","', b'", "', 1)), False
    if defect == "unsorted payload":
        return line_of(body(base_ts, "a", "b", "msg.x", {"z": 1, "a": 2})), False
    if defect == "deep":
        n = draw(st.integers(101, 3000))
        return line_of(body(base_ts, "a", "b", "msg.x", {})[:-3] + b'{"a":' + deep(n).encode() + b"}}"), False
    if defect == "schema":
        typ, p = draw(
            st.sampled_from(
                [
                    ("worker.spawned", {"task": 1}),
                    ("worker.spawned", {"assignee": 5}),
                    ("worker.started", {"clone": 1.5}),
                    ("worker.heartbeat", {"interval": "x"}),
                    ("worker.done", {"rebased": "no"}),
                    ("worker.failed", {"force": 1}),
                    ("worker.conflicted", {"files": "a.py"}),
                ]
            )
        )
        return good(base_ts, "a1", "w-1", typ, p), False
    if defect == "reserved key":
        return good(base_ts, payload={"$" + draw(st.text(max_size=4)): 1}), False
    if defect == "bad ref":
        return good(
            base_ts, payload={"$blob": draw(st.sampled_from(["b3:", "b3:xyz", "b3:" + "A" * 64])), "size": 1}
        ), False
    if defect == "empty":
        return b"\n", False
    if defect == "bad id member":
        ln = good(base_ts)
        return ln.replace(
            b'{"id":"b3:', draw(st.sampled_from([b'{"id": "b3:', b'{"Id":"b3:', b'{"id":"B3:']))
        ), False
    ln = good(base_ts)  # hash mismatch
    return ln.replace(b'"lead"', b'"leaf"'), False


@settings(
    max_examples=int(os.environ.get("COORD_TRUST_EXAMPLES", 30)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(st.one_of(valid_line().map(lambda ln: (ln, True)), hostile_line()), min_size=1, max_size=6))
def test_import_takes_exactly_the_valid_lines_or_refuses_the_batch(home, cli, tmp_path, lines):
    f = tmp_path / "hostile.jsonl"
    f.write_bytes(b"".join(line for line, _ in lines))
    before = snapshot(home)
    ids_before = ids_in_store(home)
    r = cli("import", str(f))
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
    if all(ok for _, ok in lines):
        assert r.exit_code == 0, (lines, r.stderr)
        assert ids_in_store(home) == ids_before | {eid_of(line) for line, _ in lines}
        assert cli("status", "--all").exit_code == 0
    else:
        assert r.exit_code == 5, (lines, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1
        first_bad = next(i for i, (_, ok) in enumerate(lines, 1) if not ok)
        assert f"line {first_bad}:" in r.stderr
        assert snapshot(home) == before


def test_a_store_from_before_the_stored_column_migrates_and_checks_out(home, cli):
    """Schema 4 (no events.stored, no record of what it wrote): the migration adds the
    column (old rows NULL: their ts stands for liveness), the next export starts the record."""
    from coord.events.sqlite_store import SCHEMA_VERSION

    run_lifecycle(cli)
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("ALTER TABLE events DROP COLUMN stored")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0005_events_stored'")
    con.execute("DELETE FROM meta WHERE key IN ('audit_count', 'audit_sum')")
    con.execute("PRAGMA user_version = 4")
    con.commit()
    con.close()
    r = cli("status", "--json")  # any command migrates
    assert r.exit_code == 0 and r.json()[0]["liveness"] == "OK"
    con = sqlite3.connect(str(home / "coord.db"))
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert {r[0] for r in con.execute("SELECT stored FROM events")} == {None}
    con.close()
    assert cli("verify").exit_code == 0
    assert cli("spawn", "w-3").exit_code == 0  # the export scans once and starts the record
    con = sqlite3.connect(str(home / "coord.db"))
    assert (
        con.execute("SELECT value FROM meta WHERE key = 'audit_count'").fetchone()[0] == "5"
    )  # 4 lines scanned, then w-3
    con.close()
    assert cli("verify", "--json").json()["checks"]["audit_file"]["recorded"]["lines"] == 5
