"""Crash-loop machinery shared by tests and bench: writer processes that print every
event id they were told succeeded, killed with SIGKILL at random moments."""

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

from coord.events.envelope import event_id

# Library writer: each acknowledged append is printed (and flushed) only after act()
# returned, i.e. after COMMIT: what a caller was told succeeded.
LIB_WRITER = textwrap.dedent("""
    import sys, random
    from coord.app.context import Coord
    from coord.app import lifecycle
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
                    r = lifecycle.act(c, action, w, {"note": "x" * rnd.randrange(0, 3000)} if action == "heartbeat" else {})
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


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


FIRST_ACK_TIMEOUT = 180.0  # s a writer may take to get its first event acknowledged


class _Writer:
    """One writer process and a thread reading what it tells (its ACK/ERR lines)."""

    def __init__(self, p: subprocess.Popen, delay: float, name: str):
        self.p, self.delay, self.name = p, delay, name
        self.lines: list[str] = []
        self.first_ack_at = None
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line)
            if self.first_ack_at is None and line.startswith("ACK ") and line.endswith("\n"):
                self.first_ack_at = time.monotonic()


def run_round(home, tmp, rnd: random.Random, writers=3, kind="lib", min_s=0.0, max_s=1.0, env=None):
    """Start writers, SIGKILL each (its whole process group) at a random moment after it
    was told its first event succeeded: between min_s and max_s seconds after that first
    acknowledgement. A kill is never scheduled by the clock alone, so a slow or loaded
    machine cannot turn a round into one where nothing could be acknowledged; a writer
    that acknowledges nothing within FIRST_ACK_TIMEOUT fails the round.
    Returns (acknowledged ids, error lines)."""
    script = tmp / f"{kind}_writer.py"
    script.write_text(WRITERS[kind])
    e = dict(os.environ, **(env or {}))
    ws = []
    try:
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
            ws.append(_Writer(p, rnd.uniform(min_s, max_s), me))
        give_up = time.monotonic() + FIRST_ACK_TIMEOUT
        alive = list(ws)
        while alive:
            now = time.monotonic()
            for w in list(alive):
                if w.first_ack_at is not None and now >= w.first_ack_at + w.delay:
                    _kill_group(w.p.pid)
                    alive.remove(w)
                elif w.first_ack_at is None and (now >= give_up or w.p.poll() is not None):
                    w.reader.join(5)  # it may have told before it exited
                    if w.first_ack_at is not None:
                        continue
                    raise AssertionError(
                        f"writer {w.name} acknowledged nothing "
                        + (
                            f"in {FIRST_ACK_TIMEOUT:g}s"
                            if w.p.poll() is None
                            else f"and exited {w.p.returncode}"
                        )
                        + f"; it said: {''.join(w.lines)[-500:]!r}"
                    )
            time.sleep(0.005)
    finally:
        for w in ws:
            _kill_group(w.p.pid)  # what it started, too, if it exited by itself
            w.p.wait()
    acks, errs = [], []
    for w in ws:
        w.reader.join(30)
        for line in w.lines:
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
    from coord.app.context import Coord
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
        assert board.stored_views(c.store.reader) == board.fold_from_zero(c.store)[0]
    return len(ids)
