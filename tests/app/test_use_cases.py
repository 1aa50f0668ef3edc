"""The use cases called as a library (coord.app), as benchmarks and tests call them: every
use case that appends checks its actor in one place (exit 2, nothing appended)."""

import pytest

from coord.app import lifecycle, messages, reaping
from coord.app.context import Coord
from coord.events.errors import UsageError
from helpers import count_events


@pytest.mark.parametrize(
    "call",
    [
        lambda c: lifecycle.act(c, "spawn", "w-9"),
        lambda c: lifecycle.start_next(c),
        lambda c: lifecycle.append_raw(c, "bob", "msg.note", {}),
        lambda c: messages.send(c, "bob", "note", {"text": "hi"}),
        lambda c: messages.ack_upto(c, None, 1),
        lambda c: reaping.reap(c),
    ],
    ids=["act", "start_next", "append_raw", "send", "ack_upto", "reap"],
)
def test_no_actor_is_a_usage_error_and_appends_nothing(home, cli, call):
    assert cli("spawn", "w-1").exit_code == 0
    before = count_events(home)
    with Coord(home) as c:  # no actor given, none set on the home
        with pytest.raises(UsageError, match="no actor"):
            call(c)
    assert count_events(home) == before


def test_the_homes_actor_is_the_default(home):
    with Coord(home, actor="ann") as c:
        assert lifecycle.act(c, "spawn", "w-1").event
        assert lifecycle.start_next(c).worker == "w-1"
        assert messages.send(c, "bob", "note", {"text": "hi"}).event
    with Coord(home) as c:
        assert lifecycle.worker(c, "w-1").holder == "ann"
        assert [r.from_ for r in messages.pending(c, "bob")] == ["ann"]
