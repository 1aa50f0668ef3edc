"""Printing: agent text made safe for a terminal (control characters escaped), JSON on
stdout, ages, warnings on stderr."""

import re
import sys

import click

_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean(text) -> str:
    """Text agents wrote, made safe for a terminal: control characters escaped."""
    if text is None:
        return ""
    s = str(text)
    return _CTRL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"), s)


def one_line(text, width: int) -> str:
    s = clean(text).replace("\n", "\\n").replace("\t", " ")
    return s if len(s) <= width else s[: max(0, width - 1)] + "…"


def emit_json(obj) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.encode(obj) + b"\n")


def emit_raw_json(data: bytes) -> None:
    sys.stdout.buffer.write(data + b"\n")


def echo(text: str = "") -> None:
    click.echo(text)


def warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600}h"


# --- running -------------------------------------------------------------------------
