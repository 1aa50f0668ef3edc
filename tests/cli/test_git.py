"""Branch per worker, against real git repositories in temporary directories: spawn makes
a branch and a worktree, done rebases, merge really merges, conflicts leave the
integration branch as it was, crashes between git and the record are retried safely."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import commit_file, count_events, g, ok

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def porcelain(cwd) -> str:
    """`git status --porcelain` without coord's own files: .coord/events.jsonl is
    committed and coord appends to it after every action (docs/audit.md)."""
    out = subprocess.run(
        ["git", "status", "--porcelain"], cwd=str(cwd), capture_output=True, text=True, check=True
    ).stdout
    return "\n".join(line for line in out.splitlines() if ".coord/" not in line).strip()


def view(cli, wid):
    return ok(cli("show", wid, "--json")).json()


def through_review(cli, wid, agent="ag"):
    ok(cli("--as", agent, "done", wid))
    ok(cli("--as", "reviewer", "approve", wid))


def merges_naming(root, wid):
    out = g(root, "log", "--merges", "--format=%H %s", "main")
    return [ln.split()[0] for ln in out.splitlines() if f"worker {wid} " in ln]


def test_spawn_makes_branch_and_worktree_and_start_prints_it(repo, cli):
    r = ok(cli("spawn", "w1", "--task", "t"))
    wt = repo / ".coord" / "worktrees" / "w1"
    assert "coord/w1" in r.stdout and str(wt) in r.stdout
    assert g(repo, "rev-parse", "coord/w1") == g(repo, "rev-parse", "main")
    assert g(wt, "symbolic-ref", "--short", "HEAD") == "coord/w1"
    v = view(cli, "w1")
    assert (v["branch"], v["base"], v["worktree"]) == ("coord/w1", "main", str(wt))
    ev = [e for e in ok(cli("log", "--json")).jsonl() if e["type"] == "worker.spawned"][0]
    assert ev["payload"] == {
        "task": "t",
        "branch": "coord/w1",
        "base": "main",
        "worktree": str(wt),
        "prefix": "coord/",
    }
    assert str(wt) in ok(cli("--as", "ag", "start", "w1")).stdout
    # the main working tree stays clean: worktrees and coord's files are ignored
    assert porcelain(repo) == ""


def test_branch_prefix_base_custom_worktree_and_no_worktree(repo, cli, tmp_path):
    g(repo, "branch", "develop")
    ok(cli("config", "branch_prefix", "agents/"))
    ok(cli("spawn", "w1", "--base", "develop", "--worktree", str(tmp_path / "elsewhere")))
    v = view(cli, "w1")
    assert (v["branch"], v["base"], v["worktree"]) == ("agents/w1", "develop", str(tmp_path / "elsewhere"))
    assert g(tmp_path / "elsewhere", "symbolic-ref", "--short", "HEAD") == "agents/w1"
    ok(cli("spawn", "w2", "--no-worktree"))
    v = view(cli, "w2")
    assert v["branch"] == "agents/w2" and v["worktree"] is None
    assert not (repo / ".coord" / "worktrees" / "w2").exists()


def test_two_workers_on_different_files_both_merge(repo, cli):
    for w in ("w1", "w2"):
        ok(cli("spawn", w))
        ok(cli("--as", "ag", "start", w))
    wts = {w: repo / ".coord" / "worktrees" / w for w in ("w1", "w2")}
    commit_file(wts["w1"], "one.txt", "from w1\n")
    commit_file(wts["w2"], "two.txt", "from w2\n")
    for w in ("w1", "w2"):
        through_review(cli, w)
    for w in ("w1", "w2"):
        r = ok(cli("merge", w))
        assert "COMPLETED" in r.stdout
    assert (repo / "one.txt").read_text() == "from w1\n"  # main is checked out: files updated
    assert (repo / "two.txt").read_text() == "from w2\n"
    assert porcelain(repo) == ""
    for w in ("w1", "w2"):
        v = view(cli, w)
        assert v["state"] == "COMPLETED" and v["worktree"] is None
        assert not wts[w].exists()
        assert g(repo, "rev-parse", "--verify", f"coord/{w}")  # the branch stays
        [c] = merges_naming(repo, w)
        assert v["info"] == {"commit": c, "into": "main"}
        assert f"coord-worker: {w}" in g(repo, "log", "-1", "--format=%B", c)
    assert g(repo, "worktree", "list").count("\n") == 0  # only the main working tree


def test_same_lines_conflict_at_done_then_resolved(repo, cli):
    for w in ("w1", "w2"):
        ok(cli("spawn", w))
        ok(cli("--as", "ag", "start", w))
    wt1, wt2 = (repo / ".coord" / "worktrees" / w for w in ("w1", "w2"))
    commit_file(wt1, "a.txt", "line 1\nW1\nline 3\n")
    commit_file(wt2, "a.txt", "line 1\nW2\nline 3\n")
    through_review(cli, "w1")
    ok(cli("merge", "w1"))
    main_head, main_text = g(repo, "rev-parse", "main"), (repo / "a.txt").read_text()
    w2_head = g(repo, "rev-parse", "coord/w2")
    n = count_events(repo / ".coord")

    r = cli("--as", "ag", "done", "w2")
    assert r.exit_code == 4
    assert "a.txt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert count_events(repo / ".coord") == n + 1  # only the conflict is recorded
    v = view(cli, "w2")
    assert v["state"] == "CONFLICTED"
    assert v["info"] == {"files": ["a.txt"], "stage": "rebase", "onto": "main"}
    # the rebase was aborted: branch, worktree and main exactly as before
    assert g(repo, "rev-parse", "coord/w2") == w2_head
    assert porcelain(wt2) == ""
    assert not Path(g(wt2, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge")).exists()
    assert g(repo, "rev-parse", "main") == main_head and (repo / "a.txt").read_text() == main_text
    # the same conflict again appends nothing and still exits 4
    assert cli("--as", "ag", "done", "w2").exit_code == 4
    assert count_events(repo / ".coord") == n + 1

    # the agent resolves in its worktree, then hands in again
    g(wt2, "rebase", "main", check=False)
    (wt2 / "a.txt").write_text("line 1\nW1 and W2\nline 3\n")
    g(wt2, "add", "a.txt")
    g(wt2, "-c", "core.editor=true", "rebase", "--continue")
    through_review(cli, "w2")
    assert view(cli, "w2")["state"] == "APPROVED"
    ok(cli("merge", "w2"))
    assert view(cli, "w2")["state"] == "COMPLETED"
    assert (repo / "a.txt").read_text() == "line 1\nW1 and W2\nline 3\n"


def test_same_lines_conflict_at_merge_leaves_main_untouched(repo, cli):
    for w in ("w1", "w2"):
        ok(cli("spawn", w))
        ok(cli("--as", "ag", "start", w))
    wt1, wt2 = (repo / ".coord" / "worktrees" / w for w in ("w1", "w2"))
    commit_file(wt1, "a.txt", "line 1\nW1\nline 3\n")
    commit_file(wt2, "a.txt", "line 1\nW2\nline 3\n")
    through_review(cli, "w1")
    through_review(cli, "w2")  # both rebased cleanly: main had not moved yet
    ok(cli("merge", "w1"))
    (repo / "b.txt").write_text("uncommitted work of the person here\n")
    main_head, a_text = g(repo, "rev-parse", "main"), (repo / "a.txt").read_text()

    r = cli("merge", "w2")
    assert r.exit_code == 4 and "a.txt" in r.stderr
    v = view(cli, "w2")
    assert v["state"] == "CONFLICTED"
    assert v["info"] == {"files": ["a.txt"], "stage": "merge", "onto": "main"}
    assert g(repo, "rev-parse", "main") == main_head
    assert (repo / "a.txt").read_text() == a_text
    assert (repo / "b.txt").read_text() == "uncommitted work of the person here\n"
    assert not (repo / ".git" / "MERGE_HEAD").exists()
    assert porcelain(repo) == "M b.txt"

    # resolve by merging main into the branch: done sees main already contained, no rebase
    g(wt2, "merge", "main", check=False)
    (wt2 / "a.txt").write_text("line 1\nboth\nline 3\n")
    g(wt2, "add", "a.txt")
    g(wt2, "commit", "-q", "--no-edit")
    ok(cli("--as", "ag", "done", "w2"))
    assert view(cli, "w2")["info"]["rebased"] is False
    ok(cli("--as", "reviewer", "approve", "w2"))
    ok(cli("merge", "w2"))
    assert view(cli, "w2")["state"] == "COMPLETED"
    assert (repo / "a.txt").read_text() == "line 1\nboth\nline 3\n"
    assert (repo / "b.txt").read_text() == "uncommitted work of the person here\n"


def test_merge_refuses_when_checked_out_tree_has_changes_in_the_way(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "b.txt", "b from w1\n")
    through_review(cli, "w1")
    (repo / "b.txt").write_text("mine, not committed\n")
    head, n = g(repo, "rev-parse", "main"), count_events(repo / ".coord")
    r = cli("merge", "w1")
    assert r.exit_code == 4 and "uncommitted changes" in r.stderr and "b.txt" in r.stderr
    assert count_events(repo / ".coord") == n and view(cli, "w1")["state"] == "APPROVED"
    assert g(repo, "rev-parse", "main") == head
    assert (repo / "b.txt").read_text() == "mine, not committed\n"
    g(repo, "checkout", "--", "b.txt")
    ok(cli("merge", "w1"))
    assert (repo / "b.txt").read_text() == "b from w1\n"


def test_merge_into_a_branch_not_checked_out(repo, cli):
    g(repo, "branch", "release")
    ok(cli("spawn", "w1", "--base", "release"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "r.txt", "r\n")
    through_review(cli, "w1")
    main_head = g(repo, "rev-parse", "main")
    ok(cli("merge", "w1"))
    assert g(repo, "rev-parse", "main") == main_head and not (repo / "r.txt").exists()
    assert g(repo, "show", "release:r.txt") == "r"
    assert g(repo, "rev-parse", "release^2") == g(repo, "rev-parse", "coord/w1")
    assert view(cli, "w1")["info"]["into"] == "release"
    # --into another branch than the base
    ok(cli("spawn", "w2", "--base", "release"))
    ok(cli("--as", "ag", "start", "w2"))
    commit_file(repo / ".coord" / "worktrees" / "w2", "s.txt", "s\n")
    through_review(cli, "w2")
    ok(cli("merge", "w2", "--into", "main"))
    assert (repo / "s.txt").read_text() == "s\n"


def test_cancel_removes_worktree_even_dirty_and_keeps_branch(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    commit_file(wt, "c.txt", "committed\n")
    (wt / "c.txt").write_text("half-done edit\n")
    (wt / "untracked.txt").write_text("x\n")
    ok(cli("cancel", "w1", "--reason", "superseded"))
    assert not wt.exists()
    assert "w1" not in g(repo, "worktree", "list")
    assert g(repo, "show", "coord/w1:c.txt") == "committed"
    v = view(cli, "w1")
    assert v["state"] == "CANCELED" and v["worktree"] is None
    ok(cli("spawn", "w2"))
    ok(cli("cancel", "w2", "--delete-branch"))
    assert g(repo, "branch", "--list", "coord/w2") == ""
    assert not (repo / ".coord" / "worktrees" / "w2").exists()


def test_repeats_append_nothing(repo, cli):
    ok(cli("spawn", "w1", "--task", "t"))
    n = count_events(repo / ".coord")
    assert "already" in ok(cli("spawn", "w1", "--task", "t")).stdout
    assert cli("spawn", "w1", "--task", "other").exit_code == 4
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "x.txt", "x\n")
    ok(cli("--as", "ag", "done", "w1"))
    head = g(repo, "rev-parse", "coord/w1")
    n = count_events(repo / ".coord")
    assert "already" in ok(cli("--as", "ag", "done", "w1")).stdout
    ok(cli("--as", "reviewer", "approve", "w1"))
    ok(cli("--as", "m", "merge", "w1"))
    n = count_events(repo / ".coord")
    main_head = g(repo, "rev-parse", "main")
    assert "already" in ok(cli("--as", "m", "merge", "w1")).stdout
    assert count_events(repo / ".coord") == n and g(repo, "rev-parse", "main") == main_head
    assert g(repo, "rev-parse", "coord/w1") == head


def test_merge_retry_after_crash_between_git_and_record(repo, cli, proc):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "x.txt", "x\n")
    through_review(cli, "w1")
    r = proc("merge", "w1", env={"COORD_FAILPOINTS": "merge-after-git"}, cwd=repo)
    assert r.returncode == -9
    assert len(merges_naming(repo, "w1")) == 1  # git merged ...
    assert view(cli, "w1")["state"] == "APPROVED"  # ... the store did not record it
    head = g(repo, "rev-parse", "main")
    r = proc("merge", "w1", cwd=repo)
    assert r.returncode == 0, r.stderr
    [c] = merges_naming(repo, "w1")  # not merged twice
    assert g(repo, "rev-parse", "main") == head == c
    v = view(cli, "w1")
    assert v["state"] == "COMPLETED" and v["info"]["commit"] == c and v["worktree"] is None
    assert not (repo / ".coord" / "worktrees" / "w1").exists()


def test_spawn_retry_after_crash_between_git_and_record(repo, cli, proc):
    r = proc("spawn", "w1", env={"COORD_FAILPOINTS": "spawn-after-git"}, cwd=repo)
    assert r.returncode == -9
    assert g(repo, "branch", "--list", "coord/w1")
    assert cli("show", "w1").exit_code == 3
    r = proc("spawn", "w1", cwd=repo)
    assert r.returncode == 0, r.stderr
    assert view(cli, "w1")["worktree"] == str(repo / ".coord" / "worktrees" / "w1")


def test_done_retry_after_crash_between_rebase_and_record(repo, cli, proc):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "x.txt", "x\n")
    commit_file(repo, "y.txt", "main moved\n")
    r = proc("--as", "ag", "done", "w1", env={"COORD_FAILPOINTS": "done-after-git"}, cwd=repo)
    assert r.returncode == -9
    rebased = g(repo, "rev-parse", "coord/w1")
    assert g(repo, "rev-parse", "coord/w1~1") == g(repo, "rev-parse", "main")
    assert proc("--as", "ag", "done", "w1", cwd=repo).returncode == 0
    v = view(cli, "w1")
    assert v["state"] == "IN_REVIEW" and v["info"]["head"] == rebased
    assert g(repo, "rev-parse", "coord/w1") == rebased  # not rebased twice


def test_inside_a_worktree_home_and_worker_are_found(repo, cli, proc):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    (wt / "sub").mkdir()
    commit_file(wt, "sub/z.txt", "z\n")
    # the worktree checks out .coord/ (config, audit file) but no database
    assert (wt / ".coord" / "config.toml").exists() and not (wt / ".coord" / "coord.db").exists()
    r = proc("--as", "ag", "heartbeat", cwd=wt / "sub")
    assert r.returncode == 0, r.stderr
    r = proc("--as", "ag", "done", "--summary", "from inside", cwd=wt / "sub")
    assert r.returncode == 0, r.stderr
    v = view(cli, "w1")
    assert v["state"] == "IN_REVIEW" and v["summary"] == "from inside"


def test_status_branches_shows_ahead_and_behind(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("spawn", "w2", "--no-git"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "x.txt", "x\n")
    commit_file(repo / ".coord" / "worktrees" / "w1", "x2.txt", "x\n")
    commit_file(repo, "m.txt", "m\n")
    items = {d["worker"]: d for d in ok(cli("status", "--branches", "--json")).json()}
    assert (items["w1"]["ahead"], items["w1"]["behind"]) == (2, 1)
    assert (items["w2"]["ahead"], items["w2"]["behind"]) == (None, None)
    text = ok(cli("status", "--branches")).stdout
    assert "coord/w1" in text
    assert "ahead" not in ok(cli("status", "--json")).json()[0]  # plain status runs no git


# --- errors: one line, documented exit code, nothing half-created ------------------
def _nothing_created(repo, wid):
    assert g(repo, "branch", "--list", f"coord/{wid}") == ""
    assert not (repo / ".coord" / "worktrees" / wid).exists()
    assert wid not in g(repo, "worktree", "list")


def _one_line_error(r, code):
    assert r.exit_code == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


def test_no_such_base(repo, cli):
    n = count_events(repo / ".coord")
    line = _one_line_error(cli("spawn", "w1", "--base", "nope"), 3)
    assert "nope" in line
    _nothing_created(repo, "w1")
    assert count_events(repo / ".coord") == n


def test_detached_head_without_base(repo, cli):
    g(repo, "checkout", "-q", "--detach")
    line = _one_line_error(cli("spawn", "w1"), 2)
    assert "detached HEAD" in line and "--base" in line
    _nothing_created(repo, "w1")
    ok(cli("spawn", "w1", "--base", "main"))


def test_worktree_path_in_the_way_undoes_the_branch(repo, cli, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "f").write_text("x")
    n = count_events(repo / ".coord")
    _one_line_error(cli("spawn", "w1", "--worktree", str(tmp_path / "busy")), 4)
    assert g(repo, "branch", "--list", "coord/w1") == ""  # created, then undone
    assert count_events(repo / ".coord") == n


def test_git_missing(repo, cli, tmp_path):
    bindir = tmp_path / "bin"  # a PATH with python but without git
    bindir.mkdir()
    env = {"PATH": str(bindir)}
    line = _one_line_error(cli("spawn", "w1", env=env), 1)
    assert "git is not installed" in line and "--no-git" in line
    ok(cli("spawn", "w1", "--no-git", env=env))
    assert view(cli, "w1")["branch"] is None
    _nothing_created(repo, "w1")


def test_dirty_worktree_at_done(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    (wt / "a.txt").write_text("not committed\n")
    n = count_events(repo / ".coord")
    line = _one_line_error(cli("--as", "ag", "done", "w1"), 4)
    assert "uncommitted" in line and "a.txt" in line
    assert count_events(repo / ".coord") == n and view(cli, "w1")["state"] == "WORKING"
    assert (wt / "a.txt").read_text() == "not committed\n"


def test_detached_head_in_worktree_at_done(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    g(repo / ".coord" / "worktrees" / "w1", "checkout", "-q", "--detach")
    line = _one_line_error(cli("--as", "ag", "done", "w1"), 4)
    assert "detached HEAD" in line
    assert view(cli, "w1")["state"] == "WORKING"


def test_branch_only_worker_rebases_in_a_temporary_worktree(repo, cli):
    ok(cli("spawn", "w1", "--no-worktree"))
    ok(cli("--as", "ag", "start", "w1"))
    tmp = repo.parent / "agent-checkout"
    g(repo, "worktree", "add", "-q", str(tmp), "coord/w1")
    commit_file(tmp, "x.txt", "x\n")
    g(repo, "worktree", "remove", str(tmp))
    commit_file(repo, "y.txt", "y\n")
    ok(cli("--as", "ag", "done", "w1"))
    assert g(repo, "rev-parse", "coord/w1~1") == g(repo, "rev-parse", "main")
    assert g(repo, "worktree", "list").count("\n") == 0  # the temporary worktree is gone
    through = ok(cli("--as", "reviewer", "approve", "w1"))
    assert through
    ok(cli("merge", "w1"))
    assert (repo / "x.txt").exists()


def test_merge_refuses_commits_added_after_review(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    commit_file(wt, "x.txt", "x\n")
    through_review(cli, "w1")
    commit_file(wt, "x.txt", "sneaky\n")
    line = _one_line_error(cli("merge", "w1"), 4)
    assert "moved since it was handed in" in line
    assert not (repo / "x.txt").exists()


# --- outside git, or --no-git: as before ---------------------------------------------
def test_outside_git_workers_have_no_branch(home, cli):
    ok(cli("spawn", "w1"))
    assert view(cli, "w1")["branch"] is None
    assert _one_line_error(cli("spawn", "w2", "--base", "main"), 2)
    ok(cli("--as", "ag", "start", "w1"))
    ok(cli("--as", "ag", "done", "w1"))
    ok(cli("--as", "rv", "approve", "w1"))
    ok(cli("merge", "w1"))
    assert view(cli, "w1")["state"] == "COMPLETED"
    d = ok(cli("status", "--all", "--branches", "--json")).json()[0]
    assert d["ahead"] is None


def test_no_git_inside_a_repository(repo, cli):
    ok(cli("spawn", "w1", "--no-git"))
    assert view(cli, "w1")["branch"] is None
    assert g(repo, "branch", "--list", "coord/w1") == ""
    ok(cli("--as", "ag", "start", "w1"))
    ok(cli("--as", "ag", "done", "w1"))
    ok(cli("--as", "rv", "approve", "w1"))
    ok(cli("merge", "w1"))
    assert json.loads(ok(cli("show", "w1", "--json")).stdout)["state"] == "COMPLETED"


def test_concurrent_merges_of_two_workers_both_land(repo, cli):
    """Two real processes merge two workers into the checked-out main at once."""
    from helpers import coord_cmd

    for w in ("w1", "w2", "w3"):
        ok(cli("spawn", w))
        ok(cli("--as", "ag", "start", w))
        commit_file(repo / ".coord" / "worktrees" / w, f"{w}.txt", f"{w}\n")
        through_review(cli, w)
    ps = [
        subprocess.Popen(
            [*coord_cmd(), "merge", w], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for w in ("w1", "w2", "w3")
    ]
    for p in ps:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    for w in ("w1", "w2", "w3"):
        assert view(cli, w)["state"] == "COMPLETED"
        assert (repo / f"{w}.txt").read_text() == f"{w}\n"
        assert len(merges_naming(repo, w)) == 1
    assert porcelain(repo) == ""


def test_spawn_repeated_with_other_git_arguments_is_refused(repo, cli):
    g(repo, "branch", "feature")
    ok(cli("spawn", "s1", "--task", "t"))
    n = len(ok(cli("log", "--json")).jsonl())
    assert "nothing appended" in ok(cli("spawn", "s1", "--task", "t")).stdout  # same arguments
    for extra in (("--base", "feature"), ("--no-worktree",), ("--worktree", str(repo.parent / "elsewhere"))):
        r = cli("spawn", "s1", "--task", "t", *extra)
        assert r.exit_code == 4 and "already exists" in r.stderr, extra
    assert len(ok(cli("log", "--json")).jsonl()) == n
    assert not (repo.parent / "elsewhere").exists()
