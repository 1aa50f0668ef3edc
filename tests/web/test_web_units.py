"""The web board's parts in-process: the adapter (source.py) against a real home, the
stream's catch-up, reset and dedupe (stream.py) driven as ASGI, and the Host rules
(guard.py). The server as a whole is tested as a process in test_web.py."""

import json
import os
import stat
import subprocess
import sys
import threading

import anyio
import pytest

from coord.events.errors import IntegrityError, Refused, UsageError
from coord.web import guard, stream
from coord.web.source import Source


@pytest.fixture
def source(home):
    s = Source(home)
    yield s
    s.close()


# ---------------------------------------------------------------- the adapter
def test_board_items_are_status_items_with_expected(cli, source):
    for w in ("b-1", "b-2", "b-3"):
        cli("spawn", w, "--task", f"task {w}")
    cli("start", "b-2", env={"COORD_AGENT": "agent-2"})
    cli("cancel", "b-3")
    seq, now, items = source.board()
    status = json.loads(cli("--json", "status", "--all").stdout)
    assert seq == source.max_seq() == 5 and now.endswith("Z")
    assert [d["worker"] for d in items] == [d["worker"] for d in status]
    for mine, theirs in zip(items, status, strict=True):
        assert mine.pop("expected")["actions"] is not None
        assert mine == theirs
    assert [d["worker"] for d in source.board(all_=False)[2]] == ["b-1", "b-2"]
    assert [d["worker"] for d in source.board(states=["WORKING"])[2]] == ["b-2"]
    assert [d["worker"] for d in source.board(workers=["b-3", "nope", "b-1"])[2]] == ["b-3", "b-1"]
    with pytest.raises(UsageError):
        source.board(states=["SLEEPING"])
    assert source.liveness() == {"b-2": "OK"}


def test_a_workers_history_says_what_changed_and_its_messages_follow_its_holders(cli, source):
    a1, a2 = {"COORD_AGENT": "a1"}, {"COORD_AGENT": "a2"}
    cli("spawn", "h-1", "--task", "history")
    cli("send", "note", "--text", "before anyone held it", "--to", "a1", env={"COORD_AGENT": "lead"})
    cli("start", "h-1", env=a1)
    cli("send", "q", "--text", "from a1 while holding", "--to", "lead", env=a1)
    cli("send", "q", "--text", "to the worker", "--to", "h-1", env={"COORD_AGENT": "lead"})
    cli("send", "q", "--text", "to everyone", "--to", "*", env={"COORD_AGENT": "lead"})
    cli("release", "h-1", env=a1)
    cli("send", "q", "--text", "from a1 after letting go", "--to", "lead", env=a1)
    cli("start", "h-1", env=a2)
    cli("send", "q", "--text", "to a2 while holding", "--to", "a2", env={"COORD_AGENT": "lead"})
    cli("heartbeat", "h-1", "--note", "beat", env=a2)
    seq, d = source.worker("h-")  # a unique prefix
    shown = json.loads(cli("--json", "show", "h-1").stdout)
    assert seq == source.max_seq()
    for k in ("worker", "state", "holder", "expected", "last", "legal", "heartbeat", "ahead"):
        assert d[k] == shown[k], k
    assert [e["id"] for e in d["history"]] == [e["id"] for e in shown["history"]]
    assert [(e["before"], e["after"], e["holder"]) for e in d["history"]] == [
        (None, "ASSIGNED", None),
        ("ASSIGNED", "WORKING", "a1"),
        ("WORKING", "ASSIGNED", None),
        ("ASSIGNED", "WORKING", "a2"),
    ]
    assert d["history"][0]["change"] == "h-1  (new) → ASSIGNED  task: history"
    assert [m["payload"]["text"] for m in d["messages"]] == [
        "from a1 while holding",
        "to the worker",
        "to a2 while holding",
    ]
    assert source.worker("h-1", history=2)[1]["history"] == d["history"][-2:]


