"""`coord show`: one worker with its history and what is expected next, or one event."""

import click

from ..app.queries import horizon, lookup, worker_detail
from ..events.envelope import now_us, ts_to_us
from ..events.forms import event_json_resolved
from ..projections.workers import ACTIVE, CONFLICTED, HELD
from .options import global_options, state
from .output import clean, echo, emit_json, emit_raw_json, fmt_age, one_line
from .render import report_unresolved


@click.command()
@click.argument("ident", metavar="ID|EVENT")
@global_options
def show(ident):
    """One worker with its history and why it is where it is, or one event.

    For a worker: who holds it, its last event and heartbeat, how long it has been in its
    state, and the next action expected, by whom (`expected` in --json).

    \b
    Example:
      coord show w-1
      coord show b3:4f2a
    """
    import msgspec

    st = state()
    c = st.open(reading=True)
    kind, found = lookup(c, ident)
    if kind == "event":
        _show_event(c, found, st.json)
        return
    now = now_us()
    d, v, hist = worker_detail(c, found, now)
    if v.branch:
        from ..app.checks import summary

        d["checks"] = summary(c, v)
    ahead = d["ahead"]
    last = d["last"]
    if st.json:
        problems = []
        d["history"] = [
            msgspec.json.decode(event_json_resolved(c.blobs, r.seq, r.id, r.body, problems=problems))
            for r in hist
        ]
        emit_json(d)
        report_unresolved(problems)
        return
    echo(
        f"worker    {clean(v.worker)}\nstate     {v.state} for {fmt_age((now - ts_to_us(v.state_since)) / 1e6)}"
        + (f"  (liveness {d['liveness']})" if d["liveness"] else "")
    )
    echo(f"task      {clean(v.task) or '-'}")
    echo(f"holder    {clean(v.holder) or '-'}" + (f"   assignee {clean(v.assignee)}" if v.assignee else ""))
    if v.attempt_of:
        held = v.state in HELD
        echo(f"attempt   {v.attempt} ({v.attempt_of[:15]})" + ("" if held else "  (ended)"))
    if v.branch:
        echo(f"branch    {clean(v.branch)}" + (f" (from {clean(v.base)})" if v.base else ""))
    if v.worktree:
        echo(f"worktree  {clean(v.worktree)}")
    if v.last_heartbeat:
        echo(
            f"heartbeat {fmt_age((now - ts_to_us(v.last_heartbeat)) / 1e6)} ago ({v.heartbeats} beats)"
            + (f", note: {one_line(v.hb_note, 60)}" if v.hb_note else "")
        )
    if v.summary:
        echo(f"summary   {one_line(v.summary, 70)}")
    if v.state == CONFLICTED and v.info.get("files"):
        i = v.info
        echo(
            f"conflict  {i.get('stage') or '?'} onto {clean(i.get('onto') or '-')} in {one_line(', '.join(i['files']), 60)}"
        )
    if v.reason:
        # approve's note stays in the view through a merge conflict: label it for what it is
        note = v.last_type == "worker.approved" or (v.state == CONFLICTED and v.info.get("stage") == "merge")
        echo(f"{'note' if note else 'reason':<9} {one_line(v.reason, 70)}")
    for r in d.get("checks", {}).get("runs", []):
        word = d["checks"]["status"].get(r["name"], "")
        echo(
            f"check     {clean(r['name'])} {'passed' if r['passed'] else 'FAILED'} (exit {r['exit']}) on "
            f"{(r['commit'] or '-')[:12]}{' (merge commit)' if r['queue'] else ''}"
            f"{'  [' + word + ']' if word in ('stale',) else ''}  {r['event'][:15]}"
        )
    for why in d.get("checks", {}).get("blocking", []):
        echo(f"blocks    merge: {clean(why)}")
    if v.after or v.priority != 2:
        echo(f"priority  {v.priority}" + ("   ready" if d["ready"] else ""))
    if d["waits_for"]:
        echo(
            "waits for "
            + ", ".join(f"{clean(w['worker'])} ({w['state'] or 'unknown'})" for w in d["waits_for"])
        )
    elif v.after:
        echo(f"after     {', '.join(clean(a) for a in v.after)} (all COMPLETED)")
    if d["blocked_by"]:
        echo(f"BLOCKED   by {', '.join(clean(b) for b in d['blocked_by'])} (CANCELED or FAILED)")
    if d["waited_by"]:
        shown = d["waited_by"][:10]
        echo(f"needed by {', '.join(clean(w) for w in shown)}" + (", …" if len(d["waited_by"]) > 10 else ""))
    for cf in v.conflicts:
        echo(f"CONFLICT  {cf['event'][:15]} {cf['type']} by {clean(cf['from'])}: {clean(cf['reason'])}")
    if ahead:
        echo(
            f"ahead     {len(ahead)} event(s) dated more than max_clock_skew ahead of this clock "
            f"(liveness counts them from when they were stored): {', '.join(e[:15] for e in ahead[:5])}"
            + (", …" if len(ahead) > 5 else "")
        )
    if last:
        echo(
            f"last      {last['type']} by {clean(last['from'])}, "
            f"{fmt_age((now - ts_to_us(last['ts'])) / 1e6)} ago  {last['event'][:15]}"
        )
    if v.state in ACTIVE:
        beat = (
            f"{fmt_age((now - ts_to_us(v.last_heartbeat)) / 1e6)} ago"
            if v.last_heartbeat
            else "never since it was started"
        )
        echo(f"silence   last heartbeat {beat}; liveness {d['liveness']}")
    ex = d["expected"]
    if ex["actions"]:
        echo(f"expected  {' or '.join(ex['actions'])}, by {clean(ex['by'])}")
    echo(f"why       {clean(ex['why'])}")
    echo(f"legal     {', '.join(d['legal']) or 'nothing (terminal)'}")
    echo("history")
    for r in hist:
        echo(f"  {r.ts}  {r.type:<26} {one_line(r.from_, 16):<16} {r.id[:11]}")


def _show_event(c, row, as_json: bool) -> None:
    import msgspec

    ahead = msgspec.json.decode(row.body)["ts"] > horizon(c)  # the hashed bytes' ts
    problems = []
    form = event_json_resolved(c.blobs, row.seq, row.id, row.body, problems=problems)
    if as_json:
        emit_raw_json(form[:-1] + b',"ahead":true}' if ahead else form)
    else:
        d = msgspec.json.decode(form)
        echo(
            f"event  {row.id}\nseq    {row.seq}\nts     {d['ts']}"
            + (
                "  (ahead of this clock by more than max_clock_skew: it does not set the ts of new events)"
                if ahead
                else ""
            )
            + f"\nfrom   {clean(d['from'])}\n"
            f"to     {clean(d['to'])}\ntype   {d['type']}\norigin {row.origin}"
            + (f"\nblob   {d['blob']}" if "blob" in d else "")
            + (
                f"\nblob   {d['payload']['$blob']} UNRESOLVED: {clean(d['blob_error'])}"
                if "blob_error" in d
                else ""
            )
        )
        echo("payload " + clean(msgspec.json.format(msgspec.json.encode(d["payload"]), indent=2).decode()))
    report_unresolved(problems)
