"""The in-memory backend: a log held in this process, for tests and embedding.

Open it through `events.open_store("memory:")` (a new, empty log each time),
or share one `MemoryLog` between several `MemoryEventStore`s. Nothing is
durable: the log ends with the process.
"""

from __future__ import annotations

from ._store import MemoryCheckpointStore, MemoryEventStore, MemoryLeaseStore, MemoryLog

__all__ = ["MemoryCheckpointStore", "MemoryEventStore", "MemoryLeaseStore", "MemoryLog"]