def test_events_messages_and_log(cli, source):
    cli("spawn", "e-1", "--task", "events")
    cli("send", "ping", "--text", "one", "--to", "x", env={"COORD_AGENT": "lead"})
    cli("send", "pong", "--text", "two", "--to", "y", env={"COORD_AGENT": "other"})
    evs = source.events_after(0)
    assert [e["seq"] for e in evs] == [1, 2, 3]
    assert evs[0] == {
        "seq": 1,
        "id": evs[0]["id"],
        "ts": evs[0]["ts"],
        "from": "human:tester",
        "to": "e-1",
        "type": "worker.spawned",
        "payload": {"task": "events"},
    }
    assert [e["seq"] for e in source.events_after(1, limit=1)] == [2]
    seq, msgs = source.messages()
    assert seq == 3 and [m["seq"] for m in msgs] == [3, 2]  # newest first
    assert [m["seq"] for m in source.messages(before_seq=3)[1]] == [2]
    assert [m["seq"] for m in source.messages(from_="lead")[1]] == [2]
    assert [m["seq"] for m in source.messages(to="y")[1]] == [3]
    assert [m["seq"] for m in source.messages(types=["pi*"])[1]] == [2]
    assert [e["seq"] for e in source.log(after_seq=1, types=["msg.*"])] == [2, 3]
    assert [e["seq"] for e in source.log(worker="e-1")] == [1]
    assert json.loads(source.event(evs[1]["id"][:10]))["seq"] == 2


def test_a_big_payload_is_summarised_in_lists_and_resolved_alone(cli, source, home):
    cli("config", "blob_threshold", "1024")
    text = "word " * 40_000  # 200 KB: a blob, bigger than the 64 KiB summary
    cli("send", "log", "--text", text, "--to", "lead", env={"COORD_AGENT": "ci"})
    (e,) = source.events_after(0)
    assert e["blob"].startswith("b3:") and e["payload"]["$head"]["size"] > 200_000
    assert len(json.dumps(e)) < 70_000
    assert json.loads(source.event(e["id"]))["payload"]["text"] == text


def test_wait_for_new_wakes_on_a_commit_by_another_process(cli, source, home):
    cli("spawn", "wt-1")
    top = source.max_seq()
    assert source.wait_for_new(top, timeout=0.2) == top  # nothing new: returns at the timeout
    got = []
    t = threading.Thread(target=lambda: got.append(source.wait_for_new(top, timeout=60)))
    t.start()
    env = {k: v for k, v in os.environ.items()}
    env.update(COORD_HOME=str(home))
    subprocess.run([sys.executable, "-m", "coord", "spawn", "wt-2"], env=env, check=True, capture_output=True)
    t.join(60)
    assert got == [top + 1]


def test_the_token_file(home, source, tmp_path):
    token, where, created = source.serve_token()
    path = home / "serve.token"
    assert created and where == str(path) and len(token) >= 40
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    assert path.read_text() == token + "\n"
    assert (home / ".gitignore").read_text().split().count("serve.token") == 1
    assert source.serve_token() == (token, where, False)  # kept across restarts
    os.chmod(path, 0o640)
    with pytest.raises(Refused, match="read by others"):
        source.serve_token()
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(IntegrityError, match="symlink"):
        source.serve_token()
    assert not (tmp_path / "elsewhere").exists()
    path.unlink()
    mine = tmp_path / "tok"
    mine.write_text("a-token-of-my-own-0123456789\nignored\n")
    assert source.serve_token(mine) == ("a-token-of-my-own-0123456789", str(mine), False)
    assert not path.exists()
    for bad in ("short", "", "has space in the middle of it", "ünïcode-ünïcode-ünïcode"):
        mine.write_text(bad + "\n")
        with pytest.raises(UsageError):
            source.serve_token(mine)
    with pytest.raises(UsageError, match="no such token file"):
        source.serve_token(tmp_path / "missing")


# ---------------------------------------------------------------- the stream
def _run_stream(source, after, position, pending=(), stop_at=None):
    """Drive EventStream._stream; returns the frames it wrote, parsed."""
    out = []

    async def main():
        hub = stream.Hub(source)
        sub = stream.Subscriber()
        sub.push(list(pending))
        if stop_at is None:
            sub.closed = True  # only the catch-up

        async def send(message):
            out.append(message["body"])
            if stop_at is not None and b"id: %d\n" % stop_at in message["body"]:
                sub.closed = True
                sub.wake.set()

        await stream.EventStream(hub)._stream(send, sub, after, position, stream.liveness_frame({}, True))

    anyio.run(main)
    frames = []
    for block in b"".join(out).decode().split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.split("\n") if ": " in line and not line.startswith(":")
        )
        if "data" in fields:
            frames.append((fields.get("event"), fields.get("id"), json.loads(fields["data"])))
        elif fields:
            assert fields == {"retry": str(stream.RETRY_MS)}
    return frames


