"""Full-text search: an FTS5 index (table `search`, rowid = events.seq) over each event's
type and the text of its payload, including the text of its blobs.

The projector runs inside every append transaction, so the index is as current as the
log. Heartbeats are not indexed: they are the most frequent event and must stay cheap.
Of a blob, at most INDEX_LIMIT bytes are indexed; binary attachments (a NUL byte in that
head) are not. `rebuild` builds a fresh index beside the live one in short transactions
and swaps it in.
"""

import re

import msgspec

from ..events.blobs import BlobStore, is_ref
from ..events.records import EventQuery
from ..events.shapes import too_deep
from .fromzero import no_gc

SKIP_TYPES = frozenset({"worker.heartbeat", "watchdog.heartbeat"})  # beats hold no text worth finding
NOT_INDEXED = "inbox."  # acknowledgements: bookkeeping that travels, not text to find
INDEX_LIMIT = 2 << 20


def _walk(obj, out, blobs, top=False):
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, bool) or obj is None:
        return
    elif isinstance(obj, (int, float)):
        out.append(str(obj))
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, out, blobs)
    elif isinstance(obj, dict):
        if is_ref(obj):
            _blob_text(obj, out, blobs, as_payload=top)
            for k, v in obj.items():  # an attachment's name and other members
                if k not in ("$blob", "size"):
                    _walk(v, out, blobs)
            return
        for v in obj.values():
            _walk(v, out, blobs)


def _blob_text(ref: dict, out, blobs: BlobStore, as_payload: bool):
    head = blobs.head(ref["$blob"], INDEX_LIMIT)
    if not head or b"\0" in head:
        return  # missing (verify reports it) or binary
    if as_payload and len(head) < INDEX_LIMIT and not too_deep(head):
        try:
            _walk(msgspec.json.decode(head), out, blobs)
            return
        except (msgspec.DecodeError, RecursionError):
            pass
    out.append(head.decode("utf-8", errors="ignore"))


def text_of(payload: dict, blobs: BlobStore) -> str:
    if "$blob" not in payload:  # the usual payload, text members only: what _walk gives
        values = list(payload.values())
        if all(type(v) is str for v in values):
            return "\n".join(values)
    out: list[str] = []
    _walk(payload, out, blobs, top=True)
    return "\n".join(out)


def row_for(seq: int, etype: str, payload: dict, blobs: BlobStore):
    return (seq, etype, text_of(payload, blobs))


def project(tx, ev) -> None:
    """The projector: index one appended event inside its transaction."""
    if ev.env.type in SKIP_TYPES or ev.env.type.startswith(NOT_INDEXED):
        return
    tx.index_text(*row_for(ev.seq, ev.env.type, ev.env.payload, tx.store.blobs))


class _Indexed(msgspec.Struct):
    type: str  # what the index needs of a stored envelope (the rest is skipped)
    payload: dict


_indexed = msgspec.json.Decoder(_Indexed)


def _rows(reader, after: int, upto: int | None, limit: int, blobs: BlobStore):
    """(rows to index, the last seq read: None when nothing was left)."""
    q = EventQuery(after_seq=after, upto_seq=upto, heartbeats=False, limit=limit)
    got = reader.event_bodies(q)  # (seq, id, ts, body, stored)
    rows = []
    for r in got:
        e = _indexed.decode(r[3])
        if e.type not in SKIP_TYPES and not e.type.startswith(NOT_INDEXED):
            rows.append((r[0], e.type, text_of(e.payload, blobs)))
    return rows, (got[-1][0] if got else None)


def rebuild(store, batch: int = 20000, progress=None) -> int:
    """Index every event into a fresh index, then swap it in. Each batch is read in a
    short read transaction and written in a short write transaction, so agents keep
    appending meanwhile; the swap catches up with what they appended. One rebuild at a time
    (the rebuild lock): two would share the fresh index. The fresh index is written
    without waiting for the disk (it is nothing until the swap, which does)."""
    with store.rebuild_lock():
        return _rebuild(store, batch, progress)


def _rebuild(store, batch, progress) -> int:
    blobs = store.blobs
    store.transact(lambda tx: tx.search_shadow_reset())
    upto = store.reader.max_seq()
    last, total = 0, 0
    while True:
        with store.read() as r, no_gc():
            rows, read_upto = _rows(r, last, upto, batch, blobs)
        if read_upto is None:
            break
        if rows:
            store.transact(lambda tx, rows=rows: tx.search_shadow_add(rows), durable=False)
        last = read_upto
        total += len(rows)
        if progress:
            progress(total)

    def swap(tx):
        n, at = 0, last
        while True:
            rows, read_upto = _rows(tx, at, None, batch, blobs)
            if read_upto is None:
                break
            if rows:
                tx.search_shadow_add(rows)
            at = read_upto
            n += len(rows)
        tx.search_shadow_swap()
        tx.delete_meta(REBUILD_FLAG)
        return n

    return total + store.transact(swap)


