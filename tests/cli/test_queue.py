"""The merge queue and overlap detection against real repositories: `coord queue` merges
APPROVED workers one at a time with the required checks run on the merge commit,
`coord overlap` finds conflicts between live workers before either is done, and a queue
killed at any step converges when run again (real processes, failpoints)."""

import random
import shutil
import signal
import subprocess
import threading
import time

import pytest

from helpers import commit_file, coord_cmd, g, ok

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
WT = (".coord", "worktrees")


def wt(repo, wid):
    return repo.joinpath(*WT, wid)


def working(cli, repo, wid, files: dict, agent=None):
    ok(cli("spawn", wid))
    ok(cli("--as", agent or f"ag-{wid}", "start", wid))
    for name, text in files.items():
        commit_file(wt(repo, wid), name, text)


def hand_in(cli, wid, agent=None):
    ok(cli("--as", agent or f"ag-{wid}", "done", wid))
    ok(cli("--as", "rev", "approve", wid))


def state(cli, wid):
    return ok(cli("show", wid, "--json")).json()["state"]


def merges_on_main(repo):
    out = g(repo, "log", "--merges", "--first-parent", "--format=%s", "main")
    return [ln.split()[2] for ln in out.splitlines() if ln.startswith("Merge worker ")]


# --- the order ------------------------------------------------------------------------
def test_rank_priority_fifo_and_aging():
    from coord.app.queue import rank

    waiting = [
        {"worker": "late-urgent", "priority": 0, "since": "2026-01-01T00:00:05.000000Z"},
        {"worker": "old-low", "priority": 3, "since": "2026-01-01T00:00:01.000000Z"},
        {"worker": "a", "priority": 2, "since": "2026-01-01T00:00:03.000000Z"},
        {"worker": "b", "priority": 2, "since": "2026-01-01T00:00:02.000000Z"},
    ]
    assert [d["worker"] for d in rank(waiting, [])] == ["late-urgent", "b", "a", "old-low"]
    # old-low passed over by ten merges while it waited (before a and b came): one
    # priority up (3 → 2), and then first in first out puts it ahead of a and b
    merged = [(f"2026-01-01T00:00:01.{i:06d}Z", f"m{i}") for i in range(1, 11)]
    got = rank(waiting, merged)
    assert [d["worker"] for d in got] == ["late-urgent", "old-low", "b", "a"]
    assert got[1]["effective"] == 2 and got[1]["passed_over"] == 10
    assert rank(waiting, merged[:9])[3]["worker"] == "old-low"


def test_queue_once_with_nothing_to_merge_exits_4(repo, cli):
    r = cli("queue", "--once")
    assert r.exit_code == 4 and "nothing to merge" in r.stderr


# --- the scenario -----------------------------------------------------------------------
def test_five_workers_overlap_found_early_queue_catches_merged_failure(repo, cli):
    # The check fails when both forbid.txt (main, later) and bad.txt (w-bad) exist.
    ok(cli("config", "check.tests", "sh -c '! { test -f forbid.txt && test -f bad.txt; }'"))
    ok(cli("config", "required_checks", "tests"))
    working(cli, repo, "w-x", {"a.txt": "x version\n"})
    working(cli, repo, "w-y", {"a.txt": "y version\n"})
    working(cli, repo, "w-bad", {"bad.txt": "harmless alone\n"})
    working(cli, repo, "w-1", {"one.txt": "1\n"})
    working(cli, repo, "w-2", {"two.txt": "2\n"})
    # overlap finds the conflict between w-x and w-y while both are still WORKING
    r = ok(cli("overlap", "--json")).json()
    assert [(p["a"], p["b"], p["files"]) for p in r["pairs"]] == [("w-x", "w-y", ["a.txt"])]
    assert {state(cli, w) for w in ("w-x", "w-y")} == {"WORKING"}
    # w-bad's check passes on its branch
    ok(cli("--as", "ag-w-bad", "check", "w-bad", "tests"))
    commit_file(repo, "forbid.txt", "main moved on\n")
    for w in ("w-bad", "w-x", "w-y", "w-2", "w-1"):  # approval order = queue order (FIFO)
        hand_in(cli, w)
    main_before = g(repo, "rev-parse", "main")
    r = ok(cli("--as", "merger", "queue", "--once", "--json"))
    outcomes = {d["worker"]: d["outcome"] for d in r.json()}
    assert outcomes == {
        "w-bad": "check_failed",
        "w-x": "merged",
        "w-y": "conflicted",
        "w-2": "merged",
        "w-1": "merged",
    }
    assert [d["worker"] for d in r.json()] == ["w-bad", "w-x", "w-y", "w-2", "w-1"]
    assert merges_on_main(repo) == ["w-1", "w-2", "w-x"]  # newest first
    assert g(repo, "merge-base", "--is-ancestor", main_before, "main") == ""
    assert not (repo / "bad.txt").exists() and "bad.txt" not in g(
        repo, "ls-tree", "-r", "--name-only", "main"
    )
    # w-bad: back to WORKING with the same holder; the failure on the merge commit recorded
    v = ok(cli("show", "w-bad", "--json")).json()
    assert v["state"] == "WORKING" and v["holder"] == "ag-w-bad"
    fail = [e for e in ok(cli("log", "--json", "--type", "worker.check_failed")).jsonl()][0]
    assert fail["payload"]["check"] == "tests" and fail["to"] == "w-bad"
    runs = [e for e in ok(cli("log", "--json", "--type", "check.*")).jsonl() if e["to"] == "w-bad"]
    assert [e["type"] for e in runs] == ["check.passed", "check.failed"]
    merge_commit = runs[-1]["payload"]["commit"]
    assert runs[-1]["payload"]["head"] == g(repo, "rev-parse", "coord/w-bad")
    assert g(repo, "rev-parse", f"{merge_commit}^2") == runs[-1]["payload"]["head"]
    assert fail["payload"]["commit"] == merge_commit
    # the merged ones recorded their checks on their merge commits
    for w in ("w-x", "w-1", "w-2"):
        p = [e for e in ok(cli("log", "--json", "--type", "check.passed")).jsonl() if e["to"] == w][-1][
            "payload"
        ]
        assert p["queue"] is True and w in g(repo, "log", "-1", "--format=%s", p["commit"])
        assert g(repo, "merge-base", "--is-ancestor", p["commit"], "main") == ""
    v = ok(cli("show", "w-y", "--json")).json()
    assert v["state"] == "CONFLICTED" and v["info"]["files"] == ["a.txt"]
    # no scratch worktree left behind
    assert ".scratch" not in g(repo, "worktree", "list")
    assert cli("queue", "--once").exit_code == 4


