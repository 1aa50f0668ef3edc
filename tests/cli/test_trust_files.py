"""Trust boundary: files. A home's files arrive through git from other clones, so any of
them may be a symlink (git commits symlinks) or something else put in a file's place:
coord opens only regular files inside the home, never through a link (exit 5, one line,
nothing changed, nothing written where the link points). Output files the user names
(`timeline --html`, `backup`) are never inside a home, never overwritten without --force,
and keep the user's umask."""

import os
import stat
import subprocess

import pytest

from helpers import coord_cmd
from trust_helpers import file_state, one_line_error, snapshot


@pytest.fixture
def outside(tmp_path):
    """A directory outside the home, where a hostile link points."""
    d = tmp_path / "outside"
    d.mkdir()
    return d


def _link(path, target):
    if path.is_dir() and not path.is_symlink():
        import shutil

        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    os.symlink(target, path)


# --- a committed .coord/events.jsonl that is a symlink ------------------------------------
def test_init_refuses_an_events_file_that_is_a_symlink(tmp_path, cli, outside):
    """The issue's case: init (or spawn) created and appended a file outside the repo."""
    h = tmp_path / ".coord"
    h.mkdir()
    target = outside / "elsewhere.jsonl"
    os.symlink(target, h / "events.jsonl")
    r = cli("init")
    assert r.exit_code == 5 and one_line_error(r.stderr) and "symlink" in r.stderr, r.stderr
    assert file_state(target) == (False, None)  # nothing created where it points
    assert sorted(os.listdir(h)) == ["events.jsonl"]  # and nothing created in the home
    r = cli("spawn", "w-1")
    assert r.exit_code == 3  # still no home
    assert file_state(target) == (False, None)


def test_init_refuses_a_symlink_to_an_existing_events_file(tmp_path, cli, outside):
    h = tmp_path / ".coord"
    h.mkdir()
    target = outside / "theirs.jsonl"
    target.write_bytes(b"")
    os.symlink(target, h / "events.jsonl")
    r = cli("init")
    assert r.exit_code == 5 and one_line_error(r.stderr), r.stderr
    assert target.read_bytes() == b"" and not (h / "coord.db").exists()


def test_spawn_refuses_an_events_file_that_became_a_symlink(home, cli, outside):
    assert cli("spawn", "w-1").exit_code == 0
    target = outside / "copy.jsonl"
    target.write_bytes((home / "events.jsonl").read_bytes())
    before = file_state(target)
    _link(home / "events.jsonl", target)
    snap = snapshot(home)
    r = cli("spawn", "w-2")
    assert r.exit_code == 5 and one_line_error(r.stderr) and "events.jsonl" in r.stderr, r.stderr
    assert snapshot(home) == snap  # nothing appended, nothing rewritten
    assert file_state(target) == before  # nothing appended where the link points


# --- every other file and directory of the home ----------------------------------------------
HOME_FILES = [
    "coord.db",
    "coord.db-wal",
    "coord.db-shm",
    "config.toml",
    "local.toml",
    "write.lock",
    "write.queue",
    "audit.lock",
    "rebuild.lock",
]


@pytest.mark.parametrize("name", HOME_FILES)
def test_a_home_file_that_is_a_symlink_is_refused(home, cli, outside, name):
    assert cli("spawn", "w-1").exit_code == 0
    assert cli("config", "busy_timeout", "9").exit_code == 0  # local.toml exists
    path = home / name
    target = outside / name
    if path.exists():
        target.write_bytes(path.read_bytes())
    before = file_state(target)
    _link(path, target)
    snap = snapshot(home)
    for args in (("spawn", "w-2"), ("status",)):
        r = cli(*args)
        assert r.exit_code == 5, (args, r.stderr)
        assert one_line_error(r.stderr) and "symlink" in r.stderr, r.stderr
    assert snapshot(home) == snap
    assert file_state(target) == before


@pytest.mark.parametrize("name", ["blobs", "worktrees"])
def test_a_home_directory_that_is_a_symlink_is_refused(home, cli, outside, name):
    assert cli("spawn", "w-1").exit_code == 0
    target = outside / name
    target.mkdir()
    _link(home / name, target)
    snap = snapshot(home)
    r = cli("--as", "a", "send", "big", "--text", "x" * 9000, "--to", "b")  # would write a blob
    assert r.exit_code == 5 and one_line_error(r.stderr) and name in r.stderr, r.stderr
    assert snapshot(home) == snap and os.listdir(target) == []


