"""Helpers shared by tests, imported like any module (`from helpers import ...`).

Running coord: `run_inprocess(args)` through the real entry point in this process (the
`cli` fixture), `coord_cmd()` as a real process (the `proc` fixture); `imported(args)`
runs `python -X importtime ARGS` and names the top-level packages it imported;
`count_events(home)` reads the store's table directly.

`unprivileged()`: run coord as an unprivileged user, from any clone location. Tests run
as root, who may write anywhere, so a permission test must drop privileges; but the
dropped user must be able to read and execute what it runs. A clone in root's home (mode
0700) or in a `mktemp -d` directory is not readable by `nobody`, and the venv's python
is often a symlink into such a place (/root/.pyenv). So the package and the
distributions it needs are copied into a world-readable temporary directory once per
test process, and run with an interpreter of the same version that `nobody` was seen to
execute.
"""

import atexit
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # the repository


@dataclass
class Ran:
    exit_code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)

    def jsonl(self):
        # Split on \n only: JSON strings may hold U+2028 etc., which splitlines() breaks on.
        return [json.loads(line) for line in self.stdout.split("\n") if line.strip()]


def run_inprocess(args, input=None, env=None) -> Ran:
    """coord ARGS through the real entry point, in this process."""
    from click.testing import CliRunner

    from coord.cli import cli as click_group
    from coord.cli.output import run_main

    runner = CliRunner()
    umask = os.umask(0o022)  # a home sets its own umask; a real process's dies with it
    os.umask(umask)
    try:
        with runner.isolation(input=input, env=env) as streams:
            code = run_main(click_group, [str(a) for a in args])
            out = streams[0].getvalue().decode()
            err = streams[1].getvalue().decode() if streams[1] is not None else ""
    finally:
        os.umask(umask)
    return Ran(code, out, err)


def coord_cmd():
    return [sys.executable, "-m", "coord"]


def imported(args, env, cwd) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run python -X importtime ARGS; return the process and the top-level packages it
    imported."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    names = set()
    rest = []
    for line in r.stderr.splitlines():
        if line.startswith("import time:"):
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
        else:
            rest.append(line)
    r.stderr = "\n".join(rest)
    return r, names


def count_events(home_path) -> int:
    import sqlite3

    con = sqlite3.connect(str(home_path / "coord.db"))
    try:
        return con.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        con.close()


def many_spawned(path, n: int):
    """A home at `path` whose log holds n spawns (one transaction: the events are what
    matters, not how they were made), its audit file written."""
    from coord.app.admin import init
    from coord.app.context import Coord
    from coord.events.envelope import Envelope

    init(path)

    def spawn_all(tx):
        for i in range(n):
            tx.append(Envelope(tx.next_ts(), "gen", f"g-{i}", "worker.spawned", {}))

    with Coord(path) as c:
        c.store.transact(spawn_all)
    return path


# --- git -------------------------------------------------------------------------------
def g(cwd, *args, check=True) -> str:
    r = subprocess.run(
        ["git", *args],
        cwd=str(cwd),
        capture_output=True,
        text=True,
        env={**os.environ, "GIT_EDITOR": "true", "LC_ALL": "C"},
    )
    if check and r.returncode != 0:
        raise AssertionError(f"git {args} failed: {r.stderr}")
    return r.stdout.strip()


def commit_file(cwd, name, text, msg=None):
    (Path(cwd) / name).write_text(text)
    g(cwd, "add", name)
    g(cwd, "commit", "-q", "-m", msg or f"edit {name}")


def ok(r):
    assert r.exit_code == 0, (r.stdout, r.stderr)
    return r


USER, GROUP = "nobody", "nogroup"
DROP = ["setpriv", f"--reuid={USER}", f"--regid={GROUP}", "--clear-groups"]
# Declared dependencies that coord never imports (sqlite-utils lists pip for its
# `install` command): not copied.
_NOT_NEEDED = frozenset({"pip", "setuptools", "wheel"})


