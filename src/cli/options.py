"""Shared options (--json, --as, --home) defined once, the per-invocation State they fill
(wherever they were given), option types and bounds."""

import math
import os

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

    def open(self, reading: bool = False):
        """The command's store, opened once and closed when the command ends. `reading`:
        a read command, which first imports lines a pull brought (coord.app.catchup)."""
        if self.coord is None:
            from ..app.context import Coord

            self.coord = Coord(self.home, actor=None, on_warning=_warn)
            ctx = click.get_current_context()
            ctx.call_on_close(self.coord.close)
            for note in self.coord.home.config_notes:
                _warn(note)
            if reading:
                from ..app.catchup import catch_up

                catch_up(self.coord, _warn)
        return self.coord

    def open_reading(self):
        return self.open(reading=True)


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


def _state_of(ctx) -> State:
    """The invocation's State: the one run_main gave the root context (so it can read the
    parsed --json after an error), else one kept in the root's meta."""
    root = ctx.find_root()
    if isinstance(root.obj, State):
        return root.obj
    return root.meta.setdefault("coord_state", State())


def state() -> State:
    return _state_of(click.get_current_context())


def _set(attr):
    def cb(ctx, param, value):
        if value is not None and value is not False:
            setattr(_state_of(ctx), attr, value)
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


def _warn(text: str) -> None:
    """A warning on stderr (coord.cli.output.warn, which imports this module)."""
    click.echo(f"warning: {text}", err=True)


def attempt_option(f):
    return click.option(
        "--attempt",
        type=click.IntRange(min=1),
        metavar="N",
        help="Only if N is the worker's current attempt (exit 4 otherwise; default: "
        "COORD_ATTEMPT when COORD_WORKER names this worker).",
    )(f)
