"""A zombie supervisor is fenced out: a `coord run` is suspended (SIGSTOP), the watchdog
requeues its worker, another `coord run` under the same name starts attempt 2; then the
first one's child tries `coord done` and the first run is resumed (SIGCONT). Everything
the old attempt tries is refused, nothing of it lands after the requeue, and attempt 2
completes. Real processes; every wait is for a condition."""

import fcntl
import os
import signal
import sqlite3
import sys
import time

from test_watchdog import events, popen, wait_for

from helpers import coord_cmd, ok


def stop_outside_a_write(pid: int, home) -> None:
    """SIGSTOP pid at a moment it holds no write transaction (else every writer would wait
    on a suspended process): stop it, check the write lock and the database are free, and
    if not, let it run a little and try again."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        if _writable(home):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.01)
    raise AssertionError("could not stop the run outside a write transaction")


def _writable(home) -> bool:
    lock = home / "write.lock"
    if lock.exists():
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
    con = sqlite3.connect(str(home / "coord.db"), timeout=0.5, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def child_script(tmp_path, name: str, go, rc=None) -> list[str]:
    """A child that waits for `go`, then (with rc) runs `coord done` itself and writes its
    exit status to rc, then lingers; without rc it exits 0 (its run records done)."""
    coord = ", ".join(map(repr, coord_cmd()))
    act = (
        f"r = subprocess.run([{coord}, 'done', '--summary', {name!r}], stdout=subprocess.DEVNULL, stderr=open({str(rc)!r} + '.err', 'w')).returncode\n"
        f"open({str(rc)!r}, 'w').write(str(r))\ntime.sleep(600)\n"
        if rc
        else f"print({name!r})\n"
    )
    code = f"import os, subprocess, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\n{act}"
    return [sys.executable, "-c", code]


def test_a_suspended_run_is_fenced_out_after_the_requeue(home, cli, tmp_path):
    ok(cli("--as", "lead", "spawn", "w-z", "--no-git"))
    go1, go2, rc1 = tmp_path / "go1", tmp_path / "go2", tmp_path / "rc1"
    run1 = popen(
        home,
        "--as",
        "agent-1",
        "run",
        "w-z",
        "--interval",
        "0.05",
        "--",
        *child_script(tmp_path, "zombie", go1, rc1),
    )
    dog = run2 = None
    try:
        att1 = wait_for(
            lambda: (v := cli("show", "w-z", "--json").json())["heartbeat"]["count"] >= 2 and v["attempt_of"],
            what="run 1 beats",
        )
        stop_outside_a_write(run1.pid, home)
        dog = popen(home, "--as", "wd", "--json", "watchdog", "--interval", "0.05")
        wait_for(lambda: cli("show", "w-z", "--json").json()["state"] == "ASSIGNED", what="the requeue")
        (requeue,) = [e for e in events(home, ("worker.released",))]
        assert requeue[3] == "wd" and requeue[5]["attempt_of"] == att1
        # The same name starts attempt 2.
        run2 = popen(
            home,
            "--as",
            "agent-1",
            "run",
            "w-z",
            "--interval",
            "0.05",
            "--",
            *child_script(tmp_path, "fresh", go2),
        )
        att2 = wait_for(
            lambda: (
                (v := cli("show", "w-z", "--json").json())["attempt"] == 2
                and v["heartbeat"]["count"] >= 1
                and v["attempt_of"]
            ),
            what="run 2 beats",
        )
        # The old child (COORD_ATTEMPT=1) tries to hand in: refused although the name matches.
        go1.touch()
        assert wait_for(lambda: rc1.exists() and rc1.read_text(), what="the old child's done") == "4"
        os.kill(run1.pid, signal.SIGCONT)  # the zombie wakes up: its next beat is refused
        out1, err1 = run1.communicate(timeout=120)
        assert "no longer current" in err1 and "the claim is lost" in err1, err1
        assert run1.returncode == 128 + signal.SIGTERM  # its child was ended
        go2.touch()
        out2, err2 = run2.communicate(timeout=120)
        assert run2.returncode == 0, err2
    finally:
        for p in (run1, run2):
            if p is not None and p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.communicate(timeout=60)
        if dog is not None:
            dog.terminate()
            dog.communicate(timeout=60)
    v = cli("show", "w-z", "--json").json()
    assert (v["state"], v["attempt"], v["attempt_of"]) == ("IN_REVIEW", 2, att2) and v["summary"] == "fresh"
    assert v["conflicts"] == []
    evs = events(home)
    at_requeue = next(seq for seq, _i, t, *_ in evs if t == "worker.released")
    old = [
        (seq, t) for seq, _i, t, _f, _to, p in evs if p.get("attempt_of") == att1 and t.startswith("worker.")
    ]
    assert old and all(seq <= at_requeue for seq, _ in old), old  # nothing of attempt 1 after it
    done = [p for _s, _i, t, _f, _to, p in evs if t == "worker.done"]
    assert len(done) == 1 and done[0]["attempt_of"] == att2
    assert cli("verify").exit_code == 0
