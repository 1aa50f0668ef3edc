"""`coord prime`: what an agent needs at the start of a session or after its context was
compacted, as data (the CLI renders it in a few hundred words): who it is, what it holds
(task, branch, worktree, attempt, liveness, what is expected next), what waits in its
inbox (messages and notices, peeked: nothing is acknowledged), and the general part: the
commands it will need with their exit codes, or the home's `.coord/PRIME.md` instead.

A **lead** (an actor that spawned a non-terminal worker and holds none, or `--role lead`)
sees the ready queue and who is stale instead of its own work; a **reviewer** (`--role
reviewer`) sees what waits for its review. One short read of the store.
"""

import os

from ..events.envelope import now_us
from ..events.errors import CoordError
from ..events.files import open_in_home
from ..events.records import EventQuery, type_filter
from ..projections import board, liveness
from ..projections.explain import expected_next
from ..projections.notices import attempt_number
from ..projections.workers import IN_REVIEW, NON_TERMINAL
from .messages import pending_in
from .queries import worker_dict

ROLES = ("agent", "lead", "reviewer")
HELD_STATES = ("WORKING", "CONFLICTED", "IN_REVIEW", "APPROVED")
SHOWN = 10  # inbox items, ready and review workers listed (the counts are complete)
SPAWNS_LOOKED_AT = 200  # an actor's latest spawns, to tell whether it leads live work
PRIME_MD_MAX = 64 * 1024
INBOX_COUNTED = 1000  # an inbox is counted up to this many (then "1000 or more")

GENERAL = {
    "agent": [
        ("coord start --next", "claim the first ready worker (or: coord start ID); exit 4: nothing to claim"),
        ("cd WORKTREE", "work in the worker's worktree (`coord show ID --json` names it)"),
        (
            "coord heartbeat [ID] --note TEXT",
            "every interval while you work (or `coord run ID -- CMD` beats for you)",
        ),
        ("coord poll --wait 30", "messages and notices (changes requested, conflicted, requeued, canceled)"),
        (
            "coord done [ID] --summary TEXT",
            "hand it in (rebases; a conflict is exit 4: resolve, then done again)",
        ),
        ("coord release [ID] | coord fail [ID] --reason TEXT", "give it back, or give up"),
        ("coord send TYPE --text TEXT --to AGENT|WORKER", "tell someone (a worker id reaches its holder)"),
        (
            "coord status | coord show ID | coord search WORDS",
            "the board, one worker's history, full-text search",
        ),
    ],
    "lead": [
        ("coord spawn ID --task TEXT [--assignee A]", "a new unit of work (a branch and worktree in git)"),
        ("coord status [--stale] | coord show ID", "the board; who went quiet; one worker's history"),
        ("coord approve ID | coord request-changes ID --reason TEXT", "review (never your own work)"),
        ("coord merge ID", "merge an approved worker (exit 4 on a conflict: it goes back as CONFLICTED)"),
        ("coord reap --requeue", "give the work of silent holders back to the queue"),
        ("coord cancel ID --reason TEXT | coord retry ID", "stop work, or try a failed worker again"),
        ("coord send TYPE --text TEXT --to AGENT|WORKER|'*'", "tell someone; `coord poll` reads your inbox"),
    ],
}
GENERAL["reviewer"] = GENERAL["lead"][1:3] + GENERAL["agent"][3:4] + GENERAL["agent"][-1:]
EXIT_CODES = {
    0: "done (an idempotent repeat too)",
    2: "usage: bad flags or arguments",
    3: "not found: no home, unknown worker or event",
    4: "refused: not yours, illegal now, a conflict, nothing to claim",
    5: "integrity: a hash, the audit file or a blob does not check out",
    6: "timed out (poll --wait)",
    7: "busy: the store stayed locked; safe to retry",
}


def ready_workers(reader, limit: int) -> list:
    """The ready queue, first to start first: ready workers (everything they wait for is
    COMPLETED), highest priority first, then oldest (the work graph's index)."""
    return [board.decode_view(r.view) for r in reader.ready_views(None, limit)]


def leads_live_work(reader, actor: str) -> bool:
    """Whether actor spawned a worker that is not terminal yet (among its latest spawns)."""
    q = EventQuery(types=type_filter(["worker.spawned"]), from_=actor, last=True, limit=SPAWNS_LOOKED_AT)
    for row in reader.events(q):
        v = board.load(reader, row.to)
        if v is not None and v.state in NON_TERMINAL:
            return True
    return False


