"""The SQLite store's write lock and commit path, with real processes: a writer that
releases the lock and comes straight back queues behind the writer already waiting (no
barging), a wait gives up at busy_timeout (exit 7) without leaving the lock taken, and a
commit runs no statement after COMMIT when nothing is for the audit file."""

import fcntl
import os
import subprocess
import sys
import textwrap
import time

import pytest

from coord.app import lifecycle
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.errors import Busy
from coord.events.home import Home

# Appends `n` events from actor `me`; the first transaction holds the lock until the file
# `go` exists (so the test can queue another writer behind it), the others follow at once.
WRITER = textwrap.dedent("""
    import os, sys, time
    from coord.events.envelope import Envelope
    from coord.events.home import Home
    home, me, n, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    store = Home(home).open_store()
    def append(tx):
        tx.append(Envelope(tx.next_ts(), me, "b", "msg.note", {}))
    def first(tx):
        append(tx)
        open(go + ".holding", "w").close()
        deadline = time.monotonic() + 60
        while not os.path.exists(go) and time.monotonic() < deadline:
            time.sleep(0.005)
    if go != "-":
        store.transact(first, hooks=False)
        n -= 1
    for _ in range(n):
        store.transact(append, hooks=False)
    store.close()
""")


def wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def gate_taken(home) -> bool:
    """Whether a writer holds the gate: it is the one queued for the lock."""
    fd = os.open(home / "write.queue", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def test_a_writer_coming_back_queues_behind_the_one_waiting(tmp_path):
    home = init(tmp_path / ".coord")[0].path
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    hog = subprocess.Popen([sys.executable, str(script), str(home), "hog", "30", str(go)])
    wait_for(lambda: (tmp_path / "go.holding").exists())
    other = subprocess.Popen([sys.executable, str(script), str(home), "other", "1", "-"])
    wait_for(lambda: gate_taken(home))  # `other` waits for the lock
    go.touch()
    assert hog.wait(120) == 0 and other.wait(120) == 0
    store = Home(home).open_store()
    try:
        order = [msg.env.from_ for msg in store.reader.events(_all())]
    finally:
        store.close()
    assert len(order) == 31
    assert order[:2] == ["hog", "other"], order  # served in turn, not after the hog's 30


def _all():
    from coord.events.records import EventQuery

    return EventQuery()


def test_a_wait_past_busy_timeout_is_busy_and_leaves_the_lock_free(tmp_path):
    home = init(tmp_path / ".coord")[0].path
    (home / "local.toml").write_text("busy_timeout = 0.3\n")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    go = tmp_path / "go"
    hog = subprocess.Popen([sys.executable, str(script), str(home), "hog", "1", str(go)])
    try:
        wait_for(lambda: (tmp_path / "go.holding").exists())
        with Coord(home, actor="me") as c:
            with pytest.raises(Busy):
                lifecycle.act(c, "spawn", "w-1")
            go.touch()
            assert hog.wait(120) == 0
            # The wait that gave up must not hold the lock now that the hog released it:
            # this process and another both get it.
            lifecycle.act(c, "spawn", "w-1")
            r = subprocess.run(
                [sys.executable, str(script), str(home), "later", "1", "-"], capture_output=True, timeout=120
            )
            assert r.returncode == 0, r.stderr
    finally:
        go.touch()
        hog.wait(120)


def test_a_heartbeat_runs_no_statement_after_its_commit(tmp_path):
    """The "anything for the audit file?" question is asked inside the write transaction:
    after COMMIT, a heartbeat with nothing dirty opens no read transaction."""
    home = init(tmp_path / ".coord")[0].path
    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "spawn", "w-1")
        lifecycle.act(c, "start", "w-1")
        statements = []
        c.store.conn.set_trace_callback(statements.append)
        lifecycle.act(c, "heartbeat", "w-1")
        c.store.conn.set_trace_callback(None)
    assert "COMMIT" in statements
    assert statements[statements.index("COMMIT") + 1 :] == []