def test_a_home_directory_that_is_a_symlink_is_refused_as_a_home(tmp_path, cli, outside, monkeypatch):
    """Decision: the home itself must be a real directory, however it is named (walk up,
    --home, COORD_HOME); a committed `.coord` link would put every file wherever it points."""
    real = outside / "real-home"
    os.symlink(real, tmp_path / ".coord")
    r = cli("init")
    assert r.exit_code == 5 and one_line_error(r.stderr) and "symlink" in r.stderr, r.stderr
    assert not real.exists()
    # An existing home reached through a link is refused too, and left as it was.
    monkeypatch.setenv("COORD_HOME", str(real))
    assert cli("init").exit_code == 0 and cli("spawn", "w-1").exit_code == 0
    snap = snapshot(real)
    monkeypatch.setenv("COORD_HOME", str(tmp_path / ".coord"))
    r = cli("status")
    assert r.exit_code == 5 and one_line_error(r.stderr), r.stderr
    monkeypatch.delenv("COORD_HOME")
    r = cli("spawn", "w-2")  # found by walking up
    assert r.exit_code == 5 and one_line_error(r.stderr), r.stderr
    assert snapshot(real) == snap


@pytest.mark.parametrize("name", [".gitignore", ".gitattributes"])
def test_init_refuses_gitignore_or_gitattributes_that_is_a_symlink(home, cli, outside, name):
    target = outside / name
    target.write_text("theirs\n")
    _link(home / name, target)
    r = cli("init")
    assert r.exit_code == 5 and one_line_error(r.stderr) and name in r.stderr, r.stderr
    assert target.read_text() == "theirs\n"


def test_a_fifo_in_a_files_place_is_refused_without_blocking(home, cli):
    (home / "local.toml").unlink(missing_ok=True)
    os.mkfifo(home / "local.toml")
    r = cli("status")  # would block forever opening a fifo without a writer
    assert r.exit_code == 5 and one_line_error(r.stderr) and "not a regular file" in r.stderr


# --- output files --------------------------------------------------------------------------
def test_timeline_html_never_replaces_the_live_database(home, cli):
    """The issue's case: `timeline --html .coord/coord.db` replaced the live database."""
    assert cli("spawn", "w-1").exit_code == 0
    snap = snapshot(home)
    db = file_state(home / "coord.db")
    for args in (("--html", str(home / "coord.db")), ("--html", str(home / "coord.db"), "--force")):
        r = cli("timeline", *args)
        assert r.exit_code == 4, r.stderr
        assert one_line_error(r.stderr) and "inside a coord home" in r.stderr, r.stderr
    assert file_state(home / "coord.db") == db and snapshot(home) == snap
    assert cli("status", "--json").json()[0]["worker"] == "w-1"


def test_output_inside_the_home_through_a_link_is_refused(home, cli, tmp_path):
    os.symlink(home / "events.jsonl", tmp_path / "innocent.html")
    os.symlink(home, tmp_path / "dir-link")
    snap = snapshot(home)
    for path in (tmp_path / "innocent.html", tmp_path / "dir-link" / "page.html", home / "new.html"):
        for cmd in (("timeline", "--html", str(path), "--force"), ("backup", str(path), "--force")):
            r = cli(*cmd)
            assert r.exit_code == 4 and one_line_error(r.stderr), (cmd, r.stderr)
    assert snapshot(home) == snap


@pytest.mark.parametrize("cmd", [("timeline", "--html"), ("backup",)])
def test_an_existing_output_file_needs_force(home, cli, tmp_path, cmd):
    assert cli("spawn", "w-1").exit_code == 0
    out = tmp_path / "out.file"
    out.write_text("mine\n")
    r = cli(*cmd, str(out))
    assert r.exit_code == 4 and one_line_error(r.stderr) and "--force" in r.stderr, r.stderr
    assert out.read_text() == "mine\n"
    assert cli(*cmd, str(out), "--force").exit_code == 0
    assert out.read_text(errors="replace") != "mine\n"
    assert [n for n in os.listdir(tmp_path) if ".tmp" in n] == []  # no temporary left behind


