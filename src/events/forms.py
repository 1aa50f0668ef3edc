"""An event's reading form (contract: what `--json` prints for an event in show, log and
poll, and what the web board serves): `seq` and `id`, then the stored envelope's members,
with a claim-checked payload resolved from its blob. Shared by the presentation rooms (the
CLI, the web board); it reads blobs, never the store."""


def event_json_bytes(seq: int, eid: str, body: bytes) -> bytes:
    """The reading form of an event: seq and id, then the stored envelope's members."""
    return b'{"seq":%d,"id":"%s",' % (seq, eid.encode()) + body[1:]


def event_json_parts(blobs, seq: int, eid: str, body: bytes, problems: list | None = None) -> list[bytes]:
    """The reading form with a claim-checked payload resolved, as pieces to write one
    after another (a 200 MB payload is held once, never copied into one line): the blob's
    bytes (checked against their hash, and checked to be one JSON object) stand in for
    the reference, and a `blob` member names it. The stored bytes and the audit file keep
    the reference. Attachments (`send --file`) stay references: `coord blob cat` fetches
    them.

    An unresolved blob (missing: not arrived yet; corrupt; not a regular file) raises
    (exit 3 or 5); given a `problems` list instead, the event keeps its reference, gains
    `blob_error` (the reason), and the error is appended, so one bad blob never hides the
    rest: see report_unresolved."""
    if b'"$blob"' not in body:
        return [event_json_bytes(seq, eid, body)]
    import msgspec

    from ..events.blobs import check_object, is_ref

    payload = msgspec.json.decode(body)["payload"]
    if not is_ref(payload):
        return [event_json_bytes(seq, eid, body)]
    from ..events.errors import IntegrityError, NotFound

    ref = payload["$blob"]
    try:
        data = blobs.read(ref)
        from ..events.shapes import MAX_DEPTH, too_deep

        if too_deep(data):
            raise IntegrityError(f"blob {ref} holds JSON nested deeper than {MAX_DEPTH} levels")
        check_object(data, ref)
    except (NotFound, IntegrityError) as e:
        if problems is None:
            raise
        problems.append(e)
        return [
            event_json_bytes(seq, eid, body)[:-1] + b',"blob_error":' + msgspec.json.encode(e.message) + b"}"
        ]
    at = body.rfind(b',"payload":')  # the last member; a reference holds no such text
    return [
        b'{"seq":%d,"id":"%s",' % (seq, eid.encode()) + body[1:at] + b',"payload":',
        data,
        b',"blob":"' + ref.encode() + b'"}',
    ]


def event_json_resolved(blobs, seq: int, eid: str, body: bytes, problems: list | None = None) -> bytes:
    """event_json_parts as one bytes object (for a single event)."""
    parts = event_json_parts(blobs, seq, eid, body, problems)
    return parts[0] if len(parts) == 1 else b"".join(parts)
