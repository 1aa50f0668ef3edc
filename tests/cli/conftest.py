"""Fixtures of the CLI tier (shared helpers: tests/helpers.py)."""

import shutil

import pytest

from helpers import g, run_inprocess


@pytest.fixture(scope="session")
def _repo_template(tmp_path_factory):
    """A git repository with one commit on main and an initialised, committed home, made
    once per session (git and `coord init` through the real entry point) to copy."""
    root = tmp_path_factory.mktemp("repo-template") / "proj"
    root.mkdir()
    g(root, "init", "-q", "-b", "main")
    g(root, "config", "user.name", "Test")
    g(root, "config", "user.email", "test@example.com")
    (root / "a.txt").write_text("line 1\nline 2\nline 3\n")
    (root / "b.txt").write_text("b\n")
    g(root, "add", ".")
    g(root, "commit", "-q", "-m", "initial")
    r = run_inprocess(["init"], env={"COORD_HOME": str(root / ".coord")})
    assert r.exit_code == 0, r.stderr
    g(root, "add", ".coord")
    g(root, "commit", "-q", "-m", "coord home")
    return root


@pytest.fixture
def repo(tmp_path, monkeypatch, _repo_template):
    """A git repository with one commit on main and an initialised, committed home; the
    current directory is its main working tree (no COORD_HOME: found by walking up). A
    copy of the session's template: a repository and its home hold no absolute paths."""
    root = tmp_path / "proj"
    shutil.copytree(_repo_template, root, symlinks=True)
    monkeypatch.chdir(root)
    return root
