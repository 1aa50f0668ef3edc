"""Trust boundary: blobs. Blobs arrive through git beside the audit file, or do not arrive
at all. A reference to a blob the store does not have is accepted and shown unresolved
until it arrives; a corrupt blob, or a link or directory in a blob's place, is never read
as the blob; and no bad blob hides the rest of history or holds up a recipient's inbox."""

import json
import os

import blake3
import msgspec

from coord.app.context import Coord
from coord.events.envelope import Envelope
from trust_helpers import one_line_error, snapshot


def blob_files(home):
    return sorted(n for n in os.listdir(home / "blobs") if not n.startswith("."))


def send_big(cli, to="a", tag="w"):
    return cli("--as", "lead", "send", "big", json.dumps({"t": tag * 20000}), "--to", to, "--json").json()


def test_a_missing_blob_never_holds_up_a_poll(home, cli):
    """The issue's case: one missing blob made every later poll of the recipient fail."""
    bad = send_big(cli)
    [name] = blob_files(home)
    after = cli("--as", "lead", "send", "small", '{"n": 1}', "--to", "a", "--json").json()
    os.unlink(home / "blobs" / name)
    r = cli("--as", "a", "poll", "--json")
    assert r.exit_code == 0 and "missing blob" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    got = r.jsonl()
    assert [m["id"] for m in got] == [bad["event"], after["event"]]
    assert (
        got[0]["payload"] == {"$blob": "b3:" + name, "size": 20008} and "missing blob" in got[0]["blob_error"]
    )
    assert got[1]["payload"] == {"n": 1}
    assert cli("--as", "a", "poll", "--json").jsonl() == []  # both acknowledged: not stuck
    r = cli("--as", "a", "poll", "--peek")  # text form shows the marker
    assert r.exit_code == 0


def test_a_missing_blob_is_listed_unresolved_by_log_and_reported_by_verify(home, cli):
    cli("spawn", "w-1")
    bad = send_big(cli)
    cli("--as", "lead", "send", "small", '{"n": 1}', "--to", "a")
    [name] = blob_files(home)
    os.unlink(home / "blobs" / name)
    r = cli("log")
    assert r.exit_code == 0 and "missing blob" in r.stderr
    lines = r.stdout.splitlines()
    assert (
        len(lines) == 3 and f"[unresolved blob b3:{name[:12]}: missing]" in lines[1] and '{"n":1}' in lines[2]
    )
    r = cli("log", "--json")
    assert r.exit_code == 0 and [e["id"] for e in r.jsonl()][1] == bad["event"]
    r = cli("show", bad["event"])
    assert r.exit_code == 0 and "UNRESOLVED" in r.stdout
    r = cli("verify")
    assert r.exit_code == 5 and "missing blob" in r.stderr
    # The blob arriving resolves it.
    with Coord(home) as c:
        ref, _ = c.blobs.put_bytes(msgspec.json.Encoder(order="deterministic").encode({"t": "w" * 20000}))
    assert ref == "b3:" + name and cli("verify").exit_code == 0
    assert cli("show", bad["event"], "--json").json()["payload"] == {"t": "w" * 20000}


def test_a_corrupt_blob_is_listed_then_exit_5(home, cli):
    bad = send_big(cli)
    cli("--as", "lead", "send", "small", '{"n": 1}', "--to", "a")
    [name] = blob_files(home)
    p = home / "blobs" / name
    p.write_bytes(p.read_bytes()[:-3] + b'x"}')
    for args in (("log",), ("log", "--json"), ("show", bad["event"])):
        r = cli(*args)
        assert r.exit_code == 5 and len(r.stderr.splitlines()) == 1 and "corrupt" in r.stderr, (
            args,
            r.stderr,
        )
        assert r.stdout.count("\n") >= 1 and "corrupt" in r.stdout  # printed, marked
    assert len(cli("log").stdout.splitlines()) == 2  # the rest of history is there
    r = cli("--as", "a", "poll", "--json")
    assert r.exit_code == 0 and len(r.jsonl()) == 2 and "corrupt" in r.jsonl()[0]["blob_error"]