REBUILD_FLAG = "search_rebuild"  # meta: a store migrated with events in it is indexed on first use


def ensure_current(store) -> None:
    """A store migrated with events already in it is indexed on first use."""
    if store.reader.meta([REBUILD_FLAG]):
        with store.rebuild_lock():
            if store.reader.meta([REBUILD_FLAG]):  # another process may have done it meanwhile
                _rebuild(store, 20000, None)


def snippet(text: str, etype: str, query_text: str) -> str:
    """A few words around the first match in the event's text (else its type, else the
    text's start), matches marked [like this].

    Cut here, in one pass over the text, not by FTS5's snippet() or highlight(): both are
    quadratic in how often a word repeats in one event (snippet() scores every window at
    every match; highlight() re-copies its output at each one), so a 1 MB log of one
    repeated word took minutes."""
    terms = query_terms(query_text)
    for col in (text, etype):
        for m in _TOKEN.finditer(col, 0, min(len(col), SNIPPET_SCAN)):
            if _matches(m.group(0), terms):
                return _window(col, m.start(), terms)
    return _window(text, 0, terms)


SNIPPET_BEFORE, SNIPPET_AFTER = 4, 8  # words around the first match (about FTS5's 12 tokens)
SNIPPET_SCAN = 4 << 20  # characters of an event's text searched for the first match
# A token as the unicode61 tokenizer sees one: letters and digits; all else separates.
_TOKEN = re.compile(r"[^\W_]+")
_QUERY_WORDS = re.compile(r'"[^"]*"\s*\*?|[^\s()"]+')


def query_terms(text: str) -> list[tuple[str, bool]]:
    """The words of an FTS5 query as (folded word, is a prefix), for marking matches:
    operators, column filters, NEAR's distance and what follows NOT are left out. A `*`
    makes the word before it (the last of a phrase) a prefix."""
    terms = []
    skip_next = False
    prev = ""
    for part in _QUERY_WORDS.findall(text):
        after_comma, prev = prev.endswith(","), part
        if part.isdigit() and after_comma:
            continue  # NEAR(a b, 5): the distance
        if part in ("AND", "OR", "NEAR"):
            continue
        if part == "NOT":
            skip_next = True
            continue
        if skip_next:
            skip_next = False
            continue
        if part.endswith(":") or part.startswith("{"):
            continue  # a column filter
        if ":" in part and not part.startswith('"'):
            part = part.split(":", 1)[1]  # type:review
        prefix = part.rstrip().endswith("*")
        words = [_fold(m.group(0)) for m in _TOKEN.finditer(part)]
        terms += [(w, prefix and i == len(words) - 1) for i, w in enumerate(words)]
    return terms


def _fold(word: str) -> str:
    """Lower case without diacritics (as unicode61 remove_diacritics 2 folds a token)."""
    w = word.lower()
    if w.isascii():
        return w
    import unicodedata

    return "".join(ch for ch in unicodedata.normalize("NFKD", w) if not unicodedata.combining(ch))


def _matches(token: str, terms) -> bool:
    t = _fold(token)
    return any(t.startswith(w) if prefix else t == w for w, prefix in terms)


def _window(text: str, i: int, terms) -> str:
    """SNIPPET_BEFORE words before position i and SNIPPET_AFTER from it, with the tokens
    that match marked; '…' where the text goes on."""
    lo = max(0, i - 400)
    before = text[lo:i].split()
    glued = ""
    if before and i > 0 and not text[i - 1].isspace():
        glued = before.pop()  # the match starts inside a word ("foo-[bar]"): keep it whole
    cut_left = lo > 0 or len(before) > SNIPPET_BEFORE
    before = before[-SNIPPET_BEFORE:]
    after = text[i : i + 800].split()
    cut_right = len(after) > SNIPPET_AFTER or i + 800 < len(text)
    after = after[:SNIPPET_AFTER]
    if after:
        after[0] = glued + after[0]
    words = [_mark(w, terms) for w in before + after]
    return ("…" if cut_left else "") + " ".join(words) + ("…" if cut_right else "")


def _mark(word: str, terms) -> str:
    return _TOKEN.sub(lambda m: f"[{m.group(0)}]" if _matches(m.group(0), terms) else m.group(0), word)
