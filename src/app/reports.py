"""The reads that walk the whole history (replay's steps, in (ts, id) order): the
timeline's lanes and the stats' figures, each windowed by points in history (--since,
--until: a time, an age, an event id or N). From the store or an audit file (a History,
coord.events.history: app.queries.open_history picks one); the CLI and the web board
render what they return."""

from ..projections import stats as figures
from ..projections import timeline as lanes_of
from ..projections.replay import steps
from .resolve import worker_in_history


def timeline(history, since=None, until=None, workers=()) -> tuple[dict, int]:
    """(the lanes (projections.timeline.compute) from the first event up to `until`, cut
    to begin at `since` and to the `workers` named (ids or unique prefixes); how many
    events were walked). A name that matches no worker, or an unknown point, is an error
    before any walk."""
    wanted = {worker_in_history(history, w) for w in workers}
    hi = history.point(until, end=True) if until else None
    lo = history.point(since, end=False) if since else None
    count = 0

    def walk():
        nonlocal count
        for s in steps(history.events(until=hi)):
            count += 1
            yield s

    data = lanes_of.compute(walk())
    if hi is not None and hi[0]:
        data["end"] = hi[0]
    if lo is not None and lo[0] and data["start"] and lo[0] > data["start"]:
        data["start"] = lo[0]
        data["lanes"] = [
            lane for lane in (lanes_of.clip(x, lo[0]) for x in data["lanes"]) if lane["segments"]
        ]
        data["messages"] = [m for m in data["messages"] if m["ts"] >= lo[0]]
    if wanted:
        data["lanes"] = [lane for lane in data["lanes"] if lane["worker"] in wanted]
    return data, count


def stats(history, since=None) -> dict:
    """The figures (projections.stats.compute) of the events from `since` on (all when
    None)."""
    lo = history.point(since, end=False) if since else None
    walk = steps(history.events(lifecycle_only=False))
    if lo is not None:
        walk = (s for s in walk if (s.env.ts, s.id) >= lo)
    return figures.compute(walk)
