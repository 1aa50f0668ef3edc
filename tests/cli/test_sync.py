"""coord sync through real git (contract: Offline sync): two clones and a bare remote.
Only .coord/events.jsonl and new blobs are committed; lines, acknowledgements and blobs
travel; a pull that would merge other changes into a dirty tree is refused (exit 4,
nothing lost); sync_branch never touches the checked-out branch, index or working tree;
one-line errors for no repository, no remote, a detached HEAD. The proof under load
(agents appending, syncs interrupted at random): tests/cli/test_sync_chaos.py."""

import json
import os

from helpers import g, ok


def clone_pair(tmp_path, cli, sync_branch=None):
    """origin.git, and clones a and b of it with initialised, committed homes."""
    origin, a, b = tmp_path / "origin.git", tmp_path / "a", tmp_path / "b"
    a.mkdir()
    g(a, "init", "-q", "-b", "main")
    for k, v in (("user.name", "A"), ("user.email", "a@example.com")):
        g(a, "config", k, v)
    (a / "code.txt").write_text("v1\n")
    ok(cli("--home", str(a / ".coord"), "init"))
    if sync_branch:
        ok(cli("--home", str(a / ".coord"), "config", "sync_branch", sync_branch))
    g(a, "add", "-A")
    g(a, "commit", "-q", "-m", "start")
    g(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    g(a, "remote", "add", "origin", str(origin))
    g(a, "push", "-q", "-u", "origin", "main")
    g(tmp_path, "clone", "-q", str(origin), str(b))
    for k, v in (("user.name", "B"), ("user.email", "b@example.com")):
        g(b, "config", k, v)
    ok(cli("--home", str(b / ".coord"), "init"))
    return origin, a, b


def at(cli, where):
    def run(*args):
        return cli("--home", str(where / ".coord"), *args)

    return run


class Synced:
    def __init__(self, ran):
        self.returncode, self.stdout, self.stderr = ran.exit_code, ran.stdout, ran.stderr


def sync(cli, where, *args):
    """coord sync in the clone, through the real entry point in this process (its git
    steps are real processes; test_sync_chaos.py runs coord sync as a process too)."""
    return Synced(cli("--home", str(where / ".coord"), "sync", *args))


def lines(where):
    return set((where / ".coord" / "events.jsonl").read_bytes().splitlines())


def test_lines_acks_and_blobs_travel_and_only_coord_files_are_committed(tmp_path, cli):
    _, a, b = clone_pair(tmp_path, cli)
    A, B = at(cli, a), at(cli, b)
    ok(A("spawn", "w-1", "--no-git"))
    mids = [
        ok(A("--as", "lead", "send", "n", "--text", t, "--to", "dev", "--json")).json()["event"] for t in "xy"
    ]
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5000))
    small = tmp_path / "small.txt"
    small.write_text("attached")
    ok(A("config", "sync_blob_limit", "4096"))
    ok(A("--as", "lead", "send", "file", "--file", str(small), "--to", "dev"))
    ok(A("--as", "lead", "send", "file", "--file", str(big), "--to", "dev"))
    # Something the person staged and a change they did not stage: neither is committed.
    (a / "code.txt").write_text("v2\n")
    g(a, "add", "code.txt")
    (a / "notes.txt").write_text("mine\n")
    head = g(a, "rev-parse", "HEAD")
    r = sync(cli, a)
    assert r.returncode == 0, r.stderr
    assert "left out" in r.stderr and "sync_blob_limit" in r.stderr  # the 5000-byte blob
    committed = g(a, "diff-tree", "-r", "--name-only", "--no-commit-id", head, "HEAD").split()
    assert committed[0] == ".coord/blobs/" + committed[0].rsplit("/", 1)[-1] and len(committed) == 2
    assert committed[1] == ".coord/events.jsonl"
    assert g(a, "diff", "--cached", "--name-only") == "code.txt"  # still staged, not committed
    # In .coord/ only what sync leaves alone: the setting changed above, the blob left out.
    status = g(a, "status", "--porcelain", "--", ".coord").splitlines()
    assert (
        len(status) == 2 and "M .coord/config.toml" in status[0] and status[1].startswith("?? .coord/blobs/")
    )

    r = sync(cli, b)
    assert r.returncode == 0, r.stderr
    assert [d["worker"] for d in ok(B("status", "--all", "--json")).json()] == ["w-1"]
    got = ok(B("--as", "dev", "poll", "--json")).jsonl()
    assert [m["id"] for m in got[:2]] == mids
    assert got[2]["payload"]["file"]["name"] == "small.txt" and "blob_error" not in got[2]
    big_ref = got[3]["payload"]["file"]["$blob"]
    assert not (b / ".coord" / "blobs" / big_ref[3:]).exists()  # left out of the sync
    # dev acknowledged on b; after b and then a sync, a delivers none of them again
    assert sync(cli, b).returncode == 0 and sync(cli, a).returncode == 0
    assert A("--as", "dev", "poll", "--json").stdout == ""
    assert sync(cli, b).returncode == 0
    assert lines(a) == lines(b)
    ok(A("verify"))
    r = B("verify", "--json")  # the blob left out is the one thing b lacks
    assert r.exit_code == 5 and [p for p in r.json()["problems"]] == [
        p for p in r.json()["problems"] if f"refers to missing blob {big_ref}" in p
    ]
    assert len(r.json()["problems"]) == 1
    # Nothing new: a sync commits nothing.
    before = g(b, "rev-parse", "HEAD")
    r = sync(cli, b, "--json")
    assert json.loads(r.stdout)["committed"] is False and g(b, "rev-parse", "HEAD") == before


def test_a_pull_into_a_dirty_tree_is_refused_and_nothing_is_lost(tmp_path, cli):
    _, a, b = clone_pair(tmp_path, cli)
    A, B = at(cli, a), at(cli, b)
    (a / "code.txt").write_text("v2 from a\n")
    g(a, "commit", "-q", "-am", "code change")
    ok(A("spawn", "w-a", "--no-git"))
    assert sync(cli, a).returncode == 0
    ok(B("spawn", "w-b", "--no-git"))
    (b / "local.txt").write_text("x\n")
    g(b, "add", "local.txt")
    g(b, "commit", "-q", "-m", "local file")
    (b / "local.txt").write_text("uncommitted\n")
    head = g(b, "rev-parse", "HEAD")
    r = sync(cli, b)
    assert r.returncode == 4, r.stderr
    [err] = r.stderr.strip().splitlines()
    assert "code.txt" in err and "local.txt" in err and "nothing merged" in err
    assert (b / "local.txt").read_text() == "uncommitted\n" and (b / "code.txt").read_text() == "v1\n"
    assert g(b, "rev-parse", "HEAD~1") == head  # its own lines committed, nothing merged
    assert [d["worker"] for d in ok(B("status", "--all", "--json")).json()] == ["w-b"]
    # Only coord's lines changed on the other side: merged even into a dirty tree.
    g(b, "stash", "-q")
    assert sync(cli, b).returncode == 0
    g(b, "stash", "pop", "-q")
    ok(A("spawn", "w-a2", "--no-git"))
    assert sync(cli, a).returncode == 0
    r = sync(cli, b)
    assert r.returncode == 0, r.stderr
    assert (b / "local.txt").read_text() == "uncommitted\n"
    assert sorted(d["worker"] for d in ok(B("status", "--all", "--json")).json()) == ["w-a", "w-a2", "w-b"]
    assert g(b, "status", "--porcelain") == "M local.txt"