def _held(c, v, now: int) -> dict:
    d = worker_dict(c, v, now)
    expected = expected_next(v, d["liveness"], now)
    if d["liveness"] in (liveness.WARN, liveness.STALE, liveness.DEAD):
        # Said to the holder itself: not "requeue it", but "beat now".
        expected = {
            "actions": ["heartbeat", "then go on"],
            "by": v.holder,
            "waiting_on": v.holder,
            "why": f"you have not beaten for a while ({d['liveness']}): beat now, or the work may be requeued",
        }
    return {
        "worker": v.worker,
        "state": v.state,
        "task": v.task,
        "branch": v.branch,
        "worktree": v.worktree,
        "attempt": attempt_number(v),
        "liveness": d["liveness"],
        "heartbeat_interval": d["heartbeat"]["interval"],
        "reason": v.reason,
        "expected": expected,
    }


def _brief(c, v, now: int) -> dict:
    d = worker_dict(c, v, now)
    return {k: d[k] for k in ("worker", "state", "holder", "assignee", "task", "liveness", "updated")}


def _inbox_item(row, notice) -> dict:
    item = {"id": row.id, "seq": row.seq, "ts": row.ts, "from": row.from_, "to": row.to, "type": row.type}
    if notice is not None:
        item["notice"] = {"worker": notice.worker, "attempt": notice.attempt, "reason": notice.reason}
    return item


def prime_md(home) -> tuple[str | None, str | None]:
    """(the text of .coord/PRIME.md, None) when it is there and usable; (None, why not)
    when it is there but cannot be used (not a regular file, too big, not UTF-8); (None,
    None) when there is none. It comes from a clone like any committed file: input."""
    path = home.path / "PRIME.md"
    try:
        fd = open_in_home(path, os.O_RDONLY)
    except FileNotFoundError:
        return None, None
    except CoordError as e:  # a link, not a regular file, not readable
        return None, e.message
    except OSError as e:
        return None, f"{path}: {e.strerror or e}"
    with os.fdopen(fd, "rb") as f:
        data = f.read(PRIME_MD_MAX + 1)
    if len(data) > PRIME_MD_MAX:
        return None, f"{path} is larger than {PRIME_MD_MAX // 1024} KiB"
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError:
        return None, f"{path} is not UTF-8"


def prime(c, actor: str, role: str | None = None, explicit: bool = True, now: int | None = None) -> dict:
    """Everything `coord prime` shows, as data. `explicit`: whether the identity was given
    (--as, COORD_AGENT) rather than the human:$USER fallback."""
    now = now if now is not None else now_us()
    with c.store.read() as r:
        held = [board.decode_view(row.view) for row in r.views(states=HELD_STATES, holder=actor)]
        if role is None:
            role = "lead" if not held and leads_live_work(r, actor) else "agent"
        inbox = pending_in(r, actor, (), INBOX_COUNTED + 1)
        out = {
            "agent": actor,
            "explicit_identity": explicit,
            "role": role,
            "home": str(c.home.path),
            "holds": [_held(c, v, now) for v in held],
            "inbox": {
                "unread": min(len(inbox), INBOX_COUNTED),
                "notices": len(inbox.notices),
                "more": len(inbox) > INBOX_COUNTED,
                "items": [_inbox_item(row, inbox.notices.get(row.seq)) for row in inbox[:SHOWN]],
            },
        }
        if role == "lead":
            ready = ready_workers(r, SHOWN)
            active = [board.decode_view(row.view) for row in r.views(states=["WORKING", "CONFLICTED"])]
            out["ready"] = [_brief(c, v, now) for v in ready]
            stale = [
                b for b in (_brief(c, v, now) for v in active) if liveness.ORDER.get(b["liveness"], -1) >= 1
            ]
            out["stale"], out["stale_count"] = stale[:SHOWN], len(stale)
        if role in ("lead", "reviewer"):
            views = [board.decode_view(row.view) for row in r.views(states=[IN_REVIEW])]
            out["review"] = [_brief(c, v, now) for v in views if actor not in (v.holder, v.last_from)][:SHOWN]
    text, problem = prime_md(c.home)
    if text is not None:
        out["general"] = {"source": str(c.home.path / "PRIME.md"), "text": text}
    else:
        out["general"] = {
            "source": "builtin",
            "commands": [{"command": cmd, "what": what} for cmd, what in GENERAL[role]],
            "exit_codes": {str(k): v for k, v in EXIT_CODES.items()},
        }
        if problem:
            out["general"]["problem"] = problem
    return out
