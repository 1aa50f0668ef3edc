"""The work graph's benchmark (issue 14): the ready queue at 1k, 10k and 20k workers (in
process and as a CLI process), adding a dependency with its cycle check on a long chain
and on a wide fan-in, and a `start --next` race on a graph. Each figure is measured
beside a baseline in the same run; Beads' published figures are printed beside ours (Beads
itself is a Go program that cannot be installed on this machine, so it is not run).

    .venv/bin/python bench/graph_bench.py            # 1k/10k/20k, 8 racers × 50 rounds
    .venv/bin/python bench/graph_bench.py --smoke --no-write   # tiny: the test suite runs it

Writes its section of docs/performance.md (between the graph-bench markers).
"""

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fixtures"))
from common import COORD, ROOT, bench_env, fresh_home, machine, median, precompile  # noqa: E402
from make_graph import START, events  # noqa: E402

CONFIGS = {
    "smoke": {
        "sizes": [60, 120, 240],
        "runs": 3,
        "cli_runs": 1,
        "chain": 50,
        "fan": 20,
        "deps": 3,
        "racers": 3,
        "rounds": 1,
    },
    "full": {
        "sizes": [1000, 10000, 20000],
        "runs": 200,
        "cli_runs": 15,
        "chain": 5000,
        "fan": 1000,
        "deps": 30,
        "racers": 8,
        "rounds": 50,
    },
}
BEGIN, END = "<!-- graph-bench:begin -->", "<!-- graph-bench:end -->"
BEADS = "Beads (published, not run here): `bd ready` 30 ms at 10k issues on an M2 Pro; target < 50 ms at 20k"


def _import(home: Path, items) -> None:
    from coord.app.context import Coord
    from coord.events.audit_read import import_bodies
    from coord.events.records import AUDIT_DIRTY

    with Coord(home) as c:
        c.home.write_config({"synchronous": "NORMAL"})
        import_bodies(c.store, list(items), AUDIT_DIRTY)
        c.home.write_config({"synchronous": "FULL"})


def _walk_ready(c, limit: int) -> list:
    """The baseline: the ready queue without the columns, by walking the graph (every
    ASSIGNED view decoded, its dependencies' states read, sorted in Python)."""
    from coord.projections import board
    from coord.projections.graph import is_ready, split

    with c.store.read() as r:
        views = [board.decode_view(row.view) for row in r.views(states=["ASSIGNED"])]
        deps = sorted({a for v in views for a in v.after})
        states = r.states(deps)
    ready = [v for v in views if is_ready(v.state, split(v.after, states.get)[0])]
    ready.sort(key=lambda v: (v.priority, v.created, v.worker))
    return ready[:limit]


