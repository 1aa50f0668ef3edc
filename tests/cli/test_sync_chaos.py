"""The proof of `coord sync` (issue 20): two clones and a bare remote; in each, an agent
keeps appending (spawns, messages to `dev`, and `dev` polling and acknowledging) while a
loop runs `coord sync` and interrupts it at random moments (Ctrl-C or SIGTERM to its
process group, so git's own steps are interrupted too). Afterwards, with one last sync
on each side: both clones hold the same set of lines, every event an agent was told was
appended is in each store exactly once, `verify` is clean in both, and `poll` on either
clone delivers none of the messages `dev` acknowledged anywhere (and every other one).

A few rounds in the default run; 50 per clone with --runslow (docs/audit.md has the
figures). Real processes throughout: the agents, the syncs, git."""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from helpers import coord_cmd, g, ok

AGENT = r"""
import json, os, subprocess, sys
coord, home, actor, out, stop = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
env = {**os.environ, "COORD_HOME": home}
def run(*args):
    r = subprocess.run([*coord, *args], env=env, capture_output=True, text=True)
    return r
i = 0
with open(out, "a") as log:
    while not os.path.exists(stop) or i < 4:
        i += 1
        kind = ("spawn", "send", "poll")[i % 3]
        if kind == "spawn":
            r = run("spawn", f"{actor}-w{i}", "--no-git", "--json")
        elif kind == "send":
            r = run("--as", actor, "send", "n", "--text", f"{actor} {i}", "--to", "dev", "--json")
        else:
            r = run("--as", "dev", "poll", "--json")
        if r.returncode != 0:
            log.write(json.dumps({"kind": kind, "error": r.returncode, "stderr": r.stderr}) + "\n")
            continue
        if kind == "poll":
            ids = [json.loads(x)["id"] for x in r.stdout.splitlines() if x.strip()]
            log.write(json.dumps({"kind": "poll", "delivered": ids}) + "\n")
        else:
            log.write(json.dumps({"kind": kind, "event": json.loads(r.stdout)["event"]}) + "\n")
        log.flush()
"""

INTERRUPTED = {-signal.SIGINT, -signal.SIGTERM, 130, 143}
# A sync may also give up (exit 4) when the other clone kept pushing through all its rounds.
FINE = {0, 4} | INTERRUPTED


def two_clones(tmp_path, cli, sync_branch):
    origin, a, b = tmp_path / "origin.git", tmp_path / "a", tmp_path / "b"
    a.mkdir()
    g(a, "init", "-q", "-b", "main")
    (a / "code.txt").write_text("v1\n")
    ok(cli("--home", str(a / ".coord"), "init"))
    if sync_branch:
        ok(cli("--home", str(a / ".coord"), "config", "sync_branch", "coord-sync"))
    g(a, "add", "-A")
    g(a, "-c", "user.name=A", "-c", "user.email=a@example.com", "commit", "-q", "-m", "start")
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    g(a, "remote", "add", "origin", str(origin))
    g(a, "push", "-q", "-u", "origin", "main")
    g(tmp_path, "clone", "-q", str(origin), str(b))
    ok(cli("--home", str(b / ".coord"), "init"))
    for w in (a, b):  # the remote's side of a push runs apart, as on a server: an interrupt
        g(w, "config", "remote.origin.receivepack", "setsid -w git-receive-pack")  # stays here
    return a, b  # no git identity configured: sync commits as "coord sync"


def sync_loop(where, rounds, rng, codes, errors):
    for _ in range(rounds):
        p = subprocess.Popen(
            [*coord_cmd(), "sync"],
            cwd=str(where),
            env={**os.environ, "COORD_HOME": ""},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        signaled = False
        try:
            out, err = p.communicate(timeout=rng.uniform(0.1, 1.2))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, rng.choice([signal.SIGINT, signal.SIGTERM]))
            signaled = True
            out, err = p.communicate(timeout=120)
        codes.append(p.returncode)
        # Ctrl-C while the interpreter itself starts up is Python's exit 1, not coord's.
        startup = signaled and p.returncode == 1 and "init_import_site" in err
        if p.returncode not in FINE and not startup:
            errors.append((str(where), p.returncode, err))


