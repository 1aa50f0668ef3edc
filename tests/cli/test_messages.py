"""Messages: send and poll through real processes, durable cursors (at least once, none
skipped, none repeated after acknowledgement, broadcasts per agent), poll --wait woken by
another process, bad input."""

import json
import os
import sqlite3
import subprocess
import time

import pytest

from helpers import coord_cmd, count_events


def one_line_error(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


def jl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def texts(ran):
    return [m["payload"].get("text") for m in ran.jsonl()]


def test_two_agents_exchange_messages_through_real_processes(home, proc):
    r = proc(
        "--as",
        "lead",
        "send",
        "review_request",
        '{"worker": "w-1", "text": "please review"}',
        "--to",
        "reviewer",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    assert sent["type"] == "msg.review_request" and sent["event"].startswith("b3:")

    r = proc("--as", "reviewer", "poll", "--json")
    assert r.returncode == 0, r.stderr
    [m] = jl(r.stdout)
    assert (m["id"], m["from"], m["to"], m["type"]) == (
        sent["event"],
        "lead",
        "reviewer",
        "msg.review_request",
    )
    assert m["payload"] == {"worker": "w-1", "text": "please review"} and m["seq"] == sent["seq"]

    # The reply goes back to the sender by default and names what it answers.
    r = proc(
        "--as", "reviewer", "send", "answer", "--text", "LGTM", "--reply-to", sent["event"][:12], "--json"
    )
    assert r.returncode == 0, r.stderr
    r = proc("--as", "lead", "poll", "--json")
    [reply] = jl(r.stdout)
    assert reply["to"] == "lead" and reply["payload"] == {"text": "LGTM", "reply_to": sent["event"]}

    # Both inboxes are now empty: nothing is delivered twice.
    for agent in ("lead", "reviewer"):
        r = proc("--as", agent, "poll", "--json")
        assert r.returncode == 0 and r.stdout == "", (agent, r.stdout)


def test_cursor_none_skipped_none_repeated_with_limit(home, cli):
    for i in range(5):
        assert cli("--as", "lead", "send", "n", "--text", str(i), "--to", "a").exit_code == 0
    assert texts(cli("--as", "a", "poll", "--limit", "2", "--json")) == ["0", "1"]
    assert texts(cli("--as", "a", "poll", "--limit", "2", "--json")) == ["2", "3"]
    cli("--as", "lead", "send", "n", "--text", "5", "--to", "a")
    assert texts(cli("--as", "a", "poll", "--json")) == ["4", "5"]
    assert cli("--as", "a", "poll", "--json").stdout == ""
    assert cli("--as", "b", "poll", "--json").stdout == ""  # not addressed to b


def test_broadcasts_are_acknowledged_per_agent_and_not_sent_back(home, cli):
    cli("--as", "lead", "send", "hello", "--text", "all", "--to", "*")
    assert texts(cli("--as", "a", "poll", "--json")) == ["all"]
    assert cli("--as", "a", "poll", "--json").stdout == ""
    assert texts(cli("--as", "b", "poll", "--json")) == ["all"]  # b has its own cursor
    assert cli("--as", "lead", "poll", "--json").stdout == ""  # not to its own sender


def test_peek_does_not_move_the_cursor_and_ack_does(home, cli):
    ids = [
        cli("--as", "lead", "send", "n", "--text", str(i), "--to", "a", "--json").json()["event"]
        for i in range(3)
    ]
    assert texts(cli("--as", "a", "poll", "--peek", "--json")) == ["0", "1", "2"]
    assert texts(cli("--as", "a", "poll", "--peek", "--json")) == ["0", "1", "2"]
    r = cli("--as", "a", "ack", ids[1][:10])
    assert r.exit_code == 0, r.stderr
    assert texts(cli("--as", "a", "poll", "--json")) == ["2"]
    assert cli("--as", "a", "ack", "b3:0000").exit_code == 3


def test_type_filter_takes_messages_out_of_order_without_skipping_others(home, cli):
    for typ, t in [("x", "1"), ("y", "2"), ("x", "3"), ("y", "4")]:
        cli("--as", "lead", "send", typ, "--text", t, "--to", "a")
    assert texts(cli("--as", "a", "poll", "--type", "x", "--json")) == ["1", "3"]
    assert texts(cli("--as", "a", "poll", "--type", "msg.x", "--json")) == []
    assert texts(cli("--as", "a", "poll", "--json")) == ["2", "4"]
    assert cli("--as", "a", "poll", "--json").stdout == ""
    con = sqlite3.connect(home / "coord.db")
    # Each poll appended one acknowledgement listing what it delivered, in delivery order.
    acks = [
        json.loads(b)["payload"]["ids"]
        for (b,) in con.execute("SELECT body FROM events WHERE type = 'inbox.acked'")
    ]
    sent = [r[0] for r in con.execute("SELECT id FROM events WHERE type LIKE 'msg.%' ORDER BY seq")]
    assert acks == [[sent[0], sent[2]], [sent[1], sent[3]]]
    # Once contiguous, the out-of-order acknowledgements fold into the watermark.
    assert con.execute("SELECT seq FROM cursors WHERE agent='a' AND address='a'").fetchone()[0] == 4


def test_message_to_a_worker_reaches_whoever_holds_it(home, cli):
    cli("spawn", "w-1", "--task", "t")
    cli("--as", "lead", "send", "instructions", "--text", "use the new API", "--to", "w-1")
    assert cli("--as", "dev", "poll", "--json").stdout == ""  # dev does not hold it yet
    assert cli("--as", "dev", "start", "w-1").exit_code == 0
    assert texts(cli("--as", "dev", "poll", "--json")) == ["use the new API"]
    assert cli("--as", "other", "poll", "--json").stdout == ""


def test_request_id_makes_a_retried_send_deliver_once(home, cli):
    a = cli("--as", "lead", "send", "n", "--text", "x", "--to", "a", "--request-id", "k1", "--json").json()
    n = count_events(home)
    b = cli("--as", "lead", "send", "n", "--text", "x", "--to", "a", "--request-id", "k1", "--json").json()
    assert b["repeat"] and b["event"] == a["event"] and count_events(home) == n
    assert texts(cli("--as", "a", "poll", "--json")) == ["x"]


def test_crash_between_output_and_ack_delivers_again(home, proc):
    proc("--as", "lead", "send", "n", "--text", "once", "--to", "a")
    r = proc("--as", "a", "poll", "--json", env={"COORD_FAILPOINTS": "poll-after-output"})
    assert r.returncode == -9 and [m["payload"]["text"] for m in jl(r.stdout)] == ["once"]
    r = proc("--as", "a", "poll", "--json")
    assert [m["payload"]["text"] for m in jl(r.stdout)] == ["once"]  # at least once
    assert proc("--as", "a", "poll", "--json").stdout == ""


def test_poll_wait_is_woken_by_a_send_from_another_process(home, proc):
    env = dict(os.environ)
    waiter = subprocess.Popen(
        [*coord_cmd(), "--as", "a", "poll", "--wait", "60", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # let it start and block
        assert waiter.poll() is None, waiter.stderr.read()
        r = proc("--as", "lead", "send", "wake", "--text", "up", "--to", "a")
        assert r.returncode == 0, r.stderr
        out, err = waiter.communicate(timeout=30)  # far less than its own 60 s timeout
    finally:
        if waiter.poll() is None:
            waiter.kill()
    assert waiter.returncode == 0, err
    assert [m["payload"]["text"] for m in jl(out)] == ["up"]


def test_poll_wait_times_out_with_exit_6(home, cli):
    r = cli("--as", "a", "poll", "--wait", "0.2")
    assert r.exit_code == 6 and one_line_error(r.stderr), r.stderr
    cli("--as", "lead", "send", "n", "--text", "here", "--to", "a")
    assert texts(cli("--as", "a", "poll", "--wait", "5", "--json")) == ["here"]


@pytest.mark.parametrize(
    "args,stdin,code",
    [
        (("send", "n", "[1, 2]", "--to", "a"), None, 2),
        (("send", "n", '"text"', "--to", "a"), None, 2),
        (("send", "n", "{not json", "--to", "a"), None, 2),
        (("send", "n", '{"$blob": "b3:00"}', "--to", "a"), None, 2),
        (("send", "n", '{"$x": 1}', "--to", "a"), None, 2),
        (("send", "n", "-", "--to", "a"), "", 2),
        (("send", "n", "-", "--to", "a"), "  \n", 2),
        (("send", "n", "-", "--to", "a"), "[]", 2),
        (("send", "n", "--to", "has space"), None, 2),
        (("send", "n", "--to", "a/b"), None, 2),
        (("send", "n", "--to", "-x"), None, 2),
        (("send", "n", "--to", ""), None, 2),
        (("send", "n", "--to", "a\x1b[2J"), None, 2),
        (("send", "Bad", "--to", "a"), None, 2),
        (("send", "a b", "--to", "a"), None, 2),
        (("send", "n"), None, 2),  # no --to
        (("send", "n", "{}", "--text", "x", "--to", "a"), None, 2),  # both
        (("send", "n", "--file", "/no/such/file", "--to", "a"), None, 2),
        (("send", "n", "--reply-to", "b3:0000", "--to", "a"), None, 3),
        (("poll", "--type", "A B"), None, 2),
        (("poll", "--limit", "0"), None, 2),
        (("ack", "zz"), None, 2),
    ],
)
def test_bad_input_one_line_documented_code_nothing_appended(home, cli, args, stdin, code):
    cli("--as", "lead", "send", "n", "--text", "x", "--to", "a")
    n = count_events(home)
    blobs = sorted(os.listdir(home / "blobs"))
    r = cli("--as", "lead", *args, input=stdin)
    assert r.exit_code == code, (args, r.stderr)
    assert one_line_error(r.stderr), r.stderr
    assert count_events(home) == n
    assert sorted(os.listdir(home / "blobs")) == blobs


def test_text_output_escapes_control_characters(home, cli):
    cli("--as", "lead", "send", "n", "--text", "evil\x1b[2J\x07", "--to", "a")
    out = cli("--as", "a", "poll").stdout
    assert "\x1b" not in out and "\x07" not in out and "evil" in out
