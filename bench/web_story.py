"""A small team's afternoon as a home, for the web board's screenshots and its benchmark:
thirteen workers over three hours (merged, in review, approved, working with an OK, a WARN
and a STALE holder, conflicted, assigned, failed, canceled), heartbeats with notes, and
messages between the lead, a reviewer and six agents. Written as an audit file with past
timestamps and imported by a real `coord import`, so ages and the timeline look like a
real afternoon.

    .venv/bin/python bench/web_story.py DIR     # DIR/.coord, ready for `coord serve`
"""

import subprocess
import sys
from pathlib import Path

HOUR = 3600_000_000
MIN = 60_000_000

WORKERS = [
    # id, task, assignee
    ("parser-fix", "Fix the tokenizer's off-by-one on multi-byte input", None),
    ("retry-backoff", "Retries with exponential backoff in the HTTP client", None),
    ("api-pagination", "Cursor pagination for /v2/invoices", None),
    ("auth-refresh", "Refresh OAuth tokens before they expire, not after", None),
    ("flaky-test", "Stabilise test_settlement_timeout", None),
    ("db-migration", "Backfill ledger_entries.currency for 2019-2022 rows", None),
    ("docs-config", "Document every setting in config.toml", None),
    ("metrics-export", "Export p99 latency per endpoint to Prometheus", "agent-5"),
    ("cache-layer", "Read-through cache for exchange rates", None),
    ("currency-rounding", "Banker's rounding for JPY and KRW totals", None),
    ("legacy-cleanup", "Remove the v1 invoice endpoints", None),
    ("webhook-signing", "Sign outgoing webhooks (HMAC-SHA256, timestamped)", None),
    ("rate-limits", "Per-tenant rate limits on the public API", None),
]