def final_sync(where):
    r = subprocess.run(
        [*coord_cmd(), "sync"],
        cwd=str(where),
        env={**os.environ, "COORD_HOME": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, (str(where), r.stderr)


def store_ids(where) -> dict:
    con = sqlite3.connect(where / ".coord" / "coord.db")
    try:
        return dict(con.execute("SELECT id, count(*) FROM events GROUP BY id"))
    finally:
        con.close()


def run_chaos(tmp_path, cli, rounds, sync_branch, seed):
    rng = random.Random(seed)
    a, b = two_clones(tmp_path, cli, sync_branch)
    stop = tmp_path / "stop"
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                json.dumps(coord_cmd()),
                str(w / ".coord"),
                name,
                str(tmp_path / f"{name}.log"),
                str(stop),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for w, name in ((a, "agent-a"), (b, "agent-b"))
    ]
    codes = {str(a): [], str(b): []}
    errors: list = []
    t0 = time.monotonic()
    loops = [
        threading.Thread(
            target=sync_loop, args=(w, rounds, random.Random(rng.random()), codes[str(w)], errors)
        )
        for w in (a, b)
    ]
    for t in loops:
        t.start()
    for t in loops:
        t.join()
    stop.write_text("")
    for p in agents:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    loop_time = time.monotonic() - t0
    assert not errors, errors
    for where in (a, b, a, b):
        final_sync(where)

    log = [
        json.loads(x)
        for n in ("agent-a", "agent-b")
        for x in (tmp_path / f"{n}.log").read_text().splitlines()
    ]
    assert not [x for x in log if "error" in x], [x for x in log if "error" in x]
    appended = {x["event"] for x in log if "event" in x}
    delivered = {i for x in log if x["kind"] == "poll" for i in x["delivered"]}
    sent = {x["event"] for x in log if x["kind"] == "send"}
    assert delivered <= sent
    lines = [set((w / ".coord" / "events.jsonl").read_bytes().splitlines()) for w in (a, b)]
    assert lines[0] == lines[1]
    for where in (a, b):
        ids = store_ids(where)
        assert all(ids.get(e) == 1 for e in appended), [e for e in appended if ids.get(e) != 1]
        r = cli("--home", str(where / ".coord"), "verify")
        assert r.exit_code == 0, r.stdout + r.stderr
        pending = {
            m["id"]
            for m in ok(
                cli("--home", str(where / ".coord"), "--as", "dev", "poll", "--peek", "--json")
            ).jsonl()
        }
        assert not pending & delivered  # no acknowledged message is delivered again
        assert pending == sent - delivered  # and every other one is
    return {
        "rounds": rounds,
        "syncs": {k: len(v) for k, v in codes.items()},
        "interrupted": sum(c in INTERRUPTED for v in codes.values() for c in v),
        "codes": sorted(c for v in codes.values() for c in v),
        "events": len(appended),
        "loop_s": round(loop_time, 1),
    }


@pytest.mark.parametrize("sync_branch", [False, True], ids=["checked-out-branch", "sync_branch"])
def test_syncs_interrupted_at_random_while_agents_append_converge(tmp_path, cli, sync_branch):
    seed = random.randrange(1 << 30)
    print("seed", seed, run_chaos(tmp_path, cli, 3, sync_branch, seed))


@pytest.mark.slow
@pytest.mark.parametrize("sync_branch", [False, True], ids=["checked-out-branch", "sync_branch"])
def test_fifty_rounds_of_interrupted_syncs_converge(tmp_path, cli, sync_branch):
    seed = random.randrange(1 << 30)
    print("seed", seed, run_chaos(tmp_path, cli, 50, sync_branch, seed))
