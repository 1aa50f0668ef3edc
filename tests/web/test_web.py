"""`coord serve` as a real process, one per module, seen by real clients: headless chromium
(the `page` fixture: every request outside loopback refused) and plain HTTP. Commits come
from other `coord` processes; every wait is for a condition, never a latency."""

import json
import re
import socket
import threading
import time

import pytest

from boardserver import BoardServer, StreamReader, coord

XSS_TASK = '"><img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
XSS_AGENT = "<script>window.__pwned=3</script>"
XSS_NOTE = '<img src=x onerror="window.__pwned=4">'
XSS_TEXT = "</td><script>window.__pwned=5</script><b>bold?</b>"


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    home = tmp_path_factory.mktemp("web") / ".coord"
    coord(home, "init")
    server = BoardServer(home).start()
    yield server
    assert server.stop() == 0, server.stderr()


def sign_in(page, board, path="/"):
    """Open the printed address (the page trades #token=… for its cookie), then `path`."""
    page.goto(board.url)
    page.wait_for("document.body && document.body.getAttribute('data-ready') === 'board'", timeout=30)
    if path != "/":
        page.evaluate(
            f"history.pushState(null, '', {json.dumps(path)}); dispatchEvent(new PopStateEvent('popstate'))"
        )
        page.wait_for("document.body.getAttribute('data-ready')", timeout=30)
    # the first document was the 401 sign-in page: chromium logs that status as an error
    page.console_errors[:] = [e for e in page.console_errors if "status of 401" not in e]


def rows(page) -> list[str]:
    return page.evaluate(
        "[...document.querySelectorAll('#board .row[data-worker]')].map(r => r.getAttribute('data-worker'))"
    )


def top_seq(board) -> int:
    return board.json("/api/info")["seq"]


# ---------------------------------------------------------------- the page
def test_board_renders_one_row_per_worker(board, page):
    for i in range(4):
        coord(board.home, "spawn", f"row-{i}", "--task", f"task {i}")
    coord(board.home, "start", "row-1", agent="agent-1")
    coord(board.home, "cancel", "row-3")
    sign_in(page, board)
    active = [d["worker"] for d in json.loads(coord(board.home, "--json", "status").stdout)]
    assert rows(page) == active  # as `coord status`: finished workers hidden
    assert "row-3" not in active and "row-1" in active
    assert (
        page.evaluate("document.querySelector('#board [data-worker=\"row-1\"] .c-state').textContent")
        == "WORKING"
    )
    assert (
        page.evaluate("document.querySelector('#board [data-worker=\"row-1\"] .c-holder').textContent")
        == "agent-1"
    )
    page.evaluate("document.querySelector('label.check input').click()")  # show completed and canceled
    every = [d["worker"] for d in json.loads(coord(board.home, "--json", "status", "--all").stdout)]
    assert rows(page) == every  # one row per worker, in the board's order
    page.evaluate("document.querySelector('.chip[data-state=\"CANCELED\"]').click()")
    assert rows(page) == ["row-3"]
    assert page.evaluate("document.querySelector('.chip[data-state=\"WORKING\"] b').textContent") == str(
        sum(
            d["state"] == "WORKING" for d in json.loads(coord(board.home, "--json", "status", "--all").stdout)
        )
    )
    assert page.console_errors == [] and page.page_errors == []


def test_a_commit_by_another_process_appears_without_a_reload(board, page):
    sign_in(page, board)
    page.evaluate("window.__same_document = true")
    status_loads = sum("/api/status" in u for u in page.requests)
    coord(board.home, "spawn", "live-1", "--task", "appears live")
    page.wait_for("document.querySelector('#board [data-worker=\"live-1\"]') !== null", timeout=30)
    coord(board.home, "start", "live-1", agent="agent-7")
    coord(board.home, "heartbeat", "live-1", "--note", "halfway there", agent="agent-7")
    page.wait_for(
        "document.querySelector('#board [data-worker=\"live-1\"] .c-summary').textContent === 'halfway there'",
        timeout=30,
    )
    assert (
        page.evaluate("document.querySelector('#board [data-worker=\"live-1\"] .c-state').textContent")
        == "WORKING"
    )
    assert (
        page.evaluate("document.querySelector('#board [data-worker=\"live-1\"] .c-liveness').textContent")
        == "OK"
    )
    assert page.evaluate("window.__same_document") is True  # no reload
    assert sum("/api/status" in u for u in page.requests) == status_loads  # patched, not refetched
    assert page.evaluate("coordDebug.opened") == 1  # one event stream for the page
    # the worker's own page follows too
    page.evaluate("document.querySelector('#board [data-worker=\"live-1\"] a').click()")
    page.wait_for("document.body.getAttribute('data-ready') === 'worker'", timeout=30)
    coord(board.home, "done", "live-1", "--summary", "all done", agent="agent-7")
    page.wait_for("document.querySelector('.whead .pill').textContent === 'IN_REVIEW'", timeout=30)
    assert "all done" in page.evaluate("document.querySelector('main').textContent")
    assert page.evaluate("coordDebug.opened") == 1 and page.evaluate("window.__same_document") is True
    assert page.console_errors == [] and page.page_errors == []