def ready_at_sizes(cfg) -> dict:
    """Every store built first, then measured in alternation (each size, then the walk,
    run after run), so the machine's drift hits every size alike."""
    from coord.app.context import Coord
    from coord.app.queries import ready_items

    out, coords = {}, {}
    try:
        for n in cfg["sizes"]:
            home = fresh_home("coord-graph-")
            t = time.perf_counter()
            _import(home, events(n))
            out[n] = {"home": str(home), "build_s": time.perf_counter() - t}
            c = coords[n] = Coord(home).__enter__()
            first = [d["worker"] for d in ready_items(c, 20)]
            assert first == [v.worker for v in _walk_ready(c, 20)], "the index and the walk disagree"
            out[n]["ready_workers"] = len(c.store.reader.ready_views())
        ours = {n: [] for n in coords}
        walk = {n: [] for n in coords}
        for _ in range(cfg["runs"]):
            for n, c in coords.items():
                t = time.perf_counter()
                ready_items(c, 20)
                ours[n].append(time.perf_counter() - t)
            for n, c in coords.items():
                if len(walk[n]) < max(3, cfg["runs"] // 4):  # the walk is slow: fewer runs
                    t = time.perf_counter()
                    _walk_ready(c, 20)
                    walk[n].append(time.perf_counter() - t)
    finally:
        for c in coords.values():
            c.close()
    for n in out:
        out[n]["ready_ms"] = median(ours[n]) * 1e3
        out[n]["walk_ms"] = median(walk[n]) * 1e3
    return out


def cli_vs_status(home: str, runs: int) -> dict:
    env = bench_env(COORD_HOME=home)
    cmds = {"ready": ["ready", "--limit", "20"], "status": ["status", "--state", "assigned"]}
    times = {k: [] for k in cmds}
    for _ in range(runs):
        for k, args in cmds.items():
            t = time.perf_counter()
            subprocess.run([COORD, *args], env=env, stdout=subprocess.DEVNULL, check=True)
            times[k].append(time.perf_counter() - t)
    r, s = median(times["ready"]) * 1e3, median(times["status"]) * 1e3
    return {"ready_ms": r, "status_ms": s, "ratio": r / s}


def _spawns(ids_after, t0=START):
    from coord.events.envelope import Envelope, canonical, event_id, us_to_ts

    out = []
    for i, (w, after) in enumerate(ids_after):
        p = {"task": w}
        if after:
            p["after"] = after
        body = canonical(Envelope(us_to_ts(t0 + i), "lead", w, "worker.spawned", p))
        out.append((event_id(body), body))
    return out


def dep_add_costs(cfg) -> dict:
    """Per `dep add` (cycle check included) on a chain and a fan-in, beside a priority
    change on the same store (an append with no walk)."""
    from coord.app import graph
    from coord.app.context import Coord
    from coord.events.errors import Cycle

    n, fan, k = cfg["chain"], cfg["fan"], cfg["deps"]
    chain = [(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(n)]
    leaves = [(f"l{i}", []) for i in range(fan)]
    extra = [(f"x{j}", []) for j in range(k)] + [(f"y{j}", []) for j in range(k)]
    home = fresh_home("coord-graph-deps-")
    _import(home, _spawns([*chain, *leaves, ("hub", [w for w, _ in leaves]), *extra]))
    res = {"chain": n, "fan": fan, "n": k}
    with Coord(home, actor="lead") as c:
        t_chain, t_fan, t_prio, t_cycle = [], [], [], []
        for j in range(k):
            t = time.perf_counter()
            graph.dep(c, f"x{j}", f"c{n - 1}")  # walks the whole chain: no cycle
            t_chain.append(time.perf_counter() - t)
            t = time.perf_counter()
            graph.dep(c, f"y{j}", "hub")  # walks the hub's fan-in
            t_fan.append(time.perf_counter() - t)
            t = time.perf_counter()
            graph.prioritize(c, f"x{j}", j % 5 if j % 5 != 2 else 3)
            t_prio.append(time.perf_counter() - t)
            t = time.perf_counter()
            try:
                graph.dep(c, "c0", f"c{n - 1}")  # closes a cycle of n: found and named
                raise AssertionError("a cycle was not refused")
            except Cycle:
                pass
            t_cycle.append(time.perf_counter() - t)
    res.update(
        chain_ms=median(t_chain) * 1e3,
        fan_ms=median(t_fan) * 1e3,
        prio_ms=median(t_prio) * 1e3,
        cycle_ms=median(t_cycle) * 1e3,
    )
    return res


def race(cfg) -> dict:
    """Rounds of `start --next` by real processes on a graph: 4 ready workers (one of them
    the root others wait for) and 4 that wait; every claim must be distinct and of a
    worker that was ready."""
    from coord.app import lifecycle
    from coord.app.context import Coord

    home = fresh_home("coord-graph-race-")
    env = bench_env(COORD_HOME=str(home))
    claims = doubles = not_ready = other = 0
    for rnd in range(cfg["rounds"]):
        ready = [f"r{rnd}-{i}" for i in range(4)]
        waiting = [f"q{rnd}-{i}" for i in range(4)]
        with Coord(home, actor="lead") as c:
            for w in ready:
                lifecycle.act(c, "spawn", w, {"priority": 1})
            for w in waiting:
                lifecycle.act(c, "spawn", w, {"after": [ready[0]], "priority": 0})
        procs = [
            subprocess.Popen(
                [COORD, "--as", f"agent-{i}", "--json", "start", "--next"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for i in range(cfg["racers"])
        ]
        won = []
        for p in procs:
            code = p.wait(timeout=300)
            out = p.stdout.read()
            if code == 0:
                won.append(json.loads(out)["worker"])
            elif code != 4:
                other += 1
        claims += len(won)
        doubles += len(won) - len(set(won))
        not_ready += sum(1 for w in won if w not in ready)
        with Coord(home, actor="lead") as c:  # what is left this round is canceled
            for w in ready + waiting:
                if w not in won:
                    lifecycle.act(c, "cancel", w, {})
    return {
        "racers": cfg["racers"],
        "rounds": cfg["rounds"],
        "claims": claims,
        "double_claims": doubles,
        "not_ready_claims": not_ready,
        "other_exits": other,
    }


def rows(res, cfg) -> list[tuple]:
    sizes = cfg["sizes"]
    r = res["ready"]
    out = []
    for n in sizes:
        out.append(
            (
                f"`ready --limit 20` in process, {n:,} workers ({r[n]['ready_workers']:,} ready)",
                f"{r[n]['ready_ms']:.2f} ms",
                f"walking the graph instead: {r[n]['walk_ms']:.1f} ms",
                f"{r[n]['ready_ms'] / r[n]['walk_ms']:.3f}×",
            )
        )
    big, small = r[sizes[-1]]["ready_ms"], r[sizes[0]]["ready_ms"]
    out.append(
        (
            f"`ready --limit 20`: {sizes[-1]:,} workers against {sizes[0]:,}",
            f"{big:.2f} ms",
            f"{small:.2f} ms at {sizes[0]:,}; {BEADS}",
            f"{big / small:.2f}× (target ≤ 1.5)",
        )
    )
    cli = res["cli"]
    out.append(
        (
            f"`coord ready --limit 20` process, {res['cli_size']:,} workers (median of {cfg['cli_runs']})",
            f"{cli['ready_ms']:.0f} ms",
            f"`coord status --state assigned`, same store: {cli['status_ms']:.0f} ms",
            f"{cli['ratio']:.2f}× (target ≤ 1.1)",
        )
    )
    d = res["deps"]
    out += [
        (
            f"`dep add` (cycle check walks a {d['chain']:,}-long chain; median of {d['n']})",
            f"{d['chain_ms']:.1f} ms",
            f"`priority` on the same store (no walk): {d['prio_ms']:.1f} ms",
            f"{d['chain_ms'] / d['prio_ms']:.2f}×",
        ),
        (
            f"`dep add` (cycle check walks a {d['fan']:,}-wide fan-in)",
            f"{d['fan_ms']:.1f} ms",
            f"`priority`: {d['prio_ms']:.1f} ms",
            f"{d['fan_ms'] / d['prio_ms']:.2f}×",
        ),
        (
            f"`dep add` refused: closes a cycle of {d['chain']:,} (found and named; nothing appended)",
            f"{d['cycle_ms']:.1f} ms",
            f"`priority`: {d['prio_ms']:.1f} ms",
            f"{d['cycle_ms'] / d['prio_ms']:.2f}×",
        ),
    ]
    rc = res["race"]
    out.append(
        (
            f"`start --next` race on a graph: {rc['racers']} processes × {rc['rounds']} rounds "
            "(4 ready, 4 waiting per round)",
            f"{rc['double_claims']} double claims, {rc['not_ready_claims']} claims of a worker not ready",
            f"{rc['claims']} claims, {rc['other_exits']} exits other than 0 and 4",
            "must be 0",
        )
    )
    return out


def table(rs) -> str:
    lines = ["| measure | coord | baseline (same run) | ratio |", "|---|---|---|---|"]
    lines += [f"| {m} | {c} | {b} | {x} |" for m, c, b, x in rs]
    return "\n".join(lines)


def section(rs, name, started, wall) -> str:
    cmd = "bench/graph_bench.py" + ("" if name == "full" else f" --{name}")
    return f"""{BEGIN}
## The work graph (generated by `bench/graph_bench.py`)

Generated by `.venv/bin/python {cmd}`; the next run replaces this section. The graphs
come from `fixtures/make_graph.py` (seeded; Beads' benchmark shape: 10 % hubs waiting for
their group, 20 % of the other edges crossing groups, about half the workers closed),
imported into a fresh home. Beads is a Go program that cannot be installed here: its
published figures are quoted, not measured; our baseline in the same run is the same
answer computed by walking the graph (every ASSIGNED view decoded, its dependencies'
states read, sorted), which is what `ready` would cost without the indexed columns.

- Machine: {machine()} (shared, 2 cores: expect ±20 %)
- Date: {started.strftime("%Y-%m-%d %H:%M UTC")}; whole run {wall / 60:.1f} min

{table(rs)}
{END}"""


def write_doc(doc: Path, text: str) -> None:
    old = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in old and END in old:
        a, b = old.index(BEGIN), old.index(END) + len(END)
        doc.write_text(old[:a] + text + old[b:])
    else:
        doc.write_text(old.rstrip("\n") + "\n\n" + text + "\n")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    a = ap.parse_args(argv)
    name = "smoke" if a.smoke else "full"
    cfg = CONFIGS[name]
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    precompile()
    with tempfile.TemporaryDirectory(prefix="coord-graph-bench-") as scratch:
        tempfile.tempdir = scratch
        try:
            res = {"ready": ready_at_sizes(cfg)}
            mid = cfg["sizes"][1]
            res["cli_size"] = mid
            res["cli"] = cli_vs_status(res["ready"][mid]["home"], cfg["cli_runs"])
            res["deps"] = dep_add_costs(cfg)
            res["race"] = race(cfg)
        finally:
            tempfile.tempdir = None
    rs = rows(res, cfg)
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}\n")
    print(table(rs))
    rc = res["race"]
    if rc["double_claims"] or rc["not_ready_claims"] or rc["other_exits"]:
        print("RACE FAILED", rc, file=sys.stderr)
        return 1
    if not a.no_write:
        write_doc(a.doc, section(rs, name, started, time.perf_counter() - t0))
        print(f"\nwrote the graph section of {a.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
