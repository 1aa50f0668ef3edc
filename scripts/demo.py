"""The demo: four simulated agents and a reviewer take workers through the whole
lifecycle with real `coord` processes, one failure and one retry included; then the
board is printed. Runs in a fresh home (./demo-home) each time."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "demo-home"


def coord(*args, agent=None, check=True):
    env = dict(os.environ, COORD_HOME=str(HOME / ".coord"))
    env.pop("COORD_WORKER", None)
    if agent:
        env["COORD_AGENT"] = agent
    else:
        env.pop("COORD_AGENT", None)
    cmd = [sys.executable, "-m", "coord", *args]
    who = agent or "human"
    print(f"\033[2m[{who}]\033[0m coord {' '.join(args)}" if sys.stdout.isatty() else f"[{who}] coord {' '.join(args)}")
    r = subprocess.run(cmd, env=env, text=True, capture_output=True)
    out = (r.stdout + r.stderr).rstrip()
    if out:
        print("    " + out.replace("\n", "\n    "))
    if check and r.returncode != 0:
        sys.exit(f"demo step failed with exit {r.returncode}")
    return r


def main():
    if HOME.exists():
        shutil.rmtree(HOME)
    HOME.mkdir()
    coord("init")
    coord("spawn", "parser-fix", "--task", "fix the tokenizer's off-by-one")
    coord("spawn", "retries", "--task", "add retries with backoff to the fetcher")
    coord("spawn", "docs", "--task", "document the config file", "--assignee", "agent-3")
    coord("spawn", "flaky-test", "--task", "stabilise test_network")
    # Agents claim work: exactly one wins each worker.
    coord("start", "--next", agent="agent-1")
    coord("start", "--next", agent="agent-2")
    coord("start", "docs", agent="agent-3")
    coord("start", "--next", agent="agent-4")
    for a, w in (("agent-1", "parser-fix"), ("agent-2", "retries"), ("agent-3", "docs"), ("agent-4", "flaky-test")):
        coord("heartbeat", w, "--note", "working", agent=a)
    # A refused action: nobody reviews their own work (exit 4, nothing appended).
    coord("done", "parser-fix", "--summary", "fixed, with a regression test", agent="agent-1")
    r = coord("approve", "parser-fix", agent="agent-1", check=False)
    print(f"    (exit {r.returncode}: refused as expected)")
    coord("approve", "parser-fix", "--note", "clean", agent="reviewer")
    coord("merge", "parser-fix", agent="reviewer")
    # Review asks for changes, the agent fixes and resubmits.
    coord("done", "retries", "--summary", "retries added", agent="agent-2")
    coord("request-changes", "retries", "--reason", "needs jitter", agent="reviewer")
    coord("heartbeat", "retries", "--note", "adding jitter", agent="agent-2")
    coord("done", "retries", "--summary", "retries with jittered backoff", agent="agent-2")
    coord("approve", "retries", agent="reviewer")
    coord("merge", "retries", agent="reviewer")
    # One failure and one retry, picked up by another agent.
    coord("fail", "flaky-test", "--reason", "cannot reproduce locally", agent="agent-4")
    coord("retry", "flaky-test", agent="reviewer")
    coord("start", "flaky-test", agent="agent-1")
    coord("heartbeat", "flaky-test", "--note", "bisecting", agent="agent-1")
    coord("done", "docs", "--summary", "config documented", agent="agent-3")
    print()
    coord("log", "--limit", "8")
    print()
    coord("status", "--all")


if __name__ == "__main__":
    main()
