"""The demo: simulated agents take workers through the whole lifecycle with real `coord`
processes in a scratch git repository (./demo-home, made afresh each run): each worker
gets its own branch and worktree, agents commit real changes, `done` rebases, `merge`
merges. One review sends work back (its agent learns it from `poll`: a notice), an agent
primes itself after compaction, one worker fails and is retried. Then the board.

    ./demo.sh            # the story, then the board, and exit
    ./demo.sh --serve    # ... then serve the live web board (coord serve) until Ctrl-C
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOME = ROOT / "demo-home"
TTY = sys.stdout.isatty()
GIT_ENV = {
    "GIT_AUTHOR_NAME": "demo",
    "GIT_AUTHOR_EMAIL": "demo@example.invalid",
    "GIT_COMMITTER_NAME": "demo",
    "GIT_COMMITTER_EMAIL": "demo@example.invalid",
}


def say(text):
    print(f"\n\033[1m# {text}\033[0m" if TTY else f"\n# {text}")


def coord(*args, agent=None, check=True, cwd=HOME):
    env = dict(os.environ, **GIT_ENV)
    for k in ("COORD_WORKER", "COORD_HOME", "COORD_AGENT"):
        env.pop(k, None)
    if agent:
        env["COORD_AGENT"] = agent
    who = agent or "human"
    print(f"[{who}] coord {' '.join(args)}")
    r = subprocess.run(
        [sys.executable, "-m", "coord", *args], env=env, cwd=cwd, text=True, capture_output=True
    )
    out = (r.stdout + r.stderr).rstrip()
    if out:
        print("    " + out.replace("\n", "\n    "))
    if check and r.returncode != 0:
        sys.exit(f"demo step failed with exit {r.returncode}")
    return r


def git(*args, cwd=HOME):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=dict(os.environ, **GIT_ENV))


def work(worker, filename, text, message):
    """An agent's real work: edit a file in its worktree and commit it."""
    wt = HOME / ".coord" / "worktrees" / worker
    (wt / filename).write_text(text)
    git("add", filename, cwd=wt)
    git("commit", "-qm", message, cwd=wt)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def serve():
    """Become `coord serve` on the demo's home: it prints the board's address and serves
    until Ctrl-C."""
    say("the live web board: open the address below in a browser; Ctrl-C stops it")
    port = "8765" if port_free(8765) else "0"
    env = {k: v for k, v in os.environ.items() if k not in ("COORD_WORKER", "COORD_HOME", "COORD_AGENT")}
    sys.stdout.flush()
    os.chdir(HOME)
    os.execve(sys.executable, [sys.executable, "-m", "coord", "serve", "--port", port], env)


def main(argv=None):
    ap = argparse.ArgumentParser(description="The coord demo: simulated agents, real git, real coord.")
    ap.add_argument("--serve", action="store_true", help="end by serving the live web board (coord serve)")
    args = ap.parse_args(argv)
    if HOME.exists():
        shutil.rmtree(HOME)
    HOME.mkdir()
    git("init", "-q", "-b", "main")
    (HOME / "README").write_text("a tiny project\n")
    git("add", "README")
    git("commit", "-qm", "initial commit")
    say("a home in a git repository; the lead spawns four workers (one branch and worktree each)")
    coord("init")
    coord("spawn", "parser-fix", "--task", "fix the tokenizer's off-by-one")
    coord("spawn", "retries", "--task", "add retries with backoff to the fetcher")
    coord("spawn", "docs", "--task", "document the config file", "--assignee", "agent-3")
    coord("spawn", "flaky-test", "--task", "stabilise test_network")

    say("the plan: release-notes waits for parser-fix and retries; a cycle is refused")
    coord(
        "spawn", "release-notes", "--task", "write the release notes",
        "--after", "parser-fix", "--after", "retries", "--priority", "1",
    )  # fmt: skip
    r = coord("dep", "add", "parser-fix", "release-notes", check=False)
    print(f"    (exit {r.returncode}: refused, and nothing was appended)")
    coord("ready")

    say("agents claim work: exactly one wins each worker")
    coord("start", "--next", agent="agent-1")
    coord("start", "--next", agent="agent-2")
    coord("start", "docs", agent="agent-3")
    coord("start", "--next", agent="agent-4")
    for a, w in (
        ("agent-1", "parser-fix"),
        ("agent-2", "retries"),
        ("agent-3", "docs"),
        ("agent-4", "flaky-test"),
    ):
        coord("heartbeat", w, "--note", "reading the code", agent=a)

    say("agent-1 commits a fix and hands it in; nobody approves their own work")
    work("parser-fix", "tokenizer.py", "def tokens(s):\n    return s.split()\n", "fix off-by-one")
    coord("done", "parser-fix", "--summary", "fixed, with a regression test", agent="agent-1")
    r = coord("approve", "parser-fix", agent="agent-1", check=False)
    print(f"    (exit {r.returncode}: refused, and nothing was appended)")
    coord("approve", "parser-fix", "--note", "clean", agent="reviewer")
    coord("merge", "parser-fix", agent="reviewer")

    say("a review sends the work back; agent-2 learns it from poll alone (a notice), and resubmits")
    work("retries", "fetch.py", "RETRIES = 3\n", "retries")
    coord("done", "retries", "--summary", "retries added", agent="agent-2")
    coord("request-changes", "retries", "--reason", "needs jitter", agent="reviewer")
    coord("poll", agent="agent-2")
    coord("heartbeat", "retries", "--note", "adding jitter", agent="agent-2")
    work("retries", "fetch.py", "RETRIES = 3\nJITTER = 0.1\n", "jitter")
    coord("done", "retries", "--summary", "retries with jittered backoff", agent="agent-2")
    coord("approve", "retries", agent="reviewer")
    coord("merge", "retries", agent="reviewer")

    say("release-notes is ready now (what it waited for is merged): start --next takes it first")
    coord("ready")
    coord("start", "--next", agent="agent-2")

    say("after its context is compacted, an agent asks coord what it holds and what comes next")
    coord("prime", agent="agent-3")

    say("one failure and one retry, picked up by another agent")
    coord("fail", "flaky-test", "--reason", "cannot reproduce locally", agent="agent-4")
    coord("retry", "flaky-test", agent="reviewer")
    coord("start", "flaky-test", agent="agent-1")
    coord("heartbeat", "flaky-test", "--note", "bisecting", agent="agent-1")
    work("docs", "CONFIG.md", "# Configuration\n", "document config")
    coord("done", "docs", "--summary", "config documented", agent="agent-3")

    say("history: the last events, the integration branch, and the board")
    coord("log", "--limit", "6")
    print(
        subprocess.run(
            ["git", "log", "--oneline", "--graph", "main"], cwd=HOME, text=True, capture_output=True
        ).stdout.rstrip()
    )
    coord("verify")
    print()
    coord("status", "--all")
    print(f"\n(the demo's home is {HOME}; try: cd demo-home && ../.venv/bin/coord show flaky-test)")
    if args.serve:
        serve()


if __name__ == "__main__":
    main()
