"""Fuzzing the command line (COORD_FUZZ_EXAMPLES=N for a deeper run): random command
sequences, arguments and payloads (unicode, huge, empty, control characters) never produce
a traceback or an undocumented exit code, and the store always checks out afterwards.
Each example gets a fresh home."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coord.app.context import Coord
from coord.events.envelope import event_id
from coord.projections import board

COMMANDS = [
    "spawn",
    "start",
    "heartbeat",
    "done",
    "approve",
    "request-changes",
    "merge",
    "release",
    "cancel",
    "fail",
    "retry",
    "status",
    "show",
    "log",
    "send",
    "poll",
    "ack",
    "search",
    "replay",
    "stats",
]
FLAGS = {
    "spawn": ["--task", "--assignee"],
    "heartbeat": ["--note", "--interval", "--force"],
    "done": ["--summary", "--force"],
    "approve": ["--note"],
    "request-changes": ["--reason"],
    "cancel": ["--reason"],
    "fail": ["--reason", "--force"],
    "status": ["--state", "--stale", "--all"],
    "log": ["--worker", "--type", "--from", "--since", "--limit"],
    "start": ["--next"],
    "send": ["--to", "--text", "--reply-to", "--request-id"],
    "poll": ["--peek", "--limit", "--type"],
    "search": ["--type", "--from", "--limit"],
    "replay": ["--at", "--worker", "--since"],
    "stats": ["--since"],
}
FLAGS_WITHOUT_VALUE = ("--force", "--stale", "--all", "--next", "--text", "--peek")
json_payload = st.one_of(
    st.dictionaries(
        st.text(max_size=6), st.one_of(st.text(max_size=30), st.integers(), st.none()), max_size=3
    ).map(lambda d: __import__("json").dumps(d)),
    st.sampled_from(["{}", "[]", "null", "{", '{"$blob": "b3:00"}', '"str"', "1e999"]),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
)
text = st.one_of(
    st.sampled_from(["w-1", "w-2", "w", "", "b3:", "-", "--", "a1"]),
    st.text(min_size=0, max_size=40),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x1F), max_size=5),
    st.just("x" * 5000),
)
flag_values = st.one_of(text, st.just("1"), st.just("-3"), st.just("10m"))


@st.composite
def command(draw):
    cmd = draw(st.sampled_from(COMMANDS))
    args = [cmd]
    if draw(st.booleans()):
        args.append(draw(text))
    if cmd == "send" and draw(st.booleans()):
        args.append(draw(json_payload))
    for f in draw(st.lists(st.sampled_from(FLAGS.get(cmd, ["--bogus"])), max_size=2)):
        args.append(f)
        if f not in FLAGS_WITHOUT_VALUE:
            args.append(draw(flag_values))
    prefix = ["--as", draw(st.sampled_from(["a1", "a2", "rev"]))] if draw(st.booleans()) else []
    if draw(st.booleans()):
        prefix.insert(0, "--json")
    return prefix + args


_template = {}


def fresh_home(factory):
    """A new, empty home for one example, so what one example did never leaks into the
    next: a copy of one home initialised once (cheaper than `init` per example)."""
    import shutil

    from coord.app.admin import init

    if "home" not in _template:
        home, _ = init(factory.mktemp("fuzz-template") / ".coord")
        _template["home"] = home.path
    dest = factory.mktemp("fuzz") / ".coord"
    shutil.copytree(_template["home"], dest)
    return dest


@settings(
    max_examples=int(os.environ.get("COORD_FUZZ_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(st.lists(command(), min_size=1, max_size=25))
def test_random_commands_only_documented_outcomes(tmp_path_factory, cli, cmds):
    home = fresh_home(tmp_path_factory)
    for args in cmds:
        r = cli(*args, env={"COORD_HOME": str(home)})
        assert r.exit_code in (0, 2, 3, 4), (args, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr and "Error: unexpected" not in r.stderr, (args, r.stderr)
        if r.exit_code:
            assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
    with Coord(home) as c:
        for eid, body in c.store.conn.execute("SELECT id, body FROM events"):
            assert event_id(body) == eid
        assert board.stored_views(c.store.reader) == board.fold_from_zero(c.store)[0]


@settings(
    max_examples=int(os.environ.get("COORD_FUZZ_EXAMPLES", 80)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.one_of(
        st.binary(max_size=400),
        st.lists(st.binary(max_size=80), max_size=6).map(lambda parts: b"\n".join(parts)),
        st.text(max_size=300).map(str.encode),
    )
)
def test_random_bytes_through_import_are_refused_cleanly(tmp_path_factory, cli, data):
    home = fresh_home(tmp_path_factory)
    env = {"COORD_HOME": str(home)}
    assert cli("spawn", "w-1", env=env).exit_code == 0
    f = home.parent / "in.jsonl"
    f.write_bytes(data)
    with Coord(home) as c:
        before = c.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    r = cli("import", str(f), env=env)
    assert r.exit_code in (0, 5), (data, r.exit_code, r.stderr)
    assert "Traceback" not in r.stderr and "Error: unexpected" not in r.stderr
    with Coord(home) as c:
        after = c.store.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    if r.exit_code == 5:
        assert after == before  # nothing imported from a bad file
    assert cli("verify", env=env).exit_code == 0


def test_valid_lines_mixed_with_fuzz_import_nothing(home, cli, tmp_path):
    assert cli("spawn", "w-1").exit_code == 0
    good = (home / "events.jsonl").read_bytes()
    from coord.app.admin import init

    other, _ = init(tmp_path / "o" / ".coord")
    r = cli("--home", str(other.path), "import", str(home / "events.jsonl"))
    assert r.exit_code == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(good + b"\xff\xfe not json\n")
    r = cli("--home", str(other.path), "import", str(bad))
    assert r.exit_code == 5 and "line 2" in r.stderr
