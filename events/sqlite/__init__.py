"""The embedded default backend: the log in one SQLite file, through aiosqlite."""

from __future__ import annotations

from ._store import DEFAULT_MAX_EVENT_BYTES, SQLiteEventStore

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SQLiteEventStore"]
