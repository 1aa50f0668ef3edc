"""A real browser for the tests: Debian's headless `chromium` driven over the Chrome DevTools
Protocol (CDP), through the `websockets` package's sync client. CDP rather than WebDriver
because the tests need what WebDriver only has as vendor extensions: console messages and
uncaught errors as events, network emulation (offline), request interception (refuse every
request that leaves loopback) and HttpOnly cookies; and it needs no second process
(chromedriver) in between.

    with Browser() as browser:
        page = browser.new_page()               # isolated=True: its own cookies and storage
        status = page.goto("http://127.0.0.1:8000/")    # waits for the load event
        page.evaluate("document.title")        # -> a JSON value
        page.wait_for("document.querySelectorAll('tr').length == 3", timeout=30)
        page.screenshot("board.png")
        page.block_external()                   # non-loopback requests fail, listed in page.blocked
        page.set_offline(True)                  # every request fails, loopback included
        page.console_errors, page.page_errors, page.requests, page.cookies()

One websocket to the browser carries every page (flattened sessions), so twenty pages at
once cost twenty targets, not twenty connections. tests/conftest.py offers `browser` (one
per session, started when first asked for) and `page` (a fresh isolated page per test)."""

from __future__ import annotations

import atexit
import base64
import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

MISSING = "needs Debian's chromium (.ci/run installs it)"

FLAGS = [
    "--headless",
    "--no-sandbox",  # as root, chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-proxy-server",  # tests talk to loopback only; ignore any proxy in the environment
    "--password-store=basic",
    "--mute-audio",
    "--hide-scrollbars",
]


class BrowserUnavailable(RuntimeError):
    """No chromium on this machine: a missing component, not a bug."""


class BrowserError(RuntimeError):
    """The browser or a DevTools command failed."""


class JSError(BrowserError):
    """The page's JavaScript threw; the message carries its description."""