def skip_or_fail(reason: str):
    """A skip of a real component's test is a failure when CI=true."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true, so this cannot be skipped: {reason}")
    pytest.skip(reason)


class Unprivileged:
    """Runs coord as `nobody`: `run("start", "w-1", env={...})` -> CompletedProcess."""

    def __init__(self, python: str, lib: Path):
        self.python, self.lib = python, lib

    def argv(self, *args) -> list[str]:
        return [*DROP, self.python, "-s", "-m", "coord", *map(str, args)]

    def env(self, extra: dict | None = None) -> dict:
        e = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH")}
        e["PYTHONPATH"] = str(self.lib)
        e.update(extra or {})
        return e

    def run(self, *args, env: dict | None = None, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("cwd", "/")  # the test's own directory is usually not theirs to enter
        return subprocess.run(
            self.argv(*args), env=self.env(env), capture_output=True, text=True, timeout=timeout, **kw
        )


_cache: dict = {}


def unprivileged() -> Unprivileged:
    """The (cached) way to run coord as `nobody`. Skips when not root (privileges cannot
    be dropped); fails loudly under CI=true when the machine offers no way (no setpriv, no
    interpreter the user can execute): that is an environment problem, not a pass."""
    if "it" in _cache:
        return _cache["it"]
    if os.geteuid() != 0:
        skip_or_fail("needs root to drop privileges")
    if shutil.which("setpriv") is None:
        skip_or_fail("needs setpriv (util-linux) to drop privileges")
    lib = _world_readable_copy()
    python = _python_for_nobody(lib)
    _cache["it"] = Unprivileged(python, lib)
    return _cache["it"]


def world_reachable_tmp() -> Path:
    """A temporary directory everyone can reach (each parent searchable by others)."""
    for base in (tempfile.gettempdir(), "/tmp", "/var/tmp"):
        p = Path(base).resolve()
        if p.is_dir() and all(q.stat().st_mode & stat.S_IXOTH for q in [p, *p.parents]):
            d = Path(tempfile.mkdtemp(prefix="coord-nobody-", dir=p))
            d.chmod(0o755)
            atexit.register(shutil.rmtree, d, True)
            return d
    pytest.fail("no temporary directory that others can reach (/tmp is not world-searchable)")


def _world_readable_copy() -> Path:
    """The coord package (as installed: an editable install maps it to src/) and every
    distribution it needs, copied under a world-readable directory."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    import coord

    lib = world_reachable_tmp() / "lib"
    lib.mkdir()
    shutil.copytree(Path(coord.__file__).parent, lib / "coord", ignore=shutil.ignore_patterns("__pycache__"))
    seen, todo = set(), list(md.requires("coord") or [])
    while todo:
        req = Requirement(todo.pop())
        name = req.name.lower().replace("_", "-")
        if name in seen or name in _NOT_NEEDED or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(name)
        dist = md.distribution(req.name)
        for f in dist.files or ():
            parts = Path(f).parts
            if parts[0] == ".." or "__pycache__" in parts or parts[0].endswith(".dist-info"):
                continue  # scripts outside site-packages, bytecode, metadata
            src = Path(dist.locate_file(f))
            if src.is_file():
                (lib / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, lib / f)
        todo += dist.requires or []
    for root, _dirs, files in os.walk(lib):
        os.chmod(root, 0o755)
        for name in files:
            p = os.path.join(root, name)
            os.chmod(p, 0o755 if os.stat(p).st_mode & 0o111 else 0o644)
    return lib


def _python_for_nobody(lib: Path) -> str:
    """An interpreter of this Python's version that `nobody` can execute and that imports
    the copy (sqlite3 and the compiled dependencies included)."""
    want = "%d.%d" % sys.version_info[:2]
    candidates = [
        os.path.realpath(sys.executable),
        f"/usr/bin/python{want}",
        f"/usr/local/bin/python{want}",
        shutil.which(f"python{want}") or "",
        "/usr/bin/python3",
    ]
    probe = "import sys, sqlite3, msgspec, blake3, click, coord.cli; print('%d.%d' % sys.version_info[:2])"
    tried = []
    for py in dict.fromkeys(c for c in candidates if c):
        if not os.path.isfile(py):
            continue
        try:
            r = subprocess.run(
                [*DROP, py, "-s", "-c", probe],
                env=dict(os.environ, PYTHONPATH=str(lib)),
                capture_output=True,
                text=True,
                timeout=60,
                cwd="/",
            )
        except OSError as e:
            tried.append(f"{py}: {e}")
            continue
        if r.returncode == 0 and r.stdout.strip() == want:
            return py
        tried.append(f"{py}: exit {r.returncode} {r.stdout.strip()} {r.stderr.strip()[-200:]}")
    skip_or_fail(f"no Python {want} that {USER} can execute and import coord with: " + "; ".join(tried))
