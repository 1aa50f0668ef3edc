"""Crash-loop machinery shared by tests and bench: writer processes that print every
event id they were told succeeded, killed with SIGKILL at random moments."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from coord.events.envelope import event_id

# Library writer: each acknowledged append is printed (and flushed) only after act()
# returned, i.e. after COMMIT: what a caller was told succeeded.
LIB_WRITER = textwrap.dedent("""
    import sys, random
    from coord.api import Coord
    from coord.events.errors import CoordError
    home, me = sys.argv[1], sys.argv[2]
    rnd = random.Random(me)
    with Coord(home, actor=me) as c:
        n = 0
        while True:
            n += 1
            w = f"{me}-{n}"
            for action in ("spawn", "start", "heartbeat", "heartbeat", "done"):
                try:
                    r = c.act(action, w, {"note": "x" * rnd.randrange(0, 3000)} if action == "heartbeat" else {})
                except CoordError as e:
                    sys.stdout.write(f"ERR {e.exit_code} {e.message}\\n"); sys.stdout.flush()
                    continue
                if r.event:  # one write per line: a kill cannot leave half an id behind
                    sys.stdout.write(f"ACK {r.event}\\n"); sys.stdout.flush()
""")

# CLI writer: runs real `coord` processes; prints ACK for each exit 0 (the --json result).
CLI_WRITER = textwrap.dedent("""
    import sys, json, subprocess, os
    home, me = sys.argv[1], sys.argv[2]
    env = dict(os.environ, COORD_HOME=home, COORD_AGENT=me)
    n = 0
    while True:
        n += 1
        w = f"{me}-{n}"
        for args in (["spawn", w], ["start", w], ["heartbeat", w], ["done", w]):
            r = subprocess.run([sys.executable, "-m", "coord", "--json", *args], env=env,
                               capture_output=True, text=True)
            if r.returncode == 0:
                ev = json.loads(r.stdout).get("event")
                if ev:
                    sys.stdout.write(f"ACK {ev}\\n"); sys.stdout.flush()
            else:
                sys.stdout.write(f"ERR {r.returncode} {r.stderr.strip()}\\n"); sys.stdout.flush()
""")


# `coord run` writer: spawns a worker and runs a short child under `coord run`; the
# outcome event (done) is acknowledged when `coord run --json` reports it.
RUN_WRITER = textwrap.dedent("""
    import sys, json, subprocess, os
    home, me = sys.argv[1], sys.argv[2]
    env = dict(os.environ, COORD_HOME=home, COORD_AGENT=me)
    n = 0
    while True:
        n += 1
        w = f"{me}-{n}"
        r = subprocess.run([sys.executable, "-m", "coord", "--json", "spawn", w], env=env,
                           capture_output=True, text=True)
        if r.returncode == 0:
            sys.stdout.write("ACK " + json.loads(r.stdout)["event"] + "\\n"); sys.stdout.flush()
        r = subprocess.run([sys.executable, "-m", "coord", "--json", "run", w, "--here",
                            "--interval", "0.05", "--", sys.executable, "-c",
                            "import time; print('working', flush=True); time.sleep(0.15)"],
                           env=env, capture_output=True, text=True)
        last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
        if r.returncode == 0 and last.startswith("{"):
            ev = json.loads(last).get("event")
            if ev:
                sys.stdout.write("ACK " + ev + "\\n"); sys.stdout.flush()
        elif r.returncode != 0:
            sys.stdout.write(f"ERR {r.returncode} {r.stderr.strip()}\\n"); sys.stdout.flush()
""")

WRITERS = {"lib": LIB_WRITER, "cli": CLI_WRITER, "run": RUN_WRITER}


def run_round(home, tmp, rnd: random.Random, writers=3, kind="lib", min_s=0.2, max_s=1.2, env=None):
    """Start writers, SIGKILL each (its whole process group) at a random moment.
    Returns (acknowledged ids, error lines)."""
    script = tmp / f"{kind}_writer.py"
    script.write_text(WRITERS[kind])
    e = dict(os.environ, **(env or {}))
    procs = []
    for _i in range(writers):
        me = f"{kind}{rnd.randrange(10**9)}"
        p = subprocess.Popen(
            [sys.executable, str(script), str(home), me],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=e,
            start_new_session=True,
        )
        procs.append((p, time.monotonic() + rnd.uniform(min_s, max_s)))
    acks, errs = [], []
    for p, deadline in sorted(procs, key=lambda x: x[1]):
        time.sleep(max(0.0, deadline - time.monotonic()))
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        for line in out.splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # killed while telling: the caller was never told
            line = line[:-1]
            if line.startswith("ACK "):
                acks.append(line[4:])
            elif line.startswith("ERR "):
                errs.append(line)
    return acks, errs


def check_store(home, acks):
    """After a crash: integrity ok, seq gapless, every acknowledged event present once,
    every stored event hashes to its id, views equal a fresh fold."""
    from coord.api import Coord
    from coord.projections import board

    con = sqlite3.connect(str(home / "coord.db"))
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1)), "seq has gaps"
        ids = {}
        for eid, body in con.execute("SELECT id, body FROM events"):
            assert event_id(body) == eid
            ids[eid] = ids.get(eid, 0) + 1
        missing = [a for a in acks if a not in ids]
        assert not missing, f"{len(missing)} acknowledged events lost"
        assert all(v == 1 for v in ids.values())
    finally:
        con.close()
    with Coord(home) as c:
        assert board.stored_views(c.conn) == board.fresh_fold(c.conn)
    return len(ids)
