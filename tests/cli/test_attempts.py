"""Attempts through the CLI: start/show/status report them, --attempt and COORD_ATTEMPT
fence stale actions (exit 4, nothing appended), the stamp counts for repeats and request
ids, an imported stale action is a conflict, `coord run` adopts only an unsupervised
attempt."""

import json
import os
import subprocess
import sys
import time

from coord.events.codec import audit_line
from coord.events.envelope import Envelope, canonical, event_id, now_us, us_to_ts
from helpers import coord_cmd, count_events, ok


def started(cli, wid="w-1", who="a"):
    return ok(cli("--as", who, "--json", "start", wid)).json()


def test_start_show_and_status_report_the_attempt(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))
    r = started(cli)
    assert r["attempt"] == 1 and r["attempt_of"] == r["event"]
    ok(cli("--as", "a", "release", "w-1"))
    r2 = started(cli, who="b")
    assert r2["attempt"] == 2 and r2["attempt_of"] == r2["event"]
    st = cli("status", "--json").json()[0]
    assert (st["attempt"], st["attempt_of"]) == (2, r2["event"]) and st["spawner"].startswith("human:")
    sh = cli("show", "w-1", "--json").json()
    assert (sh["attempt"], sh["attempt_of"]) == (2, r2["event"])
    assert f"attempt   2 ({r2['event'][:15]})" in cli("show", "w-1").stdout
    assert "(attempt 2)" not in cli("--as", "b", "start", "w-1").stdout  # a repeat says nothing new


def test_a_stale_attempt_is_refused_whatever_the_name(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))
    started(cli)
    ok(cli("--as", "a", "release", "w-1"))
    started(cli)  # the same name, attempt 2
    n = count_events(home)
    for args in (["heartbeat"], ["done"], ["fail"], ["release"]):
        r = cli("--as", "a", *args, "w-1", "--attempt", "1")
        assert r.exit_code == 4, (args, r.stderr)
        assert "attempt 1 of w-1 is not current (current: attempt 2" in r.stderr
    r = cli("--as", "a", "--json", "done", "w-1", "--attempt", "1")
    assert json.loads(r.stderr)["error"]["code"] == "stale_attempt"
    assert count_events(home) == n  # nothing appended
    ok(cli("--as", "a", "heartbeat", "w-1", "--attempt", "2"))
    ok(cli("--as", "a", "heartbeat", "w-1"))  # unstamped: the name-based rules


def test_coord_attempt_applies_to_coord_worker_only(home, cli):
    for w in ("w-1", "w-2"):
        ok(cli("spawn", w, "--no-git"))
        started(cli, w)
    ok(cli("--as", "a", "release", "w-1"))
    started(cli, "w-1")  # w-1 at attempt 2, w-2 at attempt 1
    env = {"COORD_WORKER": "w-1", "COORD_ATTEMPT": "1"}
    assert cli("--as", "a", "heartbeat", env=env).exit_code == 4  # w-1, attempt 1: stale
    ok(cli("--as", "a", "heartbeat", "w-2", env={"COORD_WORKER": "w-1", "COORD_ATTEMPT": "2"}))
    r = cli("--as", "a", "heartbeat", env={"COORD_WORKER": "w-1", "COORD_ATTEMPT": "x"})
    assert r.exit_code == 2 and "COORD_ATTEMPT" in r.stderr
    ok(cli("--as", "a", "done", env={"COORD_WORKER": "w-1", "COORD_ATTEMPT": "2"}))
    last = cli("--json", "log", "--worker", "w-1", "--limit", "1").jsonl()[-1]
    assert last["type"] == "worker.done" and last["payload"]["attempt"] == 2
    assert last["payload"]["attempt_of"] == cli("show", "w-1", "--json").json()["attempt_of"]


def test_the_stamp_counts_for_repeats_and_request_ids(home, cli):
    ok(cli("spawn", "w-1", "--no-git"))
    started(cli)
    ok(cli("--as", "a", "heartbeat", "w-1", "--attempt", "1", "--request-id", "k"))
    r = cli("--as", "a", "heartbeat", "w-1", "--request-id", "k")  # same key, no stamp
    assert r.exit_code == 4 and "attempt differs" in r.stderr
    ok(cli("--as", "a", "done", "w-1", "--attempt", "1", "--summary", "s"))
    n = count_events(home)
    r = ok(cli("--as", "a", "done", "w-1", "--attempt", "1", "--summary", "s"))
    assert "nothing appended" in r.stdout and count_events(home) == n
    r = cli("--as", "a", "done", "w-1", "--summary", "s")  # other arguments: not a repeat
    assert r.exit_code == 4


def test_an_imported_stale_action_is_a_conflict_and_a_stale_beat_is_skipped(home, cli, tmp_path):
    ok(cli("spawn", "w-1", "--no-git"))
    a1 = started(cli)["attempt_of"]
    ok(cli("--as", "wd", "release", "w-1", "--force"))
    a2 = started(cli)["attempt_of"]
    t = now_us() + 1000
    lines = []
    for i, (etype, p) in enumerate(
        [
            ("worker.heartbeat", {"attempt": 1, "attempt_of": a1}),
            ("worker.done", {"attempt": 1, "attempt_of": a1}),
        ]
    ):
        env = Envelope(us_to_ts(t + i), "a", "w-1", etype, p)
        body = canonical(env)
        lines.append(audit_line(event_id(body), body))
    f = tmp_path / "pulled.jsonl"
    f.write_bytes(b"".join(lines))
    ok(cli("import", str(f)))
    v = cli("show", "w-1", "--json").json()
    assert v["state"] == "WORKING" and v["attempt_of"] == a2 and v["heartbeat"]["count"] == 0
    assert [(c["type"], "no longer current" in c["reason"]) for c in v["conflicts"]] == [
        ("worker.done", True)
    ]


def _run(home, *args, **kw):
    env = dict(os.environ, COORD_HOME=str(home), **kw.pop("env", {}))
    return subprocess.Popen(
        [*coord_cmd(), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for(cond, timeout=60, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_start_then_run_adopts_and_a_second_run_is_refused(home, cli, tmp_path):
    ok(cli("spawn", "w-1", "--no-git"))
    att = started(cli)["attempt_of"]
    go = tmp_path / "go"
    script = f"import os, time\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\nprint('fin')\n"
    first = _run(home, "--as", "a", "run", "w-1", "--interval", "0.2", "--", sys.executable, "-c", script)
    try:
        wait_for(
            lambda: cli("show", "w-1", "--json").json()["heartbeat"]["count"] >= 1, what="first run beats"
        )
        second = _run(home, "--as", "a", "run", "w-1", "--interval", "0.2", "--", "true")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 4, err
        assert "supervised by a coord run" in err and "attempt 1" in err
    finally:
        go.touch()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert "already started by a; running it" in err and "adopted (attempt 1)" in err
    evs = cli("--json", "log", "--worker", "w-1").jsonl()
    ran = [e for e in evs if e["type"] in ("worker.heartbeat", "worker.done")]
    assert ran and all(e["payload"]["attempt_of"] == att for e in ran)
    assert evs[-1]["type"] == "worker.done"
