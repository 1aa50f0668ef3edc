"""`coord log -f`: print events as they commit, with log's filters, until interrupted."""

from ..events.follow import follow
from .live import reader_gone, until_interrupted, write
from .options import state


def follow_log(c, worker, types, from_, last_seq, poll: float = 0.05):
    """Continue after `last_seq`, the top seq of the snapshot the initial listing read."""
    from .board import build_log_query, event_json_parts, format_event_line, report_unresolved

    st = state()
    with c.store.read() as conn:
        where, args = build_log_query(conn, worker, types, from_, None)
        if last_seq is None:
            last_seq = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
    where = where.replace(" WHERE ", "", 1)
    with until_interrupted():
        for seq, eid, body in follow(c.store, last_seq, where, args, poll=poll, stop=reader_gone):
            problems = []
            if st.json:
                for part in event_json_parts(c.blobs, seq, eid, body, problems=problems):
                    write(part)
                write(b"\n")
            else:
                write((format_event_line(seq, eid, body, c.blobs, problems) + "\n").encode())
            report_unresolved(problems, fail=False)  # said, and the follow goes on
