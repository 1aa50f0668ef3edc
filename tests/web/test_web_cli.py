"""`coord serve` on the command line: what it refuses before it listens (one line, the
documented exit code), --token-file, its exit on SIGINT/SIGTERM, and that no other command
(nor `serve --help`) imports the web stack."""

import json
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from boardserver import BoardServer, coord, coord_env
from helpers import imported


@pytest.fixture
def web_home(tmp_path):
    home = tmp_path / ".coord"
    coord(home, "init")
    return home


def serve(home, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "coord", "serve", *map(str, args)],
        env=coord_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_refusals_before_listening(web_home, tmp_path):
    cases = [
        (("--host", "evil.example"), 2, "bad --host"),
        (("--port", "70000"), 2, "70000"),
        (("--token-file", tmp_path / "missing"), 2, "no such token file"),
    ]
    short = tmp_path / "short"
    short.write_text("abc\n")
    cases.append((("--token-file", short), 2, "at least 16 characters"))
    for args, code, words in cases:
        r = serve(web_home, "--port", "0", *args)
        assert r.returncode == code, (args, r.stderr)
        assert words in r.stderr and r.stderr.count("\n") == 1 and r.stdout == "", (args, r.stderr)
    token = web_home / "serve.token"
    token.write_text("x" * 43 + "\n")
    os.chmod(token, 0o644)
    r = serve(web_home, "--port", "0")
    assert r.returncode == 4 and "read by others" in r.stderr and r.stdout == ""
    token.unlink()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        r = serve(web_home, "--port", taken.getsockname()[1])
        assert r.returncode == 4 and "in use" in r.stderr and r.stdout == ""
    finally:
        taken.close()
    r = serve(tmp_path / "nowhere" / ".coord", "--port", "0")
    assert r.returncode == 3, r.stderr


def test_token_file_and_the_printed_address(web_home, tmp_path):
    mine = tmp_path / "token"
    mine.write_text("my-own-token-0123456789abcdef\n")
    server = BoardServer(web_home, args=("--token-file", mine)).start()
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/#token=my-own-token-0123456789abcdef"
        assert server.info["token_file"] == str(mine) and server.info["token_created"] is False
        assert server.get("/api/info", token="my-own-token-0123456789abcdef")[0] == 200
        assert not (web_home / "serve.token").exists()
    finally:
        assert server.stop() == 0
    server = BoardServer(web_home).start()  # the default: generated into the home, 0600
    try:
        path = web_home / "serve.token"
        assert server.token == path.read_text().strip() and server.info["token_created"] is True
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        assert server.stop() == 0
    # the text form prints the address once, and only that
    p = subprocess.Popen(
        [sys.executable, "-m", "coord", "serve", "--port", "0"],
        env=coord_env(web_home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        assert line.startswith("http://127.0.0.1:") and line.rstrip().endswith("#token=" + server.token)
    finally:
        p.send_signal(signal.SIGINT)  # Ctrl-C: exit 0, nothing more said
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0 and out == "" and "Traceback" not in err, err


def test_serve_help_and_other_commands_import_no_web_stack(web_home, tmp_path):
    env = coord_env(web_home)
    for args in (["--help"], ["serve", "--help"], ["status"]):
        r, names = imported(["-m", "coord", *args], env, tmp_path)
        assert r.returncode == 0, r.stderr
        assert not names & {"starlette", "uvicorn", "anyio", "h11"}, (args, names & {"starlette", "uvicorn"})
    r = subprocess.run(
        [sys.executable, "-m", "coord", "--json", "serve", "--host", "nope!"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and json.loads(r.stderr)["error"]["exit"] == 2
