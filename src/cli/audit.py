"""The audit trail commands: export (and --check, --rewrite), import FILE, verify."""

import click

from ..app import admin
from ..events.errors import IntegrityError, UsageError
from .options import global_options, state
from .output import clean, echo, emit_json, warn


def _file_summary(r: dict) -> str:
    same = {
        True: ", unchanged since the last clean check",
        False: ", changed since the last clean check",
        None: "",
    }[r["unchanged"]]
    return f"{r['path']}: {r['lines']} lines, {r['bytes']} bytes, {r['b3']}{same}"


@click.command("export")
@click.option(
    "--check",
    "check_",
    is_flag=True,
    help="Read the whole file and compare it with the store; change nothing; exit 5 on any problem.",
)
@click.option(
    "--rewrite",
    is_flag=True,
    help="Regenerate the file from the store atomically (temporary file, fsync, rename).",
)
@global_options
def export_cmd(check_, rewrite):
    """Write events not yet in .coord/events.jsonl (every appending command already does).

    When the file is not what coord last wrote, it is scanned: unknown valid lines are
    imported, missing events appended again, and a bad line makes export refuse (exit 5).

    \b
    Example:
      coord export
      coord export --check
      coord export --rewrite
    """
    if check_ and rewrite:
        raise UsageError("--check and --rewrite cannot be combined")
    st = state()
    c = st.open()
    if check_:
        r = admin.check_audit_file(c)
        if st.json:
            emit_json(r)
        else:
            for b in r["bad"]:
                echo(f"line {b['line']}: {b['reason']}")
            for eid in r["missing"]:
                echo(f"missing: {eid}")
            for eid in r["dirty"]:
                echo(f"not yet written: {eid}")
            for x in r["lost"]:
                echo(f"line {x['line']}: {x['id']} was written by this store and is no longer in it")
            if r["unknown"]:
                echo(f"{r['unknown']} valid line(s) not in the store yet (the next export imports them)")
            echo(_file_summary(r))
        if not r["ok"]:
            raise IntegrityError(
                f"audit file does not check out: {len(r['bad'])} bad line(s), "
                f"{len(r['missing'])} missing, {len(r['dirty'])} not yet written"
                + (f", {len(r['lost'])} lost from the store" if r["lost"] else "")
            )
        return
    if rewrite:
        res, dropped = admin.rewrite_audit_file(c)
        for b in dropped[:20]:
            warn(f"dropped bad line {b.lineno}: {b.reason}")
        out = {"written": res.written, "imported": res.imported, "dropped": len(dropped)}
        if st.json:
            emit_json(out)
        else:
            echo(
                f"rewrote {c.home.audit_path}: {res.written} lines"
                + (f", {res.imported} imported first" if res.imported else "")
                + (f", {len(dropped)} bad line(s) dropped" if dropped else "")
            )
        return
    res = admin.export(c, warn)
    out = {"written": res.written, "imported": res.imported, "restored": res.restored, "scanned": res.scanned}
    if st.json:
        emit_json(out)
    else:
        echo(
            f"{res.written} line(s) written"
            + (f", {res.imported} imported from the file" if res.imported else "")
            + (f", {res.restored} restored" if res.restored else "")
        )


@click.command("import")
@click.argument("file", metavar="FILE")
@global_options
def import_cmd(file):
    """Add the events of FILE (an events.jsonl, e.g. another clone's) that this store lacks.

    Every line is checked first by re-hashing its bytes; one bad line and nothing is
    imported (exit 5, naming each bad line). Repeating an import adds nothing.

    \b
    Example:
      coord import ../other-clone/.coord/events.jsonl
      git show origin/main:.coord/events.jsonl > /tmp/theirs.jsonl && coord import /tmp/theirs.jsonl
    """
    st = state()
    out = admin.import_file(st.open(), file)
    added, total = out["imported"], out["events"]
    if st.json:
        emit_json(out)
    else:
        echo(f"imported {added} new event(s) of {total} from {clean(file)}")


@click.command("verify")
@global_options
def verify_cmd():
    """Check everything: each event's bytes, shape and columns, the audit file, the views.

    Reads, changes nothing (except remembering the file's BLAKE3 when all is well);
    exit 0 only when every check passes, else 5 with one line per problem. Events dated
    more than max_clock_skew ahead of this clock are noted, not failed.

    \b
    Example:
      coord verify
      coord verify --json | jq .problems
    """
    from ..app.verification import verify

    st = state()
    c = st.open()
    rep = verify(c, remember=True)
    af = rep.facts.get("audit_file")
    if st.json:
        emit_json({"ok": rep.ok, "problems": rep.problems, "notices": rep.notices, "checks": rep.facts})
    else:
        for p in rep.problems:
            echo(clean(p))
        for n in rep.notices:
            echo("note: " + clean(n))
        ev = rep.facts.get("events", {})
        pj = rep.facts.get("projections", {})
        echo(f"events: {ev.get('checked', 0)} re-hashed; workers: {pj.get('workers', 0)} folded")
        if af:
            echo(_file_summary(af))
        echo("ok" if rep.ok else f"{len(rep.problems)} problem(s)")
    if not rep.ok:
        raise IntegrityError(f"verify found {len(rep.problems)} problem(s): {rep.problems[0]}")
