"""`coord serve`: a live, read-only web board (Starlette + uvicorn, the `web` extra).

A presentation room beside coord.cli (docs/architecture.md). source.py is the only module
here that reads coord (through coord.app, the projections and the store interface), with
token.py for the token file; the rest serves what they return: app.py (routes and the
JSON API; responses.py its JSON), guard.py (Host check, token, cookie, headers),
stream.py (server-sent events
from the log), pages.py (the HTML), server.py (binding and running), static/ (the page's
script and style)."""