@pytest.mark.parametrize("cmd", [("timeline", "--html"), ("backup",)])
def test_an_output_file_in_a_missing_directory_is_a_usage_error(home, cli, tmp_path, cmd):
    r = cli(*cmd, str(tmp_path / "no" / "such" / "out.file"))
    assert r.exit_code == 2 and one_line_error(r.stderr) and "no such directory" in r.stderr, r.stderr
    r = cli(*cmd, str(tmp_path))  # a directory
    assert r.exit_code == 2 and one_line_error(r.stderr), r.stderr


def test_output_files_keep_the_users_umask(home, proc, tmp_path):
    """The home is private (077), but what coord writes for the user is theirs: a real
    process started with umask 022 writes 0644 files."""
    assert proc("spawn", "w-1", env={"COORD_HOME": str(home)}).returncode == 0

    def run(*args):
        return subprocess.run(
            ["sh", "-c", 'umask 022; exec "$@"', "sh", *coord_cmd(), *args],
            env=dict(os.environ, COORD_HOME=str(home)),
            capture_output=True,
            text=True,
        )

    for args, out in (
        (("timeline", "--html", str(tmp_path / "t.html")), tmp_path / "t.html"),
        (("backup", str(tmp_path / "b.db")), tmp_path / "b.db"),
    ):
        r = run(*args)
        assert r.returncode == 0, r.stderr
        assert stat.S_IMODE(os.stat(out).st_mode) == 0o644, (args, oct(os.stat(out).st_mode))
    # ... while the home's own files stay private
    assert run("spawn", "w-2").returncode == 0
    for root, dirs, files in os.walk(home):
        for n in dirs + files:
            assert os.stat(os.path.join(root, n)).st_mode & 0o077 == 0, n


# --- another user's home -------------------------------------------------------------------
@pytest.fixture
def world_reachable(tmp_path):
    """A directory `nobody` can reach (pytest's tmp_path sits in root-only directories)."""
    import shutil
    import tempfile

    d = tempfile.mkdtemp(prefix="coord-trust-", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_another_users_home_is_one_line_exit_1(world_reachable, proc):
    """The docs promise exit 1 and one line for a home the user may not use; it was
    "unexpected PermissionError". Runs as `nobody` (tests run as root, who may do anything),
    from a copy of coord that `nobody` can read."""
    from trust_helpers import copy_for_unprivileged

    if os.geteuid() != 0:
        pytest.skip("needs root to drop privileges")
    lib = os.path.join(world_reachable, "lib")
    os.mkdir(lib)
    coord_as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    coord_as_nobody += copy_for_unprivileged(lib)
    repo = os.path.join(world_reachable, "repo")
    os.mkdir(repo)
    os.chmod(repo, 0o755)  # whatever umask an in-process command left this process with
    home = os.path.join(repo, ".coord")
    env = {"COORD_HOME": home}
    assert proc("init", env=env).returncode == 0 and proc("spawn", "w-1", env=env).returncode == 0
    os.chmod(home, 0o755)  # nobody may look in, but every file is root's, mode 0600
    from pathlib import Path

    snap = snapshot(Path(home))
    for args in (("status",), ("--as", "a", "start", "w-1"), ("log",), ("config",), ("init",)):
        for how in ({"COORD_HOME": home}, None):  # named, and found by walking up
            r = subprocess.run(
                [*coord_as_nobody, *args],
                cwd=repo,
                env={"PATH": os.environ["PATH"], **(how or {})},
                capture_output=True,
                text=True,
            )
            assert r.returncode == 1, (args, r.stderr)
            assert one_line_error(r.stderr) and "unexpected" not in r.stderr, (args, r.stderr)
            assert "permission denied" in r.stderr and "belongs to root" in r.stderr, r.stderr
    os.chmod(home, 0o700)  # now nobody cannot even look in
    r = subprocess.run(
        [*coord_as_nobody, "status"],
        env={"PATH": os.environ["PATH"], "COORD_HOME": home},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and one_line_error(r.stderr) and "permission denied" in r.stderr, r.stderr
    assert snapshot(Path(home)) == snap
