"""The `coord` command: one click group whose subcommands load lazily, so one action
imports only the module it needs (start-up dominates a CLI called once per action)."""

import importlib
import sys

import click

# command name -> "module:function" under coord.cli. Features add their commands here.
COMMANDS = {
    "init": "admin:init_cmd",
    "config": "admin:config_cmd",
    "rebuild": "admin:rebuild_cmd",
    "backup": "admin:backup_cmd",
    "migrate": "admin:migrate_cmd",
    "spawn": "lifecycle:spawn",
    "start": "lifecycle:start",
    "heartbeat": "lifecycle:heartbeat",
    "done": "lifecycle:done",
    "approve": "lifecycle:approve",
    "request-changes": "lifecycle:request_changes",
    "merge": "lifecycle:merge",
    "release": "lifecycle:release",
    "cancel": "lifecycle:cancel",
    "fail": "lifecycle:fail",
    "retry": "lifecycle:retry",
    "status": "board:status",
    "show": "show:show",
    "log": "log:log",
    "replay": "replay:replay",
    "stats": "stats:stats",
    "timeline": "timeline:timeline",
    "export": "audit:export_cmd",
    "import": "audit:import_cmd",
    "verify": "audit:verify_cmd",
    "send": "messages:send",
    "poll": "messages:poll",
    "ack": "messages:ack",
    "search": "search:search",
    "blob": "blobs:blob",
    "run": "run:run_cmd",
    "reap": "run:reap_cmd",
    "serve": "serve:serve",
    "watchdog": "watchdog:watchdog_cmd",
    "dep": "graph:dep",
    "priority": "graph:priority",
    "ready": "graph:ready",
    "prime": "agents:prime",
    "mcp": "agents:mcp_cmd",
    "sync": "sync:sync_cmd",
    "check": "checks:check_cmd",
    "queue": "checks:queue_cmd",
    "overlap": "checks:overlap_cmd",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        mod, attr = spec.split(":")
        return getattr(importlib.import_module(f"coord.cli.{mod}"), attr)


from .options import global_options  # noqa: E402


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(package_name="coord", prog_name="coord")
def cli():
    """coord: a crash-safe coordination log for teams of AI coding agents.

    Every action appends one immutable, hash-id event; the board and liveness are folded
    from the events. Exit codes: 0 done, 1 unexpected, 2 usage, 3 not found, 4 refused,
    5 integrity, 6 timed out, 7 busy (safe to retry).

    \b
    Example:
      coord init && coord spawn w-1 --task "fix the parser"
      COORD_AGENT=agent-1 coord start w-1
    """


def main(argv=None):
    from .output import run_main

    sys.exit(run_main(cli, argv))