def test_sync_branch_touches_neither_the_checked_out_branch_nor_the_tree(tmp_path, cli):
    _, a, b = clone_pair(tmp_path, cli, sync_branch="coord-sync")
    A, B = at(cli, a), at(cli, b)
    ok(A("spawn", "w-1", "--no-git"))
    ok(B("spawn", "w-2", "--no-git"))
    (b / "code.txt").write_text("dirty\n")
    g(b, "add", "code.txt")
    (b / "other.txt").write_text("untracked\n")
    ok(B("export"))
    before = [g(b, "rev-parse", "HEAD"), g(b, "write-tree"), g(b, "status", "--porcelain")]
    for where in (a, b, a):
        r = sync(cli, where)
        assert r.returncode == 0, r.stderr
    assert g(b, "rev-parse", "HEAD") == before[0] and g(b, "write-tree") == before[1]  # HEAD, index
    assert g(b, "status", "--porcelain") == before[2]  # the working tree (coord's own file aside)
    assert g(b, "symbolic-ref", "HEAD") == "refs/heads/main"
    for X in (A, B):
        assert sorted(d["worker"] for d in ok(X("status", "--all", "--json")).json()) == ["w-1", "w-2"]
    assert g(a, "ls-tree", "-r", "--name-only", "origin/coord-sync") == ".coord/events.jsonl"
    # Nothing new on either side: no new commit, however each file orders its lines.
    tip = g(a, "rev-parse", "refs/heads/coord-sync")
    assert sync(cli, b).returncode == 0 and sync(cli, a).returncode == 0
    assert g(a, "rev-parse", "refs/heads/coord-sync") == tip
    ok(A("verify"))
    ok(B("verify"))


def test_one_line_errors(tmp_path, cli, home):
    r = sync(cli, home.parent)  # the test's home lies in no git repository
    assert r.returncode == 3 and "no git repository" in r.stderr
    _, a, _ = clone_pair(tmp_path, cli)
    g(a, "remote", "remove", "origin")
    r = sync(cli, a)
    assert r.returncode == 3 and "no git remote 'origin'" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    g(a, "checkout", "-q", "--detach")
    r = sync(cli, a, "--remote", "nowhere")
    assert r.returncode == 4 and "detached" in r.stderr
    ok(cli("--home", str(a / ".coord"), "config", "sync_branch", "main"))
    g(a, "checkout", "-q", "main")
    r = sync(cli, a)
    assert r.returncode == 4 and "checked out" in r.stderr
    r = cli("config", "sync_branch", "bad name")
    assert r.exit_code == 2


def test_a_push_the_remote_refuses_is_one_line_and_loses_nothing(tmp_path, cli):
    origin, a, _ = clone_pair(tmp_path, cli)
    hook = origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'no pushes today' >&2\nexit 1\n")
    hook.chmod(0o755)
    ok(at(cli, a)("spawn", "w-1", "--no-git"))
    r = sync(cli, a)
    assert r.returncode == 4 and "refused by the remote" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "w-1" in g(a, "show", "HEAD:.coord/events.jsonl")  # committed here, kept
    hook.unlink()
    assert sync(cli, a).returncode == 0
    assert "w-1" in g(origin, "show", "main:.coord/events.jsonl")


def test_a_bad_line_from_the_remote_is_never_merged(tmp_path, cli):
    _, a, b = clone_pair(tmp_path, cli)
    with open(a / ".coord" / "events.jsonl", "ab") as f:
        f.write(b'{"id":"b3:' + b"0" * 64 + b'","ts":"x"}\n')
    g(a, "-c", "user.name=A", "commit", "-q", "-am", "a bad line")
    g(a, "push", "-q", "origin", "main")
    ok(at(cli, b)("spawn", "w-b", "--no-git"))
    head = g(b, "rev-parse", "HEAD")
    r = sync(cli, b)
    assert r.returncode == 5 and "not merging" in r.stderr and "origin/main:.coord/events.jsonl" in r.stderr
    assert "hash does not match" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (
        g(b, "rev-parse", "HEAD~1") == head
        and b"0000000000" not in (b / ".coord" / "events.jsonl").read_bytes()
    )
    ok(at(cli, b)("verify"))
