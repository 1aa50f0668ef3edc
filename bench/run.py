"""Every benchmark in one run: prints one table of ratios and rates, each measured against
a baseline in the same run, and writes it into docs/performance.md (the generated section
between the bench markers) with the machine, the date and the configuration.

    .venv/bin/python bench/run.py            # the full configuration (1M events; ~15-25 min)
    .venv/bin/python bench/run.py --small    # seconds
    .venv/bin/python bench/run.py --small --doc /tmp/perf.md
    .venv/bin/python bench/run.py --smoke --doc /tmp/perf.md   # every row, tiny: the test suite runs it

The peer row needs the `eventsourcing` library (`pip install -e '.[bench]'`); the full
configuration installs it into this interpreter's environment when it is missing (unless
--no-install); without it, that row says "skipped".
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
import bigstore_bench  # noqa: E402
import foundation_bench  # noqa: E402
import memory_bench  # noqa: E402
import startup_bench  # noqa: E402
import store_bench  # noqa: E402
from common import ROOT, machine, precompile  # noqa: E402

CONFIGS = {
    # Every row at the least size that still measures it: what the test suite runs, so
    # the suite cannot rot (its figures mean little).
    "smoke": {
        "cli_runs": 1,
        "appends": 50,
        "writers": 3,
        "per_writer": 5,
        "racers": 3,
        "race_workers": 2,
        "race_rounds": 1,
        "workers": 20,
        "events": 1_000,
        "view_runs": 1,
        "rebuild_repeat": 1,
        "store_appends": 50,
        "writer_seconds": 0.3,
        "startup_runs": 1,
        "memory_lines": 2_000,
    },
    "small": {
        "cli_runs": 3,
        "appends": 300,
        "writers": 8,
        "per_writer": 20,
        "racers": 8,
        "race_workers": 3,
        "race_rounds": 2,
        "workers": 100,
        "events": 10_000,
        "view_runs": 2,
        "rebuild_repeat": 1,
        "store_appends": 500,
        "writer_seconds": 2.0,
        "startup_runs": 5,
        "memory_lines": 20_000,
    },
    "full": {
        "cli_runs": 40,
        "appends": 10_000,
        "writers": 8,
        "per_writer": 500,
        "racers": 8,
        "race_workers": 3,
        "race_rounds": 50,
        "workers": 10_000,
        "events": 1_000_000,
        "view_runs": 15,
        "rebuild_repeat": 3,
        "store_appends": 5_000,
        "writer_seconds": 10.0,
        "startup_runs": 20,
        "memory_lines": 1_000_000,
    },
}

# Row keys, in table order (the small test checks every one is printed).
ROWS = [
    "cli_stdlib",
    "cli_libs",
    "inproc",
    "peer",
    "coord_vs_peer",
    "import",
    "writers",
    "race",
    "rebuild",
    "rebuild_search",
    "cli_rebuild",
    "status",
    "status_all",
    "poll",
    "search",
    "append_kv",
    "append_app",
    "wal_pages",
    "writers_raw",
    "writers_fair",
    "startup_wheel",
    "startup_editable",
    "memory",
]

BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def ensure_peer(install: bool) -> str | None:
    why = foundation_bench.peer_available()
    if why is None or not install:
        return why
    print("installing eventsourcing for the peer row ...", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "eventsourcing"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return foundation_bench.peer_available()


def step(name, fn, *a, **kw):
    print(f"  {name} ...", file=sys.stderr, flush=True)
    t = time.perf_counter()
    r = fn(*a, **kw)
    print(f"  {name}: {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    return r


def measure(cfg: dict, peer_missing: str | None) -> dict:
    res = {}
    res["startup"] = step("CLI start-up", foundation_bench.startup, cfg["cli_runs"])
    res["inprocess"] = step(
        "in-process append", foundation_bench.inprocess, cfg["appends"], peer=peer_missing is None
    )
    res["writers"] = step("competing writers", foundation_bench.writers, cfg["writers"], cfg["per_writer"])
    res["race"] = step(
        "start --next race",
        foundation_bench.claim_race,
        cfg["racers"],
        cfg["race_workers"],
        cfg["race_rounds"],
    )
    res["store"] = step("append against (id, body) and the peer", store_bench.inprocess, cfg["store_appends"])
    res["writers_raw"] = step(
        "writers against raw writers", store_bench.writers, cfg["writers"], cfg["writer_seconds"]
    )
    res["startup_user"] = step("start-up from the wheel", startup_bench.startup, cfg["startup_runs"])
    with tempfile.TemporaryDirectory(prefix="coord-bench-mem-") as tmp:
        res["memory"] = step(
            "import/replay memory", memory_bench.measure, cfg["memory_lines"], cfg["workers"], Path(tmp)
        )
    with tempfile.TemporaryDirectory(prefix="coord-bench-run-") as tmp:
        res["big"] = step(
            "big store (import, views, rebuild)",
            bigstore_bench.big_store,
            Path(tmp),
            cfg["workers"],
            cfg["events"],
            cfg["view_runs"],
            cfg["rebuild_repeat"],
        )
    return res


def _n(x: float) -> str:
    return f"{x:,.0f}"


def rows(res: dict, cfg: dict, peer_missing: str | None) -> list[tuple]:
    """(key, measure, coord, baseline, ratio) per row. Ratios: '×' is coord's time over the
    baseline's (lower is better); '%' is coord's rate as a share of the baseline's."""
    s, i, w, r = res["startup"], res["inprocess"], res["writers"], res["race"]
    big = res["big"]
    imp, v, rb = big["import"], big["views"], big["rebuild"]
    ms = s["median_ms"]
    heart = ms["coord heartbeat"]
    out = [
        (
            "cli_stdlib",
            f"CLI append: `coord heartbeat` process (median of {cfg['cli_runs']})",
            f"{heart:.1f} ms",
            f"stdlib-only floor, same pragmas: {ms['floor: stdlib + insert']:.1f} ms",
            f"{s['ratio_vs_stdlib_floor']:.2f}×",
        ),
        (
            "cli_libs",
            "CLI append: `coord heartbeat` process (heartbeat_synchronous FULL), against the library floor",
            f"{heart:.1f} ms",
            f"click+msgspec+blake3 floor: {ms['floor: click+msgspec+blake3 + insert']:.1f} ms",
            f"{s['ratio_vs_libs_floor']:.2f}× (target ≤ 1.15)",
        ),
        (
            "inproc",
            f"In-process append: `lifecycle.act(c, 'heartbeat')`, one transaction each ({cfg['appends']:,}; "
            "heartbeat_synchronous FULL, as the floor)",
            f"{_n(i['api_appends_per_s'])}/s",
            f"raw sqlite3 single-row insert, same pragmas: {_n(i['raw_appends_per_s'])}/s",
            f"{i['ratio'] * 100:.0f}% (target ≥ 80%)",
        ),
    ]
    if peer_missing is None:
        out += [
            (
                "peer",
                "Peer: eventsourcing `SQLiteApplicationRecorder.insert_events`, one event per call",
                f"{_n(i['peer_appends_per_s'])}/s",
                f"raw sqlite3 insert: {_n(i['raw_appends_per_s'])}/s",
                f"{i['peer_vs_raw'] * 100:.0f}%",
            ),
            (
                "coord_vs_peer",
                "In-process append: coord against the peer (same workload, same run, both FULL)",
                f"{_n(i['api_appends_per_s'])}/s",
                f"eventsourcing: {_n(i['peer_appends_per_s'])}/s",
                f"{i['api_vs_peer'] * 100:.0f}%",
            ),
        ]
    else:
        out += [
            (
                "peer",
                "Peer: eventsourcing SQLite recorder",
                "skipped",
                f"not importable ({peer_missing})",
                "–",
            ),
            ("coord_vs_peer", "In-process append: coord against the peer", "skipped", "–", "–"),
        ]
    out += [
        (
            "import",
            f"Bulk import: `coord import` of a {imp['events']:,}-line audit file (whole process: "
            "check, append, project, write the file)",
            f"{_n(imp['coord_per_s'])} events/s ({imp['coord_s']:.1f} s)",
            f"raw `executemany` of the same rows, one transaction: {_n(imp['raw_per_s'])} events/s ({imp['raw_s']:.1f} s)",
            f"{imp['ratio'] * 100:.0f}%",
        ),
        (
            "writers",
            f"{w['writers']} competing writer processes × {cfg['per_writer']} heartbeats",
            f"{_n(w['events_per_s'])} events/s",
            f"one append: p50 {w['p50_ms']:.1f} ms, p99 {w['p99_ms']:.1f} ms, max {w['max_ms']:.1f} ms",
            "rate",
        ),
        (
            "race",
            f"`start --next` race: {r['racers']} processes on {r['workers_per_round']} workers, "
            f"{r['rounds']} rounds",
            f"{r['duplicate_claims']} duplicate claims",
            f"{r['claims']} claims, {r['nothing_to_claim']} "
            f"'nothing to claim' (exit 4), {r['other_exits']} other exits, {r['unclaimed']} left unclaimed",
            "must be 0",
        ),
        (
            "rebuild",
            f"Rebuild of the worker views: {rb['events']:,} lifecycle events "
            f"(of {rb['all_events']:,} in the store)",
            f"{_n(rb['rebuild_per_s'])} events/s (best of {cfg['rebuild_repeat']})",
            f"same SELECT + msgspec decode only: {_n(rb['read_per_s'])} events/s",
            f"{rb['ratio'] * 100:.0f}% (target ≥ 50%)",
        ),
        (
            "rebuild_search",
            f"Rebuild of the search index: {rb['search_rows']:,} events indexed or skipped (not heartbeats)",
            f"{_n(rb['search_per_s'])} events/s (best of {cfg['rebuild_repeat']})",
            f"same rows, SELECT + msgspec decode only: {_n(rb['search_read_per_s'])} events/s",
            f"{rb['search_ratio'] * 100:.0f}% (target ≥ 50%)",
        ),
        (
            "cli_rebuild",
            f"`coord rebuild` process (views + search index) over {rb['all_events']:,} events",
            f"{_n(rb['cli_rebuild_per_s'])} events/s ({rb['cli_rebuild_s']:.1f} s)",
            "–",
            "rate",
        ),
    ]
    log = v["median_ms"]["log"]
    scale = f"{v['workers']:,} workers, {v['events']:,} events"
    for key, cmd, what in (
        ("status", "status", f"{v['shown_by_status']:,} active workers shown"),
        ("status_all", "status --all", f"all {v['workers']:,} workers shown"),
        ("poll", "poll", "`--as agent-7 poll --peek --limit 20`"),
        ("search", "search", "`search 'flaky AND regression' --limit 20`"),
    ):
        out.append(
            (
                key,
                f"`coord {cmd}` process, {scale} ({what}; median of {v['runs']})",
                f"{v['median_ms'][cmd]:.0f} ms",
                f"`coord log --limit 20`, same store: {log:.0f} ms",
                f"{v['ratio_to_log'][cmd]:.2f}×",
            )
        )
    out += issue19_rows(res)
    assert [k for k, *_ in out] == ROWS
    return out


