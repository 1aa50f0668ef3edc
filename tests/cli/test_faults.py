"""Faults: backup under load, a full disk, a corrupted database page."""

import os
import resource
import sqlite3
import subprocess
import sys
import textwrap

from coord.events.envelope import event_id
from helpers import coord_cmd, count_events, many_spawned


def test_backup_while_agents_write_is_consistent(home, proc, tmp_path):
    writer = textwrap.dedent(f"""
        from coord.app.context import Coord
        from coord.app import lifecycle
        with Coord({str(home)!r}, actor="w") as c:
            lifecycle.act(c, "spawn", "w-1"); lifecycle.act(c, "start", "w-1")
            for i in range(400):
                lifecycle.act(c, "heartbeat", "w-1")
    """)
    p = subprocess.Popen([sys.executable, "-c", writer])
    backups = []
    try:
        for i in range(5):
            dest = tmp_path / f"b{i}.db"
            r = proc("backup", dest, env={"COORD_HOME": str(home)})
            assert r.returncode == 0, r.stderr
            backups.append(dest)
    finally:
        assert p.wait(timeout=120) == 0
    for b in backups:
        con = sqlite3.connect(b)
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        seqs = [r[0] for r in con.execute("SELECT seq FROM events ORDER BY seq")]
        assert seqs == list(range(1, len(seqs) + 1))
        for eid, body in con.execute("SELECT id, body FROM events"):
            assert event_id(body) == eid
        # The views in the snapshot belong to the same moment as its events.
        hb = con.execute("SELECT count(*) FROM events WHERE type='worker.heartbeat'").fetchone()[0]
        if seqs:
            view_hb = con.execute("SELECT json_extract(view, '$.heartbeats') FROM workers").fetchone()
            assert view_hb is None or view_hb[0] == hb
    r = proc("backup", backups[0], env={"COORD_HOME": str(home)})
    assert r.returncode == 4 and "exists" in r.stderr  # an output file that exists: refused