def test_the_stream_catches_up_resets_and_never_repeats(cli, source, monkeypatch):
    for i in range(12):
        cli("spawn", f"s-{i}")
    monkeypatch.setattr(stream, "RESET_GAP", 5)
    monkeypatch.setattr(stream, "BATCH", 2)
    frames = _run_stream(source, after=7, position=10)
    assert frames[0][0] == "liveness"
    assert [(f[0], f[1]) for f in frames[1:]] == [("coord", "8"), ("coord", "9"), ("coord", "10")]
    assert frames[1][2]["item"]["worker"] == "s-7"
    # further behind than RESET_GAP: one reset to the position, no replay
    frames = _run_stream(source, after=2, position=10)
    assert [(f[0], f[1], f[2]["seq"]) for f in frames[1:]] == [("reset", "10", 10)]
    # ahead of this store (another home, a rebuilt one): reset to its top
    frames = _run_stream(source, after=500, position=12)
    assert [(f[0], f[1]) for f in frames[1:]] == [("reset", "12")]
    # live frames already sent from the store are skipped by seq
    live = stream.frames_for(source, source.events_after(8, 10))
    frames = _run_stream(source, after=8, position=10, pending=live, stop_at=12)
    assert [f[1] for f in frames[1:]] == ["9", "10", "11", "12"]


def test_a_subscriber_that_falls_behind_is_cut_off_not_buffered(monkeypatch):
    monkeypatch.setattr(stream, "QUEUE_MAX", 3)

    async def main():
        sub = stream.Subscriber()
        sub.push([(1, b"a"), (2, b"b")])
        assert not sub.overflow and len(sub.pending) == 2
        sub.push([(3, b"c"), (4, b"d")])
        assert sub.overflow and not sub.pending  # its memory is let go; it resumes from the store
        sub.push([(5, b"e")])
        assert not sub.pending

    anyio.run(main)


def test_start_seq():
    def scope(query=b"", last=None):
        headers = [(b"last-event-id", last)] if last is not None else []
        return {"query_string": query, "headers": headers}

    assert stream._start_seq(scope()) == 0
    assert stream._start_seq(scope(b"after=41")) == 41
    assert stream._start_seq(scope(b"after=41", b"57")) == 57  # what a reconnect sends wins
    assert stream._start_seq(scope(b"after=41", b"")) == 41
    for bad in (b"after=-1", b"after=x", b"after=1e3", b"after=" + b"9" * 19):
        assert isinstance(stream._start_seq(scope(bad)), str)
    assert isinstance(stream._start_seq(scope(last=b"b3:abc")), str)


# ---------------------------------------------------------------- the guard
def test_host_rules():
    assert guard.allowed_hosts("127.0.0.1", 8765) == {"127.0.0.1:8765"}
    assert guard.allowed_hosts("localhost", 80) == {"localhost:80", "127.0.0.1:80", "localhost", "127.0.0.1"}
    assert guard.allowed_hosts("::1", 9000) == {"[::1]:9000"}
    hosts = guard.allowed_hosts("127.0.0.1", 8765)
    assert guard._host_ok("127.0.0.1:8765", hosts, 8765)
    for bad in ("127.0.0.1", "127.0.0.1:8766", "localhost:8765", "evil.example:8765", "127.0.0.1:8765.evil"):
        assert not guard._host_ok(bad, hosts, 8765), bad
    assert guard.allowed_hosts("0.0.0.0", 8765) is None  # a wildcard: any IP literal, never a name
    for ok in ("10.1.2.3:8765", "[fe80::1]:8765", "127.0.0.1:8765"):
        assert guard._host_ok(ok, None, 8765), ok
    for bad in ("10.1.2.3:1", "rebind.evil.example:8765", "localhost:8765", "10.1.2.3"):
        assert not guard._host_ok(bad, None, 8765), bad
    assert guard._host_ok("10.1.2.3", None, 80)


def test_session_cookie_is_derived_not_the_token():
    a, b = guard.session_value("t" * 40), guard.session_value("u" * 40)
    assert a != b and "t" * 40 not in a and len(a) == 64 and guard.session_value("t" * 40) == a
