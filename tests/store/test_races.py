"""The contract's concurrency promises on every store, with real processes (threads in one
process would not exercise the database's locking as separate agents do): exactly one
winner of a contested `start`, seq gapless in commit order under concurrent writers, and a
reader following seq never skips an event that commits later with a lower number."""

import os
import subprocess
import sys
import textwrap
import time

import pytest

from coord.events.records import EventQuery, type_filter

RACER = textwrap.dedent("""
    import os, sys, time
    from coord.app.context import Coord
    from coord.app import lifecycle
    from coord.events.errors import CoordError
    home, me, go, workers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    with Coord(home, actor=me) as c:
        c.store.reader.max_seq()  # connected before the start signal
        open(go + "." + me, "w").close()
        while not os.path.exists(go):
            time.sleep(0.001)
        for w in workers:
            try:
                r = lifecycle.act(c, "start", w)
                print("won", w, r.event)
            except CoordError as e:
                print("lost", w, e.exit_code)
""")

WRITER = textwrap.dedent("""
    import sys
    from coord.app.context import Coord
    from coord.app import lifecycle
    home, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with Coord(home, actor=me) as c:
        for i in range(n):
            print(lifecycle.act(c, "heartbeat", "w-" + me, {"note": f"{me}-{i}"}).event, flush=True)
""")


def _spawn(home, actor, workers):
    from coord.app import lifecycle
    from coord.app.context import Coord

    with Coord(home, actor=actor) as c:
        for w in workers:
            lifecycle.act(c, "spawn", w)


def _launch(script, args_list, env=None):
    return [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for args in args_list
    ]


def _finish(procs, timeout=180):
    out = []
    for p in procs:
        o, e = p.communicate(timeout=timeout)
        assert p.returncode == 0, e
        out.append(o)
    return out


def _race_rounds(open_store, tmp_path, racers: int, workers: int, rounds: int):
    home = open_store.home
    before = _started(open_store())
    for r in range(rounds):
        ws = [f"x{racers}-{workers}-r{r}-w{i}" for i in range(workers)]
        _spawn(home, "lead", ws)
        go = tmp_path / f"go-{racers}-{workers}-{r}"
        procs = _launch(RACER, [(str(home.path), f"racer-{i}", str(go), ",".join(ws)) for i in range(racers)])
        deadline = time.monotonic() + 120
        while sum(1 for i in range(racers) if os.path.exists(f"{go}.racer-{i}")) < racers:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        go.touch()  # every racer is connected and spinning: released at one instant
        lines = [ln.split() for o in _finish(procs) for ln in o.splitlines()]
        for w in ws:
            won = [ln for ln in lines if ln[:2] == ["won", w]]
            lost = [ln for ln in lines if ln[:2] == ["lost", w]]
            assert len(won) == 1, (w, lines)  # exactly one winner
            assert len(lost) == racers - 1 and all(ln[2] == "4" for ln in lost)  # the others: exit 4
    assert _started(open_store()) - before == rounds * workers  # 0 double claims


def _started(store) -> int:
    return store.reader.count(EventQuery(types=type_filter(["worker.started"])))


def test_a_contested_start_has_exactly_one_winner(open_store, tmp_path):
    _race_rounds(open_store, tmp_path, racers=2, workers=1, rounds=1)
    _race_rounds(open_store, tmp_path, racers=8, workers=1, rounds=1)


def test_eight_racers_on_four_workers(open_store, tmp_path):
    _race_rounds(open_store, tmp_path, racers=8, workers=4, rounds=1)


@pytest.mark.slow
def test_claim_races_many_rounds(open_store, tmp_path):
    """The protocol of gastownhall/beads#4657: 2 × 20, 8 × 20 on one worker, 8 on 4 × 50."""
    _race_rounds(open_store, tmp_path, racers=2, workers=1, rounds=20)
    _race_rounds(open_store, tmp_path, racers=8, workers=1, rounds=20)
    _race_rounds(open_store, tmp_path, racers=8, workers=4, rounds=50)


def _writers_and_a_tail(open_store, writers: int, n: int):
    """`writers` processes append n heartbeats each while this process follows seq, as
    `log -f` does, checking each step: it never sees seq k + 1 before k."""
    from coord.app import lifecycle
    from coord.app.context import Coord

    home = open_store.home
    with Coord(home, actor="lead") as c:
        for i in range(writers):
            lifecycle.act(c, "spawn", f"w-p{i}")
    for i in range(writers):
        with Coord(home, actor=f"p{i}") as c:
            lifecycle.act(c, "start", f"w-p{i}")
    base = open_store().reader.max_seq()
    total = base + writers * n
    procs = _launch(WRITER, [(str(home.path), f"p{i}", str(n)) for i in range(writers)])
    tail = open_store()
    seen, last = [], base
    while last < total:
        assert all(p.poll() in (None, 0) for p in procs), [p.stderr.read() for p in procs if p.poll()]
        rows = tail.reader.events(EventQuery(after_seq=last))
        for r in rows:
            assert r.seq == last + 1, f"skipped from {last} to {r.seq}"  # never a gap
            last = r.seq
            seen.append(r.id)
        if not rows:
            tail.wait_for_new(last, 5.0)
    acked = [x for o in _finish(procs) for x in o.split()]
    assert len(acked) == writers * n and set(acked) <= set(seen)  # nothing acknowledged is lost
    rows = tail.reader.events(EventQuery())
    assert [r.seq for r in rows] == list(range(1, total + 1))  # gapless, nothing extra
    assert len({r.id for r in rows}) == total


def test_concurrent_writers_keep_seq_gapless_and_a_tail_never_skips(open_store):
    _writers_and_a_tail(open_store, writers=4, n=10)


@pytest.mark.slow
def test_a_tail_under_eight_writers_never_skips_at_scale(open_store):
    _writers_and_a_tail(open_store, writers=8, n=12500)  # 100,000 events
