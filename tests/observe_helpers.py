"""Helpers for the observability tests: the committed fixture history, loaded into a store
through the real write path, and audit files written from a store."""

import sqlite3
from pathlib import Path

from coord.events.codec import audit_line, check_line
from coord.events.envelope import decode

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "history.jsonl"


def fixture_events(path=FIXTURE):
    """[(id, Envelope)] in (ts, id) order, read independently of coord's readers."""
    out = []
    for line in Path(path).read_bytes().split(b"\n"):
        if line:
            eid, body = check_line(line)
            out.append((eid, decode(body)))
    return sorted(out, key=lambda p: (p[1].ts, p[0]))


def load_into_store(home_path, path=FIXTURE):
    """Append every line of an audit file through Tx.append (as an import would)."""
    from coord.app.context import Coord

    with Coord(home_path) as c:
        bodies = [check_line(line)[1] for line in Path(path).read_bytes().split(b"\n") if line]

        def append_all(tx):
            for body in bodies:
                tx.append(body=body, origin="import")

        c.store.transact(append_all)


def export_audit(home_path, out):
    con = sqlite3.connect(str(Path(home_path) / "coord.db"))
    try:
        rows = con.execute("SELECT id, body FROM events ORDER BY ts, id").fetchall()
    finally:
        con.close()
    Path(out).write_bytes(b"".join(audit_line(i, b) for i, b in rows))
    return len(rows)
