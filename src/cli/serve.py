"""`coord serve`: the live web board. The web stack (starlette, uvicorn) is imported only
here, when the command runs, never on another command's start-up."""

import click

from .options import global_options, state
from .output import echo, emit_json, warn


@click.command()
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=8765,
    show_default=True,
    metavar="P",
    help="Port to listen on (0: any free port; the address printed names it).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    metavar="H",
    help="Address to bind: an IP address or localhost. Anything but loopback lets other machines try.",
)
@click.option(
    "--token-file",
    metavar="F",
    type=click.Path(dir_okay=False),
    help="Read the token from F (its first line) instead of .coord/serve.token.",
)
@global_options
def serve(port, host, token_file):
    """A live, read-only web board: workers, a worker's history, messages, search, the
    timeline and stats, updated as events commit.

    Binds 127.0.0.1 by default and always needs a token: generated into
    .coord/serve.token (mode 0600) or read from --token-file. Prints the address once,
    as http://H:P/#token=…; open it in a browser. Other clients send
    `Authorization: Bearer TOKEN` (the JSON API is under /api/, see docs/web.md).
    Runs until Ctrl-C or SIGTERM (exit 0).

    \b
    Example:
      coord serve
      coord serve --port 0 --json
      curl -H "Authorization: Bearer $(cat .coord/serve.token)" http://127.0.0.1:8765/api/status
    """
    import ipaddress

    from ..web.server import serve as run

    st = state()

    def announce(info):
        h = info["host"]
        loopback = h == "localhost" or ipaddress.ip_address(h).is_loopback
        if not loopback:
            warn(f"serving on {h}: anyone who can reach this address and has the token can read the board")
        if st.json:
            emit_json(info)
        else:
            echo(info["url"])
        click.get_text_stream("stdout").flush()

    run(home=st.home, host=host, port=port, token_file=token_file, announce=announce)
