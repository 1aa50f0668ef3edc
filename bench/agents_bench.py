"""Issue 15 figures: `coord prime` as a process against `coord status` on the same store
(median times, their ratio; and prime's length in words), on a store of `--workers`
workers and on one of 10 (where `status` has little to print), and an MCP tool call's round
trip (client → `coord mcp` → store → client) for `heartbeat` and `poll`, p50, against
the same action as a CLI process.

    .venv/bin/python bench/agents_bench.py [--workers 500] [--runs 21] [--calls 200]

The store: `--workers` workers, a third of them WORKING under 20 agents, the rest
ASSIGNED; agent-1 holds two (one sent back: a notice) and has five messages. Process
runs alternate (prime, status, prime --role lead, …) so drift of the machine hits all
alike. The MCP client is the SDK's stdio client, one session, calls one after another.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COORD, bench_env, fresh_home, machine, median, pct, precompile  # noqa: E402


def build(workers: int) -> Path:
    from coord.app import lifecycle, messages
    from coord.app.context import Coord

    home = fresh_home("coord-bench-agents-")
    with Coord(home, actor="lead") as c:
        for i in range(workers):
            lifecycle.act(c, "spawn", f"w-{i}", {"task": f"task number {i}"})
        for i in range(0, workers, 3):
            lifecycle.act(c, "start", f"w-{i}", actor=f"agent-{i % 20 + 2}")
        lifecycle.act(c, "start", "w-1", actor="agent-1")
        lifecycle.act(c, "done", "w-1", actor="agent-1")
        lifecycle.act(c, "request-changes", "w-1", {"reason": "add tests"}, actor="rev")
        for i in range(5):
            messages.send(c, "agent-1", "note", {"text": f"note {i}"}, actor="lead")
    return home


def processes(home: Path, runs: int) -> dict:
    env = bench_env(COORD_HOME=str(home))
    cmds = {
        "status": [COORD, "--as", "agent-1", "status"],
        "prime": [COORD, "--as", "agent-1", "prime"],
        "prime --role lead": [COORD, "--as", "lead", "prime", "--role", "lead"],
    }
    times = {k: [] for k in cmds}
    words = {}
    for _ in range(runs):
        for k, cmd in cmds.items():
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            times[k].append(time.perf_counter() - t)
            assert r.returncode == 0, r.stderr
            words[k] = len(r.stdout.split())
    med = {k: median(v) * 1e3 for k, v in times.items()}
    return {
        "median_ms": med,
        "ratio_prime": med["prime"] / med["status"],
        "ratio_lead": med["prime --role lead"] / med["status"],
        "words": {k: words[k] for k in ("prime", "prime --role lead")},
    }


def cli_calls(home: Path, calls: int) -> dict:
    env = bench_env(COORD_HOME=str(home))
    out = {"heartbeat": [], "poll": []}
    for i in range(calls):
        for k, cmd in (
            ("heartbeat", [COORD, "--as", "agent-1", "heartbeat", "w-0-mcp", "--note", f"n{i}"]),
            ("poll", [COORD, "--as", "agent-1", "poll", "--json"]),
        ):
            t = time.perf_counter()
            r = subprocess.run(cmd, env=env, capture_output=True)
            out[k].append(time.perf_counter() - t)
            assert r.returncode == 0, r.stderr
    return {k: pct(v, 50) * 1e3 for k, v in out.items()}


def mcp_calls(home: Path, calls: int) -> dict:
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(
        command=COORD,
        args=["--as", "agent-1", "mcp", "--interval", "3600"],
        env=bench_env(COORD_HOME=str(home)),
    )
    out = {"heartbeat": [], "poll": []}

    async def main():
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as s:
                await s.initialize()
                for i in range(calls):
                    for k, args in (("heartbeat", {"worker": "w-0-mcp", "note": f"n{i}"}), ("poll", {})):
                        t = time.perf_counter()
                        res = await s.call_tool(k, args)
                        out[k].append(time.perf_counter() - t)
                        assert not res.is_error, res.content[0].text

    anyio.run(main)
    return {k: pct(v, 50) * 1e3 for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--calls", type=int, default=200)
    a = ap.parse_args(argv)
    precompile()
    home = build(a.workers)
    from coord.app import lifecycle
    from coord.app.context import Coord

    with Coord(home, actor="agent-1") as c:  # the worker the round trips beat for
        lifecycle.act(c, "spawn", "w-0-mcp", {}, actor="lead")
        lifecycle.act(c, "start", "w-0-mcp")
    procs = processes(home, a.runs)
    small = processes(build(10), a.runs)  # where status has little to print
    cli = cli_calls(home, max(1, a.calls // 10))
    mcp = mcp_calls(home, a.calls)
    res = {
        "machine": machine(),
        "load_average_at_end": os.getloadavg(),
        "config": vars(a),
        "processes": procs,
        "processes_10_workers": small,
        "round_trip_p50_ms": {
            k: {"mcp": mcp[k], "cli_process": cli[k], "ratio": mcp[k] / cli[k]} for k in ("heartbeat", "poll")
        },
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
