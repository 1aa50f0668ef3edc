"""Running the board: bind the socket, say the address once, serve until Ctrl-C/SIGTERM."""

from __future__ import annotations

import ipaddress
import socket
import sys

from .source import CoordError, Refused, Source, UsageError


def check_host(host: str) -> str:
    """An IP address or `localhost` (a name that resolves elsewhere would make the Host
    check meaningless)."""
    h = host.strip()
    if h.lower() == "localhost":
        return "localhost"
    try:
        return str(ipaddress.ip_address(h.strip("[]")))
    except ValueError:
        raise UsageError(
            f"bad --host {host!r}: an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost"
        ) from None


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: any free port)."""
    addr = "127.0.0.1" if host == "localhost" else host
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((addr, port))
    except OSError as e:
        sock.close()
        if e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            raise Refused(
                f"port {port} on {addr} is in use: pick another with --port (or --port 0 for any free one)"
            ) from None
        raise CoordError(f"cannot listen on {addr}:{port}: {e.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(False)
    return sock


def url_of(host: str, port: int, token: str) -> str:
    h = f"[{host}]" if ":" in host else host
    return f"http://{h}:{port}/#token={token}"


def serve(home=None, host: str = "127.0.0.1", port: int = 8765, token_file=None, announce=None) -> None:
    """Serve the board of `home` until interrupted. `announce(info)` is called once the
    socket listens, with {"url", "host", "port", "token_file", "token_created"}."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as e:
        raise CoordError(
            f"coord serve needs the web extra ({e.name} is missing): pip install 'coord[web]'"
        ) from None
    host = check_host(host)
    source = Source(home)
    try:
        token, where, created = source.serve_token(token_file)
        sock = bind(host, port)
        port = sock.getsockname()[1]
        app = create_app(source, token=token, host=host, port=port)
        hub = app.app.state.hub
        # Ctrl-C or SIGTERM end the server with exit 0, like `log -f`, whenever they come:
        # before uvicorn takes the signals over they are noted here (and acted on as soon as
        # it has started); uvicorn raises the one that stopped it again once it is done,
        # into these same handlers, instead of ending the process "killed by a signal".
        import signal

        stopped = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stopped.append(signum))
        if announce is not None:
            announce(
                {
                    "url": url_of(host, port, token),
                    "host": host,
                    "port": port,
                    "token_file": where,
                    "token_created": created,
                }
            )
        config = uvicorn.Config(
            app,
            lifespan="on",
            log_level="warning",
            access_log=False,
            http="h11",
            ws="none",
            loop="asyncio",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=3,
            limit_concurrency=1000,
        )

        class Server(uvicorn.Server):
            def handle_exit(self, sig, frame):
                hub.stop()  # open streams end now, so the shutdown does not wait for them
                super().handle_exit(sig, frame)

            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if stopped:  # asked to stop while starting
                    hub.stop()
                    self.should_exit = True

        Server(config).run(sockets=[sock])
    finally:
        source.close()
    sys.stdout.flush()
