"""Screenshots of the web board for docs/ (docs/img/*.png): the board, a worker's page,
the messages and the timeline, taken in headless chromium (tests/browser.py) from a real
`coord serve` over the afternoon in bench/web_story.py. Every request outside loopback is
refused while they are taken.

    .venv/bin/python bench/web_screenshots.py [--out docs/img]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from web_story import build  # noqa: E402

from boardserver import BoardServer  # noqa: E402
from browser import Browser  # noqa: E402
from coord.events.files import USER_UMASK  # noqa: E402

SHOTS = [
    # file, path, what to wait for, height
    ("board.png", "/", "board", 760),
    ("worker.png", "/workers/db-migration", "worker", 1060),
    ("messages.png", "/messages?q=retry", "messages", 760),
    ("timeline.png", "/timeline", "timeline", 560),
    ("stats.png", "/stats", "stats", 900),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE.parent / "docs" / "img"))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="coord-shots-") as tmp:
        home = build(Path(tmp) / "payments-service")
        server = BoardServer(home).start()
        try:
            with Browser(width=1440, height=900) as browser:
                page = browser.new_page()
                page.block_external()
                page.goto(server.url)
                page.wait_for("document.body.getAttribute('data-ready') === 'board'")
                for name, path, ready, height in SHOTS:
                    page.send(
                        "Emulation.setDeviceMetricsOverride",
                        {"width": 1440, "height": height, "deviceScaleFactor": 1, "mobile": False},
                    )
                    page.goto(server.base + path)
                    page.wait_for(f"document.body.getAttribute('data-ready') === '{ready}'")
                    if ready == "board":  # show the finished ones too: every state on one picture
                        page.evaluate("document.querySelector('label.check input').click()")
                    if ready == "messages":
                        page.wait_for("document.querySelector('#results') !== null")
                    page.wait_for("document.body.getAttribute('data-conn') === 'live'")
                    time.sleep(0.3)
                    page.screenshot(out / name)
                    # building the home set coord's private umask in this process: the
                    # pictures get the user's own
                    os.chmod(out / name, 0o666 & ~USER_UMASK)
                    print(f"wrote {out / name}")
                problems = page.blocked + page.page_errors
                if problems:
                    sys.exit(f"the page had problems: {problems}")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
