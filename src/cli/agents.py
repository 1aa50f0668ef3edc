"""Agents in the loop: `coord prime` (context for a session's start or after compaction)
and `coord mcp` (the actions as MCP tools over stdio; its server lives in cli/mcp_server.py
and is imported only when the command runs)."""

import click

from .options import FiniteFloat, global_options, state
from .output import clean, echo, emit_json, one_line

TEXT_ITEMS = 5  # inbox items the text form lists (--json lists up to ten)
ROLE_CHOICE = click.Choice(["agent", "lead", "reviewer"], case_sensitive=False)


@click.command()
@click.option(
    "--role",
    type=ROLE_CHOICE,
    help="Prime for this role (default: lead when you lead live work, else agent).",
)
@global_options
def prime(role):
    """What you need at the start of a session or after compaction, in a few hundred
    words: who you are, what you hold (task, branch, worktree, attempt, liveness, what is
    expected next), unread messages and notices (peeked, not acknowledged), and the
    commands with their exit codes. A lead sees the ready queue and who is stale instead.
    `.coord/PRIME.md` replaces the general part.

    \b
    Example:
      COORD_AGENT=agent-1 coord prime
      coord --as lead prime --role lead --json
    """
    import os

    from ..app.prime import prime as build

    st = state()
    explicit = bool(st.actor or os.environ.get("COORD_AGENT"))
    actor = st.identity()
    c = st.open()
    data = build(c, actor, role.lower() if role else None, explicit=explicit)
    if "problem" in data["general"]:
        from .output import warn

        warn(data["general"]["problem"] + "; the builtin guide is shown instead")
    if st.json:
        emit_json(data)
        return
    echo("\n".join(render(data)))


@click.command("mcp")
@click.option(
    "--interval",
    type=FiniteFloat(min=0.05, max=86400),
    metavar="SECONDS",
    help="Heartbeat interval for the worker it started (default: the heartbeat_interval setting).",
)
@global_options
def mcp_cmd(interval):
    """Serve the agent's actions as MCP tools over stdio (needs coord[mcp]).

    Tools: prime, status, show, ready, start, heartbeat, done, fail, release, send, poll,
    ack, search; the same rules and errors as the commands (a tool error carries the exit
    code). The actor is --as (or COORD_AGENT; required). While the client is connected,
    the server heartbeats for the worker it started. See docs/agents.md.

    \b
    Example:
      coord --as agent-1 mcp
      claude mcp add coord -- coord --as agent-1 mcp
    """
    import importlib.util

    from ..events.errors import CoordError
    from ..events.home import find_home

    st = state()
    actor = st.identity(explicit_required=True)
    if importlib.util.find_spec("mcp") is None:
        raise CoordError("coord mcp needs the MCP Python SDK: pip install 'coord[mcp]'")
    home = find_home(st.home)
    from .mcp_server import serve

    serve(home, actor, interval)


def _worker_lines(d: dict) -> list[str]:
    e = d["expected"]
    lines = [
        f"- {clean(d['worker'])}: {d['state']}, attempt {d['attempt']}, liveness {d['liveness'] or '-'}"
        f" (heartbeat every {d['heartbeat_interval']:g}s)",
        f"  task: {one_line(d['task'] or '-', 200)}",
    ]
    if d["branch"] or d["worktree"]:
        lines.append(f"  branch: {clean(d['branch'] or '-')}  worktree: {clean(d['worktree'] or '-')}")
    if d["reason"]:
        lines.append(f"  reason: {one_line(d['reason'], 200)}")
    lines.append(
        f"  next (by {clean(e['by'] or '-')}): {' | '.join(e['actions']) or 'nothing'}; {clean(e['why'])}"
    )
    return lines


def _brief_line(b: dict) -> str:
    who = f" held by {clean(b['holder'])}" if b["holder"] else ""
    live = f" {b['liveness']}" if b["liveness"] else ""
    return f"- {clean(b['worker'])} {b['state']}{live}{who}: {one_line(b['task'] or '-', 80)}"


def render(data: dict) -> list[str]:
    """prime's text form."""
    who = clean(data["agent"])
    out = [f"# coord: you are {who} ({data['role']})", f"home: {clean(data['home'])}"]
    if not data["explicit_identity"]:
        out.append("No identity given: act with --as NAME or COORD_AGENT (start and run refuse without one).")
    if data["role"] != "lead" or data["holds"]:
        out += ["", "## Your work"]
        out += [line for d in data["holds"] for line in _worker_lines(d)] or [
            "You hold no worker. `coord start --next` claims the first ready one."
        ]
    if data["role"] == "lead":
        out += ["", f"## Ready to start ({len(data['ready'])} shown)"]
        out += [_brief_line(b) for b in data["ready"]] or ["- none"]
        out += [
            "",
            f"## Stale: {data['stale_count']} (no heartbeat for a while: `coord reap --requeue` requeues them)",
        ]
        out += [_brief_line(b) for b in data["stale"]] or ["- none"]
        if data["stale_count"] > len(data["stale"]):
            out.append(f"- … and {data['stale_count'] - len(data['stale'])} more (`coord status --stale`)")
    if "review" in data:
        out += ["", "## Waiting for review"]
        out += [_brief_line(b) for b in data["review"]] or ["- none"]
    inbox = data["inbox"]
    more = " or more" if inbox["more"] else ""
    out += [
        "",
        f"## Inbox: {inbox['unread']}{more} unread, {inbox['notices']} of them notices (`coord poll` reads them)",
    ]
    for it in inbox["items"][:TEXT_ITEMS]:
        n = it.get("notice")
        what = f"notice: {clean(n['worker'])} attempt {n['attempt']} {n['reason']}" if n else "message"
        out.append(f"- {it['id'][:15]} {it['type']} from {clean(it['from'])} ({what})")
    if inbox["unread"] > TEXT_ITEMS:
        out.append(f"- … and {inbox['unread'] - TEXT_ITEMS} more")
    g = data["general"]
    out += ["", "## How to work with coord"]
    if "text" in g:
        out.append(clean_block(g["text"]))
    else:
        width = max(len(x["command"]) for x in g["commands"])
        out += [f"  {x['command']:<{width}}  {x['what']}" for x in g["commands"]]
        out.append("Exit codes: " + "; ".join(f"{k} {v}" for k, v in g["exit_codes"].items()) + ".")
    return out


def clean_block(text: str) -> str:
    """A multi-line text from a file (PRIME.md): each line escaped, newlines kept."""
    return "\n".join(clean(line) for line in text.rstrip("\n").split("\n"))
