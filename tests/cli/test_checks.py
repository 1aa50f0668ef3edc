"""Checks as events and the merge gate, against real git repositories: `coord check`
records what ran where and how it ended, `required_checks` names what must pass, and
`merge` refuses until each passed on the head `done` recorded with the command
`check.NAME` names now."""

import shutil
import subprocess

import pytest

from helpers import commit_file, count_events, g, ok

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def approved(cli, repo, wid, name="f.txt", text="x\n"):
    ok(cli("spawn", wid))
    ok(cli("--as", "ag", "start", wid))
    commit_file(repo / ".coord" / "worktrees" / wid, name, text)
    ok(cli("--as", "ag", "done", wid))
    ok(cli("--as", "rev", "approve", wid))


def checks_of(cli):
    return ok(cli("log", "--json", "--type", "check.*")).jsonl()


# --- settings ---------------------------------------------------------------------------
def test_check_settings_are_validated_and_removable(repo, cli):
    ok(cli("config", "check.tests", "python -c 'print(1)'"))
    assert "check.tests" in (repo / ".coord" / "config.toml").read_text()
    before = (repo / ".coord" / "config.toml").read_text()
    for args, what in (
        (("config", "required_checks", "tests,lint"), "no check 'lint'"),
        (("config", "check.Bad", "x"), "unknown setting"),
        (("config", "check.x", "'open"), "not a command line"),
        (("config", "required_checks", "tests,tests"), "each check once"),
        (("config", "check_timeout", "0"), "at least 1"),
    ):
        r = cli(*args)
        assert r.exit_code == 2 and what in r.stderr, (args, r.stderr)
        assert (repo / ".coord" / "config.toml").read_text() == before
    ok(cli("config", "required_checks", " tests "))
    assert ok(cli("config", "required_checks")).stdout.strip() == "tests"
    r = cli("config", "check.tests", "")
    assert r.exit_code == 2 and "required_checks" in r.stderr
    ok(cli("config", "required_checks", ""))
    ok(cli("config", "check.tests", ""))
    assert "check.tests" not in (repo / ".coord" / "config.toml").read_text()
    assert ok(cli("config", "--json")).json().get("check.tests") is None


def test_a_pulled_required_check_without_its_command_is_a_usage_error(repo, cli):
    approved(cli, repo, "w1")
    with open(repo / ".coord" / "config.toml", "a") as f:
        f.write('required_checks = "ghost"\n')
    n = count_events(repo / ".coord")
    r = cli("merge", "w1")
    assert r.exit_code == 2 and "ghost" in r.stderr
    r = cli("queue", "--once")
    assert r.exit_code == 2 and "ghost" in r.stderr
    assert count_events(repo / ".coord") == n


