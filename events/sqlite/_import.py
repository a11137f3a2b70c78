"""Another log's run, written into this one in one transaction (`import_run`).

Notes (do not fix without reading this):
1. The import is a `Job` of the store's writer (`_writer.py`, note 6): one
   transaction on the writer's connection, not `append`s. Appends cannot
   carry an event's original `recorded_at` (every projection's times,
   durations and critical paths come from it, so a run imported through
   `append` would show all of its waits as zero), and one append per stream
   cannot be all-or-nothing across streams. The transaction checks that no
   stream of the run exists (what `expected_version=NO_STREAM` checks per
   append), gives the events new positions after the head in their
   original order, keeps stream versions, maps `causation_id`s to the new
   positions (None when the cause is not in the run), and widens `spans` as
   the writer does.
2. Imported events keep their `recorded_at`, so `recorded_at` is not
   monotonic along positions in a log that received an import; nothing in
   fleet relies on that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import aiosqlite

from .._decoding import microseconds
from .._store import ImportedEvent
from ..errors import ImportConflict
from ._rows import UPSERT_SPAN

__all__ = ["insert_run"]

_STREAM_BATCH = 500  # stream ids per `IN (...)` (SQLite allows 32766 parameters)

_INSERT = (
    "INSERT INTO events (position, stream_id, version, type, schema_version, data, run_id, "
    "agent_id, parent_id, causation_id, correlation_id, source, recorded_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


async def insert_run(
    conn: aiosqlite.Connection, run_id: str, events: Sequence[ImportedEvent]
) -> int:
    """Insert `events` after the head (inside the writer's transaction); the first position.

    Raises `ImportConflict` when a stream of `events` exists already.
    """
    streams = list(dict.fromkeys(event.stream_id for event in events))
    existing: list[str] = []
    for i in range(0, len(streams), _STREAM_BATCH):
        batch = streams[i : i + _STREAM_BATCH]
        marks = ",".join("?" * len(batch))
        found = await conn.execute_fetchall(
            f"SELECT DISTINCT stream_id FROM events WHERE stream_id IN ({marks})", batch
        )
        existing += [str(row[0]) for row in found]
    if existing:
        raise ImportConflict(run_id, existing)
    ((head,),) = await conn.execute_fetchall("SELECT COALESCE(MAX(position), 0) FROM events")
    # Building 100,000 rows is CPU work: off the event loop.
    params, spans = await asyncio.to_thread(_rows_for, events, int(head))
    await conn.executemany(_INSERT, params)
    await conn.executemany(UPSERT_SPAN, spans)
    return int(head) + 1


def _rows_for(
    events: Sequence[ImportedEvent], head: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows to insert after `head` (positions and causation ids remapped) and their spans."""
    new_position = {event.position: head + i for i, event in enumerate(events, start=1)}
    spans: dict[tuple[str, str], list[int]] = {}
    params = []
    for event in events:
        position = new_position[event.position]
        meta = event.meta
        for kind, key in (("run", meta.run_id), ("agent", meta.agent_id)):
            if key is not None:
                span = spans.setdefault((kind, key), [position, position])
                span[1] = position
        cause = meta.causation_id
        params.append(
            (
                position, event.stream_id, event.version, event.type, event.schema_version,
                event.data, meta.run_id, meta.agent_id, meta.parent_id,
                None if cause is None else new_position.get(cause),
                meta.correlation_id, meta.source, microseconds(event.recorded_at),
            )
        )  # fmt: skip
    return params, [(*key, *span) for key, span in spans.items()]
