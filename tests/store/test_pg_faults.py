"""Faults of the PostgreSQL store against a real server: a restart between two writes of a
long-lived process is invisible; a connection that broke during COMMIT is learned (never
appended twice), or reported as "outcome unknown" naming the event; nothing is
half-recorded."""

import psycopg
import pytest

from coord.events.envelope import Envelope
from coord.events.errors import Busy
from coord.events.pg_schema import SCHEMA_VERSION


@pytest.fixture
def pg(tmp_path, pg_log_url):
    from coord.events.home import init_home_dirs

    home = init_home_dirs(tmp_path / ".coord")
    home.write_config({"store": pg_log_url, "busy_timeout": 5})
    stores = []

    def open_():
        s = home.open_store()
        stores.append(s)
        return s

    yield open_
    for s in stores:
        s.close()


def add(store, n=1, to="b"):
    return store.transact(
        lambda tx: [tx.append(Envelope(tx.next_ts(), "a", to, "msg.x", {"i": i})) for i in range(n)]
    )


def seqs(store):
    return [r[0] for r in store.run("SELECT seq FROM coord.events ORDER BY seq", fetch=True)]


def test_a_server_restart_between_writes_is_invisible(pg, pg_server):
    s = pg()
    add(s)
    pg_server.restart()
    add(s)  # the old connection is gone: the attempt reconnects and runs again
    assert seqs(s) == [1, 2]


def _break_during_commit(store, monkeypatch, after_commit: bool):
    """The connection breaks while COMMIT is in flight: after the server committed (the
    answer is lost) or before it got the COMMIT."""
    real = store.pipeline
    broken = []

    def pipeline(writes, commit=False, read=None):
        if not commit or broken:  # it breaks once
            return real(writes, commit, read)
        broken.append(1)
        if after_commit:
            real(writes, commit=True)
        else:
            real(writes[:1])  # part of the writes went, COMMIT never did
        store.conn.pgconn.finish()  # the socket is gone, as after a network fault
        raise psycopg.OperationalError("the connection broke")

    monkeypatch.setattr(store, "pipeline", pipeline)


@pytest.mark.parametrize("after_commit", [True, False])
def test_a_connection_broken_during_commit_is_learned_and_never_appended_twice(pg, monkeypatch, after_commit):
    s = pg()
    add(s)
    _break_during_commit(s, monkeypatch, after_commit)
    [ev] = add(s)
    monkeypatch.undo()
    assert seqs(pg()) == [1, 2] and ev.seq == 2  # exactly once, either way


def test_outcome_unknown_names_the_event_when_the_server_stays_away(pg, pg_server, monkeypatch):
    s = pg()
    add(s)
    real = s.pipeline

    def pipeline(writes, commit=False, read=None):
        if commit:
            pg_server.stop()
        return real(writes, commit, read)

    monkeypatch.setattr(s, "pipeline", pipeline)
    s.home.write_config({"busy_timeout": 1})
    s.home._config = None
    with pytest.raises(Busy) as e:
        add(s)
    assert "outcome unknown" in e.value.message and "b3:" in e.value.message and e.value.exit_code == 7
    pg_server.start()
    assert seqs(pg()) == [1]  # the server stopped before COMMIT: nothing half-recorded


def test_the_log_is_created_once_however_many_machines_install_at_once(pg_url):
    """Four `coord init --store` at the same moment (own connections): one creates it."""
    import threading

    from coord.events.pg_schema import install

    made, barrier = [], threading.Barrier(4)

    def one():
        barrier.wait()
        made.append(install(pg_url, 30.0, 300.0))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(made) == [False, False, False, True]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT value FROM coord.meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_heartbeats_only_commit_without_waiting_for_the_server_disk(pg, monkeypatch):
    """heartbeat_synchronous NORMAL (the default): a commit of heartbeats only goes with
    `synchronous_commit = off`; anything else, or with the setting FULL, does not."""
    from coord.events.records import AUDIT_NONE, HEARTBEAT

    store = pg()
    sent = []
    real = type(store).pipeline

    def pipeline(self, writes, commit=False, read=None):
        sent.append([w[0] for w in writes])
        return real(self, writes, commit, read)

    monkeypatch.setattr(type(store), "pipeline", pipeline)

    def beat(tx):
        tx.append(Envelope(tx.next_ts(), "a", "w-1", HEARTBEAT, {}), audit=AUDIT_NONE)

    def light(beats: bool, fn) -> bool:
        sent.clear()
        store.transact(fn, beats=beats)
        return any("synchronous_commit = off" in sql for batch in sent for sql in batch)

    assert light(True, beat)
    assert not light(False, beat)
    assert not light(True, lambda tx: add_in(tx))
    store.home.write_config({"heartbeat_synchronous": "FULL"})
    assert not light(True, beat)


def add_in(tx):
    tx.append(Envelope(tx.next_ts(), "a", "b", "msg.x", {}))
