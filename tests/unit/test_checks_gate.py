"""The merge gate as a pure function: which check runs count (the head `done` recorded,
the command `check.NAME` names now, a clean worktree) and the latest counting run
decides."""

from coord.projections.checks import gate, latest, status_of

HEAD, OTHER = "a" * 40, "b" * 40
TESTS = ["pytest", "-q"]


def run(passed, head=HEAD, command=TESTS, name="tests", dirty=False, n=0):
    return {
        "name": name,
        "passed": passed,
        "command": command,
        "head": head,
        "commit": head,
        "dirty": dirty,
        "exit": 0 if passed else 1,
        "event": f"b3:{n:064x}",
    }


def test_nothing_required_nothing_blocks():
    assert gate([], HEAD, {}) == []


def test_only_counting_runs_decide():
    need = {"tests": TESTS}
    assert gate([], HEAD, need) == [f"tests: no run of `pytest -q` on {HEAD[:12]}"]
    for r in (run(True, head=OTHER), run(True, command=["true"]), run(True, dirty=True)):
        assert len(gate([r], HEAD, need)) == 1, r
    assert gate([run(True)], HEAD, need) == []
    # the latest counting run decides; a non-counting run after it changes nothing
    assert "failed" in gate([run(True, n=1), run(False, n=2)], HEAD, need)[0]
    assert gate([run(False, n=1), run(True, n=2), run(False, head=OTHER, n=3)], HEAD, need) == []


def test_each_required_check_is_named():
    need = {"tests": TESTS, "lint": ["ruff", "check"]}
    problems = gate([run(True)], HEAD, need)
    assert len(problems) == 1 and problems[0].startswith("lint:")


def test_board_words():
    need = {"tests": TESTS}
    runs = [run(True), run(False, name="adhoc", command=["x"])]
    assert latest(runs)["adhoc"]["passed"] is False
    assert status_of(runs, HEAD, need) == {"tests": "passed", "adhoc": "failed"}
    assert status_of([run(True, head=OTHER)], HEAD, need) == {"tests": "stale"}
    assert status_of([], HEAD, need) == {"tests": "missing"}
