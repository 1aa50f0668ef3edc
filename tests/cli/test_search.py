"""Full-text search: words inside payloads and inside blobs' text, filters, best first,
kept current in the append transaction, rebuilt by `coord rebuild`, bad syntax exit 2."""

import json
import sqlite3

import pytest

from coord.app import messages
from coord.app.context import Coord
from helpers import count_events


def one_line_error(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


def ids(ran):
    return [d["id"] for d in ran.json()]


def test_search_finds_words_in_payloads_and_in_blobs_text(home, cli, tmp_path):
    a = cli(
        "--as", "lead", "send", "note", "--text", "the parser chokes on tabs", "--to", "w-1", "--json"
    ).json()
    big = cli(
        "--as",
        "lead",
        "send",
        "log",
        json.dumps({"text": "filler " * 2000 + "zanzibar"}),
        "--to",
        "a",
        "--json",
    ).json()
    f = tmp_path / "report.txt"
    f.write_text("line\n" * 1000 + "quetzalcoatl appears here\n")
    att = cli("--as", "ci", "send", "report", "--file", str(f), "--to", "lead", "--json").json()
    binf = tmp_path / "blob.bin"
    binf.write_bytes(b"\0\1\2 xylophone")
    cli("--as", "ci", "send", "bin", "--file", str(binf), "--to", "lead")
    cli("spawn", "w-2", "--task", "rewrite the tokenizer")

    assert ids(cli("search", "parser", "--json")) == [a["event"]]
    assert ids(cli("search", "zanzibar", "--json")) == [big["event"]]  # inside a payload blob
    assert ids(cli("search", "quetzalcoatl", "--json")) == [att["event"]]  # inside an attached file
    assert cli("search", "report.txt").exit_code == 2  # punctuation: phrase it
    assert ids(cli("search", '"report.txt"', "--json")) == [att["event"]]  # the attachment's name
    assert ids(cli("search", "xylophone", "--json")) == []  # binary is not indexed
    r = cli("search", "tokenizer", "--json").json()
    assert [d["type"] for d in r] == ["worker.spawned"] and "[tokenizer]" in r[0]["snippet"]
    assert ids(cli("search", "pars*", "--json")) == [a["event"]]
    assert ids(cli("search", "note", "--json")) == [a["event"]]  # the type is indexed
    text = cli("search", "parser").stdout
    assert a["event"][:15] in text and "[parser]" in text


def test_search_filters_and_best_first(home, cli):
    cli("--as", "a", "send", "n", "--text", "alpha beta", "--to", "x")
    e2 = cli("--as", "b", "send", "n", "--text", "alpha alpha alpha alpha", "--to", "y", "--json").json()
    cli("--as", "b", "send", "other", "--text", "alpha", "--to", "y")
    r = cli("search", "alpha", "--json").json()
    assert len(r) == 3 and r[0]["id"] == e2["event"] and r[0]["rank"] <= r[1]["rank"] <= r[2]["rank"]
    assert {d["from"] for d in cli("search", "alpha", "--from", "b", "--json").json()} == {"b"}
    assert {d["to"] for d in cli("search", "alpha", "--to", "x", "--json").json()} == {"x"}
    assert {d["type"] for d in cli("search", "alpha", "--type", "msg.n", "--json").json()} == {"msg.n"}
    assert len(cli("search", "alpha", "--type", "msg.*", "--json").json()) == 3
    assert len(cli("search", "alpha", "--limit", "1", "--json").json()) == 1


def test_heartbeats_are_not_indexed(home, cli):
    cli("spawn", "w-1")
    cli("--as", "d", "start", "w-1")
    cli("--as", "d", "heartbeat", "w-1", "--note", "frobnicating")
    assert cli("search", "frobnicating", "--json").json() == []


@pytest.mark.parametrize("q", ["AND", '"unterminated', "foo-bar", "a:b", "   ", "(x"])
def test_bad_query_is_a_one_line_usage_error(home, cli, q):
    cli("--as", "a", "send", "n", "--text", "x", "--to", "y")
    n = count_events(home)
    r = cli("search", q)
    assert r.exit_code == 2 and one_line_error(r.stderr), (q, r.stderr)
    assert count_events(home) == n


def test_rebuild_recreates_the_index(home, cli):
    e = cli("--as", "a", "send", "n", "--text", "persimmon", "--to", "y", "--json").json()
    con = sqlite3.connect(home / "coord.db")
    con.execute("DELETE FROM search")
    con.commit()
    assert cli("search", "persimmon", "--json").json() == []
    r = cli("rebuild", "--json")
    assert r.exit_code == 0 and r.json()["indexed"] == 1
    assert ids(cli("search", "persimmon", "--json")) == [e["event"]]
    cli("--as", "a", "send", "n", "--text", "persimmon again", "--to", "y")  # still incremental
    assert len(cli("search", "persimmon", "--json").json()) == 2


def test_store_migrated_with_events_is_indexed_on_first_search(home, cli):
    """An old store (events before the search migration) gets its index on first use."""
    e = cli("--as", "a", "send", "n", "--text", "kumquat", "--to", "y", "--json").json()
    con = sqlite3.connect(home / "coord.db")
    con.execute("DELETE FROM search")
    con.execute("INSERT INTO meta(key, value) VALUES ('search_rebuild', '1')")
    con.commit()
    assert ids(cli("search", "kumquat", "--json")) == [e["event"]]
    assert con.execute("SELECT count(*) FROM meta WHERE key = 'search_rebuild'").fetchone()[0] == 0


def test_search_rebuild_while_appending_loses_nothing(home):
    """Appends between rebuild batches are caught up by the final swap."""
    from coord.projections import search

    with Coord(home, actor="a") as c:
        for i in range(50):
            messages.send(c, "y", "n", {"text": f"word{i} common"})
        calls = []

        def progress(n):  # runs between batches: another append lands mid-rebuild
            calls.append(n)
            messages.send(c, "y", "n", {"text": f"late{len(calls)} common"})

        search.rebuild(c.store, batch=10, progress=progress)
        assert calls
        with c.store.read() as r:
            assert r.search_count() == count_events(home)
            assert len(r.search("common", None, None, None, 1000)) == count_events(home)
