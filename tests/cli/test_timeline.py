"""coord timeline: the text picture, and the HTML page rendered in real headless Chromium
(one lane per worker, agent text escaped, no network)."""

import re
import shutil
import subprocess

import pytest

from browser import FLAGS
from observe_helpers import FIXTURE, fixture_events

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_dom(page, tmp_path) -> str:
    """The page's DOM after chromium ran its script (the harness's flags: no keyring, no
    proxy, no extensions, so nothing outside the page is waited for)."""
    r = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=3000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_text_timeline_has_a_row_per_worker(cli):
    r = cli("timeline", "--from-file", str(FIXTURE))
    assert r.exit_code == 0
    workers = {e.to for _, e in fixture_events() if e.type == "worker.spawned"}
    rows = [ln for ln in r.stdout.splitlines() if ln.split() and ln.split()[0] in workers]
    assert len(rows) == len(workers)
    assert all(len(ln) <= 80 for ln in r.stdout.splitlines())
    retries = next(ln for ln in rows if ln.startswith("retries"))
    assert "W" in retries and "R" in retries and "C" in retries


def test_html_is_self_contained(cli, tmp_path):
    out = tmp_path / "t.html"
    assert cli("timeline", "--from-file", str(FIXTURE), "--html", str(out)).exit_code == 0
    html = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched
    assert "<script>alert" not in html and "<img src=x" not in html  # agent text never markup


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_renders_one_lane_per_worker_in_chromium(cli, tmp_path):
    out = tmp_path / "timeline.html"
    assert cli("timeline", "--from-file", str(FIXTURE), "--html", str(out)).exit_code == 0
    dom = render_dom(out, tmp_path)
    workers = sorted({e.to for _, e in fixture_events() if e.type == "worker.spawned"})
    lanes = re.findall(r'<g class="lane" data-worker="([^"]*)"', dom)
    assert sorted(lanes) == workers
    assert f'data-rendered="{len(workers)}"' in dom
    assert int(re.search(r'data-width="(\d+)"', dom).group(1)) > 100  # laid out, not empty
    segs = re.findall(r'class="seg" data-state="([A-Z_]+)"', dom)
    transitions = [
        e for _, e in fixture_events() if e.type.startswith("worker.") and e.type != "worker.heartbeat"
    ]
    assert len(segs) == len(transitions) - 2  # two of them are conflicts: kept, not applied
    assert dom.count('class="beat"') == sum(1 for _, e in fixture_events() if e.type == "worker.heartbeat")
    assert dom.count('class="conflict"') == 2
    assert dom.count('class="msg"') >= 3
    # Agent text reached the tooltips as text, escaped, never as elements.
    assert "&lt;script&gt;alert('x')&lt;/script&gt;" in dom
    assert "<script>alert" not in dom and "<img src" not in dom


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_page_from_the_store_in_chromium(home, cli, tmp_path):
    for i in range(5):
        cli("spawn", f"w-{i}", "--task", f"task {i}")
    cli("--as", "a1", "start", "w-1")
    cli("--as", "a1", "heartbeat", "w-1")
    out = tmp_path / "store.html"
    r = cli("timeline", "--html", str(out), "--json")
    assert r.json()["workers"] == 5
    dom = render_dom(out, tmp_path)
    assert len(re.findall(r'<g class="lane"', dom)) == 5
    assert dom.count('class="beat"') == 1


def test_text_timeline_shows_a_state_entered_at_the_newest_event(home, cli):
    import time

    assert cli("spawn", "a").exit_code == 0
    time.sleep(0.3)
    assert cli("spawn", "b").exit_code == 0 and cli("--as", "x", "start", "b").exit_code == 0
    time.sleep(0.3)
    assert cli("--as", "x", "done", "b").exit_code == 0
    lane = [line for line in cli("timeline", "--width", "60").stdout.splitlines() if line.startswith("b ")][0]
    assert lane.rstrip().endswith("R")
