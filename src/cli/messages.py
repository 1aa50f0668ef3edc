"""Messages between agents: send, poll (acknowledgements as events, at least once), ack."""

import os
import sys

import click

from ..app import messages
from ..app.lifecycle import check_payload
from ..events.errors import BadPayload, TimedOut, UsageError
from ..events.failpoints import failpoint
from ..events.forms import event_json_parts
from .options import MAX_COUNT, MAX_SECONDS, FiniteFloat, global_options, request_id_option, state
from .output import clean, echo, emit_json, one_line
from .render import report_unresolved


def _parse_payload(text: str | None) -> dict | None:
    """PAYLOAD as given: a JSON object, '-' for stdin, or nothing."""
    if text is None:
        return None
    if text == "-":
        data = sys.stdin.buffer.read()
        if not data.strip():
            raise UsageError("empty stdin: pipe a JSON object, or give PAYLOAD / --text")
        where = "stdin"
    else:
        data = text.encode()
        where = "PAYLOAD"
    from ..events.shapes import loads_object

    try:
        return loads_object(data)
    except ValueError as e:
        raise BadPayload(f"{where} {e}; a payload is a JSON object, or use --text for plain text") from None


@click.command()
@click.argument("type_", metavar="TYPE")
@click.argument("payload", metavar="[PAYLOAD|-]", required=False)
@click.option(
    "--to",
    "to",
    metavar="AGENT|WORKER|'*'",
    help="Recipient: an agent, a worker (reaches its holder), or '*' for everyone.",
)
@click.option("--text", metavar="TEXT", help='Plain text: the payload is {"text": TEXT}.')
@click.option(
    "--file",
    "file_",
    metavar="PATH",
    type=click.Path(dir_okay=False, exists=True),
    help='Attach a file, streamed into a blob: payload gets {"file": {"$blob": …, "size": N, "name": …}}.',
)
@click.option(
    "--reply-to",
    metavar="EVENT",
    help="Thread a reply to EVENT (payload gets reply_to; --to defaults to its sender).",
)
@request_id_option
@global_options
def send(type_, payload, to, text, file_, reply_to, request_id):
    """Send a msg.TYPE event to an agent, a worker or everyone ('*').

    PAYLOAD is a JSON object, or '-' to read one from stdin. A payload bigger than
    blob_threshold is stored as a blob (claim-check); readers see it resolved.

    \b
    Example:
      coord --as lead send review_request '{"worker": "w-1"}' --to reviewer
      coord --as lead send note --text "rebase on main first" --to w-1
      jq -n '{files: ["a.py"]}' | coord --as lead send plan - --to '*'
      coord --as ci send build.log --file build.log --to lead
      coord --as reviewer send answer --text "LGTM" --reply-to b3:4f2a
    """
    from ..projections.inbox import check_recipient, message_type

    st = state()
    actor = st.identity()
    etype = message_type(type_)
    obj = _parse_payload(payload)
    if text is not None:
        if obj is not None:
            raise UsageError("give PAYLOAD or --text, not both")
        obj = {"text": text}
    obj = obj if obj is not None else {}
    c = st.open()
    reply_id = None
    if reply_to is not None:
        reply_id, sender = messages.reply_target(c, reply_to)
        to = sender if to is None else to
    if to is None:
        raise UsageError("missing --to AGENT|WORKER|'*' (or --reply-to EVENT to answer its sender)")
    check_recipient(to)
    check_payload(obj)
    if file_ is not None:
        if "file" in obj:
            raise BadPayload("the payload has a 'file' key already; --file would replace it")
        with open(file_, "rb") as f:
            ref, size = c.blobs.put_stream(f)
        obj = {**obj, "file": {"$blob": ref, "size": size, "name": os.path.basename(file_)}}
    r = messages.send(c, to, etype, obj, actor=actor, request_id=request_id, reply_to=reply_id)
    if st.json:
        emit_json({"event": r.event, "seq": r.seq, "type": r.type, "to": to, "repeat": r.repeat})
    elif r.repeat:
        echo(f"already sent with this request id: {r.event} (nothing appended)")
    else:
        echo(f"sent {etype} → {clean(to)}  {r.event[:15]}")


