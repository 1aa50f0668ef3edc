"""docs/agents.md's recipes, run the way their harness runs them: each block under
`<!-- recipe: NAME -->` is taken from the doc (so the doc cannot drift from what works),
its command run by a shell (Claude Code's hooks, the agent loop) or exec'd with its
argument (Codex's notify), with the documented stdin JSON or argument, in a worker's
worktree, `coord` on PATH and the agent's name in COORD_AGENT; the exit status and the
output (or what the log recorded) are checked. The agents themselves cannot run here (no
model service): `my-agent` is a script that does what an agent following `prime` does."""

import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import ROOT, ok

DOC = ROOT / "docs" / "agents.md"
RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.S)


def recipes() -> dict[str, str]:
    found = {m.group(1): m.group(3) for m in RECIPE.finditer(DOC.read_text())}
    assert found, "no recipes found in docs/agents.md"
    return found


def harness_env(agent="agent-1", **extra):
    """The agent's environment as a harness passes it: coord on PATH, the agent's name;
    no COORD_HOME (the home is found from the worktree)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COORD_AGENT"] = agent
    env.update(extra)
    return env


def shell(cmd, cwd, stdin="", env=None):
    return subprocess.run(
        ["bash", "-c", cmd],
        input=stdin,
        cwd=cwd,
        env=env or harness_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def stdin_for(name, cwd) -> str:
    data = json.loads(recipes()[name])
    data["cwd"] = str(cwd)
    return json.dumps(data)


@pytest.fixture
def held(repo, cli):
    """w-1 spawned with a branch and worktree, started by agent-1: (worktree, cli)."""
    ok(cli("spawn", "w-1", "--task", "fix the parser"))
    ok(cli("--as", "agent-1", "start", "w-1"))
    return Path(ok(cli("show", "w-1", "--json")).json()["worktree"])


def test_every_recipe_is_found():
    assert set(recipes()) >= {
        "claude-code-settings",
        "claude-code-stdin-SessionStart",
        "claude-code-stdin-PreCompact",
        "mcp-json",
        "agents-md",
        "codex-hooks",
        "codex-stdin-SessionStart",
        "codex-notify",
        "codex-notify-argument",
        "agent-loop",
    }


def test_claude_code_session_start_primes_at_start_and_after_compaction(repo, cli, held):
    settings = json.loads(recipes()["claude-code-settings"])
    [entry] = settings["hooks"]["SessionStart"]
    for source in ("startup", "resume", "clear", "compact"):
        assert re.fullmatch(entry["matcher"], source), source
    [hook] = entry["hooks"]
    assert hook["type"] == "command"
    # The work came back while the context was being compacted: prime says so.
    ok(cli("--as", "agent-1", "done", "w-1"))
    ok(cli("--as", "rev", "request-changes", "w-1", "--reason", "add a test for empty input"))
    r = shell(hook["command"], held, stdin_for("claude-code-stdin-SessionStart", held))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "you are agent-1 (agent)" in out
    assert "w-1: WORKING, attempt 1" in out and "fix the parser" in out
    assert "add a test for empty input" in out
    assert "1 unread, 1 of them notices" in out and "changes_requested" in out
    assert "coord done" in out and "Exit codes" in out
    assert len(out.split()) < 600  # a few hundred words
    # prime acknowledges nothing: poll still delivers the notice.
    [n] = ok(cli("--as", "agent-1", "poll", "--json")).jsonl()
    assert n["notice"]["reason"] == "changes_requested"


def test_codex_hooks_prime_at_session_start_and_beat_before_compaction(repo, cli, held):
    hooks = json.loads(recipes()["codex-hooks"])["hooks"]
    [start] = hooks["SessionStart"]
    assert all(re.fullmatch(start["matcher"], s) for s in ("startup", "resume", "clear", "compact"))
    r = shell(start["hooks"][0]["command"], held, stdin_for("codex-stdin-SessionStart", held))
    assert r.returncode == 0, r.stderr
    assert "you are agent-1 (agent)" in r.stdout and "w-1: WORKING, attempt 1" in r.stdout
    [pre] = hooks["PreCompact"]
    r = shell(pre["hooks"][0]["command"], held, stdin_for("claude-code-stdin-PreCompact", held))
    assert r.returncode == 0, r.stderr
    beats = ok(cli("log", "--worker", "w-1", "--type", "worker.heartbeat", "--json")).jsonl()
    assert [(b["from"], b["payload"].get("note")) for b in beats] == [("agent-1", "compacting context")]


def test_claude_code_pre_compact_beats_in_the_worktree_and_never_fails(repo, cli, held, tmp_path):
    settings = json.loads(recipes()["claude-code-settings"])
    [entry] = settings["hooks"]["PreCompact"]
    [hook] = entry["hooks"]
    r = shell(hook["command"], held, stdin_for("claude-code-stdin-PreCompact", held))
    assert r.returncode == 0, r.stderr
    beats = ok(cli("log", "--worker", "w-1", "--type", "worker.heartbeat", "--json")).jsonl()
    assert [(b["from"], b["payload"].get("note")) for b in beats] == [("agent-1", "compacting context")]
    # Outside any worktree there is no worker to beat for: the hook still exits 0.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = shell(hook["command"], elsewhere, stdin_for("claude-code-stdin-PreCompact", elsewhere))
    assert r.returncode == 0


def test_agents_md_snippet_commands_work_in_the_worktree(repo, cli, held):
    snippet = recipes()["agents-md"]
    commands = re.findall(r"`(coord [^`]+)`", snippet)
    assert [c.split()[1] for c in commands] == ["prime", "heartbeat", "poll", "done"]
    for cmd in commands:
        r = shell(cmd, held)
        assert r.returncode == 0, (cmd, r.stderr)
    assert ok(cli("show", "w-1", "--json")).json()["state"] == "IN_REVIEW"


def test_codex_notify_beats_with_the_turn_json_as_last_argument(repo, cli, held):
    argv = tomllib.loads(recipes()["codex-notify"])["notify"]
    arg = json.loads(recipes()["codex-notify-argument"])
    arg["cwd"] = str(held)
    r = subprocess.run(
        [*argv, json.dumps(arg)], cwd=held, env=harness_env(), capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    beats = ok(cli("log", "--worker", "w-1", "--type", "worker.heartbeat", "--json")).jsonl()
    assert [(b["from"], b["payload"].get("note")) for b in beats] == [("agent-1", "codex turn")]


def test_mcp_json_starts_a_server_a_client_can_use(repo, cli, held):
    mcp = pytest.importorskip("mcp")
    import anyio
    from mcp.client.stdio import stdio_client

    spec = json.loads(recipes()["mcp-json"])["mcpServers"]["coord"]
    env = harness_env(agent="someone-else")
    env.update(spec.get("env", {}))
    params = mcp.StdioServerParameters(command=spec["command"], args=spec["args"], env=env, cwd=str(held))

    async def main():
        with anyio.fail_after(120):
            async with stdio_client(params) as (r, w):
                async with mcp.ClientSession(r, w) as s:
                    await s.initialize()
                    names = {t.name for t in (await s.list_tools()).tools}
                    res = await s.call_tool("prime", {})
                    return names, json.loads(res.content[0].text)

    names, primed = anyio.run(main)
    assert {"prime", "start", "poll", "done"} <= names
    assert primed["agent"] == "agent-1" and [h["worker"] for h in primed["holds"]] == ["w-1"]


MY_AGENT = """#!/bin/sh
# What an agent following `coord prime` does: beat, poll, hand in (or fail).
printf '%s' "$1" > "$BRIEFS/$COORD_WORKER.txt"
case "$(coord show "$COORD_WORKER" --json)" in *impossible*) exit 3 ;; esac
coord heartbeat --note "working on it" >/dev/null && coord poll >/dev/null && coord done --summary "did $COORD_WORKER"
"""


def test_agent_loop_takes_every_ready_worker_and_records_failures(repo, cli, tmp_path):
    for w, task in (("w-1", "parser"), ("w-2", "the impossible one")):
        ok(cli("spawn", w, "--task", task, "--no-git"))
    bin_dir, briefs = tmp_path / "bin", tmp_path / "briefs"
    bin_dir.mkdir()
    briefs.mkdir()
    (bin_dir / "my-agent").write_text(MY_AGENT)
    (bin_dir / "my-agent").chmod(0o755)
    env = harness_env(BRIEFS=str(briefs))
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    r = shell(recipes()["agent-loop"], repo, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    board = {d["worker"]: d for d in ok(cli("status", "--all", "--json")).json()}
    assert {w: d["state"] for w, d in board.items()} == {
        "w-1": "IN_REVIEW",
        "w-2": "FAILED",
    }
    assert board["w-2"]["reason"] == "my-agent exited with status 3"
    for w in ("w-1", "w-2"):
        brief = (briefs / f"{w}.txt").read_text()
        assert "you are agent-1" in brief and f"{w}: WORKING, attempt 1" in brief, shlex.quote(brief)
