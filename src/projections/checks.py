"""Check runs as the board reads them: the `check.passed` / `check.failed` events of a
worker, the latest run of each check, and whether the required checks let a merge go
(pure: no I/O). A required check counts only when its latest run on the head `done`
recorded passed with the command `check.NAME` names now: an ad-hoc `-- CMD` run, a run
on another commit, or a run with an old command is evidence, never a gate."""

CHECK_TYPES = ("check.passed", "check.failed")


def run_of(env, eid: str) -> dict:
    """One run as shown (`show`, `status --json`): the payload's facts plus who and when."""
    p = env.payload
    return {
        "name": p.get("name"),
        "passed": env.type == "check.passed",
        "command": p.get("command"),
        "commit": p.get("commit"),
        "head": p.get("head", p.get("commit")),
        "exit": p.get("exit"),
        "duration_s": p.get("duration_s"),
        "timed_out": bool(p.get("timed_out")),
        "dirty": bool(p.get("dirty")),
        "queue": bool(p.get("queue")),
        "tail": p.get("tail"),
        "output": (p.get("output") or {}).get("$blob") if isinstance(p.get("output"), dict) else None,
        "event": eid,
        "ts": env.ts,
        "from": env.from_,
    }


def latest(runs: list[dict]) -> dict[str, dict]:
    """The last run of each check name, runs given in log order."""
    out: dict[str, dict] = {}
    for r in runs:
        if isinstance(r.get("name"), str):
            out[r["name"]] = r
    return out


def gate(runs: list[dict], head: str | None, required: dict[str, list[str]]) -> list[str]:
    """Why a merge of `head` may not go: one reason per required check (name → its argv
    now) whose latest counting run did not pass. [] when every one passed."""
    problems = []
    for name, argv in required.items():
        counting = [
            r
            for r in runs
            if r.get("name") == name
            and r.get("command") == argv
            and not r.get("dirty")
            and r.get("head") == head
        ]
        if not counting:
            problems.append(f"{name}: no run of `{' '.join(argv)}` on {(head or 'no head')[:12]}")
        elif not counting[-1]["passed"]:
            r = counting[-1]
            why = "timed out" if r.get("timed_out") else f"exit {r.get('exit')}"
            problems.append(f"{name}: failed on {head[:12]} ({why}, {r['event'][:14]})")
    return problems


def status_of(runs: list[dict], head: str | None, required: dict[str, list[str]]) -> dict:
    """A compact summary for the board: {name: "passed" | "failed" | "stale" | "missing"},
    required checks first; stale = the latest run was on another head or command."""
    last = latest(runs)
    out = {}
    for name in list(required) + [n for n in last if n not in required]:
        r = last.get(name)
        if r is None:
            out[name] = "missing"
        elif name in required and (
            r.get("head") != head or r.get("command") != required[name] or r.get("dirty")
        ):
            out[name] = "stale"
        else:
            out[name] = "passed" if r["passed"] else "failed"
    return out
