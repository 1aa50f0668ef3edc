"""What stands in front of every request (contract: "The web board"; docs/web.md):

1. the Host header must name the address the server is bound to, else 403 (a page on
   another site that rebinds its DNS name to 127.0.0.1 sends its own name as Host);
2. a token, always: `Authorization: Bearer TOKEN`, or the session cookie a page gets
   by trading the token at POST /auth (an EventSource cannot send headers); else 401,
   with, for a page, a small sign-in page that makes that trade from the URL's
   `#token=…` (a fragment never reaches a server, a log or a Referer);
3. only GET and HEAD (the board is read-only; POST /auth is the one exception);
4. on every response: a strict Content-Security-Policy (nothing but this origin, no
   inline script or style, no framing), nosniff, no referrer, no caching.

Tokens and cookies are compared in constant time (hmac.compare_digest)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress

import msgspec

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_SIGNIN_STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       background: #f4f6f9; color: #1d2430; display: flex; min-height: 100vh;
       align-items: center; justify-content: center; }
main { background: #fff; border: 1px solid #dfe3ea; border-radius: 10px; padding: 28px 32px;
       max-width: 460px; box-shadow: 0 2px 10px rgba(20, 30, 50, .06); }
h1 { font-size: 18px; margin: 0 0 8px; }
p { margin: 0; color: #4a5568; }
code { background: #eef1f6; padding: 1px 5px; border-radius: 4px; font-size: 13px; }
"""
_SIGNIN_SCRIPT = """
"use strict";
(async function () {
  var msg = document.getElementById("msg");
  function say(text) { msg.textContent = text; }
  var m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
  if (m) {
    history.replaceState(null, "", location.pathname + location.search);
    var r = await fetch("/auth", {method: "POST", credentials: "same-origin",
                                  headers: {"Authorization": "Bearer " + decodeURIComponent(m[1])}});
    if (r.ok) { location.reload(); return; }
    say("That token was refused. Open the address coord serve printed, or the token in .coord/serve.token.");
    return;
  }
  // A session may exist whose cookie a link from another site did not carry (SameSite=Strict).
  if (!sessionStorage.getItem("coord-retried")) {
    var probe = await fetch("/api/info", {credentials: "same-origin"});
    if (probe.ok) { sessionStorage.setItem("coord-retried", "1"); location.reload(); return; }
  }
  sessionStorage.removeItem("coord-retried");
  say("This board needs its token: open the address coord serve printed (it ends in #token=...).");
})();
"""
SIGNIN_PAGE = (
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>coord board: sign in</title><link rel="icon" href="data:,">'
    f"<style>{_SIGNIN_STYLE}</style></head>\n<body><main><h1>coord board</h1>"
    '<p id="msg">Signing in…</p></main>'
    f"<script>{_SIGNIN_SCRIPT}</script></body></html>\n"
).encode()


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# The sign-in page's own script and style are inline (it must run before any cookie
# exists), allowed by their hashes only.
SIGNIN_CSP = (
    f"default-src 'none'; script-src {_sha256(_SIGNIN_SCRIPT)}; style-src {_sha256(_SIGNIN_STYLE)}; "
    "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def allowed_hosts(host: str, port: int) -> set[str] | None:
    """The Host header values this server answers: the bound address (and the name it was
    given, e.g. localhost), with the port (and without it on port 80). None for a
    wildcard bind (0.0.0.0, ::): any IP literal is then accepted, never a name (a
    rebinding attack comes by name)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        return None
    if ip is not None and ip.version == 6:
        names = {f"[{ip}]"}
    else:
        names = {host} | ({str(ip)} if ip is not None else {"127.0.0.1"} if host == "localhost" else set())
    out = {f"{n}:{port}" for n in names}
    if port == 80:
        out |= names
    return {h.lower() for h in out}


def _host_ok(value: str, hosts: set[str] | None, port: int) -> bool:
    value = value.strip().lower()
    if hosts is not None:
        return value in hosts
    name, sep, p = value.rpartition(":")
    if not sep or "]" in p:  # no port given
        name, p = value, "80"
    if p != str(port):
        return False
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def session_value(token: str) -> str:
    """The cookie's value: derived from the token (the token itself never sits in a
    cookie jar), stable across restarts with the same token."""
    return hmac.new(token.encode(), b"coord serve session v1", hashlib.sha256).hexdigest()


class Guard:
    """ASGI middleware: Host check, token, methods, headers (see the module docstring)."""

    def __init__(self, app, *, token: str, host: str, port: int):
        self.app = app
        self.token = token.encode()
        self.port = port
        self.hosts = allowed_hosts(host, port)
        self.cookie_name = f"coord_board_{port}"
        self.session = session_value(token).encode()
        self.where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = scope.get("headers", [])
        host = _header(headers, b"host")
        if host is None or not _host_ok(host, self.hosts, self.port):
            await _plain(
                send,
                403,
                f"403 forbidden: this board answers at {self.where} only "
                "(the Host header names another address)\n",
            )
            return
        method, path = scope["method"], scope["path"]
        if path == "/auth":
            await self._auth(method, headers, send)
            return
        if not self._authorized(headers):
            await self._unauthorized(method, path, headers, send)
            return
        if method not in ("GET", "HEAD"):
            await _json(send, 405, _error("method", "the board is read-only: GET and HEAD only", 2))
            return
        await self.app(scope, receive, send)

    def _bearer_ok(self, headers) -> bool:
        value = _header(headers, b"authorization")
        if not value:
            return False
        scheme, _, given = value.strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token)

    def _authorized(self, headers) -> bool:
        if self._bearer_ok(headers):
            return True
        # every cookie of that name counts (a stale one from an earlier token may sit beside it)
        found = [hmac.compare_digest(c.encode(), self.session) for c in _cookies(headers, self.cookie_name)]
        return any(found)

    async def _auth(self, method, headers, send) -> None:
        """POST /auth with the bearer token: 204 and the session cookie."""
        if method != "POST":
            await _json(send, 405, _error("method", "POST the token (Authorization: Bearer …) to /auth", 2))
            return
        if not self._bearer_ok(headers):
            await _json(send, 401, _error("unauthorized", "wrong or missing token", 2), www=True)
            return
        cookie = f"{self.cookie_name}={self.session.decode()}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 204,
                "headers": [(b"set-cookie", cookie.encode()), (b"cache-control", b"no-store")],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _unauthorized(self, method, path, headers, send) -> None:
        accept = _header(headers, b"accept") or ""
        if method in ("GET", "HEAD") and not path.startswith("/api/") and "text/html" in accept:
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"text/html; charset=utf-8"),
                        (b"content-security-policy", SIGNIN_CSP.encode()),
                        (b"www-authenticate", b'Bearer realm="coord"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": SIGNIN_PAGE if method == "GET" else b""})
            return
        await _json(
            send,
            401,
            _error("unauthorized", "this board needs its token: Authorization: Bearer TOKEN", 2),
            www=True,
        )


def _with_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            have = {k.lower() for k, _ in message.get("headers", [])}
            extra = [h for h in HEADERS if h[0] not in have]
            if b"content-security-policy" not in have:
                extra.append((b"content-security-policy", CSP.encode()))
            if b"cache-control" not in have:
                extra.append((b"cache-control", b"no-store"))
            message = dict(message, headers=[*message.get("headers", []), *extra])
        await send(message)

    return wrapped


def _header(headers, name: bytes) -> str | None:
    for k, v in headers:
        if k == name:
            return v.decode("latin-1")
    return None


def _cookies(headers, name: str) -> list[str]:
    out = []
    for k, v in headers:
        if k != b"cookie":
            continue
        for part in v.decode("latin-1").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                out.append(value)
    return out


def _error(code: str, message: str, exit_code: int) -> dict:
    return {"error": {"code": code, "message": message, "exit": exit_code}}


async def _json(send, status: int, obj, www: bool = False) -> None:
    headers = [(b"content-type", b"application/json")]
    if www:
        headers.append((b"www-authenticate", b'Bearer realm="coord"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": msgspec.json.encode(obj) + b"\n"})


async def _plain(send, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": text.encode()})