def test_what_agents_wrote_is_shown_as_text_and_runs_nothing(board, page):
    home = board.home
    coord(home, "spawn", "xss-1", "--task", XSS_TASK, "--assignee", XSS_AGENT)
    coord(home, "start", "xss-1", agent=XSS_AGENT)
    coord(home, "heartbeat", "xss-1", "--note", XSS_NOTE, agent=XSS_AGENT)
    coord(home, "send", "note", "--text", XSS_TEXT, "--to", "xss-1", agent=XSS_AGENT)
    coord(
        home, "send", "plan", json.dumps({"<b>key</b>": XSS_NOTE, "n": [XSS_TEXT]}), "--to", "*", agent="lead"
    )
    coord(home, "spawn", "xss-2", "--task", "second")
    coord(home, "fail", "xss-2", "--reason", XSS_TEXT, agent=XSS_AGENT)
    sign_in(page, board)

    def clean(view_text_must_have):
        text = page.evaluate("document.querySelector('main').textContent")
        for s in view_text_must_have:
            assert s in text, (s, text[:2000])
        assert (
            page.evaluate("document.querySelectorAll('script:not([src]), img, iframe, [onerror]').length")
            == 0
        )
        assert not page.evaluate(
            "[...document.querySelectorAll('b')].some(b => ['bold?', 'key'].includes(b.textContent))"
        )
        assert page.evaluate("window.__pwned === undefined")

    page.evaluate("document.querySelector('label.check input').click()")
    clean([XSS_AGENT, XSS_NOTE])  # the holder; the heartbeat note is the summary
    page.evaluate(
        "history.pushState(null, '', '/workers/xss-1'); dispatchEvent(new PopStateEvent('popstate'))"
    )
    page.wait_for("document.body.getAttribute('data-ready') === 'worker'", timeout=30)
    clean([XSS_TASK, XSS_AGENT, XSS_NOTE, XSS_TEXT])  # task, holder, note, a message to it
    for path, ready in (("/messages", "messages"), ("/timeline", "timeline"), ("/stats", "stats")):
        page.evaluate(f"history.pushState(null, '', '{path}'); dispatchEvent(new PopStateEvent('popstate'))")
        page.wait_for(f"document.body.getAttribute('data-ready') === '{ready}'", timeout=30)
        if ready == "messages":
            clean([XSS_TEXT, XSS_AGENT, "<b>key</b>"])
        elif ready == "stats":
            clean([XSS_AGENT])
        else:
            labels = page.evaluate(
                "[...document.querySelectorAll('#timeline title')].map(t => t.textContent).join('\\n')"
            )
            assert XSS_TASK in labels and XSS_AGENT in labels
            clean([])
    # search, and a message arriving live while the page is open
    page.goto(board.base + "/messages?q=bold")
    page.wait_for("document.querySelector('#results') !== null", timeout=30)
    clean([XSS_AGENT])
    coord(home, "send", "late", "--text", "late " + XSS_TEXT, "--to", "xss-1", agent=XSS_AGENT)
    page.wait_for(
        "document.querySelector('#messages tbody tr').textContent.includes('late </td>')", timeout=30
    )
    clean(["late " + XSS_TEXT])
    assert page.page_errors == []
    assert not [e for e in page.console_errors if "Content Security Policy" in e]  # nothing even tried


