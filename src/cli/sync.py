"""coord sync: share this clone's events through git and take in the others'."""

import click

from .options import global_options, state
from .output import clean, echo, emit_json, warn


@click.command("sync")
@click.option("--remote", metavar="R", help="The git remote (default: the branch's upstream, else origin).")
@click.option("--no-push", is_flag=True, help="Commit, fetch, merge and import, but do not push.")
@global_options
def sync_cmd(remote, no_push):
    """Commit .coord/events.jsonl and new blobs (only those), pull with the union merge,
    import what arrived, push.

    Safe while agents append (the snapshot is taken under the audit file's lock) and
    safe to interrupt and run again. Refused (exit 4, nothing lost) when the pull would
    merge changes outside .coord/ into uncommitted changes. With the shared setting
    sync_branch, works through that branch with git plumbing only: the checked-out
    branch and the working tree are never touched. Blobs over sync_blob_limit are left
    out, with a warning.

    \b
    Example:
      coord sync
      coord sync --remote upstream --no-push
      coord config sync_branch coord-sync && coord sync
    """
    from ..app.sync import sync

    st = state()
    c = st.open()
    r = sync(c, remote=remote, push=not no_push, warn=warn)
    if st.json:
        import msgspec

        emit_json(msgspec.to_builtins(r))
        return
    what = [
        "committed" if r.committed else "nothing new to commit",
        "merged" if r.merged else None,
        f"{r.imported} event(s) imported" if r.imported else None,
        f"pushed to {clean(r.remote)}" if r.pushed else ("not pushed" if no_push else None),
    ]
    echo(f"synced {clean(r.branch)} with {clean(r.remote)}: " + ", ".join(w for w in what if w))
