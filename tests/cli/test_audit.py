"""The audit file: export on every append, dirty tracking across crashes, file checks,
verify, rewrite, import, init from the file."""

import json
import os
import sqlite3

import pytest

from coord.events.codec import check_line
from helpers import count_events


def lines_of(home):
    return (home / "events.jsonl").read_bytes().split(b"\n")[:-1]


def ids_in_file(home):
    return [check_line(line)[0] for line in lines_of(home)]


def stored(home, where="1"):
    con = sqlite3.connect(str(home / "coord.db"))
    try:
        return con.execute(f"SELECT id, audit FROM events WHERE {where} ORDER BY seq").fetchall()
    finally:
        con.close()


def run_lifecycle(cli, n=3):
    for i in range(n):
        assert cli("spawn", f"w-{i}", "--task", f"task {i}").exit_code == 0
        assert cli("--as", "a1", "start", f"w-{i}").exit_code == 0
        assert cli("--as", "a1", "heartbeat", f"w-{i}").exit_code == 0


def test_every_committed_event_is_one_checked_line(home, cli):
    run_lifecycle(cli)
    assert cli("--as", "a1", "done", "w-0", "--summary", "line\u2028sep\nnewline").exit_code == 0
    lines = lines_of(home)
    # heartbeats stay out by default; everything else is in, once, in store order
    want = [eid for eid, audit in stored(home, "type != 'worker.heartbeat'")]
    assert ids_in_file(home) == want
    for line in lines:
        d = json.loads(line)  # parses as JSON (jq would too)
        assert list(d) == ["id", "ts", "from", "to", "type", "payload"]
    assert stored(home, "type = 'worker.heartbeat'") and all(
        a == 0 for _, a in stored(home, "type = 'worker.heartbeat'")
    )
    assert cli("verify").exit_code == 0


def test_heartbeats_go_in_when_the_setting_is_on(home, cli):
    run_lifecycle(cli, 1)
    assert cli("config", "audit_heartbeats", "true").exit_code == 0
    assert cli("--as", "a1", "heartbeat", "w-0").exit_code == 0
    types = [json.loads(x)["type"] for x in lines_of(home)]
    assert types.count("worker.heartbeat") == 1  # the earlier one stays out: decided at append
    assert cli("verify").exit_code == 0


def test_single_byte_edit_is_found_by_verify_with_its_line(home, cli):
    run_lifecycle(cli)
    data = bytearray((home / "events.jsonl").read_bytes())
    second = data.index(b"\n") + 1
    pos = data.index(b"task 1", second) + 5
    data[pos] = ord("X")
    (home / "events.jsonl").write_bytes(bytes(data))
    r = cli("verify")
    assert r.exit_code == 5
    assert "events.jsonl line 3: hash does not match" in r.stdout
    r = cli("export", "--check", "--json")
    assert r.exit_code == 5
    assert [b["line"] for b in r.json()["bad"]] == [3]


def test_deleted_line_is_found_then_restored_by_the_next_append(home, cli):
    run_lifecycle(cli)
    lines = lines_of(home)
    gone = check_line(lines[2])[0]
    (home / "events.jsonl").write_bytes(b"".join(x + b"\n" for i, x in enumerate(lines) if i != 2))
    r = cli("verify")
    assert r.exit_code == 5
    assert f"missing event {gone}" in r.stdout
    r = cli("spawn", "w-9")
    assert r.exit_code == 0
    assert "appended again" in r.stderr and gone in r.stderr
    ids = ids_in_file(home)
    assert sorted(ids) == sorted(eid for eid, a in stored(home) if a != 0)
    assert len(ids) == len(set(ids))
    assert cli("verify").exit_code == 0


def test_truncation_mid_line_is_refused_then_rewrite_recovers(home, cli):
    run_lifecycle(cli)
    data = (home / "events.jsonl").read_bytes()
    cut = data.rindex(b"\n", 0, len(data) - 1) + 40  # 40 bytes into the last line
    (home / "events.jsonl").write_bytes(data[:cut])
    n_lines = data[:cut].count(b"\n") + 1
    r = cli("verify")
    assert r.exit_code == 5
    assert f"line {n_lines}: partial line" in r.stdout
    # an action still succeeds, warns, and leaves its event dirty; the file is untouched
    r = cli("spawn", "w-9")
    assert r.exit_code == 0
    assert f"line {n_lines}: partial line" in r.stderr
    assert (home / "events.jsonl").read_bytes() == data[:cut]
    assert stored(home, "audit = 1")
    assert cli("export").exit_code == 5
    r = cli("export", "--rewrite")
    assert r.exit_code == 0, r.stderr
    assert sorted(ids_in_file(home)) == sorted(eid for eid, a in stored(home) if a != 0)
    assert not stored(home, "audit = 1")
    assert cli("verify").exit_code == 0


