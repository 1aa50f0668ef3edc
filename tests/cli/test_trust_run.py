"""The trust boundary: run and rules. `coord run` with real child processes (the claim, exit
statuses like timeout(1), request ids, the heartbeat thread, interval bounds), request ids
reused with other arguments for every mutating command, and the review rule, for local
and imported events. Each refusal asserts the exit code, the one-line error and that
nothing else in the store changed."""

import json
import os
import shutil
import signal
import sqlite3
import sys

import pytest

from helpers import count_events

PY = sys.executable


def one_line_error(text: str) -> bool:
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


def snapshot(home):
    """Everything a refused command must leave as it was: events, request ids, views and
    the audit file."""
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        return (
            con.execute("SELECT id FROM events ORDER BY seq").fetchall(),
            con.execute("SELECT actor, key, result FROM request_ids ORDER BY actor, key").fetchall(),
            con.execute("SELECT worker, view FROM workers ORDER BY worker").fetchall(),
            (home / "events.jsonl").read_bytes(),
        )
    finally:
        con.close()


def state_of(cli, wid):
    r = cli("status", wid, "--json")
    assert r.exit_code == 0, r.stderr
    return r.json()[0]


def last_event(home, wid, etype):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        row = con.execute(
            "SELECT body FROM events WHERE worker = ? AND type = ? ORDER BY seq DESC LIMIT 1", (wid, etype)
        ).fetchone()
        return json.loads(row[0]) if row else None
    finally:
        con.close()


@pytest.fixture
def w1(home, cli):
    assert cli("spawn", "w-1", "--task", "t").exit_code == 0
    return "w-1"


# --- the claim ---------------------------------------------------------------------------
def test_a_refused_claim_says_nothing_about_starting(home, cli, proc, w1, tmp_path):
    assert cli("--as", "a2", "start", "w-1").exit_code == 0
    before = snapshot(home)
    marker = tmp_path / "ran"
    r = proc("--as", "a1", "run", "w-1", "--here", "--", "sh", "-c", f"touch {marker}")
    assert r.returncode == 4
    assert one_line_error(r.stderr) and "started" not in r.stderr, r.stderr
    assert not marker.exists() and snapshot(home) == before