def test_the_page_works_with_the_network_blocked(board, page):
    coord(board.home, "spawn", "offline-1", "--task", "no network")
    sign_in(page, board)
    for path, ready in (
        ("/messages", "messages"),
        ("/timeline", "timeline"),
        ("/stats", "stats"),
        ("/workers/offline-1", "worker"),
    ):
        page.evaluate(f"history.pushState(null, '', '{path}'); dispatchEvent(new PopStateEvent('popstate'))")
        page.wait_for(f"document.body.getAttribute('data-ready') === '{ready}'", timeout=30)
    assert page.blocked == []
    origin = board.base + "/"
    assert page.requests and all(u.startswith(origin) for u in page.requests), page.requests
    assert page.console_errors == [] and page.page_errors == []
    assert (
        page.evaluate("getComputedStyle(document.querySelector('header.top')).position") == "sticky"
    )  # styled


def test_the_page_trades_its_token_for_an_httponly_strict_cookie(board, page):
    sign_in(page, board)
    assert page.evaluate("location.hash") == ""  # the token left the address bar
    cookies = [c for c in page.cookies() if c["name"] == f"coord_board_{board.port}"]
    assert len(cookies) == 1
    c = cookies[0]
    assert c["httpOnly"] is True and c["sameSite"] == "Strict" and c["path"] == "/"
    assert board.token not in c["value"]
    assert page.evaluate("document.cookie") == ""  # not readable by script
    # the cookie opens the API for this page, and an EventSource carries it
    assert page.evaluate("fetch('/api/info').then(r => r.status)") == 200
    # without a token in the address, a fresh browser context only gets the sign-in page
    other = page.browser.new_page()
    try:
        assert other.goto(board.base + "/") == 401
        other.wait_for("document.getElementById('msg').textContent.includes('needs its token')", timeout=30)
        assert other.evaluate("fetch('/api/info').then(r => r.status)") == 401
    finally:
        other.close()


