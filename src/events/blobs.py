"""Claim-check blobs: content-addressed files under .coord/blobs/, named by their BLAKE3.

A blob is written to a temporary file in the same directory, fsynced, then renamed, so no
reader ever sees half a blob; identical content is stored once. Every read re-hashes:
bytes that no longer match their name are an IntegrityError (exit 5), a missing blob is
NotFound (exit 3). Files are copied in chunks, so a blob of hundreds of megabytes is never
held in memory whole.

A payload whose canonical encoding exceeds the `blob_threshold` setting is stored as a
blob of that encoding, and the event carries `{"$blob": "b3:<hex>", "size": N}` instead.
"""

import os
import re

import blake3
import msgspec

from .errors import CoordError, IntegrityError, NotFound, UsageError
from .failpoints import failpoint
from .files import check_dir_in_home, ensure_dir_in_home, open_in_home
from .ids import SHOWN, one_of

CHUNK = 1 << 20
# A summary (a `log` line, a replay or timeline fold) reads at most this much of a blob's
# payload: a 200 MB payload is shown by its head, never loaded whole.
SUMMARY_HEAD = 64 << 10
REF_KEY = "$blob"
HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_enc = msgspec.json.Encoder(order="deterministic")


class UnknownBlob(NotFound):
    code = "unknown_blob"


