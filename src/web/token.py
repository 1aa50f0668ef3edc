"""The board's token: read from a file the user names, else from .coord/serve.token,
created with a new random token when missing (mode 0600, never through a link)."""

from __future__ import annotations

import os
import re
import stat

from ..events.errors import Refused, UsageError
from ..events.files import check_regular, open_in_home, read_file_in_home

TOKEN_NAME = "serve.token"


def serve_token(home, token_file=None) -> tuple[str, str, bool]:
    """(token, where it was read, created): read from `token_file` (a file the user names:
    its first line; at least 16 characters of [A-Za-z0-9._~+/=-]), else from
    .coord/serve.token of `home` (an events.home.Home), created with a new random token
    (mode 0600, never through a link) when missing. A serve.token others may read is
    refused (exit 4)."""
    if token_file is not None:
        try:
            with open(token_file, "rb") as f:
                data = f.read(4096)
        except FileNotFoundError:
            raise UsageError(f"no such token file: {token_file}") from None
        except IsADirectoryError:
            raise UsageError(f"{token_file} is a directory, not a token file") from None
        except PermissionError:
            raise UsageError(f"cannot read the token file {token_file}: permission denied") from None
        return parse_token(data, str(token_file)), str(token_file), False
    path = home.path / TOKEN_NAME
    created = False
    try:
        fd = open_in_home(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = None
    if fd is not None:
        import secrets

        token = secrets.token_urlsafe(32)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, token.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        created = True
    check_regular(path, missing_ok=False)  # a link or a fifo in its place: exit 5
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise Refused(
            f"{path} may be read by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            "remove it (a new token is made) or chmod 600 it"
        )
    data = read_file_in_home(path) or b""
    return parse_token(data, str(path)), str(path), created


def parse_token(data: bytes, where: str) -> str:
    line = data.split(b"\n", 1)[0].strip()
    try:
        token = line.decode("ascii")
    except UnicodeDecodeError:
        raise UsageError(f"{where}: the token is not ASCII") from None
    if not re.fullmatch(r"[A-Za-z0-9._~+/=-]{16,512}", token):
        raise UsageError(
            f"{where}: a token is one line of at least 16 characters of letters, digits and ._~+/=-"
        )
    return token
