"""Replicas converge: two homes that exchange their audit files, in any order and any
number of times (directly or through a real git remote with the union merge), show the
same board and the same events; conflicting moves made while apart show as conflicts."""

import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.app import lifecycle
from coord.app.admin import init
from coord.app.context import Coord
from coord.events.audit_read import import_bodies
from coord.events.envelope import decode
from coord.events.errors import CoordError
from coord.events.records import AUDIT_DIRTY
from coord.projections import board
from coord.projections.workers import fold_all

# Fields observed locally (liveness, heartbeats that may stay out of the file) and seq.
LOCAL = ("liveness", "last_heartbeat", "heartbeat")


def board_of(cli, h):
    r = cli("--home", str(h), "status", "--all", "--json")
    assert r.exit_code == 0, r.stderr
    return [{k: v for k, v in d.items() if k not in LOCAL} for d in r.json()]


def log_of(cli, h):
    """Events minus seq; heartbeats too, which stay in the clone that recorded them
    unless audit_heartbeats is on."""
    r = cli("--home", str(h), "log", "--json")
    assert r.exit_code == 0, r.stderr
    return [{k: v for k, v in d.items() if k != "seq"} for d in r.jsonl() if d["type"] != "worker.heartbeat"]


def exchange(cli, a, b):
    assert cli("--home", str(a), "import", str(b / "events.jsonl")).exit_code == 0
    assert cli("--home", str(b), "import", str(a / "events.jsonl")).exit_code == 0


def test_two_clones_apart_converge_with_conflicts_and_remote_liveness(tmp_path, cli):
    a, b = tmp_path / "a" / ".coord", tmp_path / "b" / ".coord"
    A = lambda *args: cli("--home", str(a), *args)  # noqa: E731
    B = lambda *args: cli("--home", str(b), *args)  # noqa: E731
    assert A("init").exit_code == 0
    assert A("spawn", "w-1").exit_code == 0 and A("spawn", "w-2").exit_code == 0
    assert A("--as", "a1", "start", "w-1").exit_code == 0
    assert A("--as", "a1", "done", "w-1").exit_code == 0
    b.mkdir(parents=True)
    (b / "events.jsonl").write_bytes((a / "events.jsonl").read_bytes())
    assert B("init").exit_code == 0  # a fresh clone builds its store from the file
    # apart: B cancels w-1, then A approves it; both start w-2
    assert B("--as", "lead", "cancel", "w-1", "--reason", "dup").exit_code == 0
    assert A("--as", "rev", "approve", "w-1").exit_code == 0
    assert A("--as", "a1", "start", "w-2").exit_code == 0
    assert B("--as", "b1", "start", "w-2").exit_code == 0
    assert B("--as", "b1", "heartbeat", "w-2").exit_code == 0
    exchange(cli, a, b)
    exchange(cli, b, a)  # again, other order: nothing changes
    assert board_of(cli, a) == board_of(cli, b)
    assert log_of(cli, a) == log_of(cli, b)
    w1 = {d["worker"]: d for d in board_of(cli, a)}["w-1"]
    assert w1["state"] == "CANCELED"
    assert [c["type"] for c in w1["conflicts"]] == ["worker.approved"]
    # w-2: A's start came first in (ts, id) order; B's is the conflict, B's heartbeat is skipped
    sa = {d["worker"]: d for d in A("status", "--all", "--json").json()}
    sb = {d["worker"]: d for d in B("status", "--all", "--json").json()}
    assert sa["w-2"]["holder"] == "a1" and [c["from"] for c in sa["w-2"]["conflicts"]] == ["b1"]
    assert sa["w-2"]["liveness"] == "OK" and sb["w-2"]["liveness"] == "REMOTE"
    assert A("verify").exit_code == 0 and B("verify").exit_code == 0
    r = A("show", "w-1")
    assert "CONFLICT" in r.stdout and "worker.approved" in r.stdout


GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd, *args):
    r = subprocess.run(
        ["git", "-c", "pull.rebase=false", "-c", "init.defaultBranch=main", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **GIT_ENV},
    )
    assert r.returncode == 0, f"git {' '.join(args)}: {r.stderr}"
    return r.stdout