def test_started_is_said_once_the_claim_is_recorded(home, cli, proc, w1):
    # The child sees its worker WORKING: the claim was recorded before anything was said
    # about it, and the line names the claimant.
    r = proc("--as", "a1", "run", "w-1", "--here", "--", PY, "-m", "coord", "status", "w-1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[0])[0]["state"] == "WORKING"
    assert "coord run: w-1: started as a1; heartbeat every" in r.stderr


# --- exit statuses, like timeout(1) -------------------------------------------------------
def _script(path, text, mode=0o755):
    path.write_text(text)
    path.chmod(mode)
    return str(path)


@pytest.mark.parametrize(
    "make,code,says",
    [
        (lambda d: "no-such-command-xyz", 127, "command not found"),
        (lambda d: str(d / "missing.sh"), 127, "no such file"),
        (lambda d: _script(d / "noexec.sh", "#!/bin/sh\necho hi\n", 0o644), 126, "not executable"),
        (lambda d: str(d), 126, "is a directory"),
        (lambda d: _script(d / "noshebang", "echo hi\n"), 126, "not an executable format"),
        (lambda d: _script(d / "badinterp", "#!/no/such/interpreter\necho hi\n"), 127, "interpreter"),
    ],
    ids=["not-on-path", "missing-file", "no-x-bit", "directory", "no-shebang", "bad-interpreter"],
)
def test_a_command_that_cannot_run_exits_126_or_127_and_appends_nothing(
    home, cli, proc, w1, tmp_path, make, code, says
):
    cmd = make(tmp_path)
    before = snapshot(home)
    r = proc("--as", "a1", "run", "w-1", "--here", "--", cmd)
    assert r.returncode == code, r.stderr
    assert one_line_error(r.stderr) and says in r.stderr, r.stderr
    assert snapshot(home) == before
    assert state_of(cli, "w-1")["state"] == "ASSIGNED"
    j = proc("--as", "a1", "--json", "run", "w-1", "--here", "--", cmd)
    err = json.loads(j.stderr)["error"]
    assert j.returncode == code and err["exit"] == code
    assert err["code"] == ("command_not_found" if code == 127 else "not_executable")


def test_a_name_on_path_that_is_not_executable_exits_126(home, proc, w1, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _script(bindir / "mytool", "#!/bin/sh\necho hi\n", 0o644)
    before = snapshot(home)
    r = proc(
        "--as", "a1", "run", "w-1", "--here", "--", "mytool", env={"PATH": f"{bindir}:{os.environ['PATH']}"}
    )
    assert r.returncode == 126 and one_line_error(r.stderr) and "mytool" in r.stderr, r.stderr
    assert snapshot(home) == before


@pytest.mark.parametrize(
    "opts,child,code,ended_by",
    [
        # ended by --timeout: SIGTERM ends it (143 from the shell's point of view): 124
        (["--timeout", "0.5"], "import time; time.sleep(60)", 124, "timeout"),
        (
            ["--idle-timeout", "0.5"],
            "import time; print('x', flush=True); time.sleep(60)",
            124,
            "idle-timeout",
        ),
        # needed SIGKILL after the grace period: still 124 (coord run ended it)
        (
            ["--timeout", "0.5", "--grace", "0.3"],
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
            124,
            "timeout",
        ),
        # killed by a signal otherwise: 128+N
        ([], "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 128 + signal.SIGKILL, None),
        ([], "import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 128 + signal.SIGTERM, None),
    ],
    ids=["timeout", "idle-timeout", "timeout-sigkill", "sigkill", "sigterm"],
)
def test_exit_statuses(home, cli, proc, w1, opts, child, code, ended_by):
    r = proc("--as", "a1", "run", "w-1", "--here", "--interval", "0.2", *opts, "--", PY, "-c", child)
    assert r.returncode == code, r.stderr
    assert state_of(cli, "w-1")["state"] == "FAILED"
    p = last_event(home, "w-1", "worker.failed")["payload"]
    assert p.get("ended_by") == ended_by and "signal" in p


def test_exec_failing_after_the_claim_is_recorded_as_a_failed_run(home, cli, w1, tmp_path, monkeypatch):
    """The race the check before the claim cannot close: the file goes away between the
    check and exec. The claim is recorded already, so the failure is too (126/127)."""
    from coord.app import runner
    from coord.app.context import Coord

    gone = tmp_path / "agent.sh"
    monkeypatch.setattr(runner, "check_command", lambda cmd, env, cwd=None: gone.unlink(missing_ok=True))
    _script(gone, "#!/bin/sh\nexit 0\n")
    with Coord(home) as c:
        res = runner.run_worker(c, "w-1", [str(gone)], "a1", interval=0.2, here=True)
    assert (res.exit, res.ended_by, res.state) == (127, "exec-failed", "FAILED")
    assert state_of(cli, "w-1")["reason"].startswith(f"cannot run {gone}")


# --- request ids ---------------------------------------------------------------------------
def test_a_request_id_repeat_of_a_failed_run_returns_its_exit_status(home, cli, proc, w1, tmp_path):
    marker = tmp_path / "ran"
    cmd = ["--", "sh", "-c", f"echo x >> {marker}; exit 3"]
    r = proc("--as", "a1", "run", "w-1", "--here", "--request-id", "k", *cmd)
    assert r.returncode == 3
    before = snapshot(home)
    r = proc("--as", "a1", "run", "w-1", "--here", "--request-id", "k", *cmd)
    assert r.returncode == 3, r.stderr
    assert "not run again" in r.stderr and "exit 3" in r.stderr
    j = proc("--as", "a1", "--json", "run", "w-1", "--here", "--request-id", "k", *cmd)
    res = json.loads(j.stdout)
    assert j.returncode == 3 and res["exit"] == 3 and res["repeat"] is True and res["state"] == "FAILED"
    assert marker.read_text() == "x\n" and snapshot(home) == before


def test_a_request_id_repeat_of_a_timed_out_run_exits_124_again(home, proc, w1):
    args = ["--as", "a1", "run", "w-1", "--here", "--timeout", "0.3", "--request-id", "k"]
    child = ["--", PY, "-c", "import time; time.sleep(60)"]
    assert proc(*args, *child).returncode == 124
    before = snapshot(home)
    assert proc(*args, *child).returncode == 124
    assert snapshot(home) == before


def test_a_run_killed_before_storing_its_result_is_read_back_from_its_outcome(home, cli, proc, w1):
    """coord run SIGKILLed between recording the outcome and storing the request id's
    result: the repeat reads the exit status from the outcome event."""
    cmd = ["--as", "a1", "run", "w-1", "--here", "--request-id", "k", "--", "sh", "-c", "exit 5"]
    assert proc(*cmd).returncode == 5
    con = sqlite3.connect(str(home / "coord.db"))
    (raw,) = con.execute("SELECT result FROM request_ids WHERE actor = 'a1'").fetchone()
    row = json.loads(raw)
    claim = {"worker": "w-1", "state": "WORKING", "event": "b3:" + "0" * 64, "type": "worker.started"}
    con.execute("UPDATE request_ids SET result = ?", (json.dumps({**row, "$result": claim}).encode(),))
    con.commit()
    con.close()
    before = snapshot(home)
    r = proc(*cmd)
    assert r.returncode == 5 and "not run again" in r.stderr, r.stderr
    assert snapshot(home) == before


def test_run_with_a_used_request_id_and_other_arguments_is_refused(home, cli, proc, w1, tmp_path):
    marker = tmp_path / "ran"
    r = proc("--as", "a1", "run", "w-1", "--here", "--request-id", "k", "--", "true")
    assert r.returncode == 0
    before = snapshot(home)
    r = proc("--as", "a1", "run", "w-1", "--here", "--request-id", "k", "--", "sh", "-c", f"touch {marker}")
    assert r.returncode == 4, r.stderr
    assert one_line_error(r.stderr) and "other arguments" in r.stderr and "cmd differs" in r.stderr
    r = proc("--as", "a1", "run", "w-1", "--request-id", "k", "--", "true")  # without --here
    assert r.returncode == 4 and "here differs" in r.stderr
    assert not marker.exists() and snapshot(home) == before


# Every mutating command: (setup, first, second, the argument named as differing). The
# second call reuses the first one's key with other arguments.
REUSE = {
    "spawn": ([], ["spawn", "s-1", "--task", "a"], ["spawn", "s-1", "--task", "b"], "task"),
    "start": ([["spawn", "s-2"]], ["--as", "a", "start", "w-1"], ["--as", "a", "start", "s-2"], "worker"),
    "start-next": ([], ["--as", "a", "start", "--next"], ["--as", "a", "start", "w-1"], "next, worker"),
    "heartbeat": (
        [["--as", "a", "start", "w-1"]],
        ["--as", "a", "heartbeat", "w-1", "--note", "x"],
        ["--as", "a", "heartbeat", "w-1", "--note", "y"],
        "note",
    ),
    "done": (
        [["--as", "a", "start", "w-1"]],
        ["--as", "a", "done", "w-1", "--summary", "x"],
        ["--as", "a", "done", "w-1", "--summary", "y"],
        "summary",
    ),
    "approve": (
        [["--as", "a", "start", "w-1"], ["--as", "a", "done", "w-1"]],
        ["--as", "r", "approve", "w-1", "--note", "x"],
        ["--as", "r", "approve", "w-1", "--note", "y"],
        "note",
    ),
    "request-changes": (
        [["--as", "a", "start", "w-1"], ["--as", "a", "done", "w-1"]],
        ["--as", "r", "request-changes", "w-1", "--reason", "x"],
        ["--as", "r", "request-changes", "w-1", "--reason", "y"],
        "reason",
    ),
    "merge": (
        [["--as", "a", "start", "w-1"], ["--as", "a", "done", "w-1"], ["--as", "r", "approve", "w-1"]],
        ["--as", "m", "merge", "w-1"],
        ["--as", "m", "merge", "w-1", "--no-git"],
        "no_git",
    ),
    "release": (
        [["--as", "a", "start", "w-1"]],
        ["--as", "b", "release", "w-1", "--force"],
        ["--as", "b", "release", "w-1"],
        "force",
    ),
    "cancel": ([], ["cancel", "w-1", "--reason", "x"], ["cancel", "w-1", "--reason", "y"], "reason"),
    "fail": ([], ["fail", "w-1", "--reason", "x"], ["fail", "w-1", "--reason", "y"], "reason"),
    "retry": (
        [["fail", "w-1"], ["spawn", "s-3"], ["fail", "s-3"]],
        ["retry", "w-1"],
        ["retry", "s-3"],
        "worker",
    ),
    "send": (
        [],
        ["send", "note", '{"n": 1}', "--to", "b"],
        ["send", "note", '{"n": 2}', "--to", "b"],
        "payload",
    ),
    "send-to": (
        [],
        ["send", "note", '{"n": 1}', "--to", "b"],
        ["send", "note", '{"n": 1}', "--to", "c"],
        "to",
    ),
    "reap": ([], ["--as", "j", "reap"], ["--as", "j", "reap", "--requeue"], "requeue"),
}


@pytest.mark.parametrize("name", sorted(REUSE))
def test_a_request_id_reused_with_other_arguments_is_refused(home, cli, w1, name):
    setup, first, second, differs = REUSE[name]
    for args in setup:
        r = cli(*args)
        assert r.exit_code == 0, (args, r.stderr)
    r = cli(*first, "--request-id", "k")
    assert r.exit_code == 0, r.stderr
    before = snapshot(home)
    assert cli(*first, "--request-id", "k").exit_code == 0  # the same arguments: the first result
    assert snapshot(home) == before
    r = cli(*second, "--request-id", "k")
    assert r.exit_code == 4, (name, r.stdout, r.stderr)
    verb = "differ" if "," in differs else "differs"
    assert one_line_error(r.stderr) and "other arguments" in r.stderr and f"({differs} {verb})" in r.stderr
    assert snapshot(home) == before
    j = cli("--json", *second, "--request-id", "k")
    assert json.loads(j.stderr)["error"]["code"] == "request_id_reused"


def test_ack_with_a_used_request_id_and_another_event_is_refused(home, cli):
    ids = [cli("--as", "lead", "send", "note", "{}", "--to", "a", "--json").json()["event"] for _ in range(2)]
    assert cli("--as", "a", "ack", ids[0], "--request-id", "k").exit_code == 0
    before = snapshot(home)
    r = cli("--as", "a", "ack", ids[1], "--request-id", "k")
    assert r.exit_code == 4 and one_line_error(r.stderr) and "other arguments" in r.stderr
    assert snapshot(home) == before


def test_rows_stored_before_digests_match_any_arguments(home, cli):
    """Request ids stored by an older version carry no digest of their arguments: they
    are taken as matching (the first result, as before), never refused."""
    r = cli("--as", "a", "send", "note", '{"n": 1}', "--to", "b", "--request-id", "k", "--json")
    first = r.json()
    con = sqlite3.connect(str(home / "coord.db"))
    (raw,) = con.execute("SELECT result FROM request_ids").fetchone()
    con.execute("UPDATE request_ids SET result = ?", (json.dumps(json.loads(raw)["$result"]).encode(),))
    con.commit()
    con.close()
    n = count_events(home)
    r = cli("--as", "a", "send", "note", '{"n": 2}', "--to", "b", "--request-id", "k", "--json")
    assert r.exit_code == 0 and r.json()["event"] == first["event"] and r.json()["repeat"] is True
    assert count_events(home) == n


def test_library_calls_compare_their_own_arguments(home, w1):
    from coord.app import lifecycle
    from coord.app.context import Coord
    from coord.app.lifecycle import RequestIdReused

    with Coord(home, actor="a") as c:
        lifecycle.act(c, "fail", "w-1", {"reason": "x"}, request_id="k")
        assert lifecycle.act(c, "fail", "w-1", {"reason": "x"}, request_id="k").repeat
        with pytest.raises(RequestIdReused, match="reason differs"):
            lifecycle.act(c, "fail", "w-1", {"reason": "y"}, request_id="k")


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_git_step_retried_after_the_worker_moved_on_is_not_refused(tmp_path, monkeypatch, cli):
    """branches.spawn with a plain-str key: the first call records git fields the retry
    cannot guess once the worker has moved on; they are not the caller's arguments."""
    from coord.app import gitsteps as branches
    from coord.app import lifecycle
    from coord.app.context import Coord
    from helpers import g

    root = tmp_path / "proj"
    root.mkdir()
    g(root, "init", "-q", "-b", "main")
    g(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "--allow-empty", "-m", "i")
    monkeypatch.chdir(root)
    assert cli("init").exit_code == 0
    with Coord(root / ".coord") as c:
        first = branches.spawn(c, "g-1", {"task": "t"}, "lead", request_id="k")
        lifecycle.act(c, "start", "g-1", {}, actor="a")
        again = branches.spawn(c, "g-1", {"task": "t"}, "lead", request_id="k")
        assert again.repeat and again.event == first.event
        with pytest.raises(Exception, match="task differs"):
            branches.spawn(c, "g-1", {"task": "other"}, "lead", request_id="k")


# --- done refused after exit 0 ---------------------------------------------------------------
@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_when_done_is_refused_after_exit_0_stderr_says_why(tmp_path, monkeypatch, cli, proc):
    from helpers import g

    root = tmp_path / "proj"
    root.mkdir()
    g(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    g(root, "add", ".")
    g(root, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "i")
    monkeypatch.chdir(root)
    assert cli("init").exit_code == 0 and cli("spawn", "w1").exit_code == 0
    r = proc("--as", "ag", "run", "w1", "--", "sh", "-c", "echo wip >> a.txt")
    assert r.returncode == 0
    assert "done was refused" in r.stderr and "uncommitted changes" in r.stderr, r.stderr
    assert cli("show", "w1", "--json").json()["state"] == "FAILED"


# --- who may review ------------------------------------------------------------------------
def test_whoever_handed_work_in_cannot_review_it(home, cli, w1):
    assert cli("--as", "a", "start", "w-1").exit_code == 0
    assert cli("--as", "b", "done", "w-1", "--force").exit_code == 0  # b hands in a's work
    before = snapshot(home)
    for args in (["approve", "w-1"], ["request-changes", "w-1", "--reason", "r"]):
        r = cli("--as", "b", *args)
        assert r.exit_code == 4 and one_line_error(r.stderr) and "handed w-1 in" in r.stderr, r.stderr
        assert json.loads(cli("--json", "--as", "b", *args).stderr)["error"]["code"] == "not_yours"
        r = cli("--as", "a", *args)  # the holder, as before
        assert r.exit_code == 4 and "cannot review its own work" in r.stderr
    assert snapshot(home) == before
    assert "and b, who handed it in" in cli("show", "w-1", "--json").json()["expected"]["by"]
    assert cli("--as", "c", "approve", "w-1").exit_code == 0


def test_an_imported_review_by_whoever_handed_it_in_is_a_conflict(home, cli, w1, tmp_path):
    from coord.events.envelope import Envelope, canonical, event_id, now_us, us_to_ts

    assert cli("--as", "a", "start", "w-1").exit_code == 0
    assert cli("--as", "b", "done", "w-1", "--force").exit_code == 0
    # Another clone's event (hash-valid, well-formed): b approves what b handed in.
    body = canonical(Envelope(us_to_ts(now_us()), "b", "w-1", "worker.approved", {}))
    line = b'{"id":"' + event_id(body).encode() + b'",' + body[1:] + b"\n"
    f = tmp_path / "other-clone.jsonl"
    f.write_bytes(line)
    r = cli("import", str(f))
    assert r.exit_code == 0, r.stderr
    v = state_of(cli, "w-1")
    assert v["state"] == "IN_REVIEW"
    assert [c["event"] for c in v["conflicts"]] == [event_id(body)]
    assert "handed w-1 in" in v["conflicts"][0]["reason"]
    assert cli("verify").exit_code == 0  # the stored views equal a fresh fold


# --- heartbeat intervals ----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0.001", "0.049", "86401", "99999999999999999999999", "nan", "inf", "0"])
def test_run_interval_outside_the_bounds_is_a_usage_error(home, proc, w1, value, tmp_path):
    marker = tmp_path / "ran"
    before = snapshot(home)
    r = proc("--as", "a1", "run", "w-1", "--here", "--interval", value, "--", "sh", "-c", f"touch {marker}")
    assert r.returncode == 2, r.stderr
    assert one_line_error(r.stderr) and "--interval" in r.stderr, r.stderr
    assert not marker.exists() and snapshot(home) == before


@pytest.mark.parametrize("value", ["0.001", "0.049", "86401", "1e400", "nan", "-inf"])
def test_heartbeat_interval_outside_the_bounds_is_a_usage_error(home, cli, w1, value):
    assert cli("--as", "a", "start", "w-1").exit_code == 0
    before = snapshot(home)
    r = cli("--as", "a", "heartbeat", "w-1", "--interval", value)
    assert r.exit_code == 2 and one_line_error(r.stderr) and "0.05" in r.stderr, r.stderr
    assert snapshot(home) == before


def test_the_interval_floor_and_ceiling_themselves_are_accepted(home, cli, proc, w1):
    assert cli("--as", "a", "start", "w-1").exit_code == 0
    assert cli("--as", "a", "heartbeat", "w-1", "--interval", "86400").exit_code == 0
    assert cli("--as", "a", "heartbeat", "w-1", "--interval", "0.05").exit_code == 0
    assert cli("spawn", "w-2").exit_code == 0
    r = proc("--as", "a1", "run", "w-2", "--here", "--interval", "50ms", "--timeout", "1e", "--", "true")
    assert r.returncode == 2  # a malformed duration is still a usage error
    # the child waits until its first heartbeat is recorded (a condition, not a time)
    child = (
        "import json, subprocess, sys, time\n"
        "for _ in range(1200):\n"
        "    r = subprocess.run([sys.executable, '-m', 'coord', 'status', 'w-2', '--json'],"
        " capture_output=True, text=True)\n"
        "    if json.loads(r.stdout)[0]['last_heartbeat']: break\n"
        "    time.sleep(0.05)\n"
    )
    r = proc("--as", "a1", "run", "w-2", "--here", "--interval", "50ms", "--", PY, "-c", child)
    assert r.returncode == 0, r.stderr
    assert last_event(home, "w-2", "worker.heartbeat")["payload"]["interval"] == 0.05


def test_huge_timeouts_are_just_long(home, proc, w1):
    big = "99999999999999999999999"
    r = proc("--as", "a1", "run", "w-1", "--here", "--timeout", big, "--idle-timeout", big, "--", "true")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr


# --- the heartbeat thread never dies unnoticed ----------------------------------------------------
@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
@pytest.mark.parametrize("where", ["beat", "open"])
def test_a_failing_heartbeat_thread_ends_the_run_and_says_why(home, cli, w1, where):
    from coord.app import runner
    from coord.app.context import Coord

    said = []
    with Coord(home) as c:
        real_twin = c.twin

        def twin(actor=None):
            if where == "open":
                raise RuntimeError("cannot open the store here")
            t = real_twin(actor)

            def transact(*a, **kw):  # every append of the heartbeat thread fails
                raise RuntimeError("disk on fire")

            t.store.transact = transact
            return t

        c.twin = twin
        res = runner.run_worker(
            c,
            "w-1",
            [PY, "-c", "import time; time.sleep(30)"],
            "a1",
            interval=0.1,
            grace=1,
            here=True,
            say=said.append,
        )
    # ended at once (SIGTERM), not left to run without heartbeats for its 30 s
    assert res.signal == "SIGTERM"
    assert res.ended_by == "heartbeat-failed" and res.exit == 1 and res.state == "FAILED"
    why = "cannot open the store here" if where == "open" else "disk on fire"
    assert any("heartbeat thread failed" in s and why in s for s in said), said
    assert why in state_of(cli, "w-1")["reason"]