def issue19_rows(res: dict) -> list[tuple]:
    """The rows of issue 19 (bench/store_bench.py, startup_bench.py, memory_bench.py)."""
    st, wr, up, mem = res["store"], res["writers_raw"], res["startup_user"], res["memory"]
    r, c = wr["raw"], wr["coord"]
    app = st["per_s"].get("peer_app")
    ms = up["median_ms"]
    return [
        (
            "append_kv",
            f"In-process append (heartbeat, one transaction each; {st['appends']:,}), the issue's floor",
            f"{_n(st['per_s']['coord'])}/s",
            f"raw insert into `(id TEXT UNIQUE, body BLOB)`, same pragmas: {_n(st['per_s']['raw_kv'])}/s",
            f"{st['coord_vs_raw_kv'] * 100:.0f}% (target ≥ 70%); with heartbeat_synchronous=FULL "
            f"{st['coord_full_vs_raw_kv'] * 100:.0f}%, CPU {st['cpu_coord_full_over_raw_kv']:.2f}×",
        ),
        (
            "append_app",
            "In-process append against eventsourcing `Application.save` (one event per save)",
            f"{_n(st['per_s']['coord'])}/s",
            f"eventsourcing: {_n(app)}/s" if app else "skipped (eventsourcing not importable)",
            f"both FULL {st['coord_full_vs_peer_app']:.2f}× (target ≥ 1.0), CPU {st['cpu_coord_full_over_peer_app']:.2f}×; "
            f"both NORMAL for heartbeats {st['coord_vs_peer_normal']:.2f}×"
            if app
            else "–",
        ),
        (
            "wal_pages",
            "WAL pages written per append (heartbeat)",
            f"{st['wal_pages']['coord']:.1f}",
            f"raw (id, body) insert: {st['wal_pages']['raw_kv']:.1f}",
            f"{st['wal_pages']['coord'] / st['wal_pages']['raw_kv']:.1f}×",
        ),
        (
            "writers_raw",
            f"{wr['writers']} writer processes for {wr['seconds']:g} s each: coord, then raw inserts",
            f"p99 {c['p99_ms']:.1f} ms, worst {c['max_ms']:.0f} ms, {c['busy']} BUSY",
            f"raw: p99 {r['p99_ms']:.1f} ms, worst {r['max_ms']:.0f} ms, {r['busy']} BUSY",
            f"p99 {wr['p99_ratio']:.2f}× (≤ 10), worst {wr['max_ratio']:.2f}× (≤ 0.1)",
        ),
        (
            "writers_fair",
            "Fairness: the writer furthest from the mean count of appends",
            f"{c['worst_share'] * 100:.0f}% off (counts {min(c['counts'])}–{max(c['counts'])})",
            f"raw: {r['worst_share'] * 100:.0f}% off (counts {min(r['counts'])}–{max(r['counts'])})",
            "target ≤ 25%",
        ),
        (
            "startup_wheel",
            f"`coord heartbeat` process from the wheel in a scratch venv, PYTHONDONTWRITEBYTECODE=1 (median of {up['runs']})",
            f"{ms['wheel: coord heartbeat']:.1f} ms",
            f"library floor: {ms['floor: click+msgspec+blake3 + insert']:.1f} ms",
            f"{up['wheel_vs_floor']:.2f}×",
        ),
        (
            "startup_editable",
            "`coord heartbeat` process from the editable install (bytecode compiled), same run",
            f"{ms['editable: coord heartbeat']:.1f} ms",
            f"editable finder alone (`python -c pass`, editable venv minus the wheel's): {up['finder_ms']:.1f} ms",
            f"{up['editable_vs_floor']:.2f}× the floor",
        ),
        (
            "memory",
            f"Peak memory: `coord import` / `replay --from-file --at` of a {mem['lines']:,}-line file",
            f"{mem['import_mb']:.0f} MB / {mem['replay_mb']:.0f} MB",
            f"{mem['import_s']:.0f} s / {mem['replay_s']:.0f} s",
            "target ≤ 100 MB",
        ),
    ]


