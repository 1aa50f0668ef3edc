"""`coord serve`: a live, read-only web board (Starlette + uvicorn, the `web` extra).

source.py is the only module here that reads coord; the rest serves what it returns:
app.py (routes and the JSON API), guard.py (Host check, token, cookie, headers),
stream.py (server-sent events from the log), pages.py (the HTML), server.py (binding and
running), static/ (the page's script and style)."""
