"""The command surface on a PostgreSQL store (contract: "Stores"), against a real server
the test run started (tests/pgserver.py): `init --store`, two homes sharing one log, the
audit file written from the shared log, credentials never printed, the version check,
search's common subset, blobs on the server, backup, settings that only SQLite reads,
and an unreachable server."""

import json
import os
import tarfile

import psycopg
import pytest

from coord.events.records import FOLD_VERSION


@pytest.fixture
def two_homes(tmp_path, pg_log_url, cli):
    """Two checkouts (as on two machines) whose homes share the session's log."""
    homes = []
    for name in ("m1", "m2"):
        (tmp_path / name).mkdir()
        h = tmp_path / name / ".coord"
        r = cli("--home", h, "init", "--store", pg_log_url)
        assert r.exit_code == 0, r.stderr
        homes.append(h)
    return homes


def test_two_homes_share_one_log_and_each_audit_file_holds_the_same_lines(two_homes, cli, pg_log_url):
    a, b = two_homes
    assert cli("--home", a, "--as", "lead", "spawn", "w-1", "--task", "ship it").exit_code == 0
    assert cli("--home", b, "--as", "ann", "start", "w-1").exit_code == 0  # the other machine
    r = cli("--home", a, "--as", "bob", "start", "w-1")
    assert r.exit_code == 4  # one log: the second start is refused, not a conflict later
    [st] = cli("--home", a, "--json", "status", "w-1").json()
    assert st["state"] == "WORKING" and st["holder"] == "ann" and st["liveness"] == "OK"  # never REMOTE
    assert cli("--home", a, "--as", "lead", "send", "msg.hi", '{"x": 1}', "--to", "ann").exit_code == 0
    polled = cli("--home", b, "--as", "ann", "--json", "poll").jsonl()
    assert [m["type"] for m in polled] == ["msg.hi"]
    assert cli("--home", a, "--as", "ann", "--json", "poll").stdout.strip() in ("", "[]")  # one inbox
    cli("--home", b, "status")  # each command catches its checkout's file up
    fa, fb = (a / "events.jsonl").read_bytes(), (b / "events.jsonl").read_bytes()
    # spawned, started, msg.hi and the poll's inbox.acked (acknowledgements are events)
    assert sorted(fa.splitlines()) == sorted(fb.splitlines()) and len(fa.splitlines()) == 4
    assert cli("--home", b, "verify").exit_code == 0
    assert "store" in (a / "local.toml").read_text() and not (a / "coord.db").exists()


def test_a_url_with_a_password_is_refused_and_never_printed(tmp_path, cli, pg_log_url):
    for bad in ("postgresql://coord:s3cret@db/coord", "host=db password=s3cret"):
        r = cli("--home", tmp_path / ".coord", "init", "--store", bad)
        assert r.exit_code == 2 and "s3cret" not in r.stdout + r.stderr
        assert not (tmp_path / ".coord" / "coord.db").exists()
    r = cli("--home", tmp_path / ".coord", "init", env={"COORD_STORE": "postgresql://u:s3cret@h/d"})
    assert r.exit_code == 2 and "s3cret" not in r.stdout + r.stderr
    r = cli("--home", tmp_path / ".coord", "init", "--store", pg_log_url, "--json")
    assert r.exit_code == 0 and "?host" not in r.json()["store"]  # printed without its parameters


def test_coord_store_overrides_the_setting(tmp_path, cli, pg_log_url):
    h = tmp_path / ".coord"
    assert cli("--home", h, "init", env={"COORD_STORE": pg_log_url}).exit_code == 0
    assert cli("--home", h, "--as", "a", "spawn", "w-9").exit_code == 0
    with psycopg.connect(pg_log_url) as conn:
        assert conn.execute("SELECT count(*) FROM coord.events").fetchone()[0] == 1


def test_another_schema_or_fold_version_is_refused_naming_both(two_homes, cli, pg_log_url):
    with psycopg.connect(pg_log_url, autocommit=True) as conn:
        conn.execute("UPDATE coord.meta SET value = '99' WHERE key = 'fold_version'")
    r = cli("--home", two_homes[0], "status")
    assert r.exit_code == 2 and "fold version 99" in r.stderr and f"fold version {FOLD_VERSION}" in r.stderr


def test_search_accepts_the_common_subset_and_refuses_near(two_homes, cli):
    a = two_homes[0]
    cli("--home", a, "--as", "x", "send", "msg.note", '{"text": "the quick brown fox"}', "--to", "y")
    cli("--home", a, "--as", "x", "send", "msg.note", '{"text": "a lazy dog, quickly"}', "--to", "y")
    hits = lambda q: len(cli("--home", a, "--json", "search", q).json())  # noqa: E731
    assert hits("fox") == 1 and hits('"quick brown"') == 1 and hits('"brown quick"') == 0
    assert hits("quick*") == 2 and hits("fox OR dog") == 2 and hits("quick* NOT fox") == 1
    assert hits("fox AND dog") == 0
    r = cli("--home", a, "search", "NEAR(fox dog)")
    assert r.exit_code == 2 and "NEAR" in r.stderr


def test_blobs_live_on_the_server_and_backup_writes_events_and_blobs(two_homes, cli, tmp_path):
    a, b = two_homes
    big = json.dumps({"text": "x" * 10000})
    assert cli("--home", a, "--as", "x", "send", "msg.big", big, "--to", "y").exit_code == 0
    assert os.listdir(a / "blobs") == []  # not in the checkout
    polled = cli("--home", b, "--as", "y", "--json", "poll").jsonl()
    assert polled[0]["payload"]["text"] == "x" * 10000  # the other machine reads it
    out = tmp_path / "backup.tar"
    r = cli("--home", b, "--json", "backup", out)
    assert r.exit_code == 0 and r.json()["events"] == 2  # msg.big and the poll's inbox.acked
    with tarfile.open(out) as t:
        names = t.getnames()
        lines = t.extractfile("events.jsonl").read().splitlines()
    assert len(lines) == 2 and len([n for n in names if n.startswith("blobs/")]) == 1
    # restorable: an empty .coord with those files is rebuilt by `coord init`
    restored = tmp_path / "restored" / ".coord"
    restored.mkdir(parents=True)
    with tarfile.open(out) as t:
        t.extractall(restored, filter="data")
    assert cli("--home", restored, "init").exit_code == 0
    assert cli("--home", restored, "verify").exit_code == 0


def test_sync_is_refused_on_a_server_store_naming_why(two_homes, cli, pg_log_url):
    a = two_homes[0]
    r = cli("--home", a, "--as", "x", "sync")
    assert r.exit_code == 2 and "PostgreSQL server" in r.stderr and len(r.stderr.splitlines()) == 1
    with psycopg.connect(pg_log_url) as conn:
        assert conn.execute("SELECT count(*) FROM coord.events").fetchone()[0] == 0


def test_views_refold_flag_folds_the_views_again_at_the_next_command(two_homes, cli, pg_log_url):
    """A home moved here with the flag set (coord migrate copies the meta): the first
    command folds the views from the events and clears the flag."""
    a = two_homes[0]
    assert cli("--home", a, "--as", "lead", "spawn", "w-1", "--no-git").exit_code == 0
    with psycopg.connect(pg_log_url, autocommit=True) as conn:
        conn.execute("DELETE FROM coord.workers")  # as if folded by an older coord
        conn.execute("INSERT INTO coord.meta (key, value) VALUES ('views_refold', '1')")
    [st] = cli("--home", a, "--json", "status").json()
    assert st["worker"] == "w-1" and st["state"] == "ASSIGNED"
    with psycopg.connect(pg_log_url) as conn:
        assert conn.execute("SELECT count(*) FROM coord.meta WHERE key = 'views_refold'").fetchone()[0] == 0


def test_sqlite_only_settings_are_shown_as_ignored(two_homes, cli):
    out = cli("--home", two_homes[0], "config").stdout
    assert "synchronous = FULL  # ignored" in out and "busy_timeout = 10  #" not in out


def test_an_unreachable_server_is_exit_7_in_one_line(tmp_path, cli, pg_log_url):
    h = tmp_path / ".coord"
    assert cli("--home", h, "init", "--store", pg_log_url).exit_code == 0
    cli("--home", h, "config", "busy_timeout", "1")
    gone = pg_log_url.replace("port=", "port=1")  # nobody listens there
    r = cli("--home", h, "--as", "a", "spawn", "w-1", env={"COORD_STORE": gone})
    assert r.exit_code == 7 and len(r.stderr.strip().splitlines()) == 1 and "safe to retry" in r.stderr


def test_init_imports_the_checkouts_file_only_when_asked(tmp_path, cli, pg_log_url):
    old = tmp_path / "old" / ".coord"  # a SQLite home's audit file, as git would check it out
    assert cli("--home", old, "init").exit_code == 0
    cli("--home", old, "--as", "a", "spawn", "w-1")
    fresh = tmp_path / "clone" / ".coord"
    fresh.mkdir(parents=True)
    (fresh / "events.jsonl").write_bytes((old / "events.jsonl").read_bytes())
    r = cli("--home", fresh, "init", "--store", pg_log_url)
    assert r.exit_code == 4 and "--import" in r.stderr
    with psycopg.connect(pg_log_url) as conn:
        assert conn.execute("SELECT count(*) FROM coord.events").fetchone()[0] == 0
    r = cli("--home", fresh, "init", "--store", pg_log_url, "--import")
    assert r.exit_code == 0, r.stderr
    assert cli("--home", fresh, "--json", "status", "w-1").json()[0]["state"] == "ASSIGNED"
    assert (fresh / "events.jsonl").read_bytes() == (old / "events.jsonl").read_bytes()  # unchanged


