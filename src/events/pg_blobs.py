"""Blobs on a PostgreSQL server (coord.events.pg_store): content-addressed, in 1 MiB chunks
of bytea (coord.blobs, coord.blob_chunks), so every machine that shares the log sees them.
The same operations as coord.events.blobs.BlobStore, whose checks this reuses: every read
re-hashes (the server has no BLAKE3), a missing blob is exit 3, bytes that no longer hash
to their name exit 5, and storing a damaged blob again heals it. A blob is read chunk by
chunk, never whole unless asked for. Also the server's backup: a tar of the log and blobs.
"""

import os

import blake3

from .blobs import CHUNK, HEX_RE, BlobStore, UnknownBlob
from .errors import IntegrityError, NotFound
from .records import EventQuery


class _Chunks:
    """A blob as a binary file object read from the server one chunk at a time."""

    def __init__(self, store, ref: str, chunks: int):
        self.store, self.ref, self.chunks = store, ref, chunks
        self.n, self.buf = 0, b""

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self.buf) < size) and self.n < self.chunks:
            row = self.store.run(
                "SELECT data FROM coord.blob_chunks WHERE hash = %s AND n = %s",
                (self.ref, self.n),
                fetch=True,
            )
            if not row:
                raise IntegrityError(f"blob {self.ref} on the server is damaged: chunk {self.n} is missing")
            self.buf += bytes(row[0][0])
            self.n += 1
        if size < 0:
            out, self.buf = self.buf, b""
        else:
            out, self.buf = self.buf[:size], self.buf[size:]
        return out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class PgBlobStore(BlobStore):
    def __init__(self, store):
        super().__init__(store.home.blobs_path)
        self.store = store

    def _intact(self, hexd: str) -> bool:
        try:
            self.check("b3:" + hexd)
            return True
        except (IntegrityError, NotFound):
            return False

    def put_stream(self, f, on_chunk=None) -> tuple[str, int]:
        """Chunks into the server in one transaction (a savepoint inside a write)."""
        h, size, n = blake3.blake3(), 0, 0
        chunks = []
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
            if on_chunk is not None:
                on_chunk(chunk)
            chunks.append(chunk)
            n += 1
        ref = "b3:" + h.hexdigest()
        if self._intact(h.hexdigest()):
            return ref, size
        with self.store.conn.transaction():
            self.store.run("DELETE FROM coord.blob_chunks WHERE hash = %s", (ref,))
            for i, chunk in enumerate(chunks):
                self.store.run(
                    "INSERT INTO coord.blob_chunks (hash, n, data) VALUES (%s, %s, %s) "
                    "ON CONFLICT (hash, n) DO UPDATE SET data = EXCLUDED.data",
                    (ref, i, chunk),
                )
            self.store.run(
                "INSERT INTO coord.blobs (hash, size, chunks) VALUES (%s, %s, %s) "
                "ON CONFLICT (hash) DO UPDATE SET size = EXCLUDED.size, chunks = EXCLUDED.chunks",
                (ref, size, n),
            )
        return ref, size

    def _open(self, ref: str):
        row = self.store.run("SELECT chunks FROM coord.blobs WHERE hash = %s", (ref,), fetch=True)
        if not row:
            raise UnknownBlob(f"missing blob {ref} (not on the server)")
        return _Chunks(self.store, ref, row[0][0])

    def names(self):
        rows = self.store.run("SELECT hash FROM coord.blobs ORDER BY hash", fetch=True)
        return [r[0][3:] for r in rows if HEX_RE.match(r[0][3:])]

    def has(self, ref: str) -> bool:
        return bool(self.store.run("SELECT 1 FROM coord.blobs WHERE hash = %s", (ref,), fetch=True))


def backup_tar(store, dest: str) -> int:
    """A tar archive at dest, from one snapshot: `events.jsonl` (every event, as audit
    lines) and `blobs/<hash>` (every blob, checked). Extracted into an empty .coord/,
    `coord init` rebuilds a home from it (SQLite, or a server with --store --import).
    A copy of the whole database is pg_dump's job."""
    import tarfile
    import tempfile

    from .codec import audit_line

    n = 0
    with store.read() as r, tempfile.TemporaryFile() as lines, tarfile.open(dest, "w") as tar:
        after = 0
        while rows := r.events(EventQuery(after_seq=after, limit=5000)):
            lines.write(b"".join(audit_line(x.id, x.body) for x in rows))
            n, after = n + len(rows), rows[-1].seq
        info = tarfile.TarInfo("events.jsonl")
        info.size, info.mode = lines.tell(), 0o644
        lines.seek(0)
        tar.addfile(info, lines)
        for name in store.blobs.names():
            store.blobs.check("b3:" + name)  # damaged bytes are never copied out
            info = tarfile.TarInfo("blobs/" + name)
            info.size = store.run("SELECT size FROM coord.blobs WHERE hash = %s", ("b3:" + name,), True)[0][0]
            info.mode = 0o644
            with store.blobs._open("b3:" + name) as f:
                tar.addfile(info, f)
    with open(dest, "rb+") as f:
        os.fsync(f.fileno())
    return n
