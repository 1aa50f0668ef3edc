"""The work graph's benchmark cannot rot: its smoke configuration runs every row (tiny
graphs from fixtures/make_graph.py, real `start --next` racers) and the race finds no
double claim and no claim of a worker that was not ready."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_graph_bench_runs_every_row(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nintro\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "graph_bench.py"), "--smoke", "--doc", str(doc)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for row in (
        "`ready --limit 20` in process",
        "`coord ready --limit 20` process",
        "`dep add`",
        "race on a graph",
    ):
        assert row in r.stdout
    text = doc.read_text()
    assert text.startswith("# Performance\n\nintro\n") and "<!-- graph-bench:end -->" in text
    assert "0 double claims, 0 claims of a worker not ready" in text


def test_the_graph_fixture_is_seeded_acyclic_and_beads_shaped():
    sys.path.insert(0, str(ROOT / "fixtures"))
    from make_graph import events, graph_shape

    order, after = graph_shape(1000)
    assert len(order) == 1000 and len(set(order)) == 1000
    pos = {w: i for i, w in enumerate(order)}
    assert all(pos[d] < pos[w] for w in order for d in after[w])  # edges point back: acyclic
    hubs = [w for w in order if w.startswith("hub-")]
    assert len(hubs) == 100
    assert events(300) == events(300) and events(300, seed=1) != events(300)
