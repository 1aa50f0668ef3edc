"""The layout enforces the architecture (docs/architecture.md), read from the source with
ast, no import of coord:

- four rooms, one direction: cli → app → projections → events; no module imports from a
  room above its own, at module level or inside a function; the web board (web) is a
  second presentation room beside cli, and the two never import each other, but for one
  door: `coord serve` (cli/serve.py) imports coord.web inside its function, when it runs;
- no import circle between modules (lazy imports inside functions count: a circle is a
  circle whenever it is walked);
- the store implementations (events/sqlite_*.py, events/pg_*.py) are imported only inside events/, only
  they import sqlite3, sqlite_utils or psycopg, run `.execute(`, or holds an SQL statement;
- no module over MAX_LINES lines;
- no private member (`_name`) of one room used from another.
"""

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"
ROOMS = {"events": 0, "projections": 1, "app": 2, "cli": 3, "web": 3}
PRESENTATION = ("cli", "web")
# (module, the room it may import lazily, inside a function, from the other presentation room)
DOORS = {("coord.cli.serve", "web")}
MAX_LINES = 400
SQL = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|"
    r"VACUUM|REPLACE|WITH|EXPLAIN)\b"
)


def modules() -> dict[str, Path]:
    out = {}
    for p in sorted(SRC.rglob("*.py")):
        parts = p.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(("coord", *parts))] = p
    return out


MODULES = modules()


def room(mod: str) -> str | None:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ROOMS else None


def is_impl(mod: str) -> bool:
    return mod.startswith(("coord.events.sqlite_", "coord.events.pg_"))


def imports_of(mod: str, tree) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the module, at any depth; `from X
    import y` counts as X.y when that is a module, else X."""
    is_pkg = MODULES[mod].name == "__init__.py"
    pkg = mod if is_pkg else mod.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for a in node.names:
                sub = f"{target}.{a.name}"
                out.append((sub if sub in MODULES else target, node.lineno))
    return [(t, n) for t, n in out if t == "coord" or t.startswith("coord.")]


TREES = {m: ast.parse(p.read_text(), str(p)) for m, p in MODULES.items()}
EDGES = {m: imports_of(m, t) for m, t in TREES.items()}


def test_no_room_imports_from_a_room_above_it():
    bad = []
    for m, edges in EDGES.items():
        r = room(m)
        if r is None:
            continue
        for target, line in edges:
            t = room(target)
            if t is not None and ROOMS[t] > ROOMS[r]:
                bad.append(f"{m}:{line} imports {target} ({t} is above {r})")
    assert not bad, "\n".join(bad)


def lazy_import_lines(tree) -> set[int]:
    """Lines of the imports made inside a function (run only when it is called)."""
    return {
        n.lineno
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        for n in ast.walk(f)
        if isinstance(n, (ast.Import, ast.ImportFrom))
    }


def test_presentation_rooms_do_not_import_each_other():
    bad = []
    for m, edges in EDGES.items():
        r = room(m)
        if r not in PRESENTATION:
            continue
        lazy = lazy_import_lines(TREES[m])
        for target, line in edges:
            t = room(target)
            if t in PRESENTATION and t != r and not ((m, t) in DOORS and line in lazy):
                bad.append(f"{m}:{line} imports {target} (another presentation room)")
    assert not bad, "\n".join(bad)


def test_the_store_implementation_is_imported_only_inside_events():
    bad = [
        f"{m}:{line} imports {t}"
        for m, edges in EDGES.items()
        for t, line in edges
        if is_impl(t) and room(m) != "events"
    ]
    assert not bad, "\n".join(bad)


def test_no_import_circle():
    graph = {m: {t for t, _ in edges if t in MODULES and t != m} for m, edges in EDGES.items()}
    # A package's __init__ imported by its own modules is not a circle of ideas.
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import circles: " + "; ".join(" ↔ ".join(sorted(c)) for c in cycles)


def strongly_connected(graph):
    """Tarjan's algorithm, iteratively."""
    index, low, on, stack, out = {}, {}, set(), [], []
    counter = [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = set()
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.add(w)
                        if w == v:
                            break
                    out.append(comp)
    return out


def test_sql_lives_only_in_the_sqlite_store():
    bad = []
    for m, tree in TREES.items():
        if is_impl(m):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] in ("sqlite3", "sqlite_utils", "psycopg") for n in names):
                    bad.append(f"{m}:{node.lineno} imports {', '.join(names)}")
            elif isinstance(node, ast.Attribute) and node.attr in ("execute", "executemany", "executescript"):
                bad.append(f"{m}:{node.lineno} calls .{node.attr}(")
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                bad.append(f"{m}:{node.lineno} holds SQL: {node.value[:40]!r}")
    assert not bad, "\n".join(bad)


def test_no_module_is_over_the_line_limit():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def private_names(tree) -> set[str]:
    """`_name`s a module defines: functions, classes, module or class attributes, and
    attributes it assigns (self._x = …)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                for n in ast.walk(t):
                    if isinstance(n, ast.Name):
                        out.add(n.id)
                    elif isinstance(n, ast.Attribute):
                        out.add(n.attr)
    return {n for n in out if n.startswith("_") and not n.startswith("__")}


def test_no_private_member_is_used_across_rooms():
    defined = {r: set() for r in ROOMS}
    for m, tree in TREES.items():
        if room(m):
            defined[room(m)] |= private_names(tree)
    bad = []
    for m, tree in TREES.items():
        r = room(m)
        if r is None:
            continue
        for node in ast.walk(tree):
            names = []
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                names = [node.attr]
            elif isinstance(node, ast.ImportFrom):
                names = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            for n in names:
                others = [o for o in ROOMS if o != r and n in defined[o]]
                if others and n not in defined[r]:
                    bad.append(f"{m}:{node.lineno} uses {n} of {', '.join(others)}")
    assert not bad, "\n".join(bad)


def test_the_checks_see_what_they_look_for():
    """The rules above are not vacuous: the import graph holds the edges the rooms stand on,
    and the SQL pattern recognises the store's statements."""
    targets = {t for edges in EDGES.values() for t, _ in edges}
    assert {"coord.events.store", "coord.projections.board", "coord.app.lifecycle"} <= targets
    assert any(room(m) == "web" and room(t) == "app" for m, edges in EDGES.items() for t, _ in edges)
    door = [line for t, line in EDGES["coord.cli.serve"] if room(t) == "web"]
    assert door and set(door) <= lazy_import_lines(TREES["coord.cli.serve"])
    assert any(is_impl(t) for t in targets)
    held = [
        n.value
        for n in ast.walk(TREES["coord.events.sqlite_reads"])
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and SQL.match(n.value)
    ]
    assert held, "the SQL pattern matches nothing in the SQLite store"
