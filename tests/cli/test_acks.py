"""Acknowledgements that travel (contract: Acknowledgements): `poll` appends one
`inbox.acked` per delivered batch, `ack EVENT` one for what it covers, `poll --peek`
none; a message acknowledged on one clone is not delivered again on another once the
acknowledgement arrives (even before the message itself); acknowledgements are a
projection that `rebuild` restores; inbox.* events are never delivered nor searchable."""

import json
import sqlite3

from coord.events.codec import audit_line
from coord.events.envelope import Envelope, canonical, event_id
from helpers import count_events, ok


def texts(ran):
    return [m["payload"].get("text") for m in ran.jsonl()]


def acks_in(home):
    return [
        json.loads(line)
        for line in (home / "events.jsonl").read_text().splitlines()
        if '"type":"inbox.acked"' in line
    ]


def line_of(home, eid):
    for line in (home / "events.jsonl").read_bytes().splitlines(keepends=True):
        if eid.encode() in line[:80]:
            return line
    raise AssertionError(f"{eid} not in the file")


def test_poll_appends_one_ack_per_batch_peek_none_ack_one(home, cli):
    ids = [
        ok(cli("--as", "lead", "send", "n", "--text", str(i), "--to", "a", "--json")).json()["event"]
        for i in range(3)
    ]
    n = count_events(home)
    assert texts(cli("--as", "a", "poll", "--peek", "--json")) == ["0", "1", "2"]
    assert count_events(home) == n  # --peek appends nothing
    r = ok(cli("--as", "a", "ack", ids[1][:12], "--json")).json()
    assert r["acked"] == 2 and count_events(home) == n + 1
    [a1] = acks_in(home)
    assert (a1["from"], a1["to"], a1["payload"]) == ("a", "a", {"ids": ids[:2]})
    r = ok(cli("--as", "a", "ack", ids[1][:12], "--json")).json()
    assert r["acked"] == 0 and count_events(home) == n + 1  # nothing pending there: nothing appended
    assert texts(cli("--as", "a", "poll", "--json")) == ["2"]
    assert [x["payload"]["ids"] for x in acks_in(home)] == [ids[:2], ids[2:]]
    assert cli("--as", "a", "poll", "--json").stdout == "" and count_events(home) == n + 2
    # inbox.* events are never delivered, not even to their own agent, and not searchable
    assert cli("--as", "a", "poll", "--peek", "--json", "--type", "*").stdout == ""
    assert cli("search", ids[0][3:20], "--json").json() == []


def test_a_long_batch_is_acknowledged_in_payloads_under_the_blob_threshold(home, cli):
    ok(cli("config", "blob_threshold", "300"))
    for i in range(9):
        ok(cli("--as", "lead", "send", "n", "--text", str(i), "--to", "a"))
    assert len(cli("--as", "a", "poll", "--json").jsonl()) == 9
    chunks = [x["payload"]["ids"] for x in acks_in(home)]
    assert [len(c) for c in chunks] == [4, 4, 1]  # (300 - 16) // 70 ids each: never a blob
    assert cli("--as", "a", "poll", "--json").stdout == ""


def test_acknowledgements_travel_to_another_clone(tmp_path, cli):
    a, b = tmp_path / "a" / ".coord", tmp_path / "b" / ".coord"

    def A(*args):
        return cli("--home", str(a), *args)

    def B(*args):
        return cli("--home", str(b), *args)

    ok(A("init"))
    first = [
        ok(A("--as", "lead", "send", "n", "--text", t, "--to", "dev", "--json")).json()["event"] for t in "xy"
    ]
    b.mkdir(parents=True)
    (b / "events.jsonl").write_bytes((a / "events.jsonl").read_bytes())
    ok(B("init"))
    assert texts(A("--as", "dev", "poll", "--json")) == ["x", "y"]
    # The acknowledgement made on A reaches B: dev is not given x and y again there.
    ok(B("import", str(a / "events.jsonl")))
    assert B("--as", "dev", "poll", "--json").stdout == ""
    # An acknowledgement that arrives before its message still counts once it arrives.
    late = ok(A("--as", "lead", "send", "n", "--text", "z", "--to", "dev", "--json")).json()["event"]
    assert texts(A("--as", "dev", "poll", "--json")) == ["z"]
    ack = [x for x in acks_in(a) if late in x["payload"]["ids"]][0]
    only_ack = tmp_path / "ack.jsonl"
    only_ack.write_bytes(line_of(a, ack["id"]))
    ok(B("import", str(only_ack)))
    only_msg = tmp_path / "msg.jsonl"
    only_msg.write_bytes(line_of(a, late))
    ok(B("import", str(only_msg)))
    assert B("--as", "dev", "poll", "--json").stdout == ""
    assert B("--as", "lead", "poll", "--json").stdout == ""  # acknowledgements are per agent
    ok(B("verify"))
    assert len(first) == 2


def test_an_ack_from_someone_else_acknowledges_nothing(home, cli):
    mid = ok(cli("--as", "lead", "send", "n", "--text", "m", "--to", "dev", "--json")).json()["event"]
    env = Envelope("2026-01-01T00:00:00.000000Z", "mallory", "dev", "inbox.acked", {"ids": [mid]})
    forged = home.parent / "forged.jsonl"
    forged.write_bytes(audit_line(event_id(canonical(env)), canonical(env)))
    ok(cli("import", str(forged)))
    assert texts(cli("--as", "dev", "poll", "--json")) == ["m"]


def test_rebuild_restores_the_acknowledgements_from_the_events(home, cli):
    for t in "abc":
        ok(cli("--as", "lead", "send", "n", "--text", t, "--to", "dev"))
    ok(cli("--as", "lead", "send", "n", "--text", "all", "--to", "*"))
    assert texts(cli("--as", "dev", "poll", "--type", "n", "--limit", "2", "--json")) == ["a", "b"]
    con = sqlite3.connect(home / "coord.db")
    before = con.execute("SELECT agent, id FROM acks ORDER BY 1, 2").fetchall()
    con.execute("DELETE FROM acks")  # the projection lost (or never built, in an old store)
    con.execute("DELETE FROM cursors")
    con.commit()
    assert texts(cli("--as", "dev", "poll", "--peek", "--json")) == ["a", "b", "c", "all"]
    r = cli("verify")
    assert r.exit_code == 5 and "2 acknowledged id(s) missing from the projection" in r.stdout
    ok(cli("rebuild"))
    assert con.execute("SELECT agent, id FROM acks ORDER BY 1, 2").fetchall() == before
    con.close()
    assert texts(cli("--as", "dev", "poll", "--json")) == ["c", "all"]
    ok(cli("verify"))
