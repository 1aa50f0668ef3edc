"""The page: one HTML shell for every view (board, worker, messages, timeline, stats),
drawn by static/app.js from the JSON API. The shell holds no data at all: whatever agents
wrote reaches the page only as JSON, and enters the DOM only as text (textContent,
createTextNode), never as markup."""

from pathlib import Path

SHELL = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coord board</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script>
</head>
<body>
<header class="top">
  <a class="brand" href="/" data-nav><span class="logo">coord</span><span class="project" id="project"></span></a>
  <nav>
    <a href="/" data-nav data-view="board">Board</a>
    <a href="/messages" data-nav data-view="messages">Messages</a>
    <a href="/timeline" data-nav data-view="timeline">Timeline</a>
    <a href="/stats" data-nav data-view="stats">Stats</a>
  </nav>
  <div class="conn" id="conn" title="live updates"><i></i><span>connecting</span></div>
</header>
<main id="main"><p class="muted">Loading\xe2\x80\xa6</p></main>
<noscript><p class="muted">The board draws itself with JavaScript from this server's JSON API (/api/...).</p></noscript>
</body></html>
"""

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_TYPES = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def static_files() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, content type), read once at start (only these names are served)."""
    return {name: ((STATIC_DIR / name).read_bytes(), kind) for name, kind in STATIC_TYPES.items()}
