"""`coord run` with real child processes: outcomes, idle/timeout endings, signals, and the
liveness a killed `coord run` leaves behind."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from helpers import coord_cmd, count_events

PY = sys.executable


def events(home, wid, etype=None):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        q = "SELECT body FROM events WHERE worker = ?" + (" AND type = ?" if etype else "") + " ORDER BY seq"
        return [json.loads(b) for (b,) in con.execute(q, (wid, etype) if etype else (wid,))]
    finally:
        con.close()


def status_of(cli, wid):
    r = cli("status", wid, "--json")
    assert r.exit_code == 0, r.stderr
    return r.json()[0]


@pytest.fixture
def spawned(home, cli):
    assert cli("spawn", "w-1", "--task", "t").exit_code == 0
    return "w-1"


def test_exit_0_is_done_with_summary_and_output_passes_through(home, cli, proc, spawned):
    child = (
        "import os; print('env', os.environ['COORD_WORKER'], os.environ['COORD_AGENT'], "
        "os.environ['COORD_HOME']); import sys; print('to stderr', file=sys.stderr); print('all good')"
    )
    r = proc("--as", "a1", "run", "w-1", "--interval", "0.2", "--", PY, "-c", child)
    assert r.returncode == 0, r.stderr
    assert f"env w-1 a1 {home}" in r.stdout
    assert "to stderr" in r.stderr and "to stderr" not in r.stdout
    v = status_of(cli, "w-1")
    assert v["state"] == "IN_REVIEW" and v["holder"] == "a1"
    assert v["summary"] == "all good"
    done = events(home, "w-1", "worker.done")[-1]["payload"]
    assert done["exit"] == 0 and done["duration_s"] >= 0
    beats = events(home, "w-1", "worker.heartbeat")
    assert beats and beats[0]["payload"]["interval"] == 0.2 and "idle_s" in beats[0]["payload"]


def test_exit_3_is_fail_with_code_and_tail(home, cli, proc, spawned):
    child = "import sys\nfor i in range(30): print('line', i)\nprint('boom: disk full', file=sys.stderr)\nsys.exit(3)"
    r = proc("--as", "a1", "run", "w-1", "--interval", "0.2", "--", PY, "-c", child)
    assert r.returncode == 3
    v = status_of(cli, "w-1")
    assert v["state"] == "FAILED"
    assert v["reason"] == "exit 3: boom: disk full"
    p = events(home, "w-1", "worker.failed")[-1]["payload"]
    assert p["exit"] == 3 and "signal" not in p
    lines = p["tail"].splitlines()
    assert len(lines) == 20 and lines[-1] == "boom: disk full" and lines[0] == "line 11"


def test_long_output_goes_to_a_blob_and_the_event_stays_small(home, cli, proc, spawned):
    child = "import sys\nfor i in range(40000): print('line', i)\nprint('x' * 5000)\nsys.exit(1)"
    r = proc("--as", "a1", "run", "w-1", "--", PY, "-c", child)
    assert r.returncode == 1 and len(r.stdout) > 400000
    p = events(home, "w-1", "worker.failed")[-1]["payload"]
    assert "$blob" not in p  # the event itself stayed inline
    assert len(p["tail"].encode()) == 2048 and p["tail_truncated"] > 0
    assert p["output_bytes"] == len(r.stdout.encode())
    ref = p["output"]["$blob"]
    got = cli("blob", "cat", ref)
    assert got.exit_code == 0
    assert got.stdout.endswith("line 39999\n" + "x" * 5000 + "\n")
    assert len(got.stdout) == p["output"]["size"] == 256 * 1024
    assert p["output"]["first_byte"] + p["output"]["size"] == p["output_bytes"]
    assert len(json.dumps(p)) < 4096


def test_silent_child_is_ended_by_idle_timeout(home, cli, proc, spawned):
    child = "import time; print('working', flush=True); time.sleep(30)"
    t0 = time.monotonic()
    r = proc("--as", "a1", "run", "w-1", "--interval", "0.2", "--idle-timeout", "0.8", "--", PY, "-c", child)
    assert time.monotonic() - t0 < 10
    assert r.returncode == 124  # ended by --idle-timeout, as timeout(1) reports it
    assert "working" in r.stdout
    v = status_of(cli, "w-1")
    assert v["state"] == "FAILED"
    assert v["reason"].startswith("no output for 0.8s (--idle-timeout); killed by SIGTERM")
    p = events(home, "w-1", "worker.failed")[-1]["payload"]
    assert p["ended_by"] == "idle-timeout" and p["signal"] == "SIGTERM"
    idles = [b["payload"]["idle_s"] for b in events(home, "w-1", "worker.heartbeat")]
    assert max(idles) >= 0.4 and idles[1:] == sorted(idles[1:])  # grows while silent


def test_child_ignoring_sigterm_is_killed_after_grace(home, cli, proc, spawned):
    child = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('stubborn', flush=True)\nwhile True: print('.', flush=True); time.sleep(0.05)"
    )
    t0 = time.monotonic()
    r = proc(
        "--as",
        "a1",
        "run",
        "w-1",
        "--interval",
        "0.2",
        "--timeout",
        "0.6",
        "--grace",
        "0.4",
        "--",
        PY,
        "-c",
        child,
    )
    took = time.monotonic() - t0
    assert r.returncode == 124  # ended by --timeout, even though SIGKILL was needed
    assert 0.9 < took < 10
    p = events(home, "w-1", "worker.failed")[-1]["payload"]
    assert p["ended_by"] == "timeout" and p["signal"] == "SIGKILL"
    assert "SIGKILL" in r.stderr  # said so on the terminal


def _popen_run(home, *args):
    env = dict(os.environ, COORD_HOME=str(home))
    return subprocess.Popen(
        [*coord_cmd(), "--as", "a1", "run", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_to_coord_run_is_forwarded_and_recorded(home, cli, spawned):
    child = (
        "import signal, sys, time\n"
        "def bye(n, f): print('child got', n, flush=True); sys.exit(5)\n"
        "signal.signal(signal.SIGTERM, bye)\nprint('ready', flush=True)\ntime.sleep(30)"
    )
    p = _popen_run(home, "w-1", "--interval", "0.2", "--", PY, "-c", child)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 5
    assert f"child got {int(signal.SIGTERM)}" in out
    pl = events(home, "w-1", "worker.failed")[-1]["payload"]
    assert pl["signals"] == ["SIGTERM"] and pl["exit"] == 5
    assert pl["reason"].startswith("coord run got SIGTERM; exit 5")
    notes = [b["payload"].get("note") for b in events(home, "w-1", "worker.heartbeat")]
    assert "coord run got SIGTERM; forwarded to the child" in notes


def test_coord_run_sigkilled_goes_warn_stale_dead_then_reap(home, cli, proc, spawned):
    child = "import time, os; print(os.getpid(), flush=True); time.sleep(60)"
    p = _popen_run(home, "w-1", "--interval", "0.1", "--", PY, "-c", child)
    child_pid = int(p.stdout.readline())
    while not events(home, "w-1", "worker.heartbeat"):
        time.sleep(0.02)
    assert status_of(cli, "w-1")["liveness"] == "OK"
    p.kill()
    p.wait()
    seen = []
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        lv = status_of(cli, "w-1")["liveness"]
        if not seen or seen[-1] != lv:
            seen.append(lv)
        if lv == "DEAD":
            break
        time.sleep(0.03)
    assert seen[-3:] == ["WARN", "STALE", "DEAD"], seen
    stale = cli("status", "--stale", "--json").json()
    assert [d["worker"] for d in stale] == ["w-1"]
    # the orphaned child was told to stop when coord run died (PR_SET_PDEATHSIG)
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child_pid, signal.SIGKILL)
        pytest.fail("child outlived coord run")
    r = proc("--as", "reaper", "reap", "--json")
    assert r.returncode == 0, r.stderr
    reaped = json.loads(r.stdout)
    assert [(d["worker"], d["state"]) for d in reaped] == [("w-1", "FAILED")]
    v = status_of(cli, "w-1")
    assert v["state"] == "FAILED" and v["reason"] == "heartbeat timeout"
    f = events(home, "w-1", "worker.failed")[-1]
    assert f["from"] == "reaper" and f["payload"]["reap"] is True


def test_run_refuses_before_the_child_starts(home, cli, spawned):
    # Usage errors, checked before the claim: through the entry point in this process (no
    # child ever starts, so nothing here needs a process of its own).
    n = count_events(home)
    r = cli("run", "w-1", "--", PY, "-c", "pass")  # no identity
    assert r.exit_code == 2 and "explicit identity" in r.stderr
    r = cli("--as", "a1", "run", "w-1", PY, "-c", "pass")  # no --
    assert r.exit_code == 2 and "put the command after --" in r.stderr
    r = cli("--as", "a1", "run", "nope", "--", PY, "-c", "pass")
    assert r.exit_code == 3
    r = cli("--as", "a1", "run", "w-1", "--", "no-such-command-xyz")
    assert r.exit_code == 127 and "no-such-command-xyz" in r.stderr
    r = cli("--as", "a1", "run", "w-1", "--interval", "0", "--", PY, "-c", "pass")
    assert r.exit_code == 2
    r = cli("--as", "a1", "--json", "run", "w-1", "--timeout", "soon", "--", PY, "-c", "pass")
    assert r.exit_code == 2 and json.loads(r.stderr)["error"]["exit"] == 2
    assert count_events(home) == n
    assert cli("--as", "a2", "start", "w-1").exit_code == 0
    n = count_events(home)
    r = cli("--as", "a1", "run", "w-1", "--", PY, "-c", "print('must not run')")
    assert r.exit_code == 4 and "must not run" not in r.stdout
    assert count_events(home) == n


def test_run_without_id_uses_coord_worker_and_json_result(home, cli, proc, spawned):
    r = proc("--as", "a1", "--json", "run", "--", PY, "-c", "print('hi')", env={"COORD_WORKER": "w-1"})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "hi"
    res = json.loads(lines[-1])
    assert res["worker"] == "w-1" and res["state"] == "IN_REVIEW" and res["exit"] == 0


def test_child_can_beat_and_send_about_itself(home, cli, proc, spawned):
    child = (
        "import subprocess, sys; subprocess.run([sys.executable, '-m', 'coord', 'heartbeat', "
        "'--note', 'half way'], check=True)"
    )
    r = proc("--as", "a1", "run", "w-1", "--", PY, "-c", child)
    assert r.returncode == 0, r.stderr
    notes = [b["payload"].get("note") for b in events(home, "w-1", "worker.heartbeat")]
    assert "half way" in notes
    assert all(b["from"] == "a1" for b in events(home, "w-1", "worker.heartbeat"))


def test_lost_claim_ends_the_child_and_records_nothing_more(home, cli, spawned):
    child = "import time\nwhile True: print('.', flush=True); time.sleep(0.05)"
    p = _popen_run(home, "w-1", "--interval", "0.1", "--grace", "0.5", "--", PY, "-c", child)
    while not events(home, "w-1", "worker.heartbeat"):
        time.sleep(0.02)
    assert cli("cancel", "w-1", "--reason", "not needed").exit_code == 0
    out, err = p.communicate(timeout=20)
    assert p.returncode == 128 + signal.SIGTERM
    assert "claim was lost" in err
    assert status_of(cli, "w-1")["state"] == "CANCELED"
    last = events(home, "w-1")[-1]
    assert last["type"] == "worker.canceled"


def test_status_shows_idle_from_the_beats(home, cli, spawned):
    # A worker whose run-beats say it has been silent for 4 minutes.
    assert cli("--as", "a1", "start", "w-1").exit_code == 0
    assert cli("--as", "a1", "heartbeat", "w-1").exit_code == 0
    from coord.app import lifecycle
    from coord.app.context import Coord

    with Coord(home, actor="a1") as c:
        lifecycle.act(c, "heartbeat", "w-1", {"interval": 10.0, "idle_s": 245.0})
    r = cli("status")
    assert "idle 4m" in r.stdout


def test_child_that_runs_coord_done_itself_keeps_its_outcome(home, cli, proc, spawned):
    # The agent hands in its own work, then lingers while heartbeats are refused.
    child = (
        "import subprocess, sys, time; subprocess.run([sys.executable, '-m', 'coord', 'done', "
        "'--summary', 'did it myself'], check=True); time.sleep(0.5); print('bye')"
    )
    r = proc("--as", "a1", "run", "w-1", "--interval", "0.1", "--", PY, "-c", child)
    assert r.returncode == 0, r.stderr
    assert "bye" in r.stdout  # not killed as a lost claim
    v = status_of(cli, "w-1")
    assert v["state"] == "IN_REVIEW" and v["summary"] == "did it myself"
    assert len(events(home, "w-1", "worker.done")) == 1


def test_timeout_ends_the_whole_process_tree(home, cli, proc, spawned):
    # a shell whose grandchild would otherwise hold the output pipe open for 30 s
    t0 = time.monotonic()
    r = proc(
        "--as",
        "a1",
        "run",
        "w-1",
        "--idle-timeout",
        "0.5",
        "--grace",
        "0.5",
        "--",
        "sh",
        "-c",
        "sleep 30 & echo $!; wait",
    )
    assert time.monotonic() - t0 < 10
    assert r.returncode == 124
    grandchild = int(r.stdout.split()[0])
    for _ in range(50):
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(grandchild, signal.SIGKILL)
        pytest.fail("grandchild survived the timeout")


def test_sigint_is_forwarded_without_escalation(home, cli, spawned):
    child = (
        "import time\ntry:\n    print('ready', flush=True); time.sleep(30)\n"
        "except KeyboardInterrupt:\n    time.sleep(0.6); print('cancelled cleanly')\n"
    )
    p = _popen_run(home, "w-1", "--interval", "0.2", "--grace", "0.2", "--", PY, "-c", child)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err  # lived past the grace period: no SIGKILL
    assert "cancelled cleanly" in out
    d = events(home, "w-1", "worker.done")[-1]["payload"]
    assert d["signals"] == ["SIGINT"] and d["summary"] == "cancelled cleanly"


def test_a_child_ended_by_timeout_fails_even_if_it_exits_0(home, cli, proc):
    env = {"COORD_HOME": str(home)}
    assert cli("spawn", "t-1").exit_code == 0
    r = proc(
        "--as",
        "a1",
        "run",
        "t-1",
        "--here",
        "--timeout",
        "0.5",
        "--grace",
        "2",
        "--",
        "sh",
        "-c",
        'trap "exit 0" TERM; while true; do sleep 0.05; done',
        env=env,
    )
    assert r.returncode == 124, r.stderr
    assert cli("status", "t-1", "--json").json()[0]["state"] == "FAILED"


def test_run_with_a_used_request_id_does_not_run_the_child_again(home, cli, proc, tmp_path):
    env = {"COORD_HOME": str(home)}
    marker = tmp_path / "ran"
    assert cli("spawn", "t-2").exit_code == 0
    cmd = ["sh", "-c", f"echo x >> {marker}"]
    assert (
        proc("--as", "a1", "run", "t-2", "--here", "--request-id", "k", "--", *cmd, env=env).returncode == 0
    )
    r = proc("--as", "a1", "run", "t-2", "--here", "--request-id", "k", "--", *cmd, env=env)
    assert r.returncode == 0 and "not run again" in r.stderr
    assert marker.read_text() == "x\n"


def test_a_file_that_cannot_be_executed_exits_126(home, cli, proc, tmp_path):
    env = {"COORD_HOME": str(home)}
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x00\x01junk")
    bad.chmod(0o755)
    assert cli("spawn", "t-3").exit_code == 0
    n = count_events(home)
    r = proc("--as", "a1", "run", "t-3", "--here", "--", str(bad), env=env)
    assert r.returncode == 126 and "not an executable format" in r.stderr
    assert count_events(home) == n  # found before the claim: nothing appended
