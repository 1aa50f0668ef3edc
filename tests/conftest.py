"""Shared fixtures: every test gets its own home under tmp_path (COORD_HOME), and two ways
to run coord: in-process through the real entry point (`cli`), or as a real subprocess
(`proc`) for concurrency, crashes and signals. Real components, started when a test first
asks for them: a PostgreSQL server (`pg_server`, with a fresh database per test:
`pg_database`, `pg_url`) and a headless chromium (`browser`, `page`). With CI=true a
skipped test fails the run (tests/skips.py)."""

import os
import shutil
import subprocess

import pytest

import skips
from browser import Browser, BrowserUnavailable
from helpers import coord_cmd, run_inprocess
from pgserver import PostgresServer, PostgresUnavailable


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="run large/slow tests too")


def pytest_configure(config):
    # Declared here too, for runs that do not read pyproject.toml (tests/subpytest.py).
    config.addinivalue_line("markers", "slow: large runs, only with --runslow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """CI=true: a skipped test is a failure (a missing component), except slow tests
    without --runslow and skips.not_applicable()."""
    report = (yield).get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = skips.skip_reason(report.longrepr)
        slow_skipped = "slow" in item.keywords and not item.config.getoption("--runslow")
        if skips.ci_fails(reason, slow_skipped=slow_skipped):
            report.outcome = "failed"
            report.longrepr = f"CI=true, so this skip fails the run: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """The same for a module skipped as a whole (pytest.importorskip at import)."""
    report = (yield).get_result()
    if report.skipped:
        reason = skips.skip_reason(report.longrepr)
        if skips.ci_fails(reason, slow_skipped=False):
            report.outcome = "failed"
            report.longrepr = f"CI=true, so this skip fails the run: {reason}"


# ---- PostgreSQL: one real server per session, a fresh database per test ----
@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server (tests/pgserver.py), started when a test first needs it and
    stopped at the end of the session. Tests may stop(), kill(), start() or restart() it."""
    try:
        server = PostgresServer()
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    with server:
        yield server


@pytest.fixture
def pg_database(pg_server):
    """A new, empty database for this test (a pgserver.PgDatabase: name, url, tcp_url,
    server), dropped afterwards even if clients are still connected."""
    pg_server.ensure_running()
    db = pg_server.create_database()
    yield db
    pg_server.ensure_running()  # the test may have stopped or killed the server
    pg_server.drop_database(db.name)


@pytest.fixture(scope="session")
def _pg_log_database(pg_server):
    """One database with coord's log installed, shared by the session (see pg_log_url)."""
    from coord.events.pg_schema import install

    db = pg_server.create_database()
    install(db.url, 10.0, 300.0)
    return db


@pytest.fixture
def pg_log_url(_pg_log_database):
    """The URL of a coord log on the session's server, emptied for this test (every table
    truncated, other sessions ended): a fresh log in ~20 ms instead of a new database."""
    from pglog import empty_log

    _pg_log_database.server.ensure_running()
    empty_log(_pg_log_database.url)
    return _pg_log_database.url


@pytest.fixture
def pg_url(pg_database):
    """The fresh database's libpq URL, over the Unix socket, without a password:
    postgresql://USER@/coord_…?host=/tmp/coord-pg-…&port=N."""
    return pg_database.url


# ---- chromium: one real browser per session, a fresh isolated page per test ----
@pytest.fixture(scope="session")
def browser():
    """A headless chromium driven over DevTools (tests/browser.py), started when a test
    first needs it; launched again if a test crashed it."""
    try:
        b = Browser()
    except BrowserUnavailable as e:
        pytest.skip(str(e))
    try:
        import websockets  # noqa: F401
    except ImportError:
        pytest.skip("needs the websockets package (pip install -e '.[test]')")
    b.launch()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def page(browser):
    """A new tab in its own browser context (own cookies and storage), with every request
    that leaves loopback refused and listed in page.blocked; closed afterwards."""
    if not browser.alive:
        browser.close()
        browser.launch()
    p = browser.new_page(isolated=True)
    p.block_external()
    yield p
    p.close()


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    for var in ("COORD_AGENT", "COORD_WORKER", "COORD_HOME", "COORD_FAILPOINTS", "COORD_STORE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("USER", "tester")
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session")
def _initialised_home(tmp_path_factory):
    """One home made by `coord init` (through the real entry point) per session, to copy."""
    path = tmp_path_factory.mktemp("template") / ".coord"
    r = run_inprocess(["init"], env={"COORD_HOME": str(path)})
    assert r.exit_code == 0, r.stderr
    return path


@pytest.fixture
def home(tmp_path, monkeypatch, _initialised_home):
    """An initialised home at tmp_path/.coord, exported as COORD_HOME: a copy of the
    session's freshly initialised one (its files, modes and empty store; `init` itself is
    tested on its own), which costs a millisecond instead of a migration per test."""
    path = tmp_path / ".coord"
    shutil.copytree(_initialised_home, path)
    monkeypatch.setenv("COORD_HOME", str(path))
    return path


@pytest.fixture
def cli():
    """cli('spawn', 'w-1', input=..., env={...}) -> Ran, in-process through the real entry
    point (run_main), with COORD_DEBUG=1 so a real traceback surfaces in the test."""

    def run(*args, input=None, env=None):
        # COORD_DEBUG: an unexpected error raises here with its traceback, instead of
        # becoming `Error: unexpected …` and exit 1 (which a real process still gives).
        return run_inprocess(list(args), input=input, env={"COORD_DEBUG": "1", **(env or {})})

    return run


@pytest.fixture
def proc():
    """proc('status', '--json', env={...}) -> CompletedProcess, as a real process."""

    def run(*args, env=None, input=None, timeout=60, **kw):
        e = dict(os.environ)
        if env:
            e.update(env)
        return subprocess.run(
            [*coord_cmd(), *map(str, args)],
            env=e,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kw,
        )

    return run