def test_full_disk_gives_a_clear_error_and_loses_nothing_acknowledged(home, proc):
    env = {"COORD_HOME": str(home), "COORD_AGENT": "a"}
    assert proc("spawn", "w-1", env=env).returncode == 0
    assert proc("start", "w-1", env=env).returncode == 0
    before = count_events(home)
    size = (home / "coord.db").stat().st_size

    def limit():  # a file-size limit just above what is there: the next growth fails
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 1024, size + 1024))

    big = "x" * 3000
    codes = []
    for _i in range(40):
        r = subprocess.run(
            [*coord_cmd(), "heartbeat", "w-1", "--note", big],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            preexec_fn=limit,
        )
        codes.append(r.returncode)
        if r.returncode != 0:
            assert r.returncode == 1 and "Traceback" not in r.stderr
            assert len(r.stderr.strip().splitlines()) == 1
            assert "space" in r.stderr or "full" in r.stderr, r.stderr
            break
    assert 1 in codes, "the file-size limit never bit"
    acked = codes.count(0)
    assert count_events(home) == before + acked
    r = proc("heartbeat", "w-1", env=env)  # without the limit, work goes on
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(home / "coord.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_corrupted_database_page_is_an_integrity_error(home, cli, proc):
    env = {"COORD_HOME": str(home), "COORD_AGENT": "a"}
    for i in range(30):  # the store is made in-process; the damage is met by real processes
        assert cli("spawn", f"w-{i}", "--task", "t" * 200).exit_code == 0
    db = home / "coord.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = bytearray(db.read_bytes())
    page = 4096
    for off in range(page * 2, min(len(data), page * 6)):  # scribble over b-tree pages
        data[off] = 0xA5
    db.write_bytes(bytes(data))
    n_ok = 0
    for cmd in (("log",), ("spawn", "x-1"), ("show", "w-3"), ("status",)):
        r = proc(*cmd, env=env)
        # A command that reads a damaged page says so (exit 5); one that never touches
        # it may still succeed. Never a traceback, never exit 1.
        assert r.returncode in (0, 5), (cmd, r.stderr)
        assert "Traceback" not in r.stderr
        if r.returncode == 5:
            assert "damaged" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        n_ok += r.returncode == 0
    assert n_ok < 4


def test_verify_finds_a_corrupted_and_a_missing_blob(home, cli):
    big = '{"text": "%s"}' % ("lorem ipsum " * 1000)
    assert cli("--as", "a", "send", "note", big, "--to", "b").exit_code == 0
    assert cli("--as", "a", "send", "note2", big.replace("lorem", "dolor"), "--to", "b").exit_code == 0
    assert cli("verify").exit_code == 0
    blobs = sorted((home / "blobs").iterdir())
    assert len(blobs) == 2
    data = bytearray(blobs[0].read_bytes())
    data[10] ^= 1
    blobs[0].write_bytes(bytes(data))
    blobs[1].unlink()
    r = cli("verify")
    assert r.exit_code == 5
    assert blobs[0].name[:12] in r.stdout + r.stderr
    assert "missing blob" in r.stdout + r.stderr
    r = cli("--as", "b", "poll")  # delivered unresolved (never stuck), each bad blob said once
    assert r.exit_code == 0 and len(r.stderr.strip().splitlines()) == 2 and r.stdout.count("unresolved") == 2
    r = cli("log")  # everything listed, then the corrupt blob is an integrity error
    assert r.exit_code == 5 and "corrupt" in r.stderr and r.stdout.count("unresolved") == 2


def test_rebuild_a_lost_store_from_the_audit_file_and_blobs(home, cli, tmp_path):
    """The documented recovery: the database is gone; events.jsonl and blobs/ (both in
    git) rebuild it with `coord init`."""
    big = '{"text": "%s"}' % ("lorem ipsum " * 1000)
    for args in (
        ("spawn", "w-1", "--task", "t"),
        ("--as", "a", "start", "w-1"),
        ("--as", "a", "send", "log", big, "--to", "lead"),
        ("--as", "a", "done", "w-1"),
        ("--as", "r", "approve", "w-1"),
        ("spawn", "w-2"),
    ):
        assert cli(*args).exit_code == 0
    board = cli("status", "--all", "--json").json()
    log = cli("log", "--json").jsonl()
    clone = tmp_path / "clone" / ".coord"
    clone.mkdir(parents=True)
    import shutil

    shutil.copy(home / "events.jsonl", clone / "events.jsonl")
    shutil.copytree(home / "blobs", clone / "blobs", dirs_exist_ok=True)
    assert cli("--home", str(clone), "init").exit_code == 0
    assert cli("--home", str(clone), "verify").exit_code == 0
    drop = lambda ds, keys: [{k: v for k, v in d.items() if k not in keys} for d in ds]  # noqa: E731
    local = {"seq", "liveness", "last_heartbeat", "heartbeat"}
    assert drop(cli("--home", str(clone), "status", "--all", "--json").json(), local) == drop(board, local)
    assert drop(cli("--home", str(clone), "log", "--json").jsonl(), {"seq"}) == drop(log, {"seq"})


def _hash_valid_non_event_line(body: bytes) -> bytes:
    from coord.events.envelope import event_id

    return b'{"id":"' + event_id(body).encode() + b'",' + body[1:] + b"\n"


def test_a_hash_valid_line_that_is_no_event_is_a_bad_line(home, cli, tmp_path):
    assert cli("spawn", "w-1").exit_code == 0
    bad = _hash_valid_non_event_line(b'{"ts":12,"from":"a","to":"b","type":"msg.x","payload":{}}')
    f = tmp_path / "in.jsonl"
    f.write_bytes((home / "events.jsonl").read_bytes() + bad)
    n = count_events(home)
    r = cli("import", str(f))
    assert r.exit_code == 5 and "line 2" in r.stderr and "Traceback" not in r.stderr
    assert count_events(home) == n
    with open(home / "events.jsonl", "ab") as out:  # the same line arriving by a git pull
        out.write(bad)
    r = cli("spawn", "w-2")  # the action succeeds; the file is refused with a warning
    assert r.exit_code == 0 and "line 2" in r.stderr
    assert cli("verify").exit_code == 5


def test_init_from_a_file_with_a_late_bad_line_builds_nothing(tmp_path, cli):
    src = many_spawned(tmp_path / "src" / ".coord", 2500)  # more than one import batch before the bad line
    clone = tmp_path / "clone" / ".coord"
    clone.mkdir(parents=True)
    data = (src / "events.jsonl").read_bytes() + _hash_valid_non_event_line(
        b'{"ts":"2030-01-01T00:00:00.000000Z","from":"a","to":"b","type":"BAD","payload":{}}'
    )
    (clone / "events.jsonl").write_bytes(data)
    r = cli("--home", str(clone), "init")
    assert r.exit_code == 5
    assert not (clone / "coord.db").exists()
    assert (clone / "events.jsonl").read_bytes() == data  # never truncated


def test_storing_a_corrupt_blob_again_heals_it(home, cli, tmp_path):
    f = tmp_path / "h.txt"
    f.write_bytes(b"hello world\n" * 10)
    ref = cli("blob", "put", str(f)).stdout.split()[0]
    path = home / "blobs" / ref[3:]
    path.write_bytes(b"HELLO WORLD\n")
    assert cli("blob", "cat", ref).exit_code == 5
    assert cli("blob", "put", str(f)).exit_code == 0
    r = cli("blob", "cat", ref)
    assert r.exit_code == 0 and r.stdout == "hello world\n" * 10
