"""How errors come out: the JSON error mode is decided from the parsed options, and an
ambiguous id prefix is exit 2 naming the candidates everywhere (`show` included)."""

import json

import pytest


def is_json_error(r) -> bool:
    try:
        return "error" in json.loads(r.stderr)
    except ValueError:
        return False


def test_a_childs_json_flag_does_not_make_coord_run_answer_in_json(home, cli):
    r = cli("run", "nope", "--", "echo", "--json")  # no identity: refused before the child
    assert r.exit_code == 2 and r.stderr.startswith("Error: ") and not is_json_error(r)
    r = cli("--json", "run", "nope", "--", "echo")
    assert r.exit_code == 2 and is_json_error(r)


def test_a_json_flag_taken_as_an_options_value_is_not_the_json_mode(home, cli):
    r = cli("send", "note", "--text", "--json")  # --json is the text; --to is missing
    assert r.exit_code == 2 and r.stderr.startswith("Error: missing --to") and not is_json_error(r)


@pytest.mark.parametrize(
    "args",
    [
        ["--json", "show", "nope"],
        ["show", "nope", "--json"],
        ["status", "--bogus", "--json"],  # not parsed at all: the options before `--`
        ["--json", "frobnicate"],
    ],
)
def test_json_errors_where_json_was_asked(home, cli, args):
    r = cli(*args)
    assert r.exit_code in (2, 3) and is_json_error(r), r.stderr
    assert json.loads(r.stderr)["error"]["exit"] == r.exit_code


@pytest.fixture(scope="module")
def _many(tmp_path_factory):
    """24 workers w-0 … w-23, made once: the tests that use them only read (what they ask
    is refused before anything is written)."""
    from coord.app.admin import init
    from coord.app.context import Coord
    from coord.events.envelope import Envelope

    path = tmp_path_factory.mktemp("many") / ".coord"
    init(path)

    def spawn(tx):
        return [
            tx.append(Envelope(tx.next_ts(), "lead", f"w-{i}", "worker.spawned", {})).id for i in range(24)
        ]

    with Coord(path) as c:
        return path, c.store.transact(spawn)


@pytest.fixture
def many(_many, monkeypatch):
    path, ids = _many
    monkeypatch.setenv("COORD_HOME", str(path))
    yield ids
    assert len(ids) == 24 and (path / "events.jsonl").read_bytes().count(b"\n") == 24  # nothing written


def shared_prefix(ids):
    """An event id prefix that at least two of these ids share."""
    for n in range(4, 70):
        seen = {}
        for i in ids:
            seen.setdefault(i[:n], []).append(i)
        both = [p for p, v in seen.items() if len(v) > 1]
        if both:
            return both[0]
    raise AssertionError("no shared prefix")


def test_an_ambiguous_event_prefix_is_a_usage_error_listing_candidates_in_show(cli, many):
    prefix = shared_prefix(many)
    r = cli("show", prefix)
    assert r.exit_code == 2, r.stderr
    assert "ambiguous" in r.stderr and sum(i[:15] in r.stderr for i in many if i.startswith(prefix)) >= 2
    r = cli("--as", "a", "ack", prefix)
    assert r.exit_code == 2 and "ambiguous" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["show", "w-1"],  # w-1, w-10 … w-19: an exact id wins
        ["status", "w-1", "--json"],
    ],
)
def test_an_exact_id_wins_over_the_ids_it_prefixes(cli, many, args):
    assert cli(*args).exit_code == 0


@pytest.mark.parametrize(
    "args",
    [
        ["show", "w-"],
        ["status", "w-"],
        ["log", "--worker", "w-"],
        ["replay", "--worker", "w-"],
        ["timeline", "--worker", "w-"],
        ["--as", "a", "start", "w-"],
    ],
)
def test_an_ambiguous_worker_prefix_is_exit_2_everywhere(cli, many, args):
    r = cli(*args)
    assert r.exit_code == 2 and "ambiguous" in r.stderr and "w-0, w-1, w-10" in r.stderr, r.stderr
