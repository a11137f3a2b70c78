"""Another log's run, written into this one in one transaction (`import_run`).

The import is a `Job` of the store's writer: one transaction that locks the
log's head like every append (`_schema.py`, note 1), checks that no stream
of the run exists, gives the events new positions after the head in their
original order, keeps stream versions and `recorded_at`, maps
`causation_id`s to the new positions (None when the cause is not in the
run), moves the head and notifies subscribers. See `events/sqlite/_import.py`
for why an import is not a series of appends.

The events are taken from their iterable a chunk at a time on a worker
thread, as SQLite's import does (`events/_import_chunks.py`): each chunk's
new streams are checked against the log, then its rows go in one statement
that also moves the head (the NOTIFY is delivered once, on commit). A run of
any size is written with one chunk of it in memory. On the first stream
that exists, the rest is only read to name every such stream, and the
transaction is rolled back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import asyncpg

from .._decoding import microseconds
from .._import_chunks import Remap, take_chunk
from .._store import ImportedEvent
from ..errors import ImportConflict
from ._schema import Tables
from ._writer import lock_head, write_rows

__all__ = ["insert_run"]


async def insert_run(
    conn: asyncpg.Connection, tables: Tables, run_id: str, events: Iterable[ImportedEvent]
) -> int:
    """Insert `events` after the head (inside the writer's transaction); the first position.

    `events` is iterated once, in chunks, on a worker thread. Raises
    `ImportConflict` when a stream of `events` exists already.
    """
    head, last_us = await lock_head(conn, tables)
    remap = Remap(head)
    iterator = iter(events)
    seen: set[str] = set()
    existing: list[str] = []
    while chunk := await asyncio.to_thread(take_chunk, iterator):
        new = list(dict.fromkeys(e.stream_id for e in chunk if e.stream_id not in seen))
        seen.update(new)
        found = await conn.fetch(
            f"SELECT DISTINCT stream_id FROM {tables.events} WHERE stream_id = ANY($1::text[])",
            new,
        )
        there = {row[0] for row in found}
        existing += [stream for stream in new if stream in there]
        if existing:
            continue  # nothing more is inserted; the rest is read to name every conflict
        columns = await asyncio.to_thread(_columns, remap, chunk)
        del chunk  # one chunk in memory at a time
        await write_rows(conn, tables, columns, remap.last, last_us)
        del columns
    if existing:
        raise ImportConflict(run_id, existing)
    return head + 1


def _columns(remap: Remap, events: list[ImportedEvent]) -> list[list[Any]]:
    """The rows of `events` as one list per column (positions and causes remapped)."""
    columns: list[list[Any]] = [[] for _ in range(13)]
    for event in events:
        meta = event.meta
        position = remap.place(event)
        row = (
            position, event.stream_id, event.version,
            microseconds(event.recorded_at), event.type, event.schema_version, event.data,
            meta.run_id, meta.agent_id, meta.parent_id, remap.cause(meta.causation_id),
            meta.correlation_id, meta.source,
        )  # fmt: skip
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns
