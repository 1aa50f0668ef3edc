"""A store made before issue 12 (fixtures/store-schema5.sql: schema 5 as coord fd598e1 made
it, with its migrations recorded under their old, out-of-order names) migrates on first
use: the old records are renamed, the new migration runs once, and everything it held is
read and checks out. SQLite's own migrations: not parametrized by store."""

import json
import sqlite3

from coord.app.context import Coord
from coord.events.sqlite_schema import RENAMED, migrations
from coord.events.sqlite_store import SCHEMA_VERSION
from helpers import ROOT, count_events

OLD_NAMES = {
    "0001_events_and_workers",
    "0301_audit_dirty",
    "0401_events_worker_transitions",
    "0501_messages_blobs_search",
    "1101_events_stored",
}


def old_home(tmp_path):
    home = tmp_path / ".coord"
    (home / "blobs").mkdir(parents=True)
    (home / "events.jsonl").write_bytes((ROOT / "fixtures" / "store-schema5.jsonl").read_bytes())
    con = sqlite3.connect(home / "coord.db")
    con.executescript((ROOT / "fixtures" / "store-schema5.sql").read_text())
    con.execute("PRAGMA journal_mode = WAL")
    con.close()
    return home


def test_the_fixture_is_a_store_from_before(tmp_path):
    con = sqlite3.connect(old_home(tmp_path) / "coord.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == 5
    assert {r[0] for r in con.execute("SELECT name FROM _sqlite_migrations")} == OLD_NAMES
    assert "branch" not in [r[1] for r in con.execute("PRAGMA table_info(workers)")]


def test_an_old_store_migrates_once_and_keeps_everything(tmp_path, cli, monkeypatch):
    home = old_home(tmp_path)
    monkeypatch.setenv("COORD_HOME", str(home))
    before = count_events(home)
    r = cli("status", "--all", "--json")  # any command migrates
    assert r.exit_code == 0, r.stderr
    assert {d["worker"]: d["state"] for d in r.json()} == {"w-1": "WORKING", "w-2": "IN_REVIEW"}
    # Views folded before attempts were folded again (0007_views_refold): attempts numbered.
    assert {d["worker"]: d["attempt"] for d in r.json()} == {"w-1": 1, "w-2": 1}
    con = sqlite3.connect(home / "coord.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = [r[0] for r in con.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert sorted(names) == sorted(m.name for m in migrations._migrations)  # renamed, and 0006 added
    assert not set(names) & set(RENAMED)
    rows = dict(
        (w, (b, base, wt is not None))
        for w, b, base, wt in con.execute("SELECT worker, branch, base, worktree FROM workers")
    )
    con.close()
    assert rows == {"w-1": ("coord/w-1", "main", True), "w-2": (None, None, False)}
    with Coord(home) as c:  # the git steps' lookup by branch reads the new columns
        assert [v.worker for v in c.store.reader.views(naming="coord/w-1")] == ["w-1"]
        assert [v.worker for v in c.store.reader.views(naming="main")] == ["w-1"]

    assert cli("verify").exit_code == 0  # hashes, columns, audit file, views, blobs
    # What bob had acknowledged on this clone (its cursors) became an acknowledgement
    # event, written to the audit file so that it travels.
    assert count_events(home) == before + 1
    [acked] = [json.loads(x) for x in (home / "events.jsonl").read_text().splitlines() if "inbox.acked" in x]
    assert (acked["from"], acked["to"]) == ("bob", "bob")
    msgs = [e for e in cli("log", "--json").jsonl() if e["type"].startswith("msg.")]
    assert sorted(acked["payload"]["ids"]) == sorted(e["id"] for e in msgs if e["from"] != "bob")
    before += 1
    assert cli("log", "--json").jsonl()[-2]["type"] == "worker.done"
    hits = cli("search", "hello", "--json").json()
    assert [h["type"] for h in hits] == ["msg.note"]
    assert cli("--as", "bob", "poll", "--json").stdout == ""  # bob's cursors came along
    again = cli(
        "--as", "ann", "send", "review_request", '{"worker": "w-1"}', "--to", "*", "--request-id", "k1"
    )
    assert again.exit_code == 0 and "already sent" in again.stdout  # the request id came along
    assert cli("--as", "ann", "heartbeat", "w-1").exit_code == 0
    assert cli("--as", "cy", "approve", "w-2").exit_code == 0
    assert count_events(home) == before + 2
    assert cli("verify").exit_code == 0
    r = cli("status", "--json")  # migrated once: opening again changes nothing
    assert r.exit_code == 0
    con = sqlite3.connect(home / "coord.db")
    assert len(con.execute("SELECT name FROM _sqlite_migrations").fetchall()) == len(migrations._migrations)
    con.close()


BOARD_COLUMNS = (
    "board_head",
    "board_note",
    "board_since",
    "board_beat",
    "board_live",
    "board_interval",
    "board_clone",
)


def test_a_store_from_before_the_board_columns_gets_them(home, cli):
    """A store at the schema before 0012 (made here, then the columns taken away, as the
    coord before made it) migrates on first use: each view's board columns are computed
    from it, the text board reads them, and verify compares them."""
    for args in (
        ("spawn", "w-1", "--task", "first"),
        ("spawn", "w-2", "--task", "second", "--after", "w-1"),
        ("spawn", "w-3"),
        ("--as", "ann", "start", "w-1"),
        ("--as", "ann", "heartbeat", "w-1", "--note", "busy"),
        ("--as", "bob", "start", "w-3"),
        ("--as", "bob", "done", "w-3", "--summary", "all done"),
    ):
        assert cli(*args).exit_code == 0, args
    want = cli("status", "--all").stdout
    con = sqlite3.connect(home / "coord.db")
    for col in BOARD_COLUMNS:
        con.execute(f"ALTER TABLE workers DROP COLUMN {col}")
    con.execute("DELETE FROM _sqlite_migrations WHERE name = '0012_workers_board_columns'")
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    con.commit()
    con.close()

    got = cli("status", "--all")  # migrates, fills the columns, then reads them
    assert got.exit_code == 0, got.stderr
    assert _without_ages(got.stdout) == _without_ages(want)
    con = sqlite3.connect(home / "coord.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    heads = dict(con.execute("SELECT worker, board_head FROM workers"))
    assert all(heads.values()) and set(heads) == {"w-1", "w-2", "w-3"}
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'board_columns'").fetchone()[0] == 0
    con.close()
    assert cli("verify").exit_code == 0


def _without_ages(text: str) -> list[list[str]]:
    """The board's rows without AGE and HEARTBEAT (the two runs are moments apart)."""
    return [line.split()[:3] + line.split()[5:] for line in text.splitlines()]
