"""The audit export after a heartbeat: skipped when the heartbeat is not for the file and
nothing is dirty (the most frequent action stays cheap), but never when an earlier
command left events dirty."""

from coord.events.codec import check_line
from helpers import count_events


def ids_in_file(home):
    return [check_line(x)[0] for x in (home / "events.jsonl").read_bytes().split(b"\n")[:-1]]


def test_a_heartbeat_writes_events_left_dirty_by_a_crash(home, cli, proc):
    assert cli("spawn", "w-1").exit_code == 0
    assert cli("--as", "a1", "start", "w-1").exit_code == 0
    before = count_events(home)
    r = proc("spawn", "w-crash", env={"COORD_FAILPOINTS": "after-commit"})
    assert r.returncode == -9
    assert count_events(home) == before + 1
    r = cli("--as", "a1", "show", "w-crash", "--json")
    crashed = r.json()["last_event"]
    assert crashed not in ids_in_file(home)
    assert cli("--as", "a1", "heartbeat", "w-1").exit_code == 0  # appends nothing for the file
    assert ids_in_file(home).count(crashed) == 1
    assert cli("verify").exit_code == 0


def test_a_heartbeat_with_nothing_dirty_leaves_the_file_alone(home, cli):
    assert cli("spawn", "w-1").exit_code == 0
    assert cli("--as", "a1", "start", "w-1").exit_code == 0
    path = home / "events.jsonl"
    lines = path.read_bytes().split(b"\n")[:-1]
    gone = check_line(lines[0])[0]
    path.write_bytes(lines[1] + b"\n")  # a line lost behind coord's back
    r = cli("--as", "a1", "heartbeat", "w-1")
    assert r.exit_code == 0 and "appended again" not in r.stderr
    assert gone not in ids_in_file(home)  # no check, no write: nothing was due
    r = cli("spawn", "w-2")  # the next command with something to write checks and restores
    assert r.exit_code == 0 and gone in r.stderr
    assert gone in ids_in_file(home)
    assert cli("verify").exit_code == 0
