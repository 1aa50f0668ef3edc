"""Printing, and running the command line: agent text made safe for a terminal (control
characters escaped), JSON on stdout, ages, warnings on stderr; `run_main` checks the
arguments are UTF-8, runs the click group and turns every error into one line (`Error: …`,
or `{"error": {...}}` in JSON mode) with the documented exit code, never a traceback (set
COORD_DEBUG=1 to see one)."""

import os
import sys

import click

from ..events.errors import CoordError, UsageError
from ..projections.boardtext import clean, fmt_age, one_line  # noqa: F401 (used across the CLI)
from .options import State


def emit_json(obj) -> None:
    import msgspec

    sys.stdout.buffer.write(msgspec.json.encode(obj) + b"\n")


def emit_raw_json(data: bytes) -> None:
    sys.stdout.buffer.write(data + b"\n")


def echo(text: str = "") -> None:
    click.echo(text)


def warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


# --- running ---------------------------------------------------------------------
def _json_before_dashes(argv) -> bool:
    """--json among the options click was given (before a `--`: what follows is a child's
    command line, `coord run ID -- CMD --json`)."""
    end = argv.index("--") if "--" in argv else len(argv)
    return "--json" in argv[:end]


def report_error(code: str, message: str, exit_code: int, as_json: bool) -> int:
    message = " ".join(str(message).split()) or code
    if as_json:
        import msgspec

        sys.stderr.buffer.write(
            msgspec.json.encode({"error": {"code": code, "message": message, "exit": exit_code}}) + b"\n"
        )
    else:
        click.echo(f"Error: {message}", err=True)
    return exit_code


def check_utf8(argv) -> None:
    """Every argument (and COORD_* variable) must be UTF-8: what coord records is UTF-8 JSON.
    Python hands undecodable bytes over as lone surrogates; name the first such argument.
    The child command line of `coord run` (after its `--`) is passed on untouched."""
    end = len(argv)
    if _command_of(argv) == "run" and "--" in argv:
        end = argv.index("--")
    for i, a in enumerate(argv[:end], 1):
        try:
            a.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(a).decode("ascii", "backslashreplace")
            raise UsageError(f"argument {i} ({shown}) is not valid UTF-8") from None
    for k, v in os.environ.items():
        if k.startswith("COORD_"):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(f"environment variable {k} is not valid UTF-8") from None


def _command_of(argv) -> str | None:
    """The subcommand's name: the first word that is not a global option or its value."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--home", "--as"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        return a
    return None


def run_main(cli, argv=None) -> int:
    """Run the group on argv. The JSON error mode is decided from the parsed options (the
    State the --json callback set); only when click could not parse the command line
    (a usage error before the options were read) from the options given before `--`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    st = State()
    as_json = False
    try:
        check_utf8(argv)
        rv = cli.main(args=argv, prog_name="coord", standalone_mode=False, obj=st)
        return rv if isinstance(rv, int) else 0
    except CoordError as e:
        return report_error(e.code, e.message, e.exit_code, st.json)
    except click.UsageError as e:
        as_json = st.json or _json_before_dashes(argv)
        if type(e).__name__ == "NoArgsIsHelpError":
            click.echo(e.format_message())  # a bare `coord`: the help, as `coord --help` shows it
            return 0
        where = ""
        if not isinstance(e, click.exceptions.NoSuchOption) and e.ctx and e.ctx.parent:
            where = f" (see 'coord {e.ctx.info_name} --help')"
        return report_error("usage", e.format_message() + where, 2, as_json)
    except click.exceptions.Abort:
        return report_error("interrupted", "interrupted", 130, st.json)
    except click.exceptions.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except SystemExit:
        # click turns a broken pipe into exit 1 after wrapping stdout; a reader that went
        # away (`coord log | head`) is not an error of ours.
        if type(sys.stdout).__name__ == "_PacifyFlushWrapper":
            return 0
        raise
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, and point stdout at /dev/null so
        # the interpreter's final flush cannot fail again.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except PermissionError as e:  # another user's home or file: one line, exit 1 (docs/reliability.md)
        if os.environ.get("COORD_DEBUG"):
            raise
        from ..events.files import denied

        err = denied(e.filename, e) if e.filename else CoordError(f"permission denied: {e.strerror}")
        return report_error("permission", err.message, 1, st.json)
    except Exception as e:  # a bug or an I/O error: one line, no traceback
        if os.environ.get("COORD_DEBUG"):
            raise
        return report_error("unexpected", f"unexpected {type(e).__name__}: {e}", 1, st.json)
