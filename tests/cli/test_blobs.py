"""Claim-check blobs: big payloads round-trip byte-exact, reads re-hash (exit 5 on a
corrupt blob, 3 on a missing one), files are streamed, identical content stored once,
lifecycle events are claim-checked too."""

import json
import os
import random
import sqlite3
import subprocess

import blake3
import msgspec
import pytest

from coord.app import admin
from coord.app.context import Coord
from coord.projections import board
from helpers import coord_cmd, count_events


def one_line_error(text):
    lines = text.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in text


def blob_files(home):
    return [n for n in os.listdir(home / "blobs") if not n.startswith(".")]


def stored_body(home, seq):
    con = sqlite3.connect(home / "coord.db")
    try:
        return con.execute("SELECT body FROM events WHERE seq = ?", (seq,)).fetchone()[0]
    finally:
        con.close()


def big_payload(n_bytes: int) -> dict:
    rnd = random.Random(5)
    alphabet = 'abcdefghij klmnop\n\t"\\é漢字😀\u2028\x00\x1f'
    base = "".join(rnd.choice(alphabet) for _ in range(100_000))
    s = base * (n_bytes // len(base.encode()) + 1)
    return {"text": s + " needle", "n": 1, "nested": {"list": [1, 2.5, None, True]}}


def test_ten_megabyte_payload_round_trips_byte_exact(home, proc, tmp_path):
    payload = big_payload(10 * 1024 * 1024)
    canonical = msgspec.json.Encoder(order="deterministic").encode(payload)
    assert len(canonical) > 10_000_000
    src = tmp_path / "p.json"
    src.write_bytes(json.dumps(payload).encode())  # not canonical on purpose
    with open(src, "rb") as f:
        r = subprocess.run(
            [*coord_cmd(), "--as", "lead", "send", "big", "-", "--to", "a", "--json"],
            stdin=f,
            capture_output=True,
        )
    assert r.returncode == 0, r.stderr
    sent = json.loads(r.stdout)
    # The stored event carries the contract's reference; the blob holds the canonical bytes.
    body = stored_body(home, sent["seq"])
    ref = msgspec.json.decode(body)["payload"]
    assert set(ref) == {"$blob", "size"} and ref["size"] == len(canonical)
    assert ref["$blob"] == "b3:" + blake3.blake3(canonical).hexdigest()
    assert (home / "blobs" / ref["$blob"][3:]).read_bytes() == canonical
    # Readers see it resolved, byte-exact.
    r = subprocess.run([*coord_cmd(), "--as", "a", "poll", "--json"], capture_output=True)
    assert r.returncode == 0, r.stderr
    line = r.stdout.rstrip(b"\n")
    assert b',"payload":' + canonical + b',"blob":"' + ref["$blob"].encode() + b'"}' in line
    assert json.loads(line)["payload"] == payload
    r = subprocess.run([*coord_cmd(), "show", sent["event"], "--json"], capture_output=True)
    assert json.loads(r.stdout)["payload"] == payload
    r = subprocess.run([*coord_cmd(), "log", "--json", "--type", "msg.*"], capture_output=True)
    assert json.loads(r.stdout.splitlines()[-1])["payload"] == payload
    r = subprocess.run([*coord_cmd(), "blob", "cat", ref["$blob"][:14]], capture_output=True)
    assert r.returncode == 0 and r.stdout == canonical


def test_threshold_is_a_setting_and_small_payloads_stay_inline(home, cli):
    r = cli("--as", "lead", "send", "n", json.dumps({"t": "x" * 100}), "--to", "a", "--json").json()
    assert b"$blob" not in stored_body(home, r["seq"])
    assert cli("config", "blob_threshold", "50").exit_code == 0
    r = cli("--as", "lead", "send", "n", json.dumps({"t": "y" * 100}), "--to", "a", "--json").json()
    assert b"$blob" in stored_body(home, r["seq"])
    assert [m["payload"] for m in cli("--as", "a", "poll", "--json").jsonl()] == [
        {"t": "x" * 100},
        {"t": "y" * 100},
    ]


def test_identical_content_is_stored_once(home, cli, tmp_path):
    p = {"t": "z" * 10000}
    cli("--as", "lead", "send", "n", json.dumps(p), "--to", "a")
    cli("--as", "lead", "send", "n", json.dumps(p), "--to", "b")
    f = tmp_path / "f.bin"
    f.write_bytes(os.urandom(300_000))
    a = cli("blob", "put", str(f), "--json").json()
    b = cli("blob", "put", "-", "--json", input=f.read_bytes()).json()
    assert a == b and a["size"] == 300_000
    assert len(blob_files(home)) == 2
    assert not [n for n in os.listdir(home / "blobs") if n.startswith(".tmp")]


def test_corrupt_blob_is_exit_5_on_reads_but_never_holds_up_delivery(home, cli):
    sent = cli("--as", "lead", "send", "big", json.dumps({"t": "w" * 20000}), "--to", "a", "--json").json()
    [name] = blob_files(home)
    path = home / "blobs" / name
    good = path.read_bytes()
    path.write_bytes(good[:100] + b"X" + good[101:])
    for args in (
        ("show", sent["event"]),
        ("log",),
        ("blob", "cat", name[:10]),
        ("blob", "verify"),
    ):
        r = cli(*args)
        assert r.exit_code == 5, (args, r.stderr)
        assert one_line_error(r.stderr) and "corrupt" in r.stderr, r.stderr
    assert cli("blob", "cat", name).stdout == ""  # nothing corrupt is ever written out
    # poll delivers it unresolved (its reference and the reason), acknowledges it, exit 0
    r = cli("--as", "a", "poll", "--json")
    assert r.exit_code == 0 and "corrupt" in r.stderr
    [m] = r.jsonl()
    assert m["id"] == sent["event"] and m["payload"]["$blob"] == "b3:" + name and "corrupt" in m["blob_error"]
    assert cli("--as", "a", "poll", "--json").jsonl() == []
    path.write_bytes(good)
    assert cli("blob", "verify").exit_code == 0
    assert cli("show", sent["event"], "--json").json()["payload"] == {"t": "w" * 20000}


def test_missing_blob_is_shown_unresolved_and_verify_names_the_reference(home, cli):
    sent = cli("--as", "lead", "send", "big", json.dumps({"t": "w" * 20000}), "--to", "a", "--json").json()
    [name] = blob_files(home)
    os.unlink(home / "blobs" / name)
    # Not arrived yet is a state the contract accepts: shown unresolved, said, exit 0.
    r = cli("show", sent["event"], "--json")
    assert r.exit_code == 0 and "missing blob" in r.stderr
    assert (
        r.json()["payload"] == {"$blob": "b3:" + name, "size": 20008}
        and "missing blob" in r.json()["blob_error"]
    )
    assert cli("blob", "cat", "b3:" + name).exit_code == 3
    assert cli("blob", "cat", "b3:" + "0" * 64).exit_code == 3
    assert cli("blob", "cat", "nothex").exit_code == 2
    r = cli("blob", "verify", "--json")
    assert r.exit_code == 5 and "missing blob" in r.json()["problems"][0]


def test_send_file_attaches_a_streamed_blob(home, cli, tmp_path):
    f = tmp_path / "build.log"
    data = os.urandom(2_000_000)
    f.write_bytes(data)
    sent = cli("--as", "ci", "send", "build.log", "--file", str(f), "--to", "lead", "--json").json()
    [m] = cli("--as", "lead", "poll", "--json").jsonl()
    att = m["payload"]["file"]
    assert att["name"] == "build.log" and att["size"] == len(data) and m["id"] == sent["event"]
    r = subprocess.run([*coord_cmd(), "blob", "cat", att["$blob"]], capture_output=True)
    assert r.returncode == 0 and r.stdout == data
    assert cli("blob", "verify").exit_code == 0


def test_huge_lifecycle_payload_is_claim_checked_and_folded_resolved(home, cli):
    summary = "did it " * 2000
    cli("spawn", "w-1")
    cli("--as", "dev", "start", "w-1")
    r = cli("--as", "dev", "done", "w-1", "--summary", summary, "--json").json()
    assert b"$blob" in stored_body(home, r["seq"])
    assert cli("status", "w-1", "--json").json()[0]["summary"] == summary
    # Repeating the same action is still recognised (same content, same reference).
    n = count_events(home)
    assert cli("--as", "dev", "done", "w-1", "--summary", summary, "--json").json()["repeat"]
    assert count_events(home) == n
    with Coord(home) as c:
        assert board.fold_from_zero(c.store)[0] == board.stored_views(c.store.reader)
        admin.rebuild(
            c,
        )
        assert board.stored_views(c.store.reader)["w-1"].summary == summary


def test_append_path_claim_checks_even_without_the_helper(home):
    """Tx.append itself applies the claim-check, for code that appends envelopes directly."""
    from coord.events.envelope import Envelope

    with Coord(home) as c:
        ev = c.store.transact(
            lambda tx: tx.append(Envelope(tx.next_ts(), "x", "a", "msg.raw", {"t": "q" * 9000}))
        )
        assert set(msgspec.json.decode(ev.body)["payload"]) == {"$blob", "size"}
        assert c.blobs.payload_of(msgspec.json.decode(ev.body)["payload"]) == {"t": "q" * 9000}


def _peak_rss_kb_of(cmd, env, stdin=None):
    r = subprocess.run(["/usr/bin/env", "time", "-f", "%M", *cmd], env=env, capture_output=True, stdin=stdin)
    return r, int(r.stderr.strip().splitlines()[-1])


@pytest.mark.slow
def test_blob_put_and_send_file_stream_hundreds_of_megabytes(home, tmp_path):
    """Peak memory of `blob put` and `send --file` on a 300 MB file stays near a tiny one's."""
    if not os.path.exists("/usr/bin/time"):
        pytest.skip("needs /usr/bin/time")
    env = dict(os.environ)
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_bytes(b"s" * 1000)
    with open(big, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(300):
            f.write(chunk)
    base_r, base = _peak_rss_kb_of([*coord_cmd(), "blob", "put", str(small)], env)
    r, put = _peak_rss_kb_of([*coord_cmd(), "blob", "put", str(big)], env)
    assert r.returncode == 0
    r2, sendf = _peak_rss_kb_of(
        [*coord_cmd(), "--as", "a", "send", "f", "--file", str(big), "--to", "b"], env
    )
    assert r2.returncode == 0, r2.stderr
    assert put < base + 50_000 and sendf < base + 50_000, (base, put, sendf)
    ref = r.stdout.split()[0].decode()
    h = blake3.blake3()
    with open(big, "rb") as f:
        while c := f.read(1 << 20):
            h.update(c)
    assert ref == "b3:" + h.hexdigest()


def test_a_missing_blob_does_not_hide_the_rest_of_history(home, cli):
    sent = cli("--as", "lead", "send", "big", json.dumps({"t": "w" * 20000}), "--to", "a", "--json").json()
    cli("--as", "lead", "send", "small", '{"n": 1}', "--to", "a")
    [name] = blob_files(home)
    os.unlink(home / "blobs" / name)
    r = cli("log", "--json")
    assert r.exit_code == 0 and "missing blob" in r.stderr  # found, and said
    events = r.jsonl()
    assert len(events) == 2 and events[0]["id"] == sent["event"]  # but all of history printed
    assert "blob_error" in events[0] and events[1]["payload"] == {"n": 1}