def test_run_keeps_the_stores_secrets_from_its_child(home, cli, tmp_path):
    cli("--as", "lead", "spawn", "w-1", "--no-git")
    out = tmp_path / "env.txt"
    r = cli(
        "--as",
        "ann",
        "run",
        "w-1",
        "--",
        "sh",
        "-c",
        f"env > {out}",
        env={"PGPASSWORD": "s3cret", "PGHOST": "db.internal"},
    )
    assert r.exit_code == 0, r.stderr
    seen = out.read_text()
    assert "s3cret" not in seen and "PGHOST=db.internal" in seen  # only the secret is removed


def test_migrate_moves_a_sqlite_home_onto_the_server_losing_nothing(home, cli, pg_log_url):
    cli("--as", "lead", "spawn", "w-1", "--no-git", "--task", "move me")
    cli("--as", "lead", "spawn", "w-2", "--no-git", "--after", "w-1")  # waits: the graph moves too
    cli("--as", "lead", "spawn", "w-3", "--no-git", "--priority", "0")
    cli("--as", "ann", "start", "w-1")
    cli("--as", "ann", "heartbeat", "w-1")
    big = json.dumps({"text": "y" * 9000})
    assert cli("--as", "lead", "send", "msg.big", big, "--to", "ann", "--request-id", "k1").exit_code == 0
    cli("--as", "lead", "send", "msg.small", "{}", "--to", "ann")
    assert (
        len(cli("--as", "ann", "--json", "poll", "--type", "msg.big").jsonl()) == 1
    )  # acked above the cursor
    before = {
        "log": cli("--json", "log").jsonl(),
        "status": cli("--json", "status").json(),
        "file": (home / "events.jsonl").read_bytes(),
        "ready": cli("--json", "ready").stdout,
    }
    assert [w["worker"] for w in json.loads(before["ready"])] == ["w-3"]
    r = cli("--json", "migrate", "--to", pg_log_url)
    assert r.exit_code == 0, r.stderr
    assert r.json()["events"] == len(before["log"]) and r.json()["blobs"] == 1
    assert not (home / "coord.db").exists() and list(home.glob("coord.db.moved-*"))
    with psycopg.connect(pg_log_url) as conn:  # the log is on the server now
        assert conn.execute("SELECT count(*) FROM coord.events").fetchone()[0] == len(before["log"])
    assert cli("--json", "log").jsonl() == before["log"]  # same bytes, ids, seqs
    assert cli("--json", "status").json() == before["status"]  # ann is still local: no REMOTE
    assert cli("--json", "ready").stdout == before["ready"]  # w-2 still waits for w-1
    assert (home / "events.jsonl").read_bytes() == before["file"]  # the audit file is untouched
    polled = cli("--as", "ann", "--json", "poll").jsonl()
    assert [m["type"] for m in polled] == ["msg.small"]  # acknowledgements kept: nothing redelivered
    [big_id] = [e["id"] for e in before["log"] if e["type"] == "msg.big"]
    again = cli("--as", "lead", "--json", "send", "msg.big", big, "--to", "ann", "--request-id", "k1")
    assert again.json()["repeat"] and again.json()["event"] == big_id  # request ids kept
    assert cli("--as", "ann", "heartbeat", "w-1").exit_code == 0
    assert cli("verify").exit_code == 0
    for verb in ("done", "approve", "merge"):
        assert cli("--as", "ann" if verb == "done" else "lead", verb, "w-1").exit_code == 0
    assert [w["worker"] for w in cli("--json", "ready").json()] == ["w-3", "w-2"]  # the index moved
    r = cli("migrate", "--to", pg_log_url)
    assert r.exit_code == 4  # already on the server


def test_lines_pulled_into_a_checkouts_file_are_not_imported_by_commands(two_homes, cli, tmp_path):
    a, _ = two_homes
    other = tmp_path / "sqlite" / ".coord"  # a clone on SQLite whose lines arrive by git
    cli("--home", other, "init")
    cli("--home", other, "--as", "x", "spawn", "w-far", "--no-git")
    with open(a / "events.jsonl", "ab") as f:
        f.write((other / "events.jsonl").read_bytes())
    r = cli("--home", a, "--as", "y", "spawn", "w-near", "--no-git")
    assert r.exit_code == 0 and "coord import" in r.stderr  # said, not done
    assert cli("--home", a, "show", "w-far").exit_code == 3
    assert cli("--home", a, "import", a / "events.jsonl").exit_code == 0  # on purpose
    assert cli("--home", a, "--json", "show", "w-far").exit_code == 0