def test_a_symlinked_blob_is_not_read_and_fails_verify(home, cli, tmp_path):
    """The issue's case: a blob that is a link to a file with the right bytes passed verify
    (and any link was followed when read)."""
    sent = send_big(cli)
    [name] = blob_files(home)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes((home / "blobs" / name).read_bytes())
    os.unlink(home / "blobs" / name)
    os.symlink(elsewhere, home / "blobs" / name)
    snap = snapshot(home)
    for args in (("verify",), ("blob", "verify"), ("blob", "cat", name)):
        r = cli(*args)
        assert r.exit_code == 5 and one_line_error(r.stderr) and "symlink" in r.stderr, (args, r.stderr)
    assert cli("blob", "cat", name).stdout == ""
    r = cli("show", sent["event"], "--json")
    assert r.exit_code == 5 and "$blob" in r.json()["payload"]
    assert snapshot(home) == snap
    # Storing the blob again replaces the link with the real thing.
    with Coord(home) as c:
        c.blobs.put_bytes(elsewhere.read_bytes())
    assert not os.path.islink(home / "blobs" / name) and cli("verify").exit_code == 0


def test_a_blob_replaced_by_a_directory_is_exit_5(home, cli):
    send_big(cli)
    [name] = blob_files(home)
    os.unlink(home / "blobs" / name)
    os.mkdir(home / "blobs" / name)
    for args in (("blob", "cat", name), ("blob", "verify"), ("log",), ("verify",)):
        r = cli(*args)
        assert r.exit_code == 5 and one_line_error(r.stderr) and "not a regular file" in r.stderr, (
            args,
            r.stderr,
        )
    r = cli("--as", "a", "poll")
    assert r.exit_code == 0 and "unresolved" in r.stdout


def _append_ref(home, ref, size, to="a"):
    """An event referring to a blob, as an import from another clone could bring."""
    with Coord(home) as c:
        c.store.transact(
            lambda tx: tx.append(
                Envelope(tx.next_ts(), "other-clone", to, "msg.ref", {"$blob": ref, "size": size})
            )
        )


def test_a_hash_valid_blob_that_is_not_a_json_object_never_breaks_a_json_line(home, cli):
    for data in (b'{"a":', b"[1, 2]", b"\xff\xfe", b'{"a": 1} trailing'):
        hexd = blake3.blake3(data).hexdigest()
        (home / "blobs" / hexd).write_bytes(data)
        _append_ref(home, "b3:" + hexd, len(data))
    r = cli("log", "--json")
    assert r.exit_code == 5 and "JSON" in r.stderr
    events = r.jsonl()  # every line parses
    assert len(events) == 4 and all("blob_error" in e for e in events)
    r = cli("--as", "a", "poll", "--json")
    assert r.exit_code == 0 and len(r.jsonl()) == 4
    assert cli("replay").exit_code == 0 and cli("timeline").exit_code == 0


def test_a_reference_that_names_no_blob_file_is_refused(home, cli):
    """'$blob' values that are not b3:<64 hex> never name a file (no paths from payloads):
    the shape rules refuse such a reference before it is stored."""
    import pytest

    from coord.events.errors import UsageError

    with pytest.raises(UsageError, match="bad blob reference"):
        _append_ref(home, "b3:../../config.toml", 5)
    r = cli("log", "--json")
    assert r.exit_code == 0 and r.jsonl() == []


def test_partial_object_rebuilds_what_a_head_holds():
    from coord.events.blobs import SUMMARY_HEAD, partial_object

    enc = msgspec.json.Encoder(order="deterministic")
    data = enc.encode({"a": 1, "b": "x" * 100, "c": {"d": [1, 2]}, "e": "y" * 100})
    assert partial_object(data) == msgspec.json.decode(data)
    cut = partial_object(data[:60])
    assert cut == {"a": 1, "b": "x" * (60 - len('{"a":1,"b":"')) + "…"}
    # an escape or a multi-byte character cut in two
    data = enc.encode({"s": 'é"\\\u2028' * 50})
    for n in range(5, 40):
        out = partial_object(data[:n])
        assert out is not None and (not out or out["s"].endswith("…"))
        assert out == {} or msgspec.json.decode(data)["s"].startswith(out["s"][:-1])
    assert partial_object(b"[1, 2]") is None and partial_object(b"  ") is None
    assert partial_object(b'{"a": [' + b"[" * 5000) == {}  # deep nesting: no RecursionError
    assert SUMMARY_HEAD == 64 << 10