def find_chromium() -> str | None:
    """$COORD_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    return os.environ.get("COORD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Reply:
    __slots__ = ("event", "message")

    def __init__(self):
        self.event = threading.Event()
        self.message = None


class Browser:
    """One headless chromium with a fresh profile. Use as a context manager, or call
    launch() and close(); close() is also registered at exit."""

    def __init__(self, *, executable: str | None = None, width: int = 1280, height: int = 800, timeout=30):
        self.executable = executable or find_chromium()
        if not self.executable:
            raise BrowserUnavailable(MISSING)
        self.width, self.height, self.timeout = width, height, timeout
        self.pages: list[Page] = []
        self.proc: subprocess.Popen | None = None
        self.profile: Path | None = None
        self._ws = None
        self._ids = itertools.count(1)
        self._replies: dict[int, _Reply] = {}
        self._sessions: dict[str, Page] = {}
        self._lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._closed_reason: str | None = None

    # ---- lifecycle ----
    def __enter__(self) -> Browser:
        return self.launch()

    def __exit__(self, *exc) -> None:
        self.close()

    def launch(self) -> Browser:
        from websockets.sync.client import connect  # an optional test dependency

        self.pages, self._replies, self._sessions, self._closed_reason = [], {}, {}, None
        self._exit = contextlib.ExitStack()
        self.profile = Path(tempfile.mkdtemp(prefix="coord-chromium-"))
        _LIVE.add(self)
        log = open(self.profile.parent / f"{self.profile.name}.log", "wb")  # noqa: SIM115
        self._log_path = Path(log.name)
        try:
            self.proc = subprocess.Popen(
                [
                    self.executable,
                    *FLAGS,
                    f"--user-data-dir={self.profile}",
                    f"--window-size={self.width},{self.height}",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its own process group: killed whole at close
            )
        finally:
            log.close()
        try:
            port, path = self._devtools_address()
            connection = connect(
                f"ws://127.0.0.1:{port}{path}",
                max_size=None,  # screenshots are megabytes of base64
                compression=None,
                proxy=None,
                ping_interval=None,
                open_timeout=self.timeout,
            )
            # Entered as a context manager (what websockets asks for), left in close().
            self._ws = self._exit.enter_context(connection)
        except BaseException:
            self.close()
            raise
        self._reader = threading.Thread(target=self._read, name="cdp-reader", daemon=True)
        self._reader.start()
        return self

    def _devtools_address(self) -> tuple[int, str]:
        """chromium writes DevToolsActivePort (port, then the browser's path) into its
        profile once it listens; --remote-debugging-port=0 let it pick a free port."""
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + max(self.timeout, 60)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(f"chromium exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                lines = active.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].startswith("/"):
                    return int(lines[0]), lines[1].strip()
            except OSError:
                pass
            time.sleep(0.05)
        raise BrowserError(f"chromium did not open its DevTools port: {self.log_tail()}")

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self._closed_reason is None

    def close(self) -> None:
        """Close the browser (gracefully, then by SIGKILL to its process group) and remove
        its profile. Safe to call twice."""
        if self.proc is not None and self.proc.poll() is None and self._ws is not None:
            try:
                self._send_nowait("Browser.close")
                self.proc.wait(timeout=10)
            except Exception:
                pass
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)  # helpers (zygote, renderers) too
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        if self._ws is not None:
            try:
                self._exit.close()
            except Exception:
                pass
        if self._reader is not None:
            self._reader.join(timeout=10)
        if self.profile is not None:
            shutil.rmtree(self.profile, ignore_errors=True)
            self._log_path.unlink(missing_ok=True)
        self._fail_all("browser closed")
        _LIVE.discard(self)
        self.proc = self._ws = self._reader = self.profile = None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-chars:]
        except (OSError, AttributeError):
            return "(no log)"

    # ---- pages ----
    def new_page(self, *, isolated: bool = True) -> Page:
        """A new tab at about:blank. isolated=True gives it its own browser context
        (cookies, storage, cache: like a fresh incognito window); isolated=False shares the
        default context with the other non-isolated pages."""
        context = self.send("Target.createBrowserContext")["browserContextId"] if isolated else None
        params = {"url": "about:blank"}
        if context:
            params["browserContextId"] = context
        target = self.send("Target.createTarget", params)["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, target, session, context)
        with self._lock:
            self._sessions[session] = page
        page._attach()
        self.pages.append(page)
        return page

    # ---- protocol ----
    def send(self, method: str, params: dict | None = None, *, session: str | None = None, timeout=None):
        """One DevTools command; returns its result, raises BrowserError on its error."""
        reply = _Reply()
        with self._lock:
            if self._closed_reason:
                raise BrowserError(f"{method}: {self._closed_reason}")
            ident = next(self._ids)
            self._replies[ident] = reply
        message = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        try:
            self._ws.send(json.dumps(message))
        except Exception as e:
            with self._lock:
                self._replies.pop(ident, None)
            raise BrowserError(f"{method}: could not send: {e}")
        if not reply.event.wait(self.timeout if timeout is None else timeout):
            with self._lock:
                self._replies.pop(ident, None)
            raise BrowserError(f"{method}: no answer within {self.timeout if timeout is None else timeout}s")
        answer = reply.message
        if "error" in answer:
            raise BrowserError(
                f"{method}: {answer['error'].get('message')} {answer['error'].get('data', '')}"
            )
        return answer.get("result", {})

    def _send_nowait(self, method: str, params: dict | None = None, *, session: str | None = None) -> None:
        """A command whose answer nobody waits for (the reader thread cannot wait for
        itself: it sends these in answer to events)."""
        message = {"id": next(self._ids), "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))

    def _read(self) -> None:
        try:
            for raw in self._ws:
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        reply = self._replies.pop(message["id"], None)
                    if reply is not None:
                        reply.message = message
                        reply.event.set()
                elif "method" in message:
                    self._dispatch(message)
            reason = "the browser closed the DevTools connection"
        except Exception as e:
            reason = f"the DevTools connection broke: {e!r}"
        self._fail_all(reason)

    def _dispatch(self, message: dict) -> None:
        method, params = message["method"], message.get("params", {})
        session = message.get("sessionId")
        if method == "Target.detachedFromTarget":
            session = params.get("sessionId")
            with self._lock:
                page = self._sessions.pop(session, None)
            if page is not None:
                page._detached()
            return
        with self._lock:
            page = self._sessions.get(session) if session else None
        if page is not None:
            try:
                page._on_event(method, params)
            except Exception as e:  # never let one odd event stop the reader
                page.page_errors.append(f"(driver) {method}: {e!r}")

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            self._closed_reason = self._closed_reason or reason
            replies, self._replies = list(self._replies.values()), {}
        for reply in replies:
            reply.message = {"error": {"message": reason}}
            reply.event.set()


class Page:
    """One tab, attached through its own session.

    Collected as they happen:
    - console_errors: console.error()/console.assert() texts and browser log errors (a
      failed resource load, a Content-Security-Policy violation, a blocked request);
    - page_errors: uncaught exceptions and unhandled promise rejections;
    - console: every console call as (type, text);
    - requests: the URL of every request the page sent (any scheme but data:);
    - blocked: the URLs block_external() refused."""

    def __init__(self, browser: Browser, target_id: str, session_id: str, context_id: str | None):
        self.browser = browser
        self.target_id, self.session_id, self.context_id = target_id, session_id, context_id
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.console: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.closed = False
        self._block_external = False
        self._lifecycle: list[tuple[str, str]] = []  # (loaderId, name)
        self._statuses: dict[str, int] = {}  # loaderId -> HTTP status of the document
        self._changed = threading.Condition()

    def _attach(self) -> None:
        for method in ("Page.enable", "Runtime.enable", "Network.enable", "Log.enable"):
            self.send(method)
        self.send("Page.setLifecycleEventsEnabled", {"enabled": True})
        metrics = {"width": self.browser.width, "height": self.browser.height}
        self.send("Emulation.setDeviceMetricsOverride", {**metrics, "deviceScaleFactor": 1, "mobile": False})

    def send(self, method: str, params: dict | None = None, timeout=None):
        return self.browser.send(method, params, session=self.session_id, timeout=timeout)

    # ---- navigation ----
    def goto(self, url: str, timeout: float = 30) -> int | None:
        """Navigate and wait for the load event. Returns the document's HTTP status
        (None for about:, data:, file: and same-document navigations); raises BrowserError
        when the navigation failed (e.g. net::ERR_INTERNET_DISCONNECTED)."""
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"goto {url}: {result['errorText']}")
        loader = result.get("loaderId")
        if loader is None:
            return None  # same document (a #fragment change): nothing loads
        self._wait_lifecycle(loader, "load", timeout, url)
        return self._statuses.get(loader)

    def reload(self, timeout: float = 30) -> int | None:
        return self.goto(self.evaluate("location.href"), timeout)

    def _wait_lifecycle(self, loader: str, name: str, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while (loader, name) not in self._lifecycle:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"goto {what}: no {name} event within {timeout}s")
                if self.closed:
                    raise BrowserError(f"goto {what}: the page was closed")
                self._changed.wait(min(left, 0.5))

    # ---- script ----
    def evaluate(self, expression: str, timeout: float | None = None):
        """Evaluate a JavaScript expression in the page (promises are awaited) and return
        its value as JSON gives it (undefined -> None). Raises JSError if it throws."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            timeout=timeout,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise JSError(f"{expression!r} threw: {text}")
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 30, interval: float = 0.1):
        """Poll the expression until it is truthy and return its value. A throw counts as
        not yet (the element may not exist yet; the page may be navigating). On timeout,
        raises TimeoutError naming the last value or error."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                value = self.evaluate(expression, timeout=max(1.0, deadline - time.monotonic()))
                if value:
                    return value
                last = value
            except BrowserError as e:  # JSError included
                if self.closed or not self.browser.alive:
                    raise
                last = e
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"wait_for({expression!r}): still not true after {timeout}s; last: {last!r}"
                )
            time.sleep(interval)

    # ---- pictures, network, cookies ----
    def screenshot(self, path, *, full_page: bool = False) -> Path:
        """A PNG of the viewport (or the whole page)."""
        params = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.send("Page.captureScreenshot", params, timeout=60)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def set_offline(self, offline: bool = True) -> None:
        """Emulate a lost network: every request fails, loopback included; open
        connections (an event stream) are dropped."""
        self.send(
            "Network.emulateNetworkConditions",
            {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )

    def block_external(self, block: bool = True) -> None:
        """Refuse every http(s) request to a host outside loopback (127.0.0.0/8, ::1,
        localhost) and list it in self.blocked; loopback requests go through."""
        self._block_external = block
        if block:
            self.send("Fetch.enable", {"patterns": [{"urlPattern": "*", "requestStage": "Request"}]})
        else:
            self.send("Fetch.disable")

    def cookies(self, urls: list[str] | None = None) -> list[dict]:
        """The cookies for the current page (or the given URLs), HttpOnly ones included:
        dicts with name, value, domain, path, httpOnly, secure, sameSite, expires, ..."""
        return self.send("Network.getCookies", {"urls": urls} if urls else {})["cookies"]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.browser.alive:
            try:
                self.browser.send("Target.closeTarget", {"targetId": self.target_id})
                if self.context_id:
                    self.browser.send("Target.disposeBrowserContext", {"browserContextId": self.context_id})
            except BrowserError:
                pass
        if self in self.browser.pages:
            self.browser.pages.remove(self)

    # ---- events (on the reader thread: never wait for an answer here) ----
    def _on_event(self, method: str, params: dict) -> None:
        if method == "Page.lifecycleEvent":
            with self._changed:
                self._lifecycle.append((params.get("loaderId"), params.get("name")))
                self._changed.notify_all()
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith("data:"):
                self.requests.append(url)
        elif method == "Network.responseReceived":
            if params.get("type") == "Document" and params.get("loaderId"):
                self._statuses.setdefault(params["loaderId"], params["response"]["status"])
        elif method == "Fetch.requestPaused":
            url = params["request"]["url"]
            if self._block_external and urlsplit(url).scheme in ("http", "https") and not _is_loopback(url):
                self.blocked.append(url)
                self.browser._send_nowait(
                    "Fetch.failRequest",
                    {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                    session=self.session_id,
                )
            else:
                self.browser._send_nowait(
                    "Fetch.continueRequest", {"requestId": params["requestId"]}, session=self.session_id
                )
        elif method == "Runtime.consoleAPICalled":
            text = " ".join(_remote_text(a) for a in params.get("args", []))
            self.console.append((params.get("type"), text))
            if params.get("type") in ("error", "assert"):
                self.console_errors.append(text)
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.page_errors.append(
                details.get("exception", {}).get("description") or details.get("text", "")
            )
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                where = f" ({entry['url']})" if entry.get("url") else ""
                self.console_errors.append(f"{entry.get('text', '')}{where}")

    def _detached(self) -> None:
        self.closed = True
        with self._changed:
            self._changed.notify_all()


def _remote_text(arg: dict) -> str:
    if "value" in arg:
        return arg["value"] if isinstance(arg["value"], str) else json.dumps(arg["value"])
    return arg.get("description") or arg.get("type", "")


_LIVE: set[Browser] = set()


@atexit.register
def _close_all() -> None:
    for browser in list(_LIVE):
        try:
            browser.close()
        except Exception:
            pass