def test_conflict_markers_are_refused(home, cli):
    run_lifecycle(cli, 1)
    with open(home / "events.jsonl", "ab") as f:
        f.write(b"<<<<<<< HEAD\n")
    r = cli("spawn", "w-9")
    assert r.exit_code == 0
    assert "line 3: git conflict marker" in r.stderr


@pytest.mark.parametrize("point", ["after-commit", "audit-after-write"])
def test_killed_between_commit_and_bookkeeping_loses_and_duplicates_nothing(home, cli, proc, point):
    run_lifecycle(cli, 1)
    before = count_events(home)
    r = proc("spawn", "w-crash", env={"COORD_FAILPOINTS": point})
    assert r.returncode == -9
    assert count_events(home) == before + 1  # committed
    crashed = stored(home)[-1][0]
    in_file = crashed in ids_in_file(home)
    assert in_file == (point == "audit-after-write")
    assert stored(home)[-1][1] == 1  # still dirty in the store either way
    assert cli("spawn", "w-next").exit_code == 0
    ids = ids_in_file(home)
    assert ids.count(crashed) == 1
    assert len(ids) == len(set(ids))
    assert sorted(ids) == sorted(eid for eid, a in stored(home) if a != 0)
    assert cli("verify").exit_code == 0


def test_killed_mid_write_leaves_a_partial_line_that_verify_names(home, cli, proc):
    run_lifecycle(cli, 1)
    good = lines_of(home)
    r = proc("spawn", "w-crash", env={"COORD_FAILPOINTS": "audit-mid-write"})
    assert r.returncode == -9
    r = cli("verify")
    assert r.exit_code == 5 and f"line {len(good) + 1}: partial line" in r.stdout
    assert cli("export", "--rewrite").exit_code == 0
    assert cli("verify").exit_code == 0


def test_concurrent_writers_never_interleave_or_duplicate(home, proc):
    import subprocess
    import sys

    procs = []
    for a in range(4):
        script = (
            "from coord.app.context import Coord\n"
            "from coord.app import lifecycle\n"
            f"c = Coord(actor='p{a}')\n"
            f"for i in range(15): lifecycle.act(c, 'spawn', 'p{a}-' + str(i))\n"
        )
        procs.append(subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ)))
    for p in procs:
        assert p.wait(timeout=120) == 0
    ids = ids_in_file(home)  # every line checks
    assert len(ids) == 60 == len(set(ids)) == count_events(home)


def test_import_is_a_set_union_and_rejects_bad_files_whole(home, cli, tmp_path):
    run_lifecycle(cli, 2)
    other = tmp_path / "other" / ".coord"
    assert cli("--home", str(other), "init").exit_code == 0
    assert cli("--home", str(other), "spawn", "o-1").exit_code == 0
    theirs = other / "events.jsonl"
    r = cli("import", str(theirs), "--json")
    assert r.exit_code == 0 and r.json()["imported"] == 1
    r = cli("import", str(theirs), "--json")
    assert r.exit_code == 0 and r.json()["imported"] == 0
    # our file is now the union
    assert set(ids_in_file(other)) <= set(ids_in_file(home))
    # bad lines: each named, nothing imported
    assert cli("--home", str(other), "spawn", "o-2").exit_code == 0
    bad = tmp_path / "bad.jsonl"
    good = theirs.read_bytes().split(b"\n")
    bad.write_bytes(
        b"\n".join([good[0], b"garbage", good[1].replace(b"o-2", b"o-3"), b">>>>>>> theirs", good[2]]) + b"\n"
    )
    before = count_events(home)
    r = cli("import", str(bad))
    assert r.exit_code == 5
    assert "line 2: does not start with an id member" in r.stderr
    assert "line 3: hash does not match" in r.stderr
    assert "line 4: git conflict marker" in r.stderr
    assert count_events(home) == before
    assert cli("import", str(tmp_path / "nope.jsonl")).exit_code == 3


