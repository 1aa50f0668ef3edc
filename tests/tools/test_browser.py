"""The browser driver (tests/browser.py) against a tiny site served on 127.0.0.1: navigation,
evaluate and wait_for, errors collected, screenshots, offline, requests refused outside
loopback, HttpOnly cookies, several pages at once, and nothing left behind."""

import json
import os
import signal
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import browser as driver

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tiny</title><link rel="icon" href="data:,"></head>
<body style="margin:0;background:%(colour)s">
<ul id="rows"></ul>
<div style="height:%(height)spx"></div>
<script>
  console.error("boom", 42);
  setTimeout(() => { throw new Error("kaboom"); }, 0);
  // Rows arrive later, from the server: wait_for must wait for them.
  setTimeout(async () => {
    const rows = await (await fetch("/rows.json")).json();
    for (const r of rows) {
      const li = document.createElement("li"); li.textContent = r; document.getElementById("rows").append(li);
    }
  }, 300);
</script>
%(extra)s
</body></html>"""


class Site:
    def __init__(self):
        self.hits = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path, _, query = self.path.partition("?")
                site.hits[path] += 1
                params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
                headers = {}
                if path == "/":
                    body = PAGE % {
                        "colour": params.get("colour", "white"),
                        "height": params.get("height", "10"),
                        "extra": site.extra,
                    }
                    kind = "text/html; charset=utf-8"
                    headers["Set-Cookie"] = "session=s3cret; HttpOnly; SameSite=Strict; Path=/"
                elif path == "/rows.json":
                    body, kind = json.dumps(["a", "b", "c"]), "application/json"
                elif path == "/events":  # a server-sent event stream, one event at a time
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Cache-Control", "no-store")
                    self.end_headers()
                    for i in range(3):
                        self.wfile.write(f"id: {i}\ndata: event {i}\n\n".encode())
                        self.wfile.flush()
                        if not site.release.wait(30):
                            return
                        site.release.clear()
                    return
                else:
                    self.send_error(404)
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.extra = ""
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def site():
    s = Site()
    yield s
    s.close()


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_goto_evaluate_and_wait_for(page, site):
    assert page.goto(site.url) == 200
    assert page.evaluate("document.title") == "tiny"
    assert page.evaluate("1 + 2") == 3
    assert page.evaluate("({a: [1, 'x', null], b: true})") == {"a": [1, "x", None], "b": True}
    assert page.evaluate("undefined") is None
    assert page.evaluate("new Promise(r => setTimeout(() => r('later'), 50))") == "later"
    # The rows arrive 300 ms after load: wait_for waits, and returns the truthy value.
    rows = "[...document.querySelectorAll('#rows li')].map(li => li.textContent)"
    assert page.wait_for(f"{rows}.length === 3 && {rows}") == ["a", "b", "c"]
    with pytest.raises(driver.JSError, match="ReferenceError: nope is not defined"):
        page.evaluate("nope()")


def test_wait_for_times_out_with_the_last_value_or_error(page, site):
    page.goto(site.url)
    page.wait_for("document.querySelectorAll('#rows li').length === 3")
    with pytest.raises(TimeoutError, match=r"last: 0"):
        page.wait_for("document.querySelectorAll('#rows li').length - 3", timeout=0.5)
    with pytest.raises(TimeoutError, match="ReferenceError"):
        page.wait_for("missing.thing", timeout=0.5)


def test_console_errors_and_uncaught_exceptions_are_collected(page, site):
    page.goto(site.url)
    page.wait_for("document.querySelectorAll('#rows li').length === 3")
    assert "boom 42" in page.console_errors
    assert any("Error: kaboom" in e for e in page.page_errors), page.page_errors
    assert ("error", "boom 42") in page.console
    page.evaluate("console.log('hello')")
    page.wait_for("true")
    assert ("log", "hello") in page.console and "hello" not in page.console_errors


def test_screenshot_is_a_png_of_the_page(page, site, tmp_path):
    page.goto(site.url + "?colour=red")
    red = page.screenshot(tmp_path / "red.png")
    assert png_size(red) == (1280, 800)
    page.goto(site.url + "?colour=blue&height=3000")
    blue = page.screenshot(tmp_path / "blue.png")
    assert png_size(blue) == (1280, 800) and blue.read_bytes() != red.read_bytes()
    width, height = png_size(page.screenshot(tmp_path / "full.png", full_page=True))
    assert width == 1280 and height >= 3000


def test_offline_fails_every_request_then_comes_back(page, site):
    assert page.goto(site.url) == 200
    fetch_rows = "fetch('/rows.json').then(r => r.json()).then(j => j.length, e => 'failed: ' + e.message)"
    assert page.evaluate(fetch_rows) == 3
    page.set_offline(True)
    before = site.hits["/rows.json"]
    assert page.evaluate(fetch_rows).startswith("failed")
    with pytest.raises(driver.BrowserError, match="ERR_INTERNET_DISCONNECTED"):
        page.goto(site.url)
    assert site.hits["/rows.json"] == before  # nothing reached the server
    page.set_offline(False)
    assert page.goto(site.url) == 200  # (the failed goto left chromium's error page)
    assert page.evaluate(fetch_rows) == 3


def test_requests_outside_loopback_are_refused_and_listed(page, site):
    # 0.0.0.0 is not loopback by the rule, yet would reach this machine's own server if the
    # refusal failed: the test never sends a packet off the machine either way.
    outside = f"http://0.0.0.0:{site.port}/rows.json"
    site.extra = f'<img id="pixel" src="{outside}?img=1">'
    page.goto(site.url)
    page.wait_for("document.querySelectorAll('#rows li').length === 3")  # loopback goes through
    result = page.evaluate(f"fetch('{outside}?fetch=1').then(() => 'loaded', e => 'refused: ' + e.message)")
    assert result.startswith("refused")
    assert f"{outside}?fetch=1" in page.blocked and f"{outside}?img=1" in page.blocked
    assert all(driver._is_loopback(u) for u in page.requests if u not in page.blocked)
    assert site.hits["/rows.json"] == 1  # only the page's own loopback fetch
    assert driver._is_loopback("http://[::1]:8/") and driver._is_loopback("http://127.8.0.1/")
    assert driver._is_loopback("http://localhost:1/") and not driver._is_loopback("http://10.0.0.1/")


def test_an_event_stream_arrives_event_by_event_through_the_page_fixture(page, site):
    """The `page` fixture intercepts requests (block_external): a stream must still flow."""
    page.goto(site.url)
    page.evaluate(
        "window.got = []; const es = new EventSource('/events');"
        "es.onmessage = e => { window.got.push(e.data); if (window.got.length === 3) es.close(); }"
    )
    assert page.wait_for("window.got.length === 1 && window.got") == ["event 0"]
    for n in (2, 3):
        site.release.set()  # the server sends the next event only now
        page.wait_for(f"window.got.length === {n}")
    assert page.evaluate("window.got") == ["event 0", "event 1", "event 2"]
    site.release.set()


def test_cookies_include_httponly_ones(page, site):
    page.goto(site.url)
    cookies = {c["name"]: c for c in page.cookies()}
    assert cookies["session"]["value"] == "s3cret"
    assert cookies["session"]["httpOnly"] is True and cookies["session"]["sameSite"] == "Strict"
    assert "s3cret" not in page.evaluate("document.cookie")  # hidden from the page's script


def test_several_pages_at_once_each_isolated(browser, site):
    pages = [browser.new_page() for _ in range(5)]
    try:
        for i, p in enumerate(pages):
            p.goto(f"{site.url}?colour=c{i}")
        for i, p in enumerate(pages):
            assert p.evaluate("location.search") == f"?colour=c{i}"
        pages[0].evaluate("document.cookie = 'only=here'")
        assert "only=here" in pages[0].evaluate("document.cookie")
        assert "only=here" not in pages[1].evaluate("document.cookie")  # own browser context
        for p in pages:
            p.wait_for("document.querySelectorAll('#rows li').length === 3")
    finally:
        for p in pages:
            p.close()
    assert all(p not in browser.pages for p in pages)
    with pytest.raises(driver.BrowserError):
        pages[0].evaluate("1")


def _chromium_processes(profile: Path) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if f"--user-data-dir={profile}".encode() in cmdline and state != "Z":
                found.append(int(entry))
    return found


def test_close_leaves_no_process_and_no_profile(site):
    b = driver.Browser().launch()
    profile = b.profile
    page = b.new_page()
    page.goto(site.url)
    assert _chromium_processes(profile)
    b.close()
    assert not profile.exists() and _chromium_processes(profile) == []
    assert not b.alive
    with pytest.raises(driver.BrowserError):
        page.evaluate("1")


def test_a_crashed_browser_fails_fast_and_is_cleaned_up(site):
    b = driver.Browser().launch()
    try:
        page = b.new_page()
        page.goto(site.url)
        os.killpg(b.proc.pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(driver.BrowserError):
            page.evaluate("1")
            page.wait_for("false", timeout=60)
        assert time.monotonic() - started < 20  # not a command timeout
        assert not b.alive
    finally:
        profile = b.profile
        b.close()
    assert not profile.exists()
