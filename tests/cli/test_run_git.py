"""`coord run` on a worker with a branch: the child works in the worker's worktree, and its
exit 0 hands in through `done`'s rebase, as `coord done` would (real git)."""

import json
import shutil

import pytest

from helpers import commit_file, g

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def run(proc, *cmd):
    return proc("--as", "ag", "run", "w1", "--interval", "0.2", "--", "sh", "-c", *cmd)


def test_child_runs_in_the_worktree_and_done_rebases(repo, cli, proc):
    assert cli("spawn", "w1", "--task", "t").exit_code == 0
    commit_file(repo, "b.txt", "b changed on main\n")
    r = run(proc, "pwd; echo new > c.txt && git add c.txt && git commit -qm 'add c' && echo committed")
    assert r.returncode == 0, r.stderr
    wt = repo / ".coord" / "worktrees" / "w1"
    assert r.stdout.splitlines()[0] == str(wt)
    v = cli("show", "w1", "--json").json()
    assert v["state"] == "IN_REVIEW" and v["summary"] == "committed"
    assert v["info"]["rebased"] is True
    assert v["info"]["head"] == g(repo, "rev-parse", "coord/w1")
    assert g(repo, "merge-base", "--is-ancestor", "main", "coord/w1", check=False) == ""


def test_uncommitted_work_fails_the_worker_with_the_reason(repo, cli, proc):
    assert cli("spawn", "w1").exit_code == 0
    r = run(proc, "echo wip >> a.txt")  # a tracked file, changed and not committed
    assert r.returncode == 0
    v = cli("show", "w1", "--json").json()
    assert v["state"] == "FAILED"
    assert v["reason"].startswith("exit 0, but done was refused:") and "uncommitted" in v["reason"]


def test_rebase_conflict_leaves_it_conflicted(repo, cli, proc):
    assert cli("spawn", "w1").exit_code == 0
    commit_file(repo, "a.txt", "main's line 1\nline 2\nline 3\n")
    r = run(proc, "printf 'my line 1\\nline 2\\nline 3\\n' > a.txt && git commit -qam mine")
    assert r.returncode == 0, r.stderr
    v = cli("show", "w1", "--json").json()
    assert v["state"] == "CONFLICTED" and "a.txt" in v["info"]["files"]
    assert "conflicts in a.txt" in r.stderr


def test_here_runs_in_the_current_directory(repo, cli, proc):
    assert cli("spawn", "w1").exit_code == 0
    r = proc("--as", "ag", "--json", "run", "w1", "--here", "--", "sh", "-c", "pwd; exit 2")
    assert r.returncode == 2
    assert r.stdout.splitlines()[0] == str(repo)
    assert json.loads(r.stdout.splitlines()[-1])["state"] == "FAILED"
