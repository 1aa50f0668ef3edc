"""Trust boundary: settings. Shared settings (config.toml) arrive through git from other
clones; local ones (local.toml) describe one machine. Every value is checked for type and
range when set (`coord config KEY VALUE`: exit 2, file unchanged) and when read (every
command but `config` exits 2 naming the file, key, value and repair, and changes nothing);
`coord config` still reads an invalid file, marks what is wrong and repairs it."""

import os
import stat

import pytest

from helpers import count_events
from trust_helpers import one_line_error, snapshot

BAD_VALUES = [
    ("branch_prefix", "a\nb"),  # made config.toml invalid and unrepairable
    ("branch_prefix", "x\x1b[2Jy"),
    ("branch_prefix", ""),
    ("branch_prefix", "a..b/"),
    ("branch_prefix", "-x/"),
    ("branch_prefix", "has space/"),
    ("busy_timeout", "nan"),
    ("busy_timeout", "inf"),
    ("busy_timeout", "0"),
    ("busy_timeout", "1e9"),
    ("heartbeat_interval", "nan"),  # silently disabled reaping
    ("heartbeat_interval", "inf"),
    ("heartbeat_interval", "0.001"),  # below the floor: hundreds of beats a second
    ("heartbeat_interval", "100000"),
    ("blob_threshold", "99999999999999999999"),
    ("blob_threshold", "0"),
    ("blob_threshold", "4.5"),
    ("synchronous", "OFF; DROP TABLE events"),
    ("write_lock", "maybe"),
    ("audit_heartbeats", "2"),
    ("max_clock_skew", "-1"),
    ("max_clock_skew", "nan"),
]


@pytest.mark.parametrize("key,value", BAD_VALUES)
def test_config_refuses_a_bad_value_and_changes_nothing(home, cli, key, value):
    assert cli("spawn", "w-1").exit_code == 0
    snap = snapshot(home)
    r = cli("config", "--", key, value)  # "--": values such as -1 are not options
    assert r.exit_code == 2 and one_line_error(r.stderr) and key in r.stderr, r.stderr
    assert snapshot(home) == snap
    assert not (home / "local.toml").exists()
    assert cli("status").exit_code == 0  # and every later command still works


def test_config_accepts_good_values_and_normalises_them(home, cli):
    for key, value, shown in (
        ("heartbeat_interval", "0.05", "0.05"),
        ("heartbeat_interval", "86400", "86400.0"),
        ("blob_threshold", "1048576", "1048576"),
        ("branch_prefix", "team/agents-", "team/agents-"),
        ("synchronous", "normal", "NORMAL"),
        ("busy_timeout", "0.5", "0.5"),
        ("write_lock", "off", "false"),
        ("max_clock_skew", "0", "0.0"),
    ):
        r = cli("config", key, value)
        assert r.exit_code == 0 and r.stdout.strip() == shown, (key, r.stderr)
        assert cli("config", key).stdout.strip() == shown


def test_shared_and_local_settings_live_in_their_own_files(home, cli):
    assert cli("config", "heartbeat_interval", "5").exit_code == 0
    assert cli("config", "busy_timeout", "30").exit_code == 0
    shared = (home / "config.toml").read_text()
    local = (home / "local.toml").read_text()
    assert "heartbeat_interval = 5.0" in shared and "busy_timeout" not in shared
    assert "synchronous" not in shared and "write_lock" not in shared
    assert "busy_timeout = 30.0" in local and "heartbeat_interval" not in local
    assert stat.S_IMODE(os.stat(home / "local.toml").st_mode) == 0o600
    ignored = (home / ".gitignore").read_text().split()
    assert {"local.toml", "serve.token", "coord.db", "worktrees/"} <= set(ignored)
    d = cli("config", "--json").json()
    assert d["heartbeat_interval"] == 5.0 and d["busy_timeout"] == 30.0 and d["max_clock_skew"] == 300.0
    text = cli("config").stdout
    assert text.index("# shared") < text.index("heartbeat_interval") < text.index("# local")
    assert text.index("# local") < text.index("busy_timeout = 30.0")


