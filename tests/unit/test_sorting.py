"""Events sorted in bounded memory (coord.events.sorting): the merged runs give every id
once, in (ts, id) order, whatever the order and repetitions of the input, as often as
they are walked; the scratch runs are removed on close."""

import os

from hypothesis import given
from hypothesis import strategies as st

from coord.events.sorting import SortedEvents

ITEMS = st.lists(st.integers(0, 30), max_size=60)


def triple(n: int):
    """The same id always has the same ts and bytes (it is their hash); a few ids share a
    ts, and a body may hold a tab (the runs' separator)."""
    return (f"2026-01-01T00:00:{n * 7 % 20:02d}.000000Z", f"b3:{n:064x}", b'{"n":%d,"t":"a\tb"}' % n)


@given(ITEMS, st.integers(1, 7))
def test_every_id_once_in_ts_id_order_across_runs(ns, chunk):
    items = [triple(n) for n in ns]
    with SortedEvents(chunk=chunk) as s:
        for t in items:
            s.add(*t)
        want = sorted(set(items))
        assert list(s.items()) == want
        assert list(s.items()) == want  # walked again: the same


def test_runs_are_scratch_files_removed_on_close():
    s = SortedEvents(chunk=2)
    for n in range(7):
        s.add(*triple(n))
    assert len(list(s.items())) == 7
    names = [r.name for r in s.runs]
    assert len(names) == 4 and all(os.path.exists(n) for n in names)
    assert all(os.stat(n).st_mode & 0o077 == 0 for n in names)  # private to this user
    s.close()
    assert not any(os.path.exists(n) for n in names)
