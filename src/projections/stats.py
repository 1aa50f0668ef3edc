"""Figures folded from replay steps: time spent per state (median, p90), what each agent
finished, failed and reviewed, and throughput per hour. Pure: steps in, a dict out."""

import math

from ..events.envelope import ts_to_us
from .workers import STATES, TERMINAL


def percentile(sorted_values, q: float):
    """Nearest-rank percentile (q in 0..100) of already sorted values; None when empty."""
    if not sorted_values:
        return None
    k = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[k - 1]


def median(sorted_values):
    n = len(sorted_values)
    if n == 0:
        return None
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _agent(agents, name):
    return agents.setdefault(
        name,
        {
            "started": 0,
            "done": 0,
            "completed": 0,
            "failed": 0,
            "approved": 0,
            "changes_requested": 0,
            "reviewed": 0,
        },
    )


def compute(steps) -> dict:
    """Spells are closed by a transition; the time in a current (open) state is not
    counted in the figures but the number of open spells is reported."""
    spells: dict[str, list[float]] = {s: [] for s in STATES}
    agents: dict[str, dict] = {}
    hours: dict[str, dict] = {}
    first = last = None
    events = 0
    for s in steps:
        events += 1
        ts = s.env.ts
        first = ts if first is None else first
        last = ts
        if s.worker is None or s.conflict is not None or s.env.type == "worker.heartbeat":
            continue
        t = s.env.type
        actor = s.env.from_
        if s.before is not None:
            spells[s.before.state].append((ts_to_us(ts) - ts_to_us(s.before.state_since)) / 1e6)
        holder = s.before.holder if s.before is not None else None
        if t == "worker.started":
            _agent(agents, actor)["started"] += 1
        elif t == "worker.done":
            _agent(agents, actor)["done"] += 1
        elif t == "worker.merged":
            _agent(agents, holder or actor)["completed"] += 1
        elif t == "worker.failed":
            _agent(agents, holder or actor)["failed"] += 1
        elif t in ("worker.approved", "worker.changes_requested"):
            a = _agent(agents, actor)
            a["approved" if t == "worker.approved" else "changes_requested"] += 1
            a["reviewed"] += 1
        if t in ("worker.done", "worker.merged"):
            h = hours.setdefault(ts[:13] + ":00Z", {"done": 0, "completed": 0})
            h["done" if t == "worker.done" else "completed"] += 1
    per_state = {}
    for st, vals in spells.items():
        if st in TERMINAL:
            continue
        vals.sort()
        per_state[st] = {
            "spells": len(vals),
            "median_s": median(vals),
            "p90_s": percentile(vals, 90),
            "max_s": vals[-1] if vals else None,
        }
    span_h = (ts_to_us(last) - ts_to_us(first)) / 3.6e9 if first else 0
    completed = sum(h["completed"] for h in hours.values())
    done = sum(h["done"] for h in hours.values())
    return {
        "events": events,
        "first": first,
        "last": last,
        "span_hours": round(span_h, 3),
        "states": per_state,
        "agents": dict(sorted(agents.items())),
        "throughput": {
            "completed": completed,
            "done": done,
            "completed_per_hour": round(completed / span_h, 3) if span_h > 0 else None,
            "done_per_hour": round(done / span_h, 3) if span_h > 0 else None,
            "hours": [{"hour": k, **v} for k, v in sorted(hours.items())],
        },
    }
