"""The backend for many machines: the log in one PostgreSQL schema, through asyncpg.

`PostgresEventStore` is an `EventStore` whose `checkpoints` (a
`PostgresCheckpointStore`) and `leases` (a `PostgresLeases`) live in the
same schema. Open it through `events.open_store("postgresql://...")`.
"""

from __future__ import annotations

from ._checkpoints import PostgresCheckpointStore
from ._leases import PostgresLeases
from ._store import PostgresEventStore

__all__ = ["PostgresCheckpointStore", "PostgresEventStore", "PostgresLeases"]
