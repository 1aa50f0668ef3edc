"""Git across machines (contract: "Git across machines"): two clones of one bare remote,
each with its own home, sharing one PostgreSQL log. A worker spawned on one machine is
started, finished and merged across both; branches travel through the shared remote and
every push is leased."""

import shutil

import pytest

from helpers import commit_file, g, ok

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def machines(tmp_path, pg_log_url, cli):
    """(remote, a, b): a bare remote with one commit on main, and two clones whose homes
    name the same server (as two machines would)."""
    remote = tmp_path / "remote.git"
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp_path / "seed"
    g(tmp_path, "clone", "-q", str(remote), str(seed))
    for d in (seed,):
        g(d, "config", "user.email", "t@example.com")
        g(d, "config", "user.name", "t")
    commit_file(seed, "README", "hello\n")
    g(seed, "push", "-q", "origin", "HEAD:main")
    clones = []
    for name in ("a", "b"):
        d = tmp_path / name
        g(tmp_path, "clone", "-q", str(remote), str(d))
        g(d, "config", "user.email", f"{name}@example.com")
        g(d, "config", "user.name", name)
        ok(cli("--home", d / ".coord", "init", "--store", pg_log_url))
        clones.append(d)
    return remote, *clones


def test_a_worker_travels_between_two_machines_through_the_shared_remote(machines, cli, monkeypatch):
    remote, a, b = machines
    monkeypatch.chdir(a)
    ok(cli("--as", "lead", "spawn", "w-1", "--task", "add a file", "--no-worktree"))
    assert g(remote, "rev-parse", "coord/w-1") == g(a, "rev-parse", "main")  # spawn pushed the branch
    monkeypatch.chdir(b)
    r = ok(cli("--as", "ann", "start", "w-1"))  # the other machine: fetched, worktree made there
    wt = b / ".coord" / "worktrees" / "w-1"
    assert str(wt) in r.stdout and g(wt, "symbolic-ref", "--short", "HEAD") == "coord/w-1"
    g(wt, "config", "user.email", "ann@example.com")
    commit_file(wt, "feature.txt", "work\n")
    ok(cli("--as", "ann", "done", "w-1"))
    head = g(wt, "rev-parse", "HEAD")
    assert g(remote, "rev-parse", "coord/w-1") == head  # done pushed the branch
    monkeypatch.chdir(a)
    ok(cli("--as", "rev", "approve", "w-1"))
    ok(cli("--as", "lead", "merge", "w-1"))  # on the first machine again
    merged = g(remote, "rev-parse", "main")
    assert g(remote, "merge-base", "--is-ancestor", head, merged, check=False) == ""  # on the remote's main
    assert "feature.txt" in g(remote, "ls-tree", "--name-only", "main")
    assert ok(cli("--json", "status", "w-1")).json()[0]["state"] == "COMPLETED"


def test_a_push_over_someone_elses_commits_is_refused(machines, cli, monkeypatch, tmp_path):
    remote, a, b = machines
    monkeypatch.chdir(a)
    ok(cli("--as", "lead", "spawn", "w-2", "--no-worktree"))
    monkeypatch.chdir(b)
    ok(cli("--as", "ann", "start", "w-2"))
    wt = b / ".coord" / "worktrees" / "w-2"
    commit_file(wt, "mine.txt", "ann\n")
    other = tmp_path / "other"  # someone pushes to the worker's branch meanwhile
    g(tmp_path, "clone", "-q", "-b", "coord/w-2", str(remote), str(other))
    g(other, "config", "user.email", "o@example.com")
    g(other, "config", "user.name", "o")
    commit_file(other, "theirs.txt", "o\n")
    g(other, "push", "-q", "origin", "coord/w-2")
    theirs = g(remote, "rev-parse", "coord/w-2")
    r = cli("--as", "ann", "done", "w-2")
    assert r.exit_code == 4 and "refused" in r.stderr
    assert g(remote, "rev-parse", "coord/w-2") == theirs  # never forced over
    assert ok(cli("--json", "status", "w-2")).json()[0]["state"] == "WORKING"  # nothing recorded
