"""The part of a worker's view the text board reads, decoded without the rest (a board
of 10,000 workers is read twice as fast)."""

import msgspec


class BoardView(msgspec.Struct):
    """The part of a view the text board shows and liveness reads (field names and
    defaults as in Worker): decoding only these skips the rest of each view's bytes."""

    worker: str
    state: str
    state_since: str
    task: str = ""
    holder: str | None = None
    holder_clone: str | None = None
    summary: str | None = None
    reason: str | None = None
    conflicts: list = []
    last_heartbeat: str | None = None
    hb_interval: float | None = None
    hb_note: str | None = None
    idle_s: float | None = None
    beat_local: int | None = None
    since_local: int | None = None
    after: list = []  # the work graph: what status shows it waits for
    priority: int = 2


_board_dec = msgspec.json.Decoder(BoardView)


def decode_board_view(blob: bytes) -> BoardView:
    return _board_dec.decode(blob)