def test_init_builds_the_store_from_an_existing_file(home, cli, tmp_path):
    run_lifecycle(cli, 3)
    assert cli("--as", "rev", "cancel", "w-2").exit_code == 0
    clone = tmp_path / "clone" / ".coord"
    clone.mkdir(parents=True)
    (clone / "events.jsonl").write_bytes((home / "events.jsonl").read_bytes())
    r = cli("--home", str(clone), "init")
    assert r.exit_code == 0, r.stderr
    assert (clone / "events.jsonl").read_bytes() == (home / "events.jsonl").read_bytes()
    mine = cli("status", "--all", "--json").json()
    theirs = cli("--home", str(clone), "status", "--all", "--json").json()
    assert [d["state"] for d in theirs] == [d["state"] for d in mine]
    assert cli("--home", str(clone), "verify").exit_code == 0
    assert cli("--home", str(clone), "spawn", "w-new").exit_code == 0
    assert cli("--home", str(clone), "verify").exit_code == 0


def test_init_refuses_a_bad_file_and_creates_no_database(tmp_path, cli):
    clone = tmp_path / "c" / ".coord"
    clone.mkdir(parents=True)
    (clone / "events.jsonl").write_bytes(b'{"id":"b3:00","ts":1}\n')
    r = cli("--home", str(clone), "init")
    assert r.exit_code == 5 and "line 1" in r.stderr
    assert not (clone / "coord.db").exists()


def test_verify_finds_a_tampered_event_and_a_stale_view(home, cli):
    run_lifecycle(cli, 2)
    con = sqlite3.connect(str(home / "coord.db"))
    body = con.execute("SELECT body FROM events WHERE seq = 5").fetchone()[0]
    con.execute("UPDATE events SET body = ? WHERE seq = 5", (body.replace(b"a1", b"a2"),))
    con.commit()
    r = cli("verify")
    assert r.exit_code == 5 and "event seq 5" in r.stdout
    con.execute("UPDATE events SET body = ? WHERE seq = 5", (body,))
    view = con.execute("SELECT view FROM workers WHERE worker = 'w-0'").fetchone()[0]
    con.execute("UPDATE workers SET view = ? WHERE worker = 'w-0'", (view.replace(b"WORKING", b"ASSIGNED"),))
    con.commit()
    con.close()
    r = cli("verify", "--json")
    assert r.exit_code == 5
    assert r.json()["checks"]["projections"]["differ"] == ["w-0"]
    assert cli("rebuild").exit_code == 0
    assert cli("verify").exit_code == 0


def test_export_check_changes_nothing(home, cli):
    run_lifecycle(cli, 1)
    (home / "events.jsonl").write_bytes(lines_of(home)[0] + b"\n")
    before = stored(home)
    r = cli("export", "--check")
    assert r.exit_code == 5 and "missing:" in r.stdout
    assert stored(home) == before
    assert len(lines_of(home)) == 1


def test_migrating_an_old_database_exports_its_events(home, cli):
    """A store from before the audit column (schema 1, whose file stayed empty): after
    the migration its events are dirty and the next export writes them, once."""
    run_lifecycle(cli, 2)
    con = sqlite3.connect(str(home / "coord.db"))
    con.execute("DROP INDEX events_dirty")
    con.execute("ALTER TABLE events DROP COLUMN audit")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0002_audit_dirty'")
    con.execute("DELETE FROM meta WHERE key LIKE 'audit%'")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    (home / "events.jsonl").write_bytes(b"")
    r = cli("export", "--json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["written"] == 4  # spawns and starts; heartbeats stay out
    assert cli("verify").exit_code == 0


def test_import_from_stdin(home, cli, tmp_path):
    other = tmp_path / "o" / ".coord"
    assert cli("--home", str(other), "init").exit_code == 0
    assert cli("--home", str(other), "spawn", "o-1").exit_code == 0
    r = cli("import", "-", "--json", input=(other / "events.jsonl").read_bytes())
    assert r.exit_code == 0 and r.json()["imported"] == 1
    assert cli("show", "o-1").exit_code == 0