def test_an_older_homes_gitignore_gets_local_toml(home, cli):
    (home / ".gitignore").write_text("coord.db\ncoord.db-wal\ncoord.db-shm\nworktrees/\n")
    assert cli("config", "busy_timeout", "3").exit_code == 0  # writing local.toml adds it
    assert "local.toml" in (home / ".gitignore").read_text().split()
    (home / ".gitignore").write_text("coord.db\n")
    assert cli("init").exit_code == 0  # and init adds whatever is missing
    names = (home / ".gitignore").read_text().split()
    assert names[0] == "coord.db" and {"local.toml", "serve.token", "coord.db-wal"} <= set(names)


OLD_CONFIG = """# coord settings (committed: clones share them). `coord config KEY VALUE` sets one.
heartbeat_interval = 7.0
blob_threshold = 4096
audit_heartbeats = false
branch_prefix = "coord/"
synchronous = "FULL"
busy_timeout = 25.0
write_lock = true
future_setting = "kept"
"""


def test_local_settings_in_an_older_config_toml_are_read_then_moved(home, cli):
    (home / "config.toml").write_text(OLD_CONFIG)
    r = cli("status")
    assert r.exit_code == 0
    # read, with a note for the one that differs from its default
    assert "busy_timeout = 25.0 is read from config.toml" in r.stderr and "synchronous" not in r.stderr
    assert cli("config", "--json").json()["busy_timeout"] == 25.0
    # the next config write moves them, and keeps what this coord does not know
    r = cli("config", "heartbeat_interval", "8")
    assert r.exit_code == 0 and "moved local settings" in r.stderr
    shared = (home / "config.toml").read_text()
    assert "busy_timeout" not in shared and "synchronous" not in shared and "write_lock" not in shared
    assert "heartbeat_interval = 8.0" in shared and 'future_setting = "kept"' in shared
    assert "busy_timeout = 25.0" in (home / "local.toml").read_text()
    r = cli("status")
    assert r.exit_code == 0 and r.stderr == ""
    assert cli("config", "--json").json()["busy_timeout"] == 25.0


def test_a_shared_setting_in_local_toml_is_ignored_with_a_note(home, cli):
    (home / "local.toml").write_text("heartbeat_interval = 1.0\n")
    r = cli("config", "--json")
    assert r.json()["heartbeat_interval"] == 10.0 and "shared setting" in r.stderr


INVALID_FILES = [
    # (file, text, key named in the error)
    ("config.toml", 'branch_prefix = "a\nb"\n', "branch_prefix"),  # what an older coord wrote
    ("config.toml", "heartbeat_interval = nan\n", "heartbeat_interval"),
    ("config.toml", "heartbeat_interval = inf\n", "heartbeat_interval"),
    ("config.toml", "blob_threshold = 99999999999999999999\n", "blob_threshold"),
    ("config.toml", 'blob_threshold = "lots"\n', "blob_threshold"),
    ("config.toml", "branch_prefix = 3\n", "branch_prefix"),
    ("local.toml", "busy_timeout = nan\n", "busy_timeout"),
    ("local.toml", "busy_timeout = -1.0\n", "busy_timeout"),
    ("local.toml", 'synchronous = "OFF"\n', "synchronous"),
    ("local.toml", "write_lock = 1\n", "write_lock"),
    ("local.toml", "max_clock_skew = -5.0\n", "max_clock_skew"),
]


@pytest.mark.parametrize("name,text,key", INVALID_FILES)
def test_an_invalid_value_in_a_file_is_exit_2_naming_the_repair_and_config_repairs_it(
    home, cli, name, text, key
):
    assert cli("spawn", "w-1").exit_code == 0
    (home / name).write_text(text)
    snap = snapshot(home)
    for args in (
        ("status",),
        ("spawn", "w-2"),
        ("log",),
        ("--as", "a", "start", "w-1"),
        ("--as", "j", "reap"),
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.stderr)
        assert one_line_error(r.stderr), r.stderr
        assert name in r.stderr and key in r.stderr and f"coord config {key} VALUE" in r.stderr, r.stderr
    assert snapshot(home) == snap
    # `coord config` itself still works on the file: it shows every value, marks the bad one
    r = cli("config")
    assert r.exit_code == 0
    [line] = [ln for ln in r.stdout.splitlines() if ln.startswith(key + " ")]
    assert "INVALID" in line
    assert "\n" not in line and "\x1b" not in r.stdout
    assert "$problems" in cli("config", "--json").json()
    # ... and setting the value again repairs it
    good = {"branch_prefix": "agents/", "synchronous": "NORMAL", "write_lock": "true"}.get(key, "5")
    assert cli("config", key, good).exit_code == 0
    assert cli("status").exit_code == 0 and cli("spawn", "w-2").exit_code == 0


