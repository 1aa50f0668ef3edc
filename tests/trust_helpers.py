"""Helpers for the hostile-input suite (tests/test_trust_*.py): the one-line error check,
and a snapshot of everything a store holds, to assert that a refused command changed
nothing."""

import hashlib
import os
import shutil
import sqlite3
import tempfile


def one_line_error(text: str) -> bool:
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


def snapshot(home) -> dict:
    """Events, views, the search index and every file of the home (name, kind, content
    hash) — what "nothing else in the store changed" compares. Lock files and SQLite's
    -wal/-shm are left out: opening the store may create or touch them."""
    # Read a copy: the home's own -wal or -shm may be a hostile link under test. (Every
    # command checkpoints when its last connection closes, so coord.db holds it all.)
    with tempfile.TemporaryDirectory() as d:
        copy = os.path.join(d, "copy.db")
        shutil.copyfile(os.path.realpath(home / "coord.db"), copy)
        return _snapshot(home, copy)


def _snapshot(home, db) -> dict:
    con = sqlite3.connect(db)
    try:
        events = con.execute("SELECT seq, id, body, audit FROM events ORDER BY seq").fetchall()
        views = con.execute("SELECT worker, view FROM workers ORDER BY worker").fetchall()
        meta = con.execute("SELECT key, value FROM meta WHERE key LIKE 'audit%' ORDER BY key").fetchall()
        search = con.execute("SELECT rowid, type, text FROM search ORDER BY rowid").fetchall()
    finally:
        con.close()
    files = {}
    for root, dirs, names in os.walk(home):
        for n in dirs + names:
            p = os.path.join(root, n)
            rel = os.path.relpath(p, home)
            if n.endswith(".lock") or n.startswith("coord.db"):
                continue
            if os.path.islink(p):
                files[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                files[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    files[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
    return {"events": events, "views": views, "meta": meta, "search": search, "files": files}


def file_state(path) -> tuple:
    """Whether a file exists and what it holds (for files outside the home)."""
    try:
        with open(path, "rb") as f:
            return (True, hashlib.sha256(f.read()).hexdigest())
    except FileNotFoundError:
        return (False, None)


def copy_for_unprivileged(dest) -> list[str]:
    """What an unprivileged user needs to run coord, copied into `dest` (made readable by
    everyone): the coord package and the packages it imports on the per-action path. The
    clone (and its .venv) may sit in a directory others cannot read (a clone in root's
    home is mode 0700). Returns the command that runs coord from there with the base
    interpreter."""
    import importlib.util
    import sys

    import coord

    shutil.copytree(os.path.dirname(coord.__file__), os.path.join(dest, "coord"), ignore=_no_pyc)
    for name in ("click", "msgspec", "blake3"):
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            src = list(spec.submodule_search_locations)[0]
            shutil.copytree(src, os.path.join(dest, os.path.basename(src)), ignore=_no_pyc)
        else:
            shutil.copy(spec.origin, dest)
    for root, _dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644 if not f.endswith(".so") else 0o755)
    boot = f"import sys; sys.path.insert(0, {str(dest)!r}); from coord.cli import main; main()"
    python = os.path.realpath(sys.executable)  # the base interpreter, not the .venv's link
    return [python, "-I", "-c", boot]


def _no_pyc(_dir, names):
    return [n for n in names if n == "__pycache__" or n.endswith(".pyc")]