def story(now_us: int, clone: str) -> list[tuple[int, str, str, str, dict]]:
    """(ts µs, from, to, type, payload) in time order."""
    t0 = now_us - 3 * HOUR
    ev = []

    def at(minutes, frm, to, typ, payload=None):
        ev.append((t0 + int(minutes * MIN), frm, to, typ, payload or {}))

    for i, (w, task, assignee) in enumerate(WORKERS):
        at(
            i * 0.5,
            "lead",
            w,
            "worker.spawned",
            {"task": task, **({"assignee": assignee} if assignee else {})},
        )
    start = {"clone": clone}
    # merged in the first hour and a half
    at(5, "agent-1", "parser-fix", "worker.started", start)
    at(20, "agent-1", "parser-fix", "worker.heartbeat", {"note": "wrote a failing test", "interval": 60})
    at(
        41,
        "agent-1",
        "parser-fix",
        "worker.done",
        {"summary": "fixed, with a regression test for UTF-8 input"},
    )
    at(52, "reviewer", "parser-fix", "worker.approved", {"note": "clean"})
    at(55, "reviewer", "parser-fix", "worker.merged", {"commit": "4be1c2a9" * 5, "into": "main"})
    at(6, "agent-2", "retry-backoff", "worker.started", start)
    at(
        48,
        "agent-2",
        "retry-backoff",
        "worker.done",
        {"summary": "retries with jittered backoff, capped at 30 s"},
    )
    at(61, "reviewer", "retry-backoff", "worker.approved", {})
    at(63, "reviewer", "retry-backoff", "worker.merged", {"commit": "9f03d7e1" * 5, "into": "main"})
    # in review, approved
    at(58, "agent-1", "api-pagination", "worker.started", start)
    at(
        131,
        "agent-1",
        "api-pagination",
        "worker.done",
        {"summary": "opaque cursors; page size capped at 200"},
    )
    at(64, "agent-2", "docs-config", "worker.started", start)
    at(102, "agent-2", "docs-config", "worker.done", {"summary": "every setting documented, with defaults"})
    at(140, "reviewer", "docs-config", "worker.approved", {"note": "thanks, very readable"})
    # working, OK
    at(104, "agent-2", "auth-refresh", "worker.started", start)
    at(
        178,
        "agent-2",
        "auth-refresh",
        "worker.heartbeat",
        {"note": "running integration tests (34/52)", "interval": 60},
    )
    # working, WARN (quiet for 4 minutes at a 60 s interval)
    at(12, "agent-4", "flaky-test", "worker.started", start)
    at(
        150,
        "agent-4",
        "flaky-test",
        "worker.heartbeat",
        {"note": "reproduced once in 40 runs", "interval": 60},
    )
    at(
        176,
        "agent-4",
        "flaky-test",
        "worker.heartbeat",
        {"note": "bisecting the retry change", "interval": 60},
    )
    # working, STALE: picked up again after a release, then silent for 16 minutes
    at(8, "agent-3", "db-migration", "worker.started", start)
    at(30, "agent-3", "db-migration", "worker.released", {"reason": "needs a replica with prod-sized data"})
    at(
        33,
        "lead",
        "agent-6",
        "msg.assignment",
        {"text": "db-migration needs someone with the big replica: yours"},
    )
    at(35, "agent-6", "db-migration", "worker.started", start)
    at(90, "lead", "db-migration", "msg.question", {"text": "how far along is the backfill?"})
    at(96, "agent-6", "lead", "msg.answer", {"text": "about 60%: 2019-2021 done, 2022 running"})
    at(
        164,
        "agent-6",
        "db-migration",
        "worker.heartbeat",
        {"note": "backfilling 2022 (batch 311 of 480)", "interval": 60},
    )
    # conflicted, holder alive
    at(70, "agent-5", "rate-limits", "worker.started", start)
    at(
        160,
        "agent-5",
        "rate-limits",
        "worker.conflicted",
        {"files": ["api/limits.py", "api/middleware.py"], "stage": "rebase", "onto": "main"},
    )
    at(
        179,
        "agent-5",
        "rate-limits",
        "worker.heartbeat",
        {"note": "resolving middleware.py against the new auth hook", "interval": 60},
    )
    # changes requested, back to work
    at(66, "agent-6", "webhook-signing", "worker.started", start)
    at(125, "agent-6", "webhook-signing", "worker.done", {"summary": "HMAC-SHA256 over the raw body"})
    at(
        133,
        "reviewer",
        "webhook-signing",
        "worker.changes_requested",
        {"reason": "sign the timestamp too, or replays pass"},
    )
    at(
        134,
        "reviewer",
        "agent-6",
        "msg.review",
        {"text": "see RFC 8941 for the header shape; a 5 minute tolerance is plenty"},
    )
    at(
        179.5,
        "agent-6",
        "webhook-signing",
        "worker.heartbeat",
        {"note": "adding the timestamp tolerance", "interval": 60},
    )
    # failed, canceled
    at(20, "agent-3", "currency-rounding", "worker.started", start)
    at(
        88,
        "agent-3",
        "currency-rounding",
        "worker.failed",
        {"reason": "cannot reproduce the rounding error on CI"},
    )
    at(22, "lead", "legacy-cleanup", "worker.canceled", {"reason": "superseded by api-pagination"})
    # messages to everyone and between agents
    at(45, "lead", "*", "msg.note", {"text": "main is frozen 17:00-17:30 for the release"})
    at(118, "agent-1", "agent-2", "msg.question", {"text": "does the new client retry 429s?"})
    at(119, "agent-2", "agent-1", "msg.answer", {"text": "yes, honouring Retry-After"})
    at(170, "reviewer", "*", "msg.note", {"text": "review queue is empty; hand things in"})
    ev.sort(key=lambda e: e[0])
    return ev


def build(dest: Path) -> Path:
    """DIR/.coord with the story imported; returns the home."""
    from coord.app.admin import init
    from coord.app.context import Coord
    from coord.events.codec import audit_line
    from coord.events.envelope import Envelope, canonical, event_id, now_us, us_to_ts

    home = dest / ".coord"
    init(home)
    with Coord(home) as c:
        clone = c.clone_id
    lines = []
    for us, frm, to, typ, payload in story(now_us() - 30_000_000, clone):
        body = canonical(Envelope(us_to_ts(us), frm, to, typ, payload))
        lines.append(audit_line(event_id(body), body))
    f = dest / "story.jsonl"
    f.write_bytes(b"".join(lines))
    subprocess.run(
        [sys.executable, "-m", "coord", "--home", str(home), "import", str(f)],
        check=True,
        capture_output=True,
    )
    return home


if __name__ == "__main__":
    print(build(Path(sys.argv[1]).resolve()))