def test_a_newline_in_branch_prefix_can_no_longer_break_config_toml(home, cli):
    """The issue's case: `config branch_prefix 'a<newline>b'` was accepted, and then even
    `config` could not read the file to repair it."""
    r = cli("config", "branch_prefix", "a\nb")
    assert r.exit_code == 2 and one_line_error(r.stderr)
    assert cli("config", "branch_prefix", "agents/").exit_code == 0
    assert cli("config", "branch_prefix").stdout.strip() == "agents/"


def test_repairing_one_setting_keeps_the_others_and_says_what_was_dropped(home, cli):
    (home / "config.toml").write_text(
        'heartbeat_interval = 3.0\nbranch_prefix = "a\nb"\nblob_threshold = 99\n'
    )
    r = cli("config", "branch_prefix", "ok/")
    assert r.exit_code == 0 and "dropped line" in r.stderr
    d = cli("config", "--json").json()
    assert d["heartbeat_interval"] == 3.0 and d["blob_threshold"] == 99 and d["branch_prefix"] == "ok/"
    assert "$problems" not in d


def test_nan_interval_in_a_pulled_config_cannot_disable_reaping(home, cli):
    assert cli("spawn", "w-1").exit_code == 0 and cli("--as", "a", "start", "w-1").exit_code == 0
    (home / "config.toml").write_text("heartbeat_interval = nan\n")
    n = count_events(home)
    r = cli("--as", "janitor", "reap")
    assert r.exit_code == 2 and "heartbeat_interval" in r.stderr
    assert count_events(home) == n


def test_adding_a_setting_is_one_entry(monkeypatch, home, cli):
    """Later issues add shared settings (git_remote, max_attempts, ...): one table entry
    gives it a file, a default, validation on set and on read, and `config` support."""
    from coord.events import settings as st

    entry = st.Setting(int, 3, "attempts before failing", st.SHARED, st._number(1, 100, "attempts"))
    monkeypatch.setitem(st.SETTINGS, "max_attempts", entry)
    assert cli("config", "max_attempts").stdout.strip() == "3"
    assert cli("config", "max_attempts", "0").exit_code == 2
    assert cli("config", "max_attempts", "5").exit_code == 0
    assert "max_attempts = 5" in (home / "config.toml").read_text()
    (home / "config.toml").write_text("max_attempts = 1000\n")
    r = cli("status")
    assert r.exit_code == 2 and "max_attempts" in r.stderr


def test_a_settings_file_is_never_read_through_a_link(home, cli, tmp_path):
    secret = tmp_path / "secret.toml"
    secret.write_text("busy_timeout = 1.0\n")
    os.symlink(secret, home / "local.toml")
    for args in (("config",), ("config", "busy_timeout", "3"), ("status",)):
        r = cli(*args)
        assert r.exit_code == 5 and one_line_error(r.stderr) and "symlink" in r.stderr, (args, r.stderr)
    assert secret.read_text() == "busy_timeout = 1.0\n" and os.path.islink(home / "local.toml")


def test_a_fresh_clone_with_an_invalid_config_can_be_repaired_then_initialised(tmp_path, cli):
    """A clone has .coord/config.toml (committed) but no database: init refuses the
    invalid value, and config repairs it there, before any database exists."""
    h = tmp_path / ".coord"
    h.mkdir()
    (h / "config.toml").write_text("heartbeat_interval = nan\n")
    r = cli("init")
    assert r.exit_code == 2 and "coord config heartbeat_interval VALUE" in r.stderr, r.stderr
    assert os.listdir(h) == ["config.toml"]  # refused before anything was created
    assert "INVALID" in cli("config").stdout
    assert cli("config", "heartbeat_interval", "12").exit_code == 0
    assert cli("init").exit_code == 0 and cli("config", "heartbeat_interval").stdout.strip() == "12.0"