def table(rs: list[tuple]) -> str:
    lines = ["| measure | coord | baseline (same run) | ratio |", "|---|---|---|---|"]
    lines += [f"| {m} | {c} | {b} | {x} |" for _, m, c, b, x in rs]
    return "\n".join(lines)


def section(rs, cfg_name: str, cfg: dict, started: datetime.datetime, wall_s: float, load: tuple) -> str:
    cfg_text = ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in cfg.items())
    cmd = "bench/run.py" + ("" if cfg_name == "full" else f" --{cfg_name}")
    return f"""{BEGIN}
## Benchmark suite (generated by `bench/run.py`)

Generated by `.venv/bin/python {cmd}`; do not edit by hand (the next run replaces this
section). Every row is measured side by side with its baseline in the same run. Ratios:
`×` is coord's time over the baseline's (lower is better); `%` is coord's rate as a share
of the baseline's (higher is better).

- Machine: {machine()}
- Date: {started.strftime("%Y-%m-%d %H:%M UTC")}; whole run {wall_s / 60:.1f} min; load average at the start
  {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (the machine is shared: expect ±20%)
- Configuration `{cfg_name}`: {cfg_text}

{table(rs)}

How each row is measured (details in the docstrings of `bench/foundation_bench.py` and
`bench/bigstore_bench.py`):
- The floors and the raw inserts write one row into the same `events` table (same schema
  and indexes) with the same pragmas (WAL, `synchronous = FULL`), one `BEGIN IMMEDIATE`
  transaction each; coord also folds the worker view in that transaction and checks
  whether the audit file has anything to write after it. The in-process variants run in
  alternating blocks of 50 appends so drift of the machine hits all alike; the CLI
  variants alternate run by run. Bytecode is precompiled and kept, as on users' machines.
- The peer writes into its own table (`stored_events`, WITHOUT ROWID, one primary key, no
  other index, no projection), WAL and SQLite's default `synchronous` (FULL).
- The writers are separate processes appending heartbeats through the library; latency
  is one `act()` call, including the wait for the write lock.
- The race: each round spawns fresh workers, then starts all racers at once as real
  `coord start --next` processes; duplicates are counted from the log (a worker with a
  second `worker.started` and no `worker.released` between).
- The big store is the one the import row built: a generated audit file (valid ids) of
  workers going spawn → start → heartbeats and messages (text to agents, to '*', to the
  worker) → merged (40%), in review (20%), canceled (10%) or still working (30%), imported
  by a real `coord import` process. The raw baseline gets the parsed rows ready-made
  (parsing is not timed). The view commands run as whole processes, alternating.
{END}"""