def test_a_link_from_another_site_still_reaches_the_board(board, page):
    """SameSite=Strict keeps the cookie off a navigation that starts on another site; the
    sign-in page then finds the session with a same-origin request and reloads."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    link = f'<!doctype html><link rel="icon" href="data:,"><a id="go" href="{board.base}/">the board</a>'

    class Other(BaseHTTPRequestHandler):
        def do_GET(self):
            data = link.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    other = ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        sign_in(page, board)  # the session cookie exists
        page.goto(f"http://localhost:{other.server_address[1]}/")  # another site
        page.evaluate("document.getElementById('go').click()")
        page.wait_for("document.body && document.body.getAttribute('data-ready') === 'board'", timeout=30)
        assert page.evaluate("location.href") == board.base + "/"
        assert any("status of 401" in e for e in page.console_errors)  # the cookie stayed home first
    finally:
        other.shutdown()
        other.server_close()


def test_the_page_resumes_from_its_last_seq_across_a_server_restart(board, page):
    coord(board.home, "spawn", "drop-1", "--task", "resume me")
    coord(board.home, "start", "drop-1", agent="agent-d")
    sign_in(page, board)
    page.wait_for("document.body.getAttribute('data-conn') === 'live'", timeout=30)
    page.evaluate("window.__same_document = true")
    start = top_seq(board)
    coord(board.home, "heartbeat", "drop-1", "--note", "before", agent="agent-d")
    page.wait_for(f"Number(document.body.getAttribute('data-seq')) >= {start + 1}", timeout=30)
    assert board.stop() == 0, board.stderr()  # the stream breaks; the page keeps trying
    page.wait_for("document.body.getAttribute('data-conn') !== 'live'", timeout=30)
    for i in range(5):  # committed while nobody serves the board
        coord(board.home, "heartbeat", "drop-1", "--note", f"while away {i}", agent="agent-d")
    board.start()  # the same port and token: the page's cookie still holds
    coord(board.home, "heartbeat", "drop-1", "--note", "after", agent="agent-d")
    top = top_seq(board)
    page.wait_for(f"Number(document.body.getAttribute('data-seq')) === {top}", timeout=30)
    page.wait_for(
        "document.querySelector('#board [data-worker=\"drop-1\"] .c-summary').textContent === 'after'",
        timeout=30,
    )
    got = page.evaluate("coordDebug.received")
    tail = [s for s in got if s > start]
    assert tail == list(range(start + 1, top + 1)), got  # every event once, in order
    assert page.evaluate("coordDebug.resets") == 0
    assert page.evaluate("window.__same_document") is True
    assert page.page_errors == []


# ---------------------------------------------------------------- plain HTTP
def test_no_token_is_401_and_a_foreign_host_is_403(board):
    status, h, body = board.get("/api/status")
    assert status == 401 and h["www-authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["code"] == "unauthorized"
    status, h, body = board.get("/", headers={"Accept": "text/html"})
    assert status == 401 and h["content-type"].startswith("text/html") and b"coord board" in body
    assert (
        "script-src 'sha256-" in h["content-security-policy"]
        and "unsafe-inline" not in h["content-security-policy"]
    )
    for path in ("/", "/static/app.js", "/api/stream", "/api/workers/x", "/nope"):
        assert board.get(path)[0] == 401, path
    assert board.get("/api/status", token="x" * 43)[0] == 401
    assert board.get("/api/status", token=board.token + "x")[0] == 401
    assert board.get("/api/status", headers={"Authorization": f"Basic {board.token}"})[0] == 401
    assert board.get("/api/status", token=True)[0] == 200
    # DNS rebinding: the right token, but the Host names another site (or another port)
    for host in ("evil.example", f"evil.example:{board.port}", f"localhost:{board.port}", "127.0.0.1:1", ""):
        status, h, body = board.get("/api/status", token=True, host=host)
        assert status == 403, host
        assert h["x-content-type-options"] == "nosniff"
    assert board.get("/api/status", token=True, host=f"127.0.0.1:{board.port}")[0] == 200


def test_the_cookie_over_http(board):
    status, h, _ = board.request("POST", "/auth")
    assert status == 401
    status, h, _ = board.request("POST", "/auth", token=True)
    assert status == 204
    cookie = h["set-cookie"]
    name, value = cookie.split(";")[0].split("=", 1)
    attrs = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert name == f"coord_board_{board.port}" and {"httponly", "samesite=strict", "path=/"} <= attrs
    assert value != board.token and board.token not in cookie
    assert board.get("/api/info", headers={"Cookie": f"{name}={value}"})[0] == 200
    assert board.get("/api/info", headers={"Cookie": f"{name}={'0' * len(value)}"})[0] == 401
    assert board.get("/api/info", headers={"Cookie": f"other={value}"})[0] == 401
    stale = f"{name}={'f' * len(value)}; {name}={value}"  # an old session's cookie beside the good one
    assert board.get("/api/info", headers={"Cookie": stale})[0] == 200
    assert board.request("HEAD", "/api/stream", token=True)[0] == 405
    assert board.request("GET", "/auth", token=True)[0] == 405


def test_read_only_and_hardened_headers(board):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert board.request(method, "/api/status", token=True, body=b"{}")[0] == 405
    for path, kind in (
        ("/", "text/html"),
        ("/static/app.js", "text/javascript"),
        ("/static/app.css", "text/css"),
        ("/api/status", "application/json"),
        ("/api/workers/no-such", "application/json"),
    ):
        status, h, body = board.get(path, token=True)
        assert status in (200, 404)
        assert h["content-type"].startswith(kind), path
        csp = h["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert "script-src 'self'" in csp and "object-src 'none'" in csp
        assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"
        assert h["cache-control"] == "no-store" and h["x-frame-options"] == "DENY"
    status, _, body = board.get("/", token=True)
    assert b'<link rel="icon" href="data:,">' in body and b"<script>" not in body  # no inline script
    assert not re.search(rb"https?://", body)  # nothing named on the network
    js = board.get("/static/app.js", token=True)[2] + board.get("/static/app.css", token=True)[2]
    assert not re.search(rb"https?://(?!www\.w3\.org/2000/svg)", js)
    assert board.get("/static/../source.py", token=True)[0] == 404


def test_the_json_api_mirrors_the_cli(board):
    coord(board.home, "spawn", "api-1", "--task", "mirror")
    coord(board.home, "start", "api-1", agent="agent-a")
    coord(board.home, "send", "question", "--text", "mirror mirror", "--to", "api-1", agent="lead")

    def cli(*args):
        return json.loads(coord(board.home, "--json", *args).stdout)

    def strip(items):  # the page's extras, and what moves with the clock
        for d in items:
            d.pop("expected", None)
        return items

    status, h, body = board.get("/api/status?all=1", token=True)
    assert status == 200 and int(h["coord-seq"]) == top_seq(board)
    assert [d["worker"] for d in json.loads(body)] == [d["worker"] for d in cli("status", "--all")]
    api = {d["worker"]: d for d in strip(json.loads(body))}
    for d in cli("status", "--all"):
        assert {k: v for k, v in d.items() if k not in ("liveness",)} == {
            k: v for k, v in api[d["worker"]].items() if k not in ("liveness",)
        }
    assert [d["worker"] for d in board.json("/api/status")] == [d["worker"] for d in cli("status")]
    assert [d["worker"] for d in board.json("/api/status?state=working")] == [
        d["worker"] for d in cli("status", "--state", "working")
    ]
    detail, shown = board.json("/api/workers/api-1"), cli("show", "api-1")
    for k in ("worker", "state", "holder", "task", "expected", "last", "legal", "conflicts"):
        assert detail[k] == shown[k], k
    assert [e["id"] for e in detail["history"]] == [e["id"] for e in shown["history"]]
    assert [e["change"] for e in detail["history"]] == [
        "api-1  (new) → ASSIGNED  task: mirror",
        "api-1  ASSIGNED → WORKING",
    ]
    assert [m["payload"]["text"] for m in detail["messages"]] == ["mirror mirror"]
    assert board.json("/api/workers/api")["worker"] == "api-1"  # a unique prefix
    log = [json.loads(x) for x in coord(board.home, "--json", "log").stdout.split("\n") if x]
    assert board.json("/api/events?limit=10000") == log
    assert board.json(f"/api/events?after={log[-2]['seq']}") == log[-1:]
    assert board.json(f"/api/events/{log[0]['id'][:12]}") == cli("show", log[0]["id"])
    assert board.json("/api/search?q=mirror") == cli("search", "mirror")
    assert board.json("/api/stats") == cli("stats")
    tl = board.json("/api/timeline")
    tl.pop("events")
    assert tl == cli("timeline")
    msgs = board.json("/api/messages")
    assert msgs[0]["payload"] == {"text": "mirror mirror"} and all(m["type"].startswith("msg.") for m in msgs)
    for path, code, status in (
        ("/api/workers/nobody-here", "unknown_worker", 404),
        ("/api/status?state=sleeping", "usage", 400),
        ("/api/search?q=%22unterminated", "usage", 400),
        ("/api/events?after=-1", "usage", 400),
        ("/api/events?limit=0", "usage", 400),
        ("/api/stream?after=x", "usage", 400),
        ("/api/events/b3:zz", "usage", 400),
    ):
        got, _, body = board.get(path, token=True)
        assert got == status and json.loads(body)["error"]["code"] == code, (path, body)


def test_streams_resume_after_last_event_id_and_many_readers_get_everything(board):
    coord(board.home, "spawn", "sse-1", "--task", "stream")
    coord(board.home, "start", "sse-1", agent="agent-s")
    mark = top_seq(board)
    readers = [StreamReader(board, after=mark) for _ in range(12)]
    stalled = socket.create_connection(("127.0.0.1", board.port))  # asks, then never reads
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(
        f"GET /api/stream?after=0 HTTP/1.1\r\nHost: 127.0.0.1:{board.port}\r\n"
        f"Authorization: Bearer {board.token}\r\n\r\n".encode()
    )
    vanished = [StreamReader(board, after=0) for _ in range(5)]
    for r in vanished:
        r.close()
    try:
        assert all(r.status == 200 for r in readers)
        big = "x" * 3000
        for i in range(6):
            coord(board.home, "heartbeat", "sse-1", "--note", f"{i} {big}", agent="agent-s")
        top = top_seq(board)
        want = list(range(mark + 1, top + 1))
        for r in readers:
            r.wait_for(lambda r=r: r.seqs()[-1:] == [top], timeout=30)
            assert r.seqs() == want
        # Last-Event-ID (what a reconnecting EventSource sends) wins over ?after=
        again = StreamReader(board, after=0, last_event_id=mark + 2)
        again.wait_for(lambda: again.seqs()[-1:] == [top], timeout=30)
        assert again.seqs() == want[2:]
        names = [n for n, _, _ in again.frames]
        assert names[0] == "liveness" and again.frames[0][2]["full"] is True
        assert again.frames[1][1] == str(mark + 3)  # the SSE id is the seq
        # the last event's frame (a liveness frame may follow it: the server publishes
        # liveness changes on its own clock, so one can land after the events)
        item = [f for f in again.frames if f[0] != "liveness"][-1][2]["item"]
        assert item["worker"] == "sse-1" and item["heartbeat"]["note"].startswith("5 ")
        again.close()
        assert board.get("/api/info", token=True)[0] == 200
    finally:
        stalled.close()
        for r in readers:
            r.close()
    # the server lets go of every closed stream
    deadline = time.monotonic() + 30
    while board.json("/api/info").get("streams", 0) > 0:
        assert time.monotonic() < deadline, board.json("/api/info")
        time.sleep(0.1)