class BlobStore:
    def __init__(self, path):
        self.path = os.fspath(path)
        self._dir_checked = False

    def file_of(self, ref: str) -> str:
        return os.path.join(self.path, hex_of(ref))

    # --- writing ---------------------------------------------------------------------
    def _tmp(self):
        ensure_dir_in_home(self.path)
        name = os.path.join(self.path, f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
        return name, os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)

    def _intact(self, hexd: str) -> bool:
        """A blob of this name exists and its bytes still hash to it (a corrupt copy must
        not be trusted: new events would refer to it)."""
        if not os.path.lexists(os.path.join(self.path, hexd)):
            return False
        try:
            self.check("b3:" + hexd)
            return True
        except (IntegrityError, NotFound):
            return False  # a link, a directory or corrupt bytes: replaced by the real blob

    def _commit(self, tmp: str, fd: int, hexd: str) -> None:
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = os.path.join(self.path, hexd)
        if self._intact(hexd):
            os.unlink(tmp)  # identical content is stored once
            return
        if os.path.isdir(final) and not os.path.islink(final):
            raise IntegrityError(f"{final} is a directory; remove it so the blob can be stored")
        os.replace(tmp, final)  # new, or replacing a corrupt copy: storing it again heals it
        dfd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the rename itself survives a crash
        finally:
            os.close(dfd)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        hexd = blake3.blake3(data).hexdigest()
        if self._intact(hexd):
            return "b3:" + hexd, len(data)
        import io

        return self.put_stream(io.BytesIO(data))

    def put_stream(self, f, on_chunk=None) -> tuple[str, int]:
        """Copy a binary file object in chunks, hashing as it goes."""
        h = blake3.blake3()
        size = 0
        tmp, fd = self._tmp()
        try:
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
                view = memoryview(chunk)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                failpoint("blob-mid-write")
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        self._commit(tmp, fd, h.hexdigest())
        return "b3:" + h.hexdigest(), size

    # --- reading ---------------------------------------------------------------------
    def _open(self, ref: str):
        """A blob's file: a regular file inside blobs/, never reached through a symlink (a
        link, directory or anything else in its place is exit 5)."""
        if not self._dir_checked:
            check_dir_in_home(self.path)
            self._dir_checked = True
        try:
            return os.fdopen(open_in_home(self.file_of(ref), os.O_RDONLY), "rb")
        except FileNotFoundError:
            raise UnknownBlob(f"missing blob {ref} (not in {self.path})") from None

    def read(self, ref: str) -> bytes:
        """The whole blob, checked against its name."""
        with self._open(ref) as f:
            data = f.read()
        if blake3.blake3(data).hexdigest() != hex_of(ref):
            raise IntegrityError(f"blob {ref} is corrupt: its bytes no longer match its hash")
        return data

    def check(self, ref: str) -> int:
        """Re-hash a blob in chunks; returns its size."""
        return self._stream(ref, None, "is corrupt: its bytes no longer match its hash")

    def _stream(self, ref: str, out, mismatch: str) -> int:
        """Read a blob in chunks, hashing it (and writing it to `out` if given)."""
        h = blake3.blake3()
        size = 0
        with self._open(ref) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
                if out is not None:
                    out.write(chunk)
        if out is not None:
            out.flush()
        if h.hexdigest() != hex_of(ref):
            raise IntegrityError(f"blob {ref} {mismatch}")
        return size

    def copy_to(self, ref: str, out) -> int:
        """Stream a blob to a binary file object. It is checked whole first, so corrupt
        bytes are never written out; a change between the two passes is caught too."""
        self.check(ref)
        return self._stream(ref, out, "changed while it was read")

    def head(self, ref: str, limit: int) -> bytes | None:
        """Up to `limit` bytes of a blob, unchecked (for indexing); None when missing or
        not a regular file (verify reports it)."""
        try:
            with self._open(ref) as f:
                return f.read(limit)
        except (NotFound, IntegrityError):
            return None

    def summary(self, ref: str, limit: int = SUMMARY_HEAD) -> dict:
        """The payload a reference stands for, for a summary, in bounded memory: a blob up
        to `limit` bytes is read and decoded whole; a bigger one is hashed in chunks (so a
        corrupt one is still refused) while only its first `limit` bytes are kept, and the
        payload is rebuilt from that head: members that fit whole, the one cut off (if a
        string) shortened with '…', and `$head` saying so ({"blob", "size", "read"})."""
        h = blake3.blake3()
        size = 0
        head = bytearray()
        with self._open(ref) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                size += len(chunk)
                if len(head) <= limit:
                    head += chunk[: limit + 1 - len(head)]
        if h.hexdigest() != hex_of(ref):
            raise IntegrityError(f"blob {ref} is corrupt: its bytes no longer match its hash")
        if size <= limit:
            return _decode_payload(bytes(head), ref)
        out = partial_object(bytes(head[:limit]))
        if out is None:
            raise IntegrityError(f"blob {ref} does not hold a JSON object")
        out["$head"] = {"blob": ref, "size": size, "read": limit}
        return out

    def names(self):
        try:
            return sorted(n for n in os.listdir(self.path) if HEX_RE.match(n))
        except FileNotFoundError:
            return []

    def resolve(self, prefix: str) -> str:
        """A full blob reference or a unique prefix ('b3:ab12', 'ab12') -> 'b3:<hex>'."""
        p = prefix.strip().lower()
        p = p[3:] if p.startswith("b3:") else p
        if not re.fullmatch(r"[0-9a-f]{1,64}", p):
            raise UsageError(f"not a blob hash or prefix: {prefix!r}")
        if len(p) == 64:
            return "b3:" + p
        hits = [n for n in self.names() if n.startswith(p)][: SHOWN + 1]
        return "b3:" + one_of(hits, prefix, "blob", UnknownBlob, exact=p, shown=lambda h: h[:12])

    # --- the claim-check ---------------------------------------------------------------
    def claim_check(self, payload: dict, threshold: int) -> dict:
        """The payload to store: itself, or a reference to a blob of its encoding."""
        if is_ref(payload):
            return payload
        data = _enc.encode(payload)
        if len(data) <= threshold:
            return payload
        ref, size = self.put_bytes(data)
        return {REF_KEY: ref, "size": size}

    def payload_of(self, payload: dict) -> dict:
        """The payload a reference stands for (strict: missing/corrupt blobs raise)."""
        if not is_ref(payload):
            return payload
        return _decode_payload(self.read(payload[REF_KEY]), payload[REF_KEY])

    def has(self, ref: str) -> bool:
        """Whether a file by this blob's name is here (not checked)."""
        return os.path.lexists(self.file_of(ref))

    def verify(self, referring=()) -> list[str]:
        """Every problem with the blobs: files whose bytes do not match their name, and
        references to blobs that are missing in `referring`, the stored events (Rows)
        whose payloads name blobs."""
        problems = []
        for name in self.names():
            try:
                self.check("b3:" + name)
            except (IntegrityError, CoordError) as e:
                problems.append(e.message)
        have = set(self.names())
        for row in referring:
            for ref in refs_in(msgspec.json.decode(row.body).get("payload")):
                if hex_of(ref) not in have:
                    problems.append(f"event {row.id[:15]} (seq {row.seq}) refers to missing blob {ref}")
        return problems


