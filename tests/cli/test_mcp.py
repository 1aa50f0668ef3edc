"""`coord mcp` through a real MCP client session: the SDK's stdio client spawns `coord
--as A mcp` as a subprocess, lists the tools and calls them; the effects are read back
from the log through the CLI. Errors are tool errors carrying the CLI's exit code; the
server beats for the worker it started while its client is connected, and stops when the
client goes."""

import json
import os
import sys
import time

import pytest

from helpers import coord_cmd, ok

mcp = pytest.importorskip("mcp")  # tests/skips.py: a skip fails the run under CI=true

import anyio  # noqa: E402
from mcp import ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

TOOLS = {"prime", "status", "show", "ready", "start", "heartbeat", "done", "fail", "release"}
TOOLS |= {"send", "poll", "ack", "search"}


def session(home, actor, *extra, body):
    """Run `body(s)` (async) inside an initialised client session with `coord --as actor
    mcp EXTRA` started by the SDK's stdio client; returns its result."""
    cmd = coord_cmd()
    params = StdioServerParameters(
        command=cmd[0],
        args=[*cmd[1:], "--as", actor, "mcp", *extra],
        env={**os.environ, "COORD_HOME": str(home)},
    )

    async def main():
        with anyio.fail_after(120):
            async with stdio_client(params, errlog=sys.stderr) as (r, w):
                async with ClientSession(r, w) as s:
                    await s.initialize()
                    return await body(s)

    return anyio.run(main)


async def call(s, name, **args):
    """(is_error, data): the tool's JSON result, or the error's JSON object."""
    res = await s.call_tool(name, args)
    text = res.content[0].text
    if res.is_error:
        return True, json.loads(text[text.index("{") :])["error"]
    return False, json.loads(text)


def beats(cli, worker, actor):
    r = ok(cli("log", "--worker", worker, "--type", "worker.heartbeat", "--from", actor, "--json"))
    return r.jsonl()


def test_tools_listed_and_a_whole_loop_with_beats_while_connected(home, cli):
    ok(cli("spawn", "w-1", "--task", "fix the parser", "--no-git"))

    async def body(s):
        names = {t.name for t in (await s.list_tools()).tools}
        assert names == TOOLS
        err, p = await call(s, "prime")
        assert not err and p["agent"] == "mcp-1" and p["holds"] == []
        err, started = await call(s, "start", next=True)
        assert not err and started["worker"] == "w-1" and started["state"] == "WORKING"
        # The server beats for it while connected: wait for two beats (a condition, not a time).
        deadline = time.monotonic() + 90
        while len(beats(cli, "w-1", "mcp-1")) < 2:
            assert time.monotonic() < deadline, "no heartbeats from the server"
            await anyio.sleep(0.1)
        err, p = await call(s, "prime")
        assert [h["worker"] for h in p["holds"]] == ["w-1"] and p["holds"][0]["attempt"] == 1
        err, hb = await call(s, "heartbeat", note="running tests")
        assert not err and hb["type"] == "worker.heartbeat"
        err, d = await call(s, "done", summary="parser fixed")
        assert not err and d["state"] == "IN_REVIEW"
        return d

    session(home, "mcp-1", "--interval", "0.2", body=body)
    # The log says what the session did, by the actor given with --as.
    hist = ok(cli("log", "--worker", "w-1", "--json")).jsonl()
    kinds = [(e["type"], e["from"]) for e in hist if e["type"] != "worker.heartbeat"]
    assert kinds == [
        ("worker.spawned", "human:tester"),
        ("worker.started", "mcp-1"),
        ("worker.done", "mcp-1"),
    ]
    b = beats(cli, "w-1", "mcp-1")
    assert any(e["payload"].get("note") == "running tests" for e in b)
    assert all(e["payload"].get("interval") in (0.2, None) for e in b)
    assert ok(cli("show", "w-1", "--json")).json()["summary"] == "parser fixed"


def test_beats_stop_when_the_client_disconnects(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))

    async def body(s):
        await call(s, "start", worker="w-1")
        deadline = time.monotonic() + 90
        while not beats(cli, "w-1", "mcp-1"):
            assert time.monotonic() < deadline
            await anyio.sleep(0.1)

    session(home, "mcp-1", "--interval", "0.2", body=body)
    # The session is over: no beat comes after it. (A negative check cannot wait for a
    # condition: it looks again after many intervals; a leaked beater fails it, nothing
    # makes it fail falsely.)
    n = len(beats(cli, "w-1", "mcp-1"))
    assert n >= 1
    time.sleep(1.5)
    assert len(beats(cli, "w-1", "mcp-1")) == n


def test_errors_carry_the_cli_exit_codes_and_append_nothing(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))
    ok(cli("--as", "a1", "start", "w-1"))
    before = len(ok(cli("log", "--json")).jsonl())

    async def body(s):
        out = {}
        out["unknown"] = await call(s, "start", worker="nope")
        out["not_yours"] = await call(s, "done", worker="w-1")
        out["illegal"] = await call(s, "start", worker="w-1")
        out["nothing"] = await call(s, "start", next=True)
        out["timeout"] = await call(s, "poll", wait=0.2)
        out["usage"] = await call(s, "send", type="Bad Type", to="a1", text="x")
        out["both"] = await call(s, "start", worker="w-1", next=True)
        return out

    out = session(home, "mcp-1", body=body)
    exits = {k: (err, e.get("exit")) for k, (err, e) in out.items()}
    assert exits == {
        "unknown": (True, 3),
        "not_yours": (True, 4),
        "illegal": (True, 4),
        "nothing": (True, 4),
        "timeout": (True, 6),
        "usage": (True, 2),
        "both": (True, 2),
    }
    assert "held by a1" in out["not_yours"][1]["message"]
    assert len(ok(cli("log", "--json")).jsonl()) == before


def test_poll_delivers_a_notice_once_and_messages_travel(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))

    async def body(s):
        await call(s, "start", worker="w-1")
        await call(s, "done", worker="w-1")
        ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "add tests"))
        err, first = await call(s, "poll", wait=60)
        _, again = await call(s, "poll")
        _, sent = await call(s, "send", type="question", to="rev", text="which tests?", request_id="q-1")
        _, again_sent = await call(
            s, "send", type="question", to="rev", text="which tests?", request_id="q-1"
        )
        assert not sent["repeat"] and again_sent == {**sent, "repeat": True}
        _, hits = await call(s, "search", query="tests")
        return first, again, hits

    first, again, hits = session(home, "mcp-1", body=body)
    [n] = first["events"]
    assert n["type"] == "worker.changes_requested"
    assert n["notice"] == {"worker": "w-1", "attempt": 1, "reason": "changes_requested"}
    assert again["events"] == []
    [m] = ok(cli("--as", "rev", "poll", "--json")).jsonl()
    assert (m["type"], m["from"], m["payload"]) == ("msg.question", "mcp-1", {"text": "which tests?"})
    assert any(h["type"] == "worker.changes_requested" for h in hits["hits"])


def test_mcp_needs_an_explicit_identity(home, proc):
    env = {k: v for k, v in os.environ.items() if k != "COORD_AGENT"}
    r = proc("mcp", env=env, input="")
    assert r.returncode == 2 and "explicit identity" in r.stderr


def test_mcp_without_a_home_is_not_found(tmp_path, proc):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    r = proc("--as", "mcp-1", "mcp", env=env, input="", cwd=tmp_path)
    assert r.returncode == 3 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
