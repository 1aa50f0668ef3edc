"""The work graph's commands: dep add|rm, priority, ready (coord.app.graph)."""

import click

from ..app import graph
from ..app.lifecycle import with_args
from ..app.resolve import worker_arg
from .lifecycle import report
from .options import MAX_COUNT, global_options, request_id_option, state
from .output import echo, emit_json, fmt_age, one_line

READY_COLS = "{:<3} {:<20} {:>8}  {:<16} {}"


@click.group()
def dep():
    """Dependencies between workers: ID waits for A until A is COMPLETED.

    \b
    Example:
      coord dep add w-4 w-2
      coord dep rm w-4 w-2
    """


def _dep(worker_id, after, request_id, remove):
    st = state()
    actor = st.identity()
    c = st.open()
    wid = worker_arg(c, worker_id)
    a = worker_arg(c, after) if not remove else _maybe_resolved(c, after)
    rid = with_args(request_id, worker=wid, after=a)
    r = graph.dep(c, wid, a, actor=actor, remove=remove, request_id=rid)
    if st.json:
        emit_json(r)
    elif r.repeat:
        how = "does not wait for" if remove else "already waits for"
        echo(f"{r.worker}: {how} {a} (nothing appended)")
    else:
        echo(f"{r.worker}: {'no longer waits' if remove else 'waits'} for {a}  {r.event[:15]}")


def _maybe_resolved(c, ident):
    """`dep rm`'s A: a prefix of a known worker, else the id as given (an edge imported
    from another clone may name a worker this store has not seen)."""
    from ..events.errors import NotFound

    try:
        return worker_arg(c, ident)
    except NotFound:
        return ident


@dep.command("add")
@click.argument("worker_id", metavar="ID")
@click.argument("after", metavar="A")
@request_id_option
@global_options
def dep_add(worker_id, after, request_id):
    """ID waits for A. Exit 3 if either is unknown; exit 4 (nothing appended) if the edge
    would close a cycle, which is named; an existing dependency is exit 0, nothing appended.

    \b
    Example:
      coord dep add w-4 w-2
    """
    _dep(worker_id, after, request_id, remove=False)


@dep.command("rm")
@click.argument("worker_id", metavar="ID")
@click.argument("after", metavar="A")
@request_id_option
@global_options
def dep_rm(worker_id, after, request_id):
    """ID no longer waits for A (a dependency it does not have: exit 0, nothing appended).

    \b
    Example:
      coord dep rm w-4 w-2
    """
    _dep(worker_id, after, request_id, remove=True)


@click.command()
@click.argument("worker_id", metavar="ID")
@click.argument("priority", metavar="N", type=click.IntRange(0, 4))
@request_id_option
@global_options
def priority(worker_id, priority, request_id):
    """Set a worker's priority: 0 (highest) … 4 (lowest); spawn's default is 2.

    `ready` and `start --next` take higher priorities first, then the oldest.

    \b
    Example:
      coord priority w-4 0
    """
    st = state()
    actor = st.identity()
    c = st.open()
    wid = worker_arg(c, worker_id)
    r = graph.prioritize(
        c, wid, priority, actor=actor, request_id=with_args(request_id, worker=wid, priority=priority)
    )
    if st.json:
        report(r, "")
    elif r.repeat:
        echo(f"{r.worker}: already priority {priority} (nothing appended)")
    else:
        echo(f"{r.worker}: priority {priority}  {r.event[:15]}")


@click.command()
@click.option("--limit", type=click.IntRange(1, MAX_COUNT), metavar="N", help="At most N workers.")
@global_options
def ready(limit):
    """Ready workers: ASSIGNED, and every worker they wait for COMPLETED; highest priority
    first, then oldest. `start --next` takes the first one the actor may start.

    \b
    Example:
      coord ready --limit 5
      coord ready --json
    """
    from ..app.queries import ready_items
    from ..events.envelope import now_us, ts_to_us

    st = state()
    items = ready_items(st.open(), limit)
    if st.json:
        emit_json(items)
        return
    if not items:
        echo("nothing is ready (coord status shows what waits for what)")
        return
    now = now_us()
    lines = [READY_COLS.format("PRI", "WORKER", "AGE", "ASSIGNEE", "TASK")]
    for d in items:
        age = fmt_age((now - ts_to_us(d["created"])) / 1e6)
        lines.append(
            READY_COLS.format(
                d["priority"],
                one_line(d["worker"], 20),
                age,
                one_line(d["assignee"] or "-", 16),
                one_line(d["task"], 50),
            )
        )
    echo("\n".join(lines))
