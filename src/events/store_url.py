"""Where a home's log lives: the `store` setting (and COORD_STORE) checked, and connection
strings made fit to print. A password never belongs in a setting and is never printed."""

import re
from urllib.parse import parse_qs, urlsplit

NO_PASSWORD = "must not hold a password: use ~/.pgpass, PGPASSWORD or a service= name"


def store_problem(v: str):
    """'' (SQLite: coord.db) or a PostgreSQL connection string (a postgresql:// URL, or
    key=value words such as `service=coord`) that holds no password; else what is wrong."""
    if v == "":
        return None
    if v.startswith(("postgresql://", "postgres://")):
        try:
            u = urlsplit(v)
            if u.password is not None or "password" in parse_qs(u.query):
                return NO_PASSWORD
        except ValueError:
            return "must be a valid postgresql:// URL"
        return None
    if "=" in v and not v.startswith("="):
        words = dict(w.split("=", 1) for w in v.split() if "=" in w)
        return NO_PASSWORD if "password" in words else None
    return "must be empty (SQLite) or a postgresql://… URL or a `service=NAME` connection string"


def redact(text: str) -> str:
    """A connection string (or a message holding one) with any password replaced by ***."""
    text = re.sub(r"(://[^/@:\s]*:)[^@/\s]*@", r"\1***@", text)
    return re.sub(r"(password=)[^&\s]*", r"\1***", text, flags=re.I)


def shown_url(url: str) -> str:
    """A store's connection string fit to print: scheme, user, host, port and database
    only (no password, no query parameters)."""
    if not url.startswith(("postgresql://", "postgres://")):
        return redact(url)
    try:
        u = urlsplit(url)
        host = u.hostname or ""
        port = f":{u.port}" if u.port else ""
        user = f"{u.username}@" if u.username else ""
        return f"{u.scheme}://{user}{host}{port}{u.path}"
    except ValueError:
        return "postgresql://…"
