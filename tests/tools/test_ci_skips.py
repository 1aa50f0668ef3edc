"""With CI=true, a skipped test fails the run (a missing real component must not pass
unnoticed); slow tests without --runslow and skips.not_applicable() stay skips. Checked by
running pytest, with this suite's conftest, on small test files, with and without CI."""

import pytest

import skips
from subpytest import run_pytest

TESTS = """
import pytest
import skips

def test_skips_inside():
    pytest.skip("needs a thing that is not installed")

@pytest.mark.skipif(True, reason="needs tmux")
def test_skipif_marker():
    pass

def test_fixture_skips(missing_component):
    pass

@pytest.fixture
def missing_component():
    pytest.skip("needs chromium")

@pytest.mark.slow
def test_slow_needs_it():
    pytest.skip("needs PostgreSQL")

def test_not_applicable():
    skips.not_applicable("a SQLite-only setting")

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_xfail():
    assert False

def test_passes():
    pass
"""
MODULE_SKIPPED = (
    "import pytest\n\npytest.importorskip('no_such_module_for_coord')\n\ndef test_x():\n    pass\n"
)
FILES = {"test_sub.py": TESTS, "test_module_skip.py": MODULE_SKIPPED}

MISSING = ("test_skips_inside", "test_skipif_marker", "test_fixture_skips")
STAY = {"test_slow_needs_it": "skipped", "test_not_applicable": "skipped", "test_xfail": "skipped"}


def test_under_ci_a_skip_for_a_missing_component_fails_the_run(tmp_path):
    # (A collection error stops a run at once; go on here to see every outcome.)
    r = run_pytest(tmp_path, FILES, env={"CI": "true"}, args=["--continue-on-collection-errors"])
    assert r.exit_code == 1, r.output
    for name in MISSING:
        assert r.outcomes[name] in ("failed", "error"), (name, r.output)
    assert "CI=true, so this skip fails the run: needs tmux" in r.output
    assert r.outcomes["test_module_skip"] == "error", r.output  # skipped at import
    for name, outcome in STAY.items():
        assert r.outcomes[name] == outcome, (name, r.output)
    assert r.outcomes["test_passes"] == "passed"


def test_without_ci_they_are_skips(tmp_path):
    r = run_pytest(tmp_path, FILES, env={"CI": None})
    assert r.exit_code == 0, r.output
    for name in (*MISSING, "test_module_skip", *STAY):
        assert r.outcomes[name] == "skipped", (name, r.output)


def test_under_ci_with_runslow_a_slow_tests_skip_fails_too(tmp_path):
    r = run_pytest(tmp_path, {"test_sub.py": TESTS}, env={"CI": "true"}, args=["--runslow", "-k", "slow"])
    assert r.exit_code == 1 and r.outcomes["test_slow_needs_it"] == "failed", r.output


@pytest.mark.parametrize(
    "value, on", [("true", True), ("TRUE", True), ("1", True), ("", False), ("false", False), (None, False)]
)
def test_what_counts_as_ci(monkeypatch, value, on):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert skips.ci() is on