def write_doc(doc: Path, text: str) -> None:
    """Replace the generated section, or put it first after the intro (before the first
    `## ` heading); the per-issue sections after it are kept as they are."""
    old = doc.read_text() if doc.exists() else "# Performance\n"
    if BEGIN in old and END in old:
        a, b = old.index(BEGIN), old.index(END) + len(END)
        new = old[:a] + text + old[b:]
    else:
        at = old.find("\n## ")
        if at < 0:
            new = old.rstrip("\n") + "\n\n" + text + "\n"
        else:
            new = old[: at + 1] + text + "\n\n" + old[at + 1 :]
    doc.write_text(new)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the small configuration (seconds)")
    ap.add_argument("--smoke", action="store_true", help="every row at its least size (the test suite's run)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave the doc alone")
    ap.add_argument("--doc", type=Path, default=ROOT / "docs" / "performance.md")
    ap.add_argument("--no-install", action="store_true", help="never pip install the peer")
    ap.add_argument("--json", type=Path, help="also write the raw figures as JSON to this file")
    a = ap.parse_args(argv)
    name = "smoke" if a.smoke else "small" if a.small else "full"
    cfg = CONFIGS[name]
    peer_missing = ensure_peer(install=not (a.small or a.smoke or a.no_install))
    started = datetime.datetime.now(datetime.UTC)
    load = os.getloadavg()
    t = time.perf_counter()
    precompile()
    # Every home and file the benches make goes under one directory, removed at the end.
    with tempfile.TemporaryDirectory(prefix="coord-bench-all-") as scratch:
        tempfile.tempdir = scratch
        try:
            res = measure(cfg, peer_missing)
        finally:
            tempfile.tempdir = None
    wall = time.perf_counter() - t
    rs = rows(res, cfg, peer_missing)
    print(f"machine: {machine()}\nconfiguration: {name} {json.dumps(cfg)}\n")
    print(table(rs))
    if a.json:
        a.json.write_text(json.dumps({"config": cfg, "results": res}, indent=2, default=str))
    if not a.no_write:
        write_doc(a.doc, section(rs, name, cfg, started, wall, load))
        print(f"\nwrote the generated section of {a.doc}")


if __name__ == "__main__":
    main()