def test_two_git_clones_append_concurrently_merge_and_converge(tmp_path, cli):
    origin, ca, cb = tmp_path / "origin.git", tmp_path / "ca", tmp_path / "cb"
    ca.mkdir()
    git(ca, "init", "-q")
    assert cli("--home", str(ca / ".coord"), "init").exit_code == 0
    assert "merge=union" in (ca / ".coord" / ".gitattributes").read_text()
    assert (
        cli("--home", str(ca / ".coord"), "spawn", "shared", "--task", "both touch it", "--no-git").exit_code
        == 0
    )
    git(ca, "add", "-A")
    git(ca, "commit", "-qm", "coord init")
    git(tmp_path, "clone", "-q", "--bare", str(ca), str(origin))
    git(ca, "remote", "add", "origin", str(origin))
    git(ca, "fetch", "-q", "origin")
    git(ca, "branch", "-q", "-u", "origin/main")
    git(tmp_path, "clone", "-q", str(origin), str(cb))
    assert not (cb / ".coord" / "coord.db").exists()  # the database is not committed
    assert cli("--home", str(cb / ".coord"), "init").exit_code == 0

    # concurrent appends in both clones, as real processes
    script = (
        "import sys\nfrom coord.app.context import Coord\nfrom coord.app import lifecycle\n"
        "c = Coord(sys.argv[1], actor=sys.argv[2])\n"
        "for i in range(8): lifecycle.act(c, 'spawn', sys.argv[2] + '-' + str(i))\n"
        "lifecycle.act(c, 'start', sys.argv[2] + '-0')\n"
        "lifecycle.act(c, 'start', 'shared')\n"
    )
    ps = [
        subprocess.Popen([sys.executable, "-c", script, str(d / ".coord"), who])
        for d, who in ((ca, "a"), (cb, "b"))
    ]
    assert [p.wait(timeout=120) for p in ps] == [0, 0]

    git(ca, "add", "-A"), git(ca, "commit", "-qm", "a work"), git(ca, "push", "-q", "origin", "main")
    git(cb, "add", "-A"), git(cb, "commit", "-qm", "b work")
    git(cb, "pull", "-q", "origin", "main")  # both appended at the end: the union merge keeps both
    assert "<<<<<<<" not in (cb / ".coord" / "events.jsonl").read_text()
    git(cb, "push", "-q", "origin", "main")
    git(ca, "pull", "-q", "origin", "main")
    for d in (ca, cb):  # the next command finds unknown lines and imports them
        r = cli("--home", str(d / ".coord"), "export", "--json")
        assert r.exit_code == 0, r.stderr
        assert r.json()["scanned"] is True and r.json()["imported"] == 10
    assert board_of(cli, ca / ".coord") == board_of(cli, cb / ".coord")
    assert log_of(cli, ca / ".coord") == log_of(cli, cb / ".coord")
    shared = {d["worker"]: d for d in board_of(cli, ca / ".coord")}["shared"]
    assert shared["state"] == "WORKING" and len(shared["conflicts"]) == 1
    assert {shared["holder"], shared["conflicts"][0]["from"]} == {"a", "b"}
    for d in (ca, cb):
        assert cli("--home", str(d / ".coord"), "verify").exit_code == 0


# --- the property ----------------------------------------------------------------------
ACTIONS = [
    "spawn",
    "start",
    "heartbeat",
    "done",
    "approve",
    "request-changes",
    "merge",
    "release",
    "cancel",
    "fail",
    "retry",
]
op = st.tuples(
    st.sampled_from("AB"),
    st.sampled_from(ACTIONS),
    st.sampled_from(["w1", "w2"]),
    st.sampled_from(["x", "y"]),
)


def _apply(c, action, w, actor):
    payload = {"reason": "r"} if action == "request-changes" else {}
    try:
        lifecycle.act(c, action, w, payload, actor=actor)
    except CoordError:
        pass  # refused locally: nothing appended


def _bodies(c):
    return [(eid, body) for eid, body in c.store.conn.execute("SELECT id, body FROM events")]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    shared=st.lists(op, max_size=4),
    apart=st.lists(op, max_size=14),
    seed=st.integers(0, 2**32),
    chunk=st.integers(1, 5),
)
def test_any_interleaving_of_two_replicas_gives_the_same_views(shared, apart, seed, chunk):
    with tempfile.TemporaryDirectory() as tmp:
        homes = {}
        for name in "ABC":
            h, _ = init(Path(tmp) / name / ".coord")
            homes[name] = Coord(h)
            homes[name].home.write_config({"synchronous": "NORMAL"})
        try:
            A, B, C = homes["A"], homes["B"], homes["C"]
            for _, action, w, actor in shared:
                _apply(A, action, w, actor)
            import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
            for side, action, w, actor in apart:
                _apply(A if side == "A" else B, action, w, actor)
            union = dict(_bodies(A))
            union.update(_bodies(B))
            expected = fold_all(
                (decode(union[i]), i) for i in sorted(union, key=lambda i: (decode(union[i]).ts, i))
            )
            # any interleaving, in chunks (each its own transactions), into a third home
            items = list(union.items())
            random.Random(seed).shuffle(items)
            for i in range(0, len(items), chunk):
                import_bodies(C.store, items[i : i + chunk], AUDIT_DIRTY)
            # and the two replicas exchanging what they have, both ways
            import_bodies(A.store, _bodies(B), AUDIT_DIRTY)
            import_bodies(B.store, _bodies(A), AUDIT_DIRTY)
            for c in (A, B, C):
                assert board.stored_views(c.store.reader) == expected
                assert board.fold_from_zero(c.store)[0] == expected
        finally:
            for c in homes.values():
                c.close()