def _message_line(d: dict) -> str:
    import msgspec

    payload = msgspec.json.encode(d["payload"]).decode()
    mark = f"[unresolved: {clean(d['blob_error'])}] " if "blob_error" in d else ""
    if "notice" in d:
        n = d["notice"]
        mark += f"[notice: {clean(n['worker'])} attempt {n['attempt']} {n['reason']}] "
    return (
        f"{d['id'][:15]} {d['ts']} {one_line(d['from'], 24)} → {one_line(d['to'], 24)} "
        f"{d['type']} {mark}{clean(payload)}"
    )


@click.command()
@click.option("--peek", is_flag=True, help="Show the messages but do not acknowledge them (appends nothing).")
@click.option(
    "--wait",
    type=FiniteFloat(min=0, max=MAX_SECONDS),
    metavar="SECONDS",
    help="Block up to SECONDS for a message (exit 6 if none comes).",
)
@click.option(
    "--limit", type=click.IntRange(min=1, max=MAX_COUNT), metavar="N", help="At most N messages (the oldest)."
)
@click.option(
    "--type",
    "types",
    multiple=True,
    metavar="T",
    help="Only messages of type T (name or glob, with or without 'msg.'; repeatable); "
    "'worker.*' (or a worker.* event type) selects notices.",
)
@global_options
def poll(peek, wait, limit, types):
    """Your new messages (to you, to a worker you hold, or to '*') and notices, oldest
    first; then acknowledge them (one inbox.acked event listing their ids, which travels
    to other clones). Delivery is at least once: the acknowledgement is appended only
    after the messages are written out, so a crash in between delivers them again.

    A notice is a lifecycle event that changed or ended an attempt you held, appended by
    someone else (changes requested, conflicted, check failed, requeued, canceled,
    failed); with --json it carries "notice": {"worker", "attempt", "reason"}.
    `--type 'worker.*'` selects notices only.

    \b
    Example:
      coord --as reviewer poll
      coord --as agent-2 poll --wait 30 --json
      coord --as agent-2 poll --peek --type review_request
      coord --as agent-2 poll --type 'worker.*'
    """
    st = state()
    actor = st.identity()
    messages.message_types(types)  # bad --type values: exit 2 before the store opens
    c = st.open(reading=True)
    if wait is not None:
        rows = messages.wait_pending(c, actor, types, limit, timeout=wait)
        if not rows:
            raise TimedOut(f"no message for {actor} within {wait:g}s")
    else:
        rows = messages.pending(c, actor, types, limit)
    # A message whose blob is missing or corrupt is delivered with its reference and a
    # blob_error (and said on stderr): one bad message never holds up the ones after it.
    problems = []
    out = sys.stdout.buffer
    for r in rows:
        parts = event_json_parts(c.blobs, r.seq, r.id, r.body, problems=problems)
        notice = rows.notices.get(r.seq)
        if notice is not None:  # a lifecycle event that changed or ended your attempt
            import msgspec

            extra = {"worker": notice.worker, "attempt": notice.attempt, "reason": notice.reason}
            parts[-1] = parts[-1][:-1] + b',"notice":' + msgspec.json.encode(extra) + b"}"
        if st.json:
            for part in parts:
                out.write(part)
            out.write(b"\n")
        else:
            import msgspec

            out.write(_message_line(msgspec.json.decode(b"".join(parts))).encode() + b"\n")
    out.flush()
    sys.stdout.flush()
    failpoint("poll-after-output")
    if rows and not peek:
        messages.acknowledge(c, actor, rows)
    report_unresolved(problems, fail=False)


@click.command()
@click.argument("event", metavar="EVENT")
@request_id_option
@global_options
def ack(event, request_id):
    """Acknowledge your messages and notices up to and including EVENT (an inbox.acked
    event listing what it covers; nothing when none is pending).

    Use it after `poll --peek`: whatever was shown up to EVENT is not delivered again.

    \b
    Example:
      coord --as agent-2 poll --peek
      coord --as agent-2 ack b3:4f2a
    """
    st = state()
    actor = st.identity()
    c = st.open()
    seq, eid, n = messages.ack_event(c, actor, event, request_id=request_id)
    if st.json:
        emit_json({"agent": actor, "acked_through": eid, "seq": seq, "acked": n})
    else:
        echo(f"{clean(actor)}: acknowledged through {eid[:15]} (seq {seq}): {n} message(s)")
