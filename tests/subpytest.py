"""Run pytest in a subprocess on a test file written by a test, with this suite's
conftest.py loaded as a plugin (its fixtures and hooks), and read back each test's outcome.
For tests of the test infrastructure itself: the CI skip rule, fixture cleanup."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parent


@dataclass
class Outcome:
    exit_code: int
    outcomes: dict[str, str]  # test name -> passed | failed | error | skipped
    output: str


def run_pytest(
    directory: Path, files: dict[str, str], *, env: dict[str, str | None] | None = None, args=()
) -> Outcome:
    """Write files (name -> source) into directory and run pytest on them. env entries set
    (or, with None, remove) variables over this process's environment."""
    for name, source in files.items():
        (directory / name).write_text(source)
    e = dict(os.environ)
    for k, v in (env or {}).items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    e["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), e.get("PYTHONPATH")) if p)
    junit = directory / "junit.xml"
    cmd = [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rA"]
    cmd += [f"--rootdir={directory}", f"--junitxml={junit}", *args, *(str(directory / n) for n in files)]
    r = subprocess.run(cmd, cwd=directory, env=e, capture_output=True, text=True, timeout=600)
    outcomes = {}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
            outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}.get(
                kinds[0] if kinds else "", "passed"
            )
            outcomes[case.get("name") or case.get("classname")] = outcome  # a module: its name
    return Outcome(r.returncode, outcomes, r.stdout + r.stderr)
