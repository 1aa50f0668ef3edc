"""The store tier: every test here runs against each implementation of the store interface
(coord.events.store). A second implementation joins by adding one entry to IMPLEMENTATIONS:
a function that, given the test's request and a fresh directory, returns a `make()` that
opens a new connection to one fresh, empty log (each call another connection to the same
log, for tests with several writers or a waiting reader)."""

import pytest

from coord.events.home import init_home_dirs


def sqlite(request, path):
    home = init_home_dirs(path / ".coord")

    def make(projectors=(), after_commit=()):
        return home.open_store(projectors, after_commit)

    make.home = home
    return make


def postgresql(request, path):
    """The session's log on its server (tests/pgserver.py), emptied for this test."""
    url = request.getfixturevalue("pg_log_url")
    home = init_home_dirs(path / ".coord")
    home.write_config({"store": url})

    def make(projectors=(), after_commit=()):
        return home.open_store(projectors, after_commit)

    make.home = home
    return make


IMPLEMENTATIONS = {"sqlite": sqlite, "postgresql": postgresql}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def open_store(request, tmp_path):
    """open_store(projectors=(), after_commit=()) -> a new open Store on this test's log;
    open_store.home is its home. Every store it opened is closed at the end."""
    make = IMPLEMENTATIONS[request.param](request, tmp_path)
    opened = []

    def open_(projectors=(), after_commit=()):
        s = make(projectors, after_commit)
        opened.append(s)
        return s

    open_.home = make.home  # the home the log belongs to (for real processes: COORD_HOME)
    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store):
    """One open store on a fresh, empty log, with no projectors."""
    return open_store()
