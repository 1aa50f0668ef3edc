"""The PostgreSQL server the tests start themselves (tests/pgserver.py): reachable with
psycopg over the socket and 127.0.0.1, a fresh database per test, restartable and killable
mid-session, reachable by an unprivileged user, and never left running."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

import pgserver
from subpytest import run_pytest

psycopg = pytest.importorskip("psycopg", reason="needs psycopg 3 (pip install -e '.[test]')")


def connect(url, **kw):
    return psycopg.connect(url, autocommit=True, connect_timeout=10, **kw)


def test_select_one_and_a_table(pg_url):
    assert "password" not in pg_url and ":@" not in pg_url
    with connect(pg_url) as con:
        assert con.execute("select 1").fetchone() == (1,)
        con.execute("create table t (id serial primary key, body text not null)")
        con.execute("insert into t (body) values (%s), (%s)", ("a", "b"))
        assert con.execute("select body from t order by id").fetchall() == [("a",), ("b",)]
        # Connected as a superuser named after the OS user, over the Unix socket.
        user, superuser = con.execute(
            "select current_user, usesuper from pg_user where usename = current_user"
        ).fetchone()
        assert superuser and user == pgserver.PostgresServer().user
        assert con.execute("select inet_server_addr()").fetchone() == (None,)


def test_each_test_gets_a_fresh_empty_database(pg_server, pg_database):
    with connect(pg_database.url) as con:
        assert con.execute("select current_database()").fetchone() == (pg_database.name,)
        tables = con.execute("select count(*) from information_schema.tables where table_schema = 'public'")
        assert tables.fetchone() == (0,)
    other = pg_server.create_database()
    assert other.name != pg_database.name
    pg_server.drop_database(other.name)


def test_drop_database_disconnects_its_clients(pg_server):
    db = pg_server.create_database()
    con = connect(db.url)
    pg_server.drop_database(db.name)
    with pytest.raises(psycopg.OperationalError):
        con.execute("select 1")
    assert db.name not in pg_server.sql("select datname from pg_database").split()


def test_tcp_on_loopback(pg_database):
    assert pg_database.tcp_url.startswith("postgresql://") and "@127.0.0.1:" in pg_database.tcp_url
    with connect(pg_database.tcp_url) as con:
        assert str(con.execute("select inet_server_addr()").fetchone()[0]) == "127.0.0.1"


def test_restart_keeps_data_and_the_url(pg_server, pg_url):
    with connect(pg_url) as con:
        con.execute("create table t (x int)")
        con.execute("insert into t values (42)")
    old = connect(pg_url)
    port, pid = pg_server.port, pg_server.pid
    pg_server.restart()
    assert pg_server.port == port and pg_server.pid != pid and pg_server.running
    with pytest.raises(psycopg.OperationalError):
        old.execute("select 1")  # the restart cut it off
    with connect(pg_url) as con:
        assert con.execute("select x from t").fetchall() == [(42,)]


def test_kill_mid_transaction_then_start_recovers_what_committed(pg_server, pg_url):
    with connect(pg_url) as con:
        con.execute("create table t (x int)")
        con.execute("insert into t values (1)")
    open_tx = psycopg.connect(pg_url, connect_timeout=10)
    open_tx.execute("insert into t values (2)")  # not committed when the server dies
    datadir = pg_server.datadir
    pg_server.kill()
    assert not pg_server.running
    assert pgserver._server_processes(datadir) == []  # no backend left behind
    with pytest.raises(psycopg.OperationalError):
        open_tx.commit()
    with pytest.raises(psycopg.OperationalError):
        connect(pg_url)  # down means down
    pg_server.start()  # at once: crash recovery, no stale lock file in the way
    with connect(pg_url) as con:
        assert con.execute("select x from t").fetchall() == [(1,)]


def test_a_postmaster_killed_by_the_test_itself_is_started_again(pg_server, pg_url):
    os.kill(pg_server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while pg_server.running and time.monotonic() < deadline:
        time.sleep(0.01)
    pg_server.ensure_running()  # clears the orphaned backends and the stale lock files
    with connect(pg_url) as con:
        assert con.execute("select 1").fetchone() == (1,)


def test_a_role_with_a_password_must_give_it_over_tcp(pg_server, pg_database):
    pg_server.create_role("pw_user", password="s3cr'et")
    try:
        url = pg_server.url(pg_database.name, tcp=True, user="pw_user")
        with pytest.raises(psycopg.OperationalError, match="password"):
            connect(url, password="wrong")
        with connect(url, password="s3cr'et") as con:
            assert con.execute("select current_user").fetchone() == ("pw_user",)
    finally:
        pg_server.sql('DROP ROLE "pw_user"')


def _world_readable_copy_of_pgserver() -> Path:
    """The clone may sit in root's home (mode 0700): give `nobody` its own copy."""
    d = Path(tempfile.mkdtemp(prefix="coord-pgtest-", dir="/tmp"))
    os.chmod(d, 0o755)
    shutil.copy(Path(pgserver.__file__), d / "pgserver.py")
    os.chmod(d / "pgserver.py", 0o644)
    return d


