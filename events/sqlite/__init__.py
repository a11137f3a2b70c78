"""The embedded default backend: the log in one SQLite file, through aiosqlite.

`SQLiteEventStore` is an `EventStore` whose `checkpoints` (a
`SQLiteCheckpointStore`) live in the same file. Open it through
`events.open_store(path)` (or a `sqlite:///` URL) rather than by name.
"""

from __future__ import annotations

from ._checkpoints import SQLiteCheckpointStore
from ._leases import SQLiteLeaseStore
from ._store import SQLiteEventStore

__all__ = ["SQLiteCheckpointStore", "SQLiteEventStore", "SQLiteLeaseStore"]