def test_two_queues_never_merge_a_worker_twice(repo, cli, proc):
    ok(cli("config", "check.tests", "sleep 0.2"))
    ok(cli("config", "required_checks", "tests"))
    for i in range(3):
        working(cli, repo, f"w{i}", {f"f{i}.txt": "x\n"})
        hand_in(cli, f"w{i}")
    results = []

    def go():
        results.append(proc("--as", "merger", "queue", "--once", cwd=repo, timeout=300))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert sorted(merges_on_main(repo)) == ["w0", "w1", "w2"]
    merged = ok(cli("log", "--json", "--type", "worker.merged")).jsonl()
    assert sorted(e["to"] for e in merged) == ["w0", "w1", "w2"]


def test_a_queue_stopped_during_a_check_records_no_verdict(repo, cli, tmp_path):
    started = tmp_path / "started"
    ok(cli("config", "check.tests", f"sh -c 'touch {started}; sleep 60'"))
    ok(cli("config", "required_checks", "tests"))
    working(cli, repo, "w1", {"f.txt": "x\n"})
    hand_in(cli, "w1")
    main_before = g(repo, "rev-parse", "main")
    p = subprocess.Popen(
        [*coord_cmd(), "--as", "merger", "queue", "--once"], cwd=repo, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not started.exists():
        assert p.poll() is None and time.monotonic() < deadline, p.stderr.read() if p.poll() else "timeout"
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert "nothing recorded" in err
    assert state(cli, "w1") == "APPROVED" and g(repo, "rev-parse", "main") == main_before
    assert ok(cli("log", "--json", "--type", "check.*")).jsonl() == []
    assert ".scratch" not in g(repo, "worktree", "list")


# --- overlap -----------------------------------------------------------------------------
def test_overlap_uncommitted_base_notify_once_and_touches_nothing(repo, cli):
    working(cli, repo, "w1", {"a.txt": "one\n"})
    working(cli, repo, "w2", {"c.txt": "two\n"})
    (wt(repo, "w2") / "a.txt").write_text("two, not committed\n")  # tracked, uncommitted
    commit_file(repo, "b.txt", "main's b\n")
    commit_file(wt(repo, "w1"), "b.txt", "w1's b\n")
    index = wt(repo, "w2") / ".git"
    index_file = g(wt(repo, "w2"), "rev-parse", "--path-format=absolute", "--git-path", "index")
    before = (open(index_file, "rb").read(), g(wt(repo, "w2"), "status", "--porcelain"))
    r = ok(cli("overlap", "--json")).json()
    assert (open(index_file, "rb").read(), g(wt(repo, "w2"), "status", "--porcelain")) == before
    assert index.exists()
    assert r["pairs"] == [
        {
            "a": "w1",
            "b": "w2",
            "heads": [g(repo, "rev-parse", "coord/w1"), g(repo, "rev-parse", "coord/w2")],
            "files": [],
            "uncommitted": ["a.txt"],
        }
    ]
    assert [(b["worker"], b["base"], b["files"]) for b in r["bases"]] == [("w1", "main", ["b.txt"])]
    assert {w["worker"]: w["uncommitted"] for w in r["workers"]} == {"w1": False, "w2": True}
    text = ok(cli("overlap")).stdout
    assert "w1 × w2: conflict only with uncommitted: a.txt" in text and "w1 × base main" in text
    assert "overlaps" in ok(cli("status", "--overlaps")).stdout
    board = {d["worker"]: d["overlaps"] for d in ok(cli("status", "--overlaps", "--json")).json()}
    assert board["w2"] == [{"with": "w1", "files": [], "uncommitted": ["a.txt"]}]
    assert {o["with"] for o in board["w1"]} == {"w2", "base:main"}
    # a rerun is answered from the cache
    again = ok(cli("overlap", "--json")).json()
    assert again["cached"] == again["checked"] > 0
    # --notify: once per pair of heads, to each worker (its holder reads it)
    sent = ok(cli("--as", "lead", "overlap", "--notify", "--json")).json()["notified"]
    assert sorted(s["to"] for s in sent) == ["w1", "w1", "w2"]
    assert ok(cli("--as", "lead", "overlap", "--notify", "--json")).json()["notified"] == []
    inbox = ok(cli("--as", "ag-w2", "poll", "--json")).jsonl()
    assert [m["type"] for m in inbox] == ["msg.coord.overlap"]
    assert inbox[0]["payload"]["with"] == "w1" and inbox[0]["payload"]["uncommitted"] == ["a.txt"]
    commit_file(wt(repo, "w1"), "d.txt", "w1 moves\n")
    sent = ok(cli("--as", "lead", "overlap", "--notify", "--json")).json()["notified"]
    assert sorted(s["to"] for s in sent) == ["w1", "w1", "w2"]


# --- crashes -----------------------------------------------------------------------------
STEPS = [
    "queue-picked",
    "queue-built",
    "queue-scratch",
    "queue-checked",
    "merge-after-git",
    "queue-after-merge",
]


def _crash_round(repo, cli, proc, rnd, n: int):
    ws = [f"c{n}-{i}" for i in range(2)]
    for i, w in enumerate(ws):
        working(cli, repo, w, {f"{w}.txt": f"{i}\n"})
        hand_in(cli, w)
    point = rnd.choice(STEPS)
    r = proc("--as", "merger", "queue", "--once", env={"COORD_FAILPOINTS": point}, cwd=repo, timeout=300)
    assert r.returncode == -9, (point, r.returncode, r.stderr)
    events_before = ok(cli("log", "--json")).jsonl()
    r = proc("--as", "merger", "queue", "--once", cwd=repo, timeout=300)
    assert r.returncode == 0, (point, r.stderr)
    # git and coord agree: each worker merged once, recorded with the commit on main
    for w in ws:
        v = ok(cli("show", w, "--json")).json()
        assert v["state"] == "COMPLETED", (point, w, v["state"])
        assert merges_on_main(repo).count(w) == 1, point
        assert g(repo, "merge-base", "--is-ancestor", v["info"]["commit"], "main") == ""
        assert w in g(repo, "log", "-1", "--format=%s", v["info"]["commit"])
    # nothing recorded before the crash was lost; no scratch worktree is left
    ids = {e["id"] for e in ok(cli("log", "--json")).jsonl()}
    assert {e["id"] for e in events_before} <= ids
    assert ".scratch" not in g(repo, "worktree", "list")
    assert cli("queue", "--once").exit_code == 4
    assert ok(cli("verify")).exit_code == 0
    return point


class _Steps:
    """Picks failpoints: distinct ones at random while they last, then any."""

    def __init__(self, seed: int):
        self.rnd = random.Random(seed)
        self.left = self.rnd.sample(STEPS, len(STEPS))

    def choice(self, options):
        return self.left.pop() if self.left else self.rnd.choice(options)


def _crash_loop(repo, cli, proc, rounds: int, seed: int):
    ok(cli("config", "check.tests", "true"))
    ok(cli("config", "required_checks", "tests"))
    steps = _Steps(seed)
    return [_crash_round(repo, cli, proc, steps, n) for n in range(rounds)]


def test_queue_killed_at_random_steps_converges(repo, cli, proc):
    """A few rounds, each killed at another step; --runslow: fifty, every step."""
    _crash_loop(repo, cli, proc, rounds=3, seed=random.randrange(1 << 30))


@pytest.mark.slow
def test_queue_killed_at_random_steps_fifty_rounds(repo, cli, proc):
    seen = _crash_loop(repo, cli, proc, rounds=50, seed=17)
    assert set(seen) == set(STEPS)
