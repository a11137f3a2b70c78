"""Another log's run, written into this one in one transaction (`import_run`).

The import is a `Job` of the store's writer: one transaction that locks the
log's head like every append (`_schema.py`, note 1), checks that no stream
of the run exists, gives the events new positions after the head in their
original order, keeps stream versions and `recorded_at`, maps
`causation_id`s to the new positions (None when the cause is not in the
run), moves the head and notifies subscribers. See `events/sqlite/_import.py`
for why an import is not a series of appends.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from .._decoding import microseconds
from .._store import ImportedEvent
from ..errors import ImportConflict
from ._schema import Tables
from ._writer import lock_head, write_rows

__all__ = ["insert_run"]


async def insert_run(
    conn: asyncpg.Connection, tables: Tables, run_id: str, events: Sequence[ImportedEvent]
) -> int:
    """Insert `events` after the head (inside the writer's transaction); the first position.

    Raises `ImportConflict` when a stream of `events` exists already.
    """
    head, last_us = await lock_head(conn, tables)
    streams = list(dict.fromkeys(event.stream_id for event in events))
    found = await conn.fetch(
        f"SELECT DISTINCT stream_id FROM {tables.events} WHERE stream_id = ANY($1::text[])",
        streams,
    )
    if found:
        existing = {row[0] for row in found}
        raise ImportConflict(run_id, [s for s in streams if s in existing])
    if not events:
        return head + 1
    new_position = {event.position: head + i for i, event in enumerate(events, start=1)}
    columns: list[list[Any]] = [[] for _ in range(13)]
    for event in events:
        meta = event.meta
        cause = meta.causation_id
        row = (
            new_position[event.position], event.stream_id, event.version,
            microseconds(event.recorded_at), event.type, event.schema_version, event.data,
            meta.run_id, meta.agent_id, meta.parent_id,
            None if cause is None else new_position.get(cause),
            meta.correlation_id, meta.source,
        )  # fmt: skip
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await write_rows(conn, tables, columns, head + len(events), last_us)
    return head + 1
