"""A store shaped like real use, for the rebuild benchmark (issue 19): mostly lifecycle
events and messages, few heartbeats. Each worker is spawned (a fifth of them waiting for
an earlier worker, some prioritized or given a dependency later), started, exchanges
messages (to agents, to '*', to the worker), hands in, is sent back for changes or hits
a conflict now and then, and ends merged (~55%), in review (~15%), canceled (~10%),
failed and retried (~5%) or still working (~15%); every few messages an agent
acknowledges what it read (`inbox.acked`). Workers overlap in time (about AGENTS at
once), so their events interleave as they do in a real log.

    generate(path, workers, events) -> lines written (an audit file with valid ids)
"""

import heapq
import random
from pathlib import Path

from messages_bench import WORDS  # the same vocabulary as the messages bench

AGENTS = 50
START_US = 1_700_000_000_000_000


def _text(rnd: random.Random, lo: int = 5, hi: int = 30) -> str:
    return " ".join(rnd.choices(WORDS, k=rnd.randint(lo, hi)))


def _script(w: int, per: int, rnd: random.Random) -> list[tuple]:
    """(from, to, type, payload) of worker w, in order: about `per` events (messages and
    a heartbeat now and then fill the middle of the work)."""
    wid, agent = f"w-{w}", f"agent-{w % AGENTS}"
    spawn = {"task": f"task {w}: " + _text(rnd, 4, 12)}
    if w > 0 and w % 5 == 1:
        spawn["after"] = [f"w-{w - 1}"]
    if w % 7 == 3:
        spawn["priority"] = 1
    head = [("human:lead", wid, "worker.spawned", spawn)]
    if w > 1 and w % 9 == 2:
        head.append(("human:lead", wid, "worker.dep_added", {"after": f"w-{w - 2}"}))
    if w % 11 == 4:
        head.append(("human:lead", wid, "worker.prioritized", {"priority": 0}))
    head.append((agent, wid, "worker.started", {"clone": "c1"}))

    def work(n):
        out = []
        for _ in range(n):
            r = rnd.random()
            if r < 0.15:
                out.append((agent, wid, "worker.heartbeat", {"interval": 60}))
            else:
                to = rnd.choice(("reviewer", f"agent-{rnd.randrange(AGENTS)}", wid, "*", "human:lead"))
                out.append((agent, to, "msg.note", {"text": _text(rnd)}))
        return out

    fate = w % 20
    done = (agent, wid, "worker.done", {"summary": _text(rnd, 3, 10)})
    review = []
    if fate % 3 == 0:
        review += [("reviewer", wid, "worker.changes_requested", {"reason": _text(rnd, 3, 8)})]
        review += [done]
    if fate % 4 == 1:
        review += [("reviewer", wid, "worker.approved", {})]
        review += [("reviewer", wid, "worker.conflicted", {"stage": "merge", "files": ["src/a.py"]})]
        review += [(agent, wid, "worker.done", {"summary": "rebased", "rebased": True})]
    if fate < 11:  # merged
        tail = [
            done,
            *review,
            ("reviewer", wid, "worker.approved", {}),
            ("reviewer", wid, "worker.merged", {"commit": "0" * 40}),
        ]
    elif fate < 14:  # in review
        tail = [done, *review]
    elif fate < 16:
        tail = [("human:lead", wid, "worker.canceled", {"reason": "obsolete"})]
    elif fate < 17:
        tail = [
            (agent, wid, "worker.failed", {"reason": "cannot reproduce"}),
            ("human:lead", wid, "worker.retried", {}),
        ]
    else:  # still working
        tail = []
    if w % 13 == 5 and tail:
        tail.insert(0, ("human:lead", wid, "worker.released", {"force": True, "reason": "reassigned"}))
        tail.insert(1, (agent, wid, "worker.started", {"clone": "c2"}))
    middle = work(max(1, per - len(head) - len(tail)))
    cut = len(middle) // 2
    return head + middle[:cut] + middle[cut:] + tail


def generate(path: Path, workers: int, events: int, seed: int = 19) -> int:
    """Write an audit file of about `events` events over `workers` workers (interleaved:
    worker w begins a little after w - 1 and lasts about AGENTS workers' time); returns
    the number of lines."""
    from coord.events.codec import audit_line
    from coord.events.envelope import Envelope, canonical, event_id, us_to_ts

    rnd = random.Random(seed)
    per = max(8, events // workers)
    scripts = [_script(w, per, rnd) for w in range(workers)]
    # Start and pace of each worker: w starts at w, spans ~AGENTS starts.
    heap = []
    for w, s in enumerate(scripts):
        step = AGENTS / max(1, len(s))
        heap.append((float(w), w, 0, step))
    heapq.heapify(heap)
    us, n, read = START_US, 0, {}
    with open(path, "wb") as f:
        buf = []
        while heap:
            at, w, i, step = heapq.heappop(heap)
            frm, to, etype, payload = scripts[w][i]
            us += 1
            body = canonical(Envelope(us_to_ts(us), frm, to, etype, payload))
            eid = event_id(body)
            buf.append(audit_line(eid, body))
            n += 1
            if etype.startswith("msg.") and to.startswith("agent-"):
                got = read.setdefault(to, [])
                got.append(eid)
                if len(got) >= 4:  # the agent polls and acknowledges what it read
                    us += 1
                    ack = canonical(Envelope(us_to_ts(us), to, to, "inbox.acked", {"ids": got}))
                    buf.append(audit_line(event_id(ack), ack))
                    n += 1
                    read[to] = []
            if i + 1 < len(scripts[w]):
                heapq.heappush(heap, (at + step, w, i + 1, step))
            if len(buf) >= 20000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))
    return n
