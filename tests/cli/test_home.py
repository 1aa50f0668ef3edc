"""Home discovery, init, settings, and migrations."""

import sqlite3
import subprocess
import sys

from coord.events import sqlite_schema as schema
from coord.events.home import find_home
from coord.events.sqlite_store import SCHEMA_VERSION


def test_init_creates_the_layout(tmp_path, cli):
    r = cli("init")
    assert r.exit_code == 0
    h = tmp_path / ".coord"
    for name in ("coord.db", "events.jsonl", "blobs", "config.toml", ".gitignore", ".gitattributes"):
        assert (h / name).exists(), name
    assert "events.jsonl merge=union -text" in (h / ".gitattributes").read_text()
    gi = (h / ".gitignore").read_text().split()
    assert {"coord.db", "coord.db-wal", "coord.db-shm", "worktrees/"} <= set(gi)
    con = sqlite3.connect(h / "coord.db")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cli("init").exit_code == 0  # idempotent
    assert "already" in cli("init").stdout


def test_discovery_walks_up_and_env_overrides(tmp_path, cli, monkeypatch):
    assert cli("init").exit_code == 0
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_home().path == tmp_path / ".coord"
    assert cli("spawn", "w-1").exit_code == 0
    other = tmp_path.parent / (tmp_path.name + "-other")
    other.mkdir()
    monkeypatch.chdir(other)
    assert cli("status").exit_code == 3
    assert cli("--home", str(tmp_path / ".coord"), "status", "--json").json()[0]["worker"] == "w-1"
    assert cli("status", "--json", "--home", str(tmp_path)).json()[0]["worker"] == "w-1"
    monkeypatch.setenv("COORD_HOME", str(tmp_path / ".coord"))
    assert cli("status", "--json").json()[0]["worker"] == "w-1"


def test_config_show_and_set(home, cli):
    assert cli("config", "heartbeat_interval").stdout.strip() == "10.0"
    assert cli("config", "heartbeat_interval", "2.5").exit_code == 0
    assert cli("config", "--json").json()["heartbeat_interval"] == 2.5
    assert "heartbeat_interval = 2.5" in (home / "config.toml").read_text()
    assert cli("config", "audit_heartbeats", "true").exit_code == 0
    assert cli("config", "audit_heartbeats").stdout.strip() == "true"


def test_migration_count_matches_schema_version():
    assert SCHEMA_VERSION == len(schema.migrations._migrations)


def test_blank_database_is_migrated_and_current_one_skipped(tmp_path, cli, monkeypatch):
    h = tmp_path / "x" / ".coord"
    h.mkdir(parents=True)
    sqlite3.connect(h / "coord.db").close()  # an empty database: version 0
    monkeypatch.setenv("COORD_HOME", str(h))
    assert cli("spawn", "w-1").exit_code == 0
    con = sqlite3.connect(h / "coord.db")
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    names = [r[0] for r in con.execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert names == [m.name for m in schema.migrations._migrations]


def test_per_action_path_does_not_import_sqlite_utils(home):
    code = (
        "import sys, os\n"
        "from coord.cli.output import run_main\nfrom coord.cli import cli\n"
        "rc = run_main(cli, ['spawn', 'w-1'])\n"
        "rc2 = run_main(cli, ['--as', 'a', 'start', 'w-1'])\n"
        "print(rc, rc2, 'sqlite_utils' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"COORD_HOME": str(home), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.split()[-3:] == ["0", "0", "False"], out.stderr