# --- coord check ------------------------------------------------------------------------
def test_check_records_command_commit_status_duration_and_output(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    commit_file(wt, "f.txt", "x\n")
    tip = g(wt, "rev-parse", "HEAD")
    ok(cli("config", "check.tests", "sh -c 'echo hello from the check; test -f f.txt'"))
    r = ok(cli("--as", "ag", "check", "w1", "tests"))
    assert "hello from the check" in r.stdout and "passed" in r.stderr
    r = cli("--as", "ag", "check", "w1", "adhoc", "--", "sh", "-c", "echo nope >&2; exit 3")
    assert r.exit_code == 3 and "FAILED" in r.stderr
    passed, failed = checks_of(cli)
    assert passed["type"] == "check.passed" and failed["type"] == "check.failed"
    p = passed["payload"]
    assert p["name"] == "tests" and p["command"] == ["sh", "-c", "echo hello from the check; test -f f.txt"]
    assert p["commit"] == p["head"] == tip and p["exit"] == 0 and p["duration_s"] >= 0
    assert "hello from the check" in p["tail"]
    blob = ok(cli("blob", "cat", p["output"]["$blob"])).stdout
    assert blob == "hello from the check\n"
    q = failed["payload"]
    assert q["exit"] == 3 and q["command"] == ["sh", "-c", "echo nope >&2; exit 3"] and "nope" in q["tail"]
    # a dirty worktree is recorded as such
    (wt / "f.txt").write_text("changed\n")
    ok(cli("--as", "ag", "check", "w1", "tests"))
    assert checks_of(cli)[-1]["payload"]["dirty"] is True
    # shown in show and status
    d = ok(cli("show", "w1", "--json")).json()
    assert {r["name"] for r in d["checks"]["runs"]} == {"tests", "adhoc"}
    assert "tests:passed" in ok(cli("status")).stdout


def test_check_exit_codes_timeout_and_missing_command(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("config", "check_timeout", "1"))
    r = cli("--as", "ag", "check", "w1", "slow", "--", "sleep", "30")
    assert r.exit_code == 124
    r = cli("--as", "ag", "check", "w1", "gone", "--", "no-such-command-here")
    assert r.exit_code == 127
    slow, gone = checks_of(cli)
    assert slow["payload"]["timed_out"] is True and slow["type"] == "check.failed"
    assert gone["payload"]["exit"] == 127 and gone["type"] == "check.failed"
    n = count_events(repo / ".coord")
    for args, code in (
        (("check", "w1", "Bad!"), 2),
        (("check", "w1", "undefined"), 2),
        (("check", "nobody", "x", "--", "true"), 3),
    ):
        r = cli("--as", "ag", *args)
        assert r.exit_code == code, (args, r.stderr)
    assert count_events(repo / ".coord") == n


def test_check_request_id_runs_once(repo, cli, tmp_path):
    ok(cli("spawn", "w1"))
    marker = tmp_path / "ran"
    cmd = ("--", "sh", "-c", f"echo x >> {marker}")
    ok(cli("--as", "ag", "check", "w1", "t", "--request-id", "k1", *cmd))
    r = ok(cli("--as", "ag", "check", "w1", "t", "--request-id", "k1", "--json", *cmd))
    assert r.json()["repeat"] is True
    assert marker.read_text() == "x\n" and len(checks_of(cli)) == 1


# --- the merge gate ---------------------------------------------------------------------
def test_merge_requires_required_checks_passed_on_the_done_head(repo, cli):
    ok(cli("config", "check.tests", "test -f f.txt"))
    ok(cli("config", "required_checks", "tests"))
    approved(cli, repo, "w1")
    main_before = g(repo, "rev-parse", "main")
    r = cli("merge", "w1")
    assert r.exit_code == 4 and "tests" in r.stderr and "no run" in r.stderr
    assert cli("merge", "w1", "--no-git").exit_code == 4  # a merge by hand is gated too
    # an ad-hoc run with another command is evidence, not the gate
    ok(cli("--as", "ag", "check", "w1", "tests", "--", "true"))
    assert cli("merge", "w1").exit_code == 4
    # a failing run of the real command blocks, naming it
    ok(cli("config", "check.tests", "test -f missing.txt"))
    assert cli("--as", "ag", "check", "w1", "tests").exit_code == 1
    r = cli("merge", "w1")
    assert r.exit_code == 4 and "failed" in r.stderr
    assert g(repo, "rev-parse", "main") == main_before
    # a pass of an older command does not count once check.tests changes
    ok(cli("config", "check.tests", "test -f f.txt"))
    ok(cli("--as", "ag", "check", "w1", "tests"))
    ok(cli("config", "check.tests", "test -e f.txt"))
    assert cli("merge", "w1").exit_code == 4
    ok(cli("--as", "ag", "check", "w1", "tests"))
    ok(cli("merge", "w1"))
    assert ok(cli("show", "w1", "--json")).json()["state"] == "COMPLETED"


def test_a_check_before_a_rebasing_done_does_not_count(repo, cli):
    ok(cli("config", "check.tests", "true"))
    ok(cli("config", "required_checks", "tests"))
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "f.txt", "x\n")
    ok(cli("--as", "ag", "check", "w1", "tests"))
    commit_file(repo, "other.txt", "main moved\n")  # done rebases: a new head
    ok(cli("--as", "ag", "done", "w1"))
    ok(cli("--as", "rev", "approve", "w1"))
    r = cli("merge", "w1")
    assert r.exit_code == 4 and "no run" in r.stderr
    ok(cli("--as", "ag", "check", "w1", "tests"))
    ok(cli("merge", "w1"))


# --- what tried-as-a-newcomer found -------------------------------------------------------
def test_show_of_a_conflicted_worker_names_files_and_labels_the_note(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    commit_file(repo / ".coord" / "worktrees" / "w1", "a.txt", "mine\n")
    ok(cli("--as", "ag", "done", "w1"))
    ok(cli("--as", "rev", "approve", "w1", "--note", "looks fine"))
    commit_file(repo, "a.txt", "theirs\n")
    assert cli("merge", "w1").exit_code == 4
    out = ok(cli("show", "w1")).stdout
    assert "conflict  merge onto main in a.txt" in out
    assert "note      looks fine" in out and "reason    looks fine" not in out


def test_done_in_the_middle_of_a_rebase_says_so(repo, cli):
    ok(cli("spawn", "w1"))
    ok(cli("--as", "ag", "start", "w1"))
    wt = repo / ".coord" / "worktrees" / "w1"
    commit_file(wt, "a.txt", "mine\n")
    commit_file(repo, "a.txt", "theirs\n")
    subprocess.run(["git", "rebase", "main"], cwd=wt, capture_output=True)
    r = cli("--as", "ag", "done", "w1")
    assert r.exit_code == 4 and "a rebase is in progress" in r.stderr
    assert "git rebase --continue" in r.stderr and "git switch" not in r.stderr


def test_a_branch_checked_out_nowhere_is_checked_in_a_scratch_worktree(repo, cli, tmp_path):
    ok(cli("spawn", "w1", "--no-worktree"))
    where = tmp_path / "where"
    ok(cli("--as", "ag", "check", "w1", "t", "--", "sh", "-c", f"pwd > {where}; git rev-parse HEAD"))
    p = checks_of(cli)[0]["payload"]
    assert p["commit"] == g(repo, "rev-parse", "coord/w1") and ".scratch-check-w1-" in where.read_text()
    assert ".scratch" not in g(repo, "worktree", "list")
