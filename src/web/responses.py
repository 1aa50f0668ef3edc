"""JSON responses of the board's API: a value, or an error with the contract's exit code
mapped to an HTTP status (docs/web.md)."""

from __future__ import annotations

import msgspec
from starlette.responses import Response

# exit code of the contract -> HTTP status
STATUS_OF_EXIT = {2: 400, 3: 404, 4: 409, 5: 500, 6: 504, 7: 503}
_enc = msgspec.json.Encoder()


def json_response(obj, status: int = 200, seq: int | None = None, now: str | None = None) -> Response:
    headers = {}
    if seq is not None:
        headers["coord-seq"] = str(seq)
    if now is not None:
        headers["coord-now"] = now
    return Response(_enc.encode(obj) + b"\n", status, headers, media_type="application/json")


def error_response(status: int, code: str, message: str, exit_code: int) -> Response:
    return json_response({"error": {"code": code, "message": message, "exit": exit_code}}, status)
