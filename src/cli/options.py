"""Shared options (--json, --as, --home) defined once, option types, error printing, and
output helpers."""

import math
import os
import re
import sys

import click

from ..events.errors import CoordError, UsageError

# Upper bounds of numeric options, so no number reaches SQLite, a sleep or a string
# repetition it cannot hold (exit 2 instead of an OverflowError).
MAX_COUNT = 1_000_000_000
MAX_WIDTH = 10_000
MAX_SECONDS = 1e9


def _login_name() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return f"uid{os.getuid()}"


class State:
    """Per-invocation settings gathered from global options, wherever they were given."""

    def __init__(self):
        self.json = False
        self.actor = None
        self.home = None
        self.coord = None

    def identity(self, explicit_required: bool = False) -> str:
        actor = self.actor or os.environ.get("COORD_AGENT") or None
        if actor is None:
            if explicit_required:
                raise UsageError("this command needs an explicit identity: --as NAME or COORD_AGENT")
            actor = "human:" + (os.environ.get("USER") or os.environ.get("LOGNAME") or _login_name())
        from ..events.shapes import name_problem

        why = name_problem(actor)
        if why is not None:
            raise UsageError(why)
        return actor

    def open(self):
        """The command's store, opened once and closed when the command ends."""
        if self.coord is None:
            from ..app.lifecycle import Coord

            self.coord = Coord(self.home, actor=None, on_warning=warn)
            ctx = click.get_current_context()
            ctx.call_on_close(self.coord.close)
            for note in self.coord.home.config_notes:
                warn(note)
        return self.coord


def current_home_path():
    """The home's path if there is one (for refusing output files inside it); never fails."""
    st = state()
    if st.coord is not None:
        return st.coord.home.path
    from ..events.home import find_home

    try:
        return find_home(st.home).path
    except (CoordError, OSError):
        return None


class FiniteFloat(click.FloatRange):
    """A float option that is a real number in range: nan and inf are refused (exit 2)."""

    name = "float"

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number.", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


def state() -> State:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if "coord_state" not in root.meta:
        root.meta["coord_state"] = State()
    return root.meta["coord_state"]


def _set(attr):
    def cb(ctx, param, value):
        if value is not None and value is not False:
            st = ctx.find_root().meta.setdefault("coord_state", State())
            setattr(st, attr, value)
        return value

    return cb


def global_options(f):
    """--json, --as, --home: accepted before or after the subcommand name."""
    f = click.option(
        "--home",
        metavar="PATH",
        expose_value=False,
        callback=_set("home"),
        help="The home (.coord directory) to use; default: COORD_HOME or walk up.",
    )(f)
    f = click.option(
        "--as",
        "actor",
        metavar="NAME",
        expose_value=False,
        callback=_set("actor"),
        help="Act as NAME (default: COORD_AGENT, else human:$USER).",
    )(f)
    f = click.option(
        "--json",
        "json_",
        is_flag=True,
        default=None,
        expose_value=False,
        callback=_set("json"),
        help="Print JSON (JSON lines for streams).",
    )(f)
    return f


def request_id_option(f):
    return click.option(
        "--request-id",
        metavar="KEY",
        help="Idempotency key: a repeat with a key already used returns the first result and appends "
        "nothing; the same key with other arguments is refused (exit 4).",
    )(f)


# --- output --------------------------------------------------------------------------
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
def _json_wanted(argv) -> bool:
    return "--json" in argv


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
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = _json_wanted(argv)
    try:
        check_utf8(argv)
        rv = cli.main(args=argv, prog_name="coord", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except CoordError as e:
        return report_error(e.code, e.message, e.exit_code, as_json)
    except click.UsageError as e:
        if type(e).__name__ == "NoArgsIsHelpError":
            click.echo(e.format_message())  # a bare `coord`: the help, as `coord --help` shows it
            return 0
        where = ""
        if not isinstance(e, click.exceptions.NoSuchOption) and e.ctx and e.ctx.parent:
            where = f" (see 'coord {e.ctx.info_name} --help')"
        return report_error("usage", e.format_message() + where, 2, as_json)
    except click.exceptions.Abort:
        return report_error("interrupted", "interrupted", 130, as_json)
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
        return report_error("permission", err.message, 1, as_json)
    except Exception as e:  # a bug or an I/O error: one line, no traceback
        if os.environ.get("COORD_DEBUG"):
            raise
        return report_error("unexpected", f"unexpected {type(e).__name__}: {e}", 1, as_json)
