"""`coord serve` as a real process for the tests and benchmarks: started on a free port (or a
given one, to restart in place), ready once /api/info answers; plain HTTP helpers over
http.client, and a reader of the event stream on a thread.

    server = BoardServer(home).start()
    status, headers, body = server.get("/api/status", token=True)
    server.url            # http://127.0.0.1:P/#token=…, as `coord serve` printed it
    server.restart()      # same port, same token
    server.stop()
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def coord_env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORD_")}
    env["COORD_HOME"] = str(home)
    env.update(extra)
    return env


def coord(home: Path, *args, agent: str | None = None, check: bool = True, timeout: float = 60):
    """Run `coord ARGS` as another process against home."""
    env = coord_env(home, **({"COORD_AGENT": agent} if agent else {}))
    r = subprocess.run(
        [sys.executable, "-m", "coord", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and r.returncode != 0:
        raise AssertionError(f"coord {' '.join(map(str, args))} exited {r.returncode}: {r.stderr}")
    return r


class BoardServer:
    def __init__(self, home: Path, port: int = 0, args: tuple = ()):
        self.home = Path(home)
        self.port = port
        self.args = tuple(args)
        self.proc: subprocess.Popen | None = None
        self.info: dict = {}
        self.stderr_path = self.home.parent / f"serve-{os.getpid()}-{id(self)}.err"

    # ---- life ----
    def start(self, timeout: float = 60) -> BoardServer:
        self._err = open(self.stderr_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "coord", "--json", "serve", "--port", str(self.port), *self.args],
            env=coord_env(self.home),
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        line = self.proc.stdout.readline()  # printed once the socket listens
        if not line:
            self.proc.wait(timeout)
            raise RuntimeError(f"coord serve exited {self.proc.returncode}: {self.stderr()}")
        self.info = json.loads(line)
        self.port = self.info["port"]
        self.token = self.info["url"].split("#token=", 1)[1]
        deadline = time.monotonic() + timeout
        while True:  # ready: the application answers
            try:
                if self.get("/api/info", token=True)[0] == 200:
                    return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coord serve did not become ready: {self.stderr()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM, then wait; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc.stdout.close()
        self._err.close()
        code, self.proc = self.proc.returncode, None
        return code

    def restart(self) -> BoardServer:
        self.stop()
        return self.start()

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return self.info["url"]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ---- plain HTTP ----
    def request(self, method: str, path: str, headers: dict | None = None, token=False, body=None, host=None):
        """(status, headers as a lower-cased dict, body bytes)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = f"Bearer {self.token if token is True else token}"
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            c.putrequest(method, path, skip_host=host is not None)
            if host is not None:
                c.putheader("Host", host)
            for k, v in h.items():
                c.putheader(k, v)
            c.endheaders(body)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def json(self, path: str):
        status, _, body = self.get(path, token=True)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)


class StreamReader:
    """GET /api/stream on a thread; collects (event name, id, data) frames."""

    def __init__(self, server: BoardServer, after: int | None = None, last_event_id: int | None = None):
        self.frames: list[tuple[str, str | None, dict | None]] = []
        self.arrived: dict[int, float] = {}  # seq -> time.time() its frame was read
        self.error: BaseException | None = None
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
        headers = {"Authorization": f"Bearer {server.token}"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request(
            "GET", "/api/stream" + (f"?after={after}" if after is not None else ""), headers=headers
        )
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        name, ident, data = "message", None, []
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n").rstrip("\r")
                if line == "":
                    if data:
                        d = json.loads("\n".join(data))
                        self.frames.append((name, ident, d))
                        if name == "coord":
                            self.arrived[d["seq"]] = time.time()
                    name, ident, data = "message", None, []
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "event":
                        name = value
                    elif field == "id":
                        ident = value
                    elif field == "data":
                        data.append(value)
        except BaseException as e:  # closed by close(), or the server went away
            self.error = e

    def seqs(self) -> list[int]:
        return [d["seq"] for name, _, d in list(self.frames) if name == "coord"]

    def wait_for(self, cond, timeout: float = 30):
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream: still waiting after {timeout}s; have {self.seqs()[-5:]}")
            time.sleep(0.05)

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except (OSError, AttributeError):
            pass
        self.conn.close()
        self.thread.join(10)