def is_ref(payload) -> bool:
    """A claim-check reference: {"$blob": "b3:<64 hex>", ...} (anything else under "$blob"
    is no reference, so it can never name a file)."""
    return (
        isinstance(payload, dict)
        and isinstance(payload.get(REF_KEY), str)
        and payload[REF_KEY].startswith("b3:")
        and HEX_RE.match(payload[REF_KEY][3:]) is not None
    )


def refs_in(obj):
    """Every blob reference anywhere in a JSON value (the payload's, and attachments)."""
    if isinstance(obj, dict):
        if is_ref(obj):
            yield obj[REF_KEY]
        for v in obj.values():
            yield from refs_in(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from refs_in(v)


def hex_of(ref: str) -> str:
    h = ref[3:] if ref.startswith("b3:") else ref
    if not HEX_RE.match(h):
        raise UsageError(f"not a blob reference: {ref!r}")
    return h


def readable(env, blobs: "BlobStore | None", summary: bool = False):
    """The envelope with a claim-checked payload replaced by the payload it stands for,
    leniently: a missing or corrupt blob leaves the reference (`verify` reports it), so
    one bad blob never blocks a fold, a rebuild or a replay. summary=True (replay,
    timeline, stats) reads a big blob's head only (BlobStore.summary)."""
    if blobs is None or "$blob" not in env.payload or not is_ref(env.payload):
        return env
    try:
        if summary:
            payload = blobs.summary(env.payload[REF_KEY])
        else:
            payload = blobs.payload_of(env.payload)
    except (NotFound, IntegrityError, UsageError):
        return env
    from .shapes import payload_problem

    checked = {k: v for k, v in payload.items() if k != "$head"} if "$head" in payload else payload
    if payload_problem(env.type, checked) is not None:
        return env  # a blob that does not fit its event's type stays a reference (`verify` says why)
    return msgspec.structs.replace(env, payload=payload)


def _decode_payload(data: bytes, ref: str) -> dict:
    from .shapes import MAX_DEPTH, too_deep

    if too_deep(data):
        raise IntegrityError(f"blob {ref} holds JSON nested deeper than {MAX_DEPTH} levels")
    try:
        out = msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        raise IntegrityError(f"blob {ref} does not hold a JSON payload") from None
    if not isinstance(out, dict):
        raise IntegrityError(f"blob {ref} does not hold a JSON object")
    return out


def check_object(data: bytes, ref: str) -> None:
    """The bytes are one JSON object (validated without building it: msgspec.Raw values
    are views into data), so they can be written into a JSON line as they are."""
    try:
        msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise IntegrityError(f"blob {ref} does not hold a JSON object") from None


def partial_object(head: bytes) -> dict | None:
    """The members of a JSON object that lie whole in its first bytes, plus the member cut
    off by the end of them when it is a string (shortened, ending in '…'). None when the
    head does not start an object. Pure Python over at most SUMMARY_HEAD bytes."""
    import json

    text = head.decode("utf-8", "ignore")
    dec = json.JSONDecoder()
    ws = re.compile(r"[ \t\n\r]*")
    i = ws.match(text, 0).end()
    if not text.startswith("{", i):
        return None
    out = {}
    i += 1
    while True:
        i = ws.match(text, i).end()
        if text.startswith("}", i) or i >= len(text):
            return out
        try:
            key, i = dec.raw_decode(text, i)
            i = ws.match(text, i).end()
            if not text.startswith(":", i) or not isinstance(key, str):
                return out
            i = ws.match(text, i + 1).end()
        except (ValueError, RecursionError):
            return out
        try:
            value, i = dec.raw_decode(text, i)
        except (ValueError, RecursionError):
            if text.startswith('"', i):
                out[key] = _cut_string(text[i + 1 :]) + "…"
            return out
        out[key] = value
        i = ws.match(text, i).end()
        if text.startswith(",", i):
            i += 1


def _cut_string(rest: str) -> str:
    """The text of a JSON string whose end was cut off (an escape may be cut in two)."""
    import json

    for trim in range(0, 12):
        part = rest[: len(rest) - trim] if trim else rest
        try:
            return json.loads('"' + part + '"')
        except ValueError:
            continue
    return ""