def _unprivileged() -> list[str]:
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []


def _python_for(prefix: list[str]) -> str:
    """An interpreter the (maybe unprivileged) user can run; pgserver needs only stdlib."""
    for exe in (sys.executable, "/usr/bin/python3"):
        if subprocess.run([*prefix, exe, "-c", "pass"], capture_output=True, cwd="/tmp").returncode == 0:
            return exe
    pytest.fail("no Python interpreter the unprivileged user can run")


def test_an_unprivileged_user_reaches_the_socket(pg_server, pg_database):
    """A test that drops privileges (setpriv) can still use the server."""
    prefix = _unprivileged()
    psql = [str(pg_server.bindir / "psql"), "-X", "-A", "-t", "-d", pg_database.url, "-c", "select 7*6"]
    r = subprocess.run([*prefix, *psql], capture_output=True, text=True, cwd="/tmp", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "42", r.stderr


def test_a_server_started_without_root_runs_as_that_user():
    """The non-root path: initdb directly, no runuser. As root, run it as `nobody`."""
    prefix = _unprivileged()
    d = _world_readable_copy_of_pgserver()
    script = textwrap.dedent(
        """
        import os, pwd, pgserver
        with pgserver.PostgresServer() as s:
            assert s.run_as is None
            owner = pwd.getpwuid(os.stat(s.datadir).st_uid).pw_name
            print(owner, s.sql("select current_user").strip(), s.dir)
        """
    )
    try:
        r = subprocess.run(
            [*prefix, _python_for(prefix), "-c", script],
            capture_output=True,
            text=True,
            cwd=d,
            env={**os.environ, "PYTHONPATH": str(d)},
            timeout=180,
        )
        assert r.returncode == 0, r.stderr
        owner, role, where = r.stdout.split()
        me = "nobody" if prefix else pgserver.PostgresServer().user
        assert owner == me and role == me
        assert not Path(where).exists()  # cleaned up
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _servers_of(directory: str) -> list[int]:
    return pgserver._server_processes(Path(directory) / "data")


def test_a_process_that_forgets_its_server_stops_it_at_exit(tmp_path):
    script = "import pgserver; s = pgserver.PostgresServer().setup(); print(s.dir, flush=True)"
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(pgserver.__file__).parent)},
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    where = r.stdout.strip()
    assert where.startswith("/tmp/coord-pg-")
    assert not Path(where).exists() and _servers_of(where) == []


def test_a_killed_test_process_leaves_a_server_the_next_run_reaps(tmp_path):
    script = "import os, pgserver; s = pgserver.PostgresServer().setup(); print(s.dir, flush=True); os.kill(os.getpid(), 9)"
    r = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(pgserver.__file__).parent)},
        timeout=180,
    )
    assert r.returncode == -9, r.stderr
    where = r.stdout.strip()
    assert Path(where).exists() and _servers_of(where)  # SIGKILL skipped atexit: orphaned
    pgserver.reap_orphans()  # what the next PostgresServer().setup() does first
    assert not Path(where).exists() and _servers_of(where) == []


def test_the_session_server_stops_after_a_run_whose_test_failed(tmp_path):
    where = tmp_path / "server-dir"
    source = f"""
import psycopg

def test_fails_with_a_client_connected(pg_server, pg_url):
    open({str(where)!r}, "w").write(str(pg_server.dir))
    con = psycopg.connect(pg_url)
    con.execute("create table t (x int)")
    assert False, "a failing test"
"""
    r = run_pytest(tmp_path, {"test_sub.py": source})
    assert r.exit_code == 1 and r.outcomes["test_fails_with_a_client_connected"] == "failed", r.output
    server_dir = where.read_text()
    assert server_dir.startswith("/tmp/coord-pg-")
    assert not Path(server_dir).exists() and _servers_of(server_dir) == []
