"""`open_store`: a log named by a path or a URL, opened by the backend that serves it.

    async with open_store(".fleet/fleet.db") as store: ...            # SQLite
    async with open_store("sqlite:///.fleet/fleet.db") as store: ...  # the same
    async with open_store("memory:") as store: ...                    # a new in-memory log
    store = await open_store(path, readonly=True).open()              # reads only

- a path (`str` or `os.PathLike`), or `sqlite:///PATH` (relative) or
  `sqlite:////PATH` (absolute): SQLite (`events.sqlite`);
- `memory:`: a new, empty log in memory (`events.memory`), gone with the process;
- `postgresql://user@host:port/database?schema=NAME` (or `postgres://...`):
  PostgreSQL (`events.postgres`), the log in one schema (default `fleet`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from ._store import EventStore
from .errors import UnsupportedLocation
from .memory import MemoryEventStore
from .sqlite import SQLiteEventStore

__all__ = ["open_store"]

# A URL scheme of two or more characters (so `C:\\...` stays a path) followed by a colon.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


def open_store(location: str | os.PathLike[str], **options: Any) -> EventStore:
    """The store for the log at `location` (a path or a URL), not yet open.

    Use it as `async with open_store(location) as store:` (opened on entry,
    closed on exit) or `store = await open_store(location).open()`. `options`
    go to the backend: `readonly=True` opens an existing log for reading only
    (every write raises `StoreUnavailable`; SQLite opens the file with
    `mode=ro`), and `max_event_bytes`, `poll_interval`, `lock_timeout` as each
    backend documents them.

    Raises `UnsupportedLocation` for a URL no backend serves, `TypeError`
    for an option the backend does not take, `ValueError` for a bad option
    value. Opening raises the backend's errors
    (`LogNotFound` for a missing log opened read-only, `StoreUnavailable`
    for a folder or file that cannot be written or a server that cannot be
    reached, `NotADatabase`).
    """
    if not isinstance(location, str):
        return SQLiteEventStore(Path(location), **options)
    found = _SCHEME.match(location)
    scheme = found.group(1).lower() if found else ""
    if scheme == "sqlite":
        return SQLiteEventStore(_sqlite_path(location), **options)
    if scheme == "memory":
        if location.lower() != "memory:":
            raise UnsupportedLocation(location, 'an in-memory log is named "memory:" alone')
        return MemoryEventStore(**options)
    if scheme in ("postgresql", "postgres"):
        # Imported here: asyncpg is loaded only by the processes that use it.
        from .postgres import PostgresEventStore

        return PostgresEventStore(location, **options)
    if found and "://" in location:
        raise UnsupportedLocation(
            location,
            f"no backend for {scheme}:// (use a path, sqlite:///PATH, postgresql://... or memory:)",
        )
    return SQLiteEventStore(Path(location), **options)


def _sqlite_path(url: str) -> Path:
    """`sqlite:///relative/path` or `sqlite:////absolute/path` (SQLAlchemy's convention)."""
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or parts.query or parts.fragment:
        raise UnsupportedLocation(
            url, "a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path"
        )
    path = unquote(parts.path[1:])
    if not path:
        raise UnsupportedLocation(url, "the SQLite URL names no file")
    return Path(path)
