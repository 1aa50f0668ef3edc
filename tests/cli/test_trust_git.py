"""The trust boundary at git and paths (issue 11, items 2, 3, 6, 7 and part of 12), against
real git repositories: no branch or path is taken from an event's payload, an existing
branch is never silently adopted or deleted with commits nobody else has, git and the
agent's child keep the user's umask, and `init` never makes a second home inside a
project. Each refusal is checked for its exit code, its one-line error, and that nothing
else changed: branches, worktrees, files, events."""

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from coord.app import lifecycle
from coord.app.context import Coord
from helpers import commit_file, g, ok

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

_VOLATILE = {
    "events.jsonl",
    "coord.db",
    "coord.db-wal",
    "coord.db-shm",
    "write.lock",
    "write.queue",
    "audit.lock",
    "rebuild.lock",
}


def one_line_error(r, code) -> str:
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    return lines[0]


def files_under(root: Path) -> dict:
    """Every file below root (worktrees included, git's own files and the database not):
    path -> (mode, content hash)."""
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != ".git"]
        for f in files:
            if f == ".git" or f in _VOLATILE:
                continue
            p = Path(d) / f
            st = p.lstat()
            out[str(p.relative_to(root))] = (
                stat.S_IMODE(st.st_mode),
                hashlib.sha256(p.read_bytes()).hexdigest(),
            )
    return out


