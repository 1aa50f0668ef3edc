"""status --watch (pipe and a real terminal in tmux), show explaining a stuck worker,
stats figures, and the rebuild progress bar (only on a terminal)."""

import os
import shutil
import subprocess
import time

import pytest

from helpers import coord_cmd
from observe_helpers import FIXTURE, fixture_events


def test_watch_without_a_terminal_prints_plain_boards(home, cli, proc):
    cli("spawn", "w-1", "--task", "a task with \x1b[31m escape")
    cli("--as", "a1", "start", "w-1")
    r = proc("status", "--watch", "--count", "3", "--interval", "0.05")
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout
    boards = [b for b in r.stdout.split("\n\n") if b.strip()]
    assert len(boards) == 3
    for b in boards:
        lines = b.splitlines()
        assert lines[1].split() == ["WORKER", "STATE", "HOLDER", "AGE", "HEARTBEAT", "LIVENESS", "SUMMARY"]
        assert lines[2].startswith("w-1") and "WORKING" in lines[2]
        assert all(len(ln) <= 80 for ln in lines)
    j = proc("status", "--watch", "--count", "2", "--interval", "0.05", "--json")
    docs = [__import__("json").loads(x) for x in j.stdout.splitlines()]
    assert len(docs) == 2 and docs[0]["workers"][0]["state"] == "WORKING"


def test_watch_stops_on_sigterm(home, cli):
    import signal

    cli("spawn", "w-1")
    p = subprocess.Popen(
        [*coord_cmd(), "status", "--watch", "--interval", "0.05"],
        env=dict(os.environ, COORD_HOME=str(home)),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=20)
    assert p.returncode == 0 and "w-1" in out


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux for a real terminal")
def test_watch_redraws_in_place_in_a_real_terminal(home, cli, tmp_path):
    cli("spawn", "w-1", "--task", "first")
    sock = str(tmp_path / "tmux.sock")
    cmd = f"COORD_HOME={home} {' '.join(coord_cmd())} status --watch --interval 0.1"
    tm = ["tmux", "-S", sock]
    subprocess.run([*tm, "new-session", "-d", "-x", "80", "-y", "24", cmd], check=True)
    try:

        def screen():
            return subprocess.run([*tm, "capture-pane", "-p"], capture_output=True, text=True).stdout

        deadline = time.monotonic() + 20
        while "w-1" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        cli("spawn", "w-2", "--task", "second")
        while "w-2" not in screen() and time.monotonic() < deadline:
            time.sleep(0.1)
        s = screen()
        assert "w-1" in s and "w-2" in s
        assert s.count("WORKER") == 1  # redrawn in place, not scrolled
        assert all(len(ln) <= 80 for ln in s.splitlines())
        subprocess.run([*tm, "send-keys", "C-c"], check=True)
        while (
            subprocess.run([*tm, "has-session"], capture_output=True).returncode == 0
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert subprocess.run([*tm, "has-session"], capture_output=True).returncode != 0
    finally:
        subprocess.run([*tm, "kill-server"], capture_output=True)


def test_show_explains_a_worker_waiting_for_review(home, cli):
    cli("spawn", "w-1", "--task", "t")
    cli("--as", "a1", "start", "w-1")
    cli("--as", "a1", "done", "w-1", "--summary", "s")
    d = cli("show", "w-1", "--json").json()
    assert d["expected"]["actions"] == ["approve", "request-changes"]
    assert "a1" in d["expected"]["by"] and "anyone but the holder" in d["expected"]["by"]
    assert d["last"]["type"] == "worker.done" and d["last"]["from"] == "a1"
    text = cli("show", "w-1").stdout
    assert "expected  approve or request-changes, by anyone but the holder (a1)" in text
    assert "last      worker.done by a1" in text


def test_show_explains_a_silent_holder(home, cli):
    cli("config", "heartbeat_interval", "0.05")
    cli("spawn", "w-1")
    cli("--as", "a1", "start", "w-1")
    cli("--as", "a1", "heartbeat", "w-1")
    time.sleep(1.6)  # 30 intervals (the floor is 0.05 s): DEAD
    d = cli("show", "w-1", "--json").json()
    assert d["liveness"] == "DEAD"
    assert "reap --requeue" in d["expected"]["actions"] and d["expected"]["waiting_on"] == "a1"
    text = cli("show", "w-1").stdout
    assert "silence   last heartbeat" in text and "liveness DEAD" in text


def test_show_assigned_names_the_assignee(home, cli):
    cli("spawn", "w-1", "--assignee", "agent-9")
    d = cli("show", "w-1", "--json").json()
    assert d["expected"]["actions"] == ["start"] and d["expected"]["by"] == "agent-9"


def test_stats_from_the_fixture(cli):
    out = cli("stats", "--json", "--from-file", str(FIXTURE)).json()
    ev = fixture_events()
    # Independent checks read straight off the fixture.
    assert out["events"] == len(ev)
    assert out["throughput"]["completed"] == sum(1 for _, e in ev if e.type == "worker.merged")
    assert out["agents"]["reviewer"]["reviewed"] == sum(
        1
        for _, e in ev
        if e.from_ == "reviewer" and e.type in ("worker.approved", "worker.changes_requested")
    )
    assert out["agents"]["agent-4"]["failed"] == 1
    from coord.events.envelope import ts_to_us

    failed = next(e.ts for _, e in ev if e.type == "worker.failed")
    retried = next(e.ts for _, e in ev if e.type == "worker.retried")
    f = out["states"]["FAILED"]
    assert f["spells"] == 1 and f["median_s"] == pytest.approx((ts_to_us(retried) - ts_to_us(failed)) / 1e6)
    for s in out["states"].values():
        if s["spells"]:
            assert s["median_s"] <= s["p90_s"] <= s["max_s"]
    text = cli("stats", "--from-file", str(FIXTURE)).stdout
    assert "MEDIAN" in text and "reviewer" in text and "throughput" in text


def test_stats_from_the_store_equals_from_the_file(home, cli):
    from observe_helpers import load_into_store

    load_into_store(home)
    assert cli("stats", "--json").stdout == cli("stats", "--json", "--from-file", str(FIXTURE)).stdout


def test_rebuild_progress_bar_only_on_a_terminal(home, cli):
    import pty

    for i in range(30):
        cli("spawn", f"w-{i}")
    env = dict(os.environ, COORD_HOME=str(home))
    plain = subprocess.run([*coord_cmd(), "rebuild"], env=env, capture_output=True, text=True)
    assert plain.returncode == 0 and plain.stderr == ""
    master, slave = pty.openpty()
    p = subprocess.run([*coord_cmd(), "rebuild"], env=env, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    err = b""
    try:
        while True:
            chunk = os.read(master, 4096)
            if not chunk:
                break
            err += chunk
    except OSError:
        pass
    os.close(master)
    assert p.returncode == 0
    assert b"rebuild [" in err and b"30/30" in err
