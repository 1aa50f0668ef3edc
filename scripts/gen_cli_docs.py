"""Generate docs/cli.md from the commands' --help (run with --check to compare only).

.venv/bin/python scripts/gen_cli_docs.py          # rewrite docs/cli.md
.venv/bin/python scripts/gen_cli_docs.py --check  # exit 1 if it is out of date
"""

import sys
from pathlib import Path

import click

from coord.cli import cli

OUT = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def render() -> str:
    parts = [
        "# coord command reference\n",
        "Generated from `coord --help` and each command's `--help` by "
        "`scripts/gen_cli_docs.py`; `tests/cli/test_docs.py` fails when it drifts.\n",
        "Global options (`--json`, `--as NAME`, `--home PATH`) are accepted before or after "
        "the command name. Exit codes: 0 done, 1 unexpected, 2 usage, 3 not found, "
        "4 refused, 5 integrity, 6 timed out, 7 busy.\n",
    ]

    def help_of(cmd, name, parent=None):
        ctx = click.Context(
            cmd,
            info_name=name,
            parent=parent,
            terminal_width=88,
            max_content_width=88,
            help_option_names=["-h", "--help"],
        )
        return cmd.get_help(ctx), ctx

    text, root = help_of(cli, "coord")
    parts.append("## coord\n\n```\n" + text + "\n```\n")
    for name in cli.list_commands(root):
        cmd = cli.get_command(root, name)
        text, ctx = help_of(cmd, name, root)
        parts.append(f"## coord {name}\n\n```\n{text}\n```\n")
        if isinstance(cmd, click.Group):
            for sub in cmd.list_commands(ctx):
                text, _ = help_of(cmd.get_command(ctx, sub), sub, ctx)
                parts.append(f"### coord {name} {sub}\n\n```\n{text}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    new = render()
    if "--check" in sys.argv:
        old = OUT.read_text() if OUT.exists() else ""
        sys.exit(0 if old == new else "docs/cli.md is out of date: run scripts/gen_cli_docs.py")
    OUT.write_text(new)