def state(root: Path) -> dict:
    """What a refused command must leave alone: refs, worktrees, files, events."""
    import sqlite3

    con = sqlite3.connect(str(root / ".coord" / "coord.db"))
    try:
        events = con.execute("SELECT count(*), max(seq) FROM events").fetchone()
    finally:
        con.close()
    return {
        "refs": g(root, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
        "worktrees": g(root, "worktree", "list", "--porcelain"),
        "files": files_under(root),
        "events": events,
    }


def import_from_elsewhere(cli, tmp_path, wid, payload, name="other"):
    """A worker.spawned written by another clone's coord (any payload it likes), imported
    here the way a pulled audit file arrives."""
    other = tmp_path / name / ".coord"
    ok(cli("--home", str(other), "init"))
    with Coord(other, actor="mallory") as c:
        lifecycle.act(c, "spawn", wid, payload)
    ok(cli("import", str(other / "events.jsonl")))


@pytest.fixture
def w1(repo, cli):
    """Worker w1, started, with a committed change on its branch and uncommitted work in
    its worktree."""
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    commit_file(wt, "w1.txt", "committed by w1\n")
    (wt / "a.txt").write_text("uncommitted work of w1\n")
    return wt


# --- item 2: paths and branch names never come from a payload ----------------------------
def test_old_style_spawn_naming_another_workers_branch_and_worktree_touches_nothing(repo, cli, tmp_path, w1):
    import_from_elsewhere(cli, tmp_path, "evil", {"branch": "coord/w1", "base": "main", "worktree": str(w1)})
    before = state(repo)
    for args in (("--delete-branch",), ()):
        line = one_line_error(cli("cancel", "evil", *args), 4)
        assert "coord/w1" in line and "--no-git" in line
        assert state(repo) == before
    assert (w1 / "a.txt").read_text() == "uncommitted work of w1\n"
    ok(cli("cancel", "evil", "--no-git"))  # the way out: record only
    assert g(repo, "rev-parse", "coord/w1") and (w1 / "a.txt").exists()


def test_prefix_that_spells_another_workers_branch_is_refused(repo, cli, tmp_path, w1):
    # worker "1" with prefix "coord/w": prefix + id = coord/w1, w1's branch
    import_from_elsewhere(
        cli, tmp_path, "1", {"prefix": "coord/w", "branch": "coord/w1", "base": "main", "worktree": str(w1)}
    )
    assert ok(cli("show", "1", "--json")).json()["branch"] == "coord/w1"
    before = state(repo)
    line = one_line_error(cli("cancel", "1", "--delete-branch"), 4)
    assert "also the branch of worker w1" in line
    assert state(repo) == before
    ok(cli("--as", "ag2", "start", "1"))
    before = state(repo)
    line = one_line_error(cli("--as", "ag2", "done", "1"), 4)
    assert "also the branch of worker w1" in line
    assert state(repo) == before
    # while both name coord/w1, coord touches it for neither; canceling one (record only)
    # lets the other go on
    g(w1, "checkout", "--", "a.txt")
    before = state(repo)
    line = one_line_error(cli("--as", "ag", "done", "w1"), 4)
    assert "also the branch of worker 1" in line and "cancel 1 with --no-git" in line
    assert state(repo) == before
    ok(cli("cancel", "1", "--no-git"))
    assert ok(cli("--as", "ag", "done", "w1")).stdout.startswith("w1: done")


def test_a_recorded_worktree_path_is_never_acted_on(repo, cli, proc, tmp_path, w1):
    """The spawn names w1's worktree but its own branch (coord/evil): cancel removes the
    worktree git lists for coord/evil (none), and `run` does not work in w1's tree."""
    import_from_elsewhere(
        cli,
        tmp_path,
        "evil",
        {"prefix": "coord/", "branch": "coord/evil", "base": "main", "worktree": str(w1)},
    )
    before = state(repo)
    r = proc(
        "--as",
        "ag2",
        "run",
        "evil",
        "--",
        "sh",
        "-c",
        "pwd; echo x > from-evil.txt",
        cwd=tmp_path,
        env={"COORD_HOME": str(repo / ".coord")},
    )
    assert r.stdout.splitlines()[0] == str(tmp_path), r.stdout
    assert not (w1 / "from-evil.txt").exists()
    after = state(repo)
    assert after["files"] == before["files"] and after["refs"] == before["refs"]
    # while evil is live and records w1's worktree, coord does not work there for w1 either
    line = one_line_error(cli("--as", "ag", "done", "w1"), 4)
    assert "the worktree of worker evil" in line
    ok(cli("cancel", "evil"))
    after = state(repo)
    assert after["files"] == before["files"] and after["worktrees"] == before["worktrees"]
    assert (w1 / "a.txt").read_text() == "uncommitted work of w1\n"
    line = one_line_error(cli("--as", "ag", "done", "w1"), 4)
    assert "uncommitted changes" in line  # evil is canceled: w1's own rules again


def test_the_worker_here_is_the_one_whose_branch_is_checked_out(repo, cli, proc, tmp_path):
    """In a worktree the agent made for a branch-only worker, a hostile spawn that records
    that path does not capture `coord heartbeat` without an id."""
    ok(cli("spawn", "w1", "--no-worktree"))
    ok(cli("--as", "ag", "start", "w1"))
    mine = tmp_path / "my-checkout"
    g(repo, "worktree", "add", "-q", str(mine), "coord/w1")
    import_from_elsewhere(cli, tmp_path, "evil", {"prefix": "coord/", "base": "main", "worktree": str(mine)})
    r = proc("--as", "ag", "heartbeat", "--note", "here", cwd=mine)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("w1: beat")
    assert ok(cli("show", "w1", "--json")).json()["last_heartbeat"] is not None


@pytest.mark.parametrize("where", ["in the home", "in another worktree", "in the main working tree"])
def test_spawn_worktree_must_lie_outside_the_home_and_other_worktrees(repo, cli, w1, where):
    path = {
        "in the home": repo / ".coord" / "elsewhere",
        "in another worktree": w1 / "nested",
        "in the main working tree": repo / "sub" / "wt",
    }[where]
    before = state(repo)
    line = one_line_error(cli("spawn", "w9", "--worktree", str(path)), 4)
    assert str(path) in line and "outside" in line
    assert state(repo) == before
    assert not path.exists()


# --- item 3: adopted branches and deleted commits --------------------------------------
@pytest.mark.parametrize("how", ["ahead", "behind"])
def test_spawn_does_not_adopt_an_existing_branch(repo, cli, how):
    g(repo, "branch", "coord/x")
    if how == "ahead":  # someone's commit on coord/x
        g(repo, "worktree", "add", "-q", str(repo.parent / "theirs"), "coord/x")
        commit_file(repo.parent / "theirs", "theirs.txt", "their work\n")
        g(repo, "worktree", "remove", str(repo.parent / "theirs"))
    else:  # main moved on since coord/x was made
        commit_file(repo, "m.txt", "main moved\n")
    before = state(repo)
    line = one_line_error(cli("spawn", "x"), 4)
    assert "coord/x already exists" in line
    assert ("1 commit not on main" if how == "ahead" else "behind main") in line
    assert state(repo) == before


def test_spawn_adopts_the_leftover_of_an_unrecorded_spawn(repo, cli):
    g(repo, "branch", "coord/x")  # what a spawn that died before recording leaves: at main's tip
    r = ok(cli("spawn", "x"))
    assert "(from main)" in r.stdout


@pytest.mark.parametrize("prefix", ["", "refs/heads/", "wip", "../up/"])
def test_empty_or_path_like_branch_prefix_is_refused_at_spawn(repo, cli, prefix):
    # config.toml arrives through git: write it as a pull would (no `coord config` check)
    cfg = repo / ".coord" / "config.toml"
    cfg.write_text(
        "\n".join(
            f'branch_prefix = "{prefix}"' if line.startswith("branch_prefix") else line
            for line in cfg.read_text().splitlines()
        )
        + "\n"
    )
    g(repo, "branch", "dev")
    before = state(repo)
    line = one_line_error(cli("spawn", "dev"), 2)
    assert "branch_prefix" in line
    assert state(repo) == before


def test_deleting_a_branch_with_unmerged_commits_needs_force(repo, cli, w1):
    tip = g(repo, "rev-parse", "coord/w1")
    before = state(repo)
    line = one_line_error(cli("cancel", "w1", "--delete-branch"), 4)
    assert "1 commit that no other branch has" in line and "--force" in line
    assert state(repo) == before
    r = ok(cli("cancel", "w1", "--delete-branch", "--force"))
    assert f"git branch coord/w1 {tip}" in r.stderr
    assert g(repo, "branch", "--list", "coord/w1") == "" and not w1.exists()
    ev = ok(cli("log", "--json", "--type", "worker.canceled")).jsonl()[-1]
    assert ev["payload"]["deleted_tip"] == tip and ev["payload"]["unmerged"] == 1
    assert g(repo, "cat-file", "-t", tip) == "commit"  # still in git's objects


def test_a_branch_whose_commits_another_branch_has_is_deleted_without_force(repo, cli, w1):
    g(repo, "branch", "backup", "coord/w1")
    r = ok(cli("cancel", "w1", "--delete-branch"))
    assert "warning" not in r.stderr
    assert g(repo, "branch", "--list", "coord/w1") == ""


def test_a_branch_another_worker_is_based_on_is_not_deleted(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("spawn", "w2", "--base", "coord/w1", "--no-worktree"))
    before = state(repo)
    line = one_line_error(cli("cancel", "w1", "--delete-branch"), 4)
    assert "base of worker w2" in line
    assert state(repo) == before


def test_merge_into_another_workers_branch_is_refused(repo, cli, w1):
    ok(cli("spawn", "w2", "--base", "coord/w1"))
    ok(cli("--as", "ag2", "start", "w2"))
    commit_file(repo / ".coord" / "worktrees" / "w2", "w2.txt", "w2\n")
    ok(cli("--as", "ag2", "done", "w2"))
    ok(cli("--as", "rv", "approve", "w2"))
    before = state(repo)
    line = one_line_error(cli("merge", "w2"), 4)
    assert "coord/w1 is the branch of worker w1" in line and "--into" in line
    assert state(repo) == before
    ok(cli("merge", "w2", "--into", "main"))  # the way: merge into the base of both
    assert (repo / "w2.txt").read_text() == "w2\n"


# --- item 12: --base is a branch ---------------------------------------------------------
@pytest.mark.parametrize("base", ["main~1", "HEAD^", "@{-1}", "main:a.txt"])
def test_spawn_base_that_is_not_a_branch_name_is_a_usage_error(repo, cli, base):
    commit_file(repo, "m.txt", "a second commit\n")
    before = state(repo)
    line = one_line_error(cli("spawn", "w1", "--base", base), 2)
    assert "is not a branch name" in line
    assert state(repo) == before


# --- item 6: git and the agent's child keep the user's umask ----------------------------
def test_checkouts_and_merges_keep_the_users_umask(repo, cli, proc, tmp_path):
    def coord(*args):
        r = proc(*args, cwd=repo, umask=0o022)
        assert r.returncode == 0, r.stderr
        return r

    coord("spawn", "w1")
    wt = repo / ".coord" / "worktrees" / "w1"
    assert stat.S_IMODE((wt / "a.txt").stat().st_mode) == 0o644
    outside = tmp_path / "new" / "dirs" / "w2"
    coord("spawn", "w2", "--worktree", str(outside))
    assert stat.S_IMODE((outside / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755
    coord(
        "--as",
        "ag",
        "run",
        "w1",
        "--",
        "sh",
        "-c",
        "echo new > made.txt && git add made.txt && git commit -qm made",
    )
    assert stat.S_IMODE((wt / "made.txt").stat().st_mode) == 0o644  # the agent's own file
    coord("--as", "rv", "approve", "w1")
    coord("merge", "w1")
    assert (repo / "made.txt").read_text() == "new\n"
    assert stat.S_IMODE((repo / "made.txt").stat().st_mode) == 0o644
    # the home's own files stay private
    assert stat.S_IMODE((repo / ".coord" / "coord.db").stat().st_mode) & 0o077 == 0


# --- item 7 and 12: where init puts a home -----------------------------------------------
def test_init_inside_a_worktree_names_the_repositorys_home(repo, cli, proc, w1):
    (w1 / "sub").mkdir()
    before = state(repo)
    for cwd in (w1, w1 / "sub"):
        r = proc("init", cwd=cwd)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"already a home: {repo / '.coord'}"
        assert not (w1 / ".coord" / "coord.db").exists() and not (w1 / "sub" / ".coord").exists()
    assert state(repo) == before


def test_init_in_a_linked_worktree_of_a_repository_without_a_home_makes_the_repositorys(tmp_path, proc):
    root = tmp_path / "p"
    root.mkdir()
    g(root, "init", "-q", "-b", "main")
    g(root, "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "first")
    g(root, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"))
    r = proc("init", cwd=tmp_path / "wt")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"created {root / '.coord'}"
    assert (root / ".coord" / "coord.db").exists() and not (tmp_path / "wt" / ".coord").exists()


def test_init_in_a_subdirectory_of_a_project_with_a_home_is_refused(repo, cli, proc):
    (repo / "sub" / "deeper").mkdir(parents=True)
    before = state(repo)
    for cwd in (repo / "sub", repo / "sub" / "deeper", repo / ".coord" / "blobs"):
        r = proc("init", cwd=cwd)
        assert r.returncode == 4, (cwd, r.stderr)
        [line] = r.stderr.strip().splitlines()
        assert str(repo / ".coord") in line
        assert state(repo) == before
    # an explicit --home is a separate home on purpose, and allowed
    r = proc("--home", str(repo / "sub" / ".coord"), "init", cwd=repo / "sub")
    assert r.returncode == 0, r.stderr


def test_init_in_a_subdirectory_of_a_fresh_clone_names_the_clones_home(repo, proc, tmp_path):
    """A clone checks out .coord/ without its database: `init` in a subdirectory says to
    run it at the top instead of making a second home there."""
    clone = tmp_path / "clone"
    g(tmp_path, "clone", "-q", str(repo), str(clone))
    (clone / "sub").mkdir()
    r = proc("init", cwd=clone / "sub")
    assert r.returncode == 4, r.stderr
    [line] = r.stderr.strip().splitlines()
    assert f"run `coord init` in {clone}" in line
    assert not (clone / "sub" / ".coord").exists() and not (clone / ".coord" / "coord.db").exists()
    r = proc("init", cwd=clone)
    assert r.returncode == 0 and r.stdout.strip() == f"created {clone / '.coord'}", r.stderr


def test_init_home_inside_another_home_is_refused(repo, cli, tmp_path):
    before = state(repo)
    for inner in (repo / ".coord" / "inner", repo / ".coord" / "worktrees" / "x" / ".coord"):
        line = one_line_error(cli("--home", str(inner), "init"), 4)
        assert str(repo / ".coord") in line
        assert state(repo) == before and not inner.exists()
    ok(cli("--home", str(tmp_path / "elsewhere" / ".coord"), "init"))  # a separate home


@pytest.mark.parametrize("below", [False, True])
def test_init_home_on_a_file_is_a_usage_error(tmp_path, cli, below):
    f = tmp_path / "a-file"
    f.write_text("mine\n")
    target = f / ".coord" if below else f
    line = one_line_error(cli("--home", str(target), "init"), 2)
    assert str(f) in line and "not a directory" in line
    assert f.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


# --- spawn events from before `prefix` was recorded --------------------------------------
def test_old_spawn_events_without_prefix_still_work(repo, cli):
    """A worker spawned by an older coord (payload `branch`, `worktree`, no `prefix`): its
    prefix is what precedes its id in `branch`, and done, merge and cancel work as before."""
    for wid in ("o1", "o2"):
        wt = repo / ".coord" / "worktrees" / wid
        g(repo, "worktree", "add", "-q", "-b", f"coord/{wid}", str(wt), "main")
        with Coord(repo / ".coord", actor="lead") as c:
            lifecycle.act(c, "spawn", wid, {"branch": f"coord/{wid}", "base": "main", "worktree": str(wt)})
        assert ok(cli("show", wid, "--json")).json()["branch"] == f"coord/{wid}"
    ok(cli("--as", "ag", "start", "o1"))
    commit_file(repo / ".coord" / "worktrees" / "o1", "o1.txt", "o1\n")
    ok(cli("--as", "ag", "done", "o1"))
    ok(cli("--as", "rv", "approve", "o1"))
    ok(cli("merge", "o1"))
    assert (repo / "o1.txt").read_text() == "o1\n" and not (repo / ".coord" / "worktrees" / "o1").exists()
    ok(cli("cancel", "o2", "--delete-branch"))
    assert g(repo, "branch", "--list", "coord/o2") == ""
