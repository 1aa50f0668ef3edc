"""Claim-check blobs directly: put, cat, verify."""

import sys

import click

from ..events.errors import IntegrityError
from .options import global_options, state
from .output import echo, emit_json


@click.group("blob")
@global_options
def blob():
    """Content-addressed blobs in .coord/blobs/ (BLAKE3). Big payloads and `send --file`
    attachments live here; every read re-checks the hash (exit 5 on mismatch).

    \b
    Example:
      coord blob put build.log
      coord blob cat b3:4f2a > copy.log
      coord blob verify
    """


@blob.command("put")
@click.argument("file", metavar="FILE|-")
@global_options
def put(file):
    """Store FILE (or stdin) as a blob, streamed; print its reference. Identical content
    is stored once.

    \b
    Example:
      coord blob put report.pdf
      tar c src | coord blob put -
    """
    st = state()
    blobs = st.open().blobs
    if file == "-":
        ref, size = blobs.put_stream(sys.stdin.buffer)
    else:
        try:
            f = open(file, "rb")
        except FileNotFoundError:
            raise click.BadParameter(f"no such file: {file}", param_hint="FILE") from None
        except IsADirectoryError:
            raise click.BadParameter(f"{file} is a directory", param_hint="FILE") from None
        with f:
            ref, size = blobs.put_stream(f)
    if st.json:
        emit_json({"blob": ref, "size": size})
    else:
        echo(f"{ref} {size}")


@blob.command("cat")
@click.argument("ref", metavar="HASH")
@global_options
def cat(ref):
    """Write a blob's bytes to stdout (HASH: b3:<hex> or a unique prefix). A blob whose
    bytes no longer match its hash is refused (exit 5) before anything is written.

    \b
    Example:
      coord blob cat b3:4f2a | less
    """
    st = state()
    blobs = st.open().blobs
    blobs.copy_to(blobs.resolve(ref), sys.stdout.buffer)


@blob.command("verify")
@global_options
def verify():
    """Re-hash every blob and check every reference in the events; exit 5 on a problem.

    \b
    Example:
      coord blob verify
    """
    st = state()
    c = st.open()
    from ..app.verification import blob_problems

    problems = blob_problems(c)
    n = len(c.blobs.names())
    if st.json:
        emit_json({"blobs": n, "problems": problems})
    else:
        for p in problems:
            echo(p)
        if not problems:
            echo(f"{n} blobs ok")
    if problems:
        raise IntegrityError(f"{len(problems)} blob problem(s): {problems[0]}")
